"""The fraud demo's features as one :class:`FeatureDeclaration` (its own Feast project, ``fraud``).

Besides the user's habits and the merchant's risk that the first fraud model had, it declares the
signals :mod:`workbench.data.generator` draws fraud from and that model lacked:

* **velocity**: the user's transactions in the last 10 minutes (the generator's burst window) and hour;
* **new merchant**: how often the user paid this merchant before (0: never);
* **foreign country**: the share of the user's earlier transactions made in this country (low: away
  from home); a first transaction counts as home (1.0);
* **amount against habit**: the amount over the user's 7-day mean amount;
* **night**: ``is_night`` from the request, and the hour of the request time.

``user_seconds_since_last_txn`` and every window are computed at the request time (on demand), so a
served request sees them age exactly as the training rows did.
"""

from __future__ import annotations

from workbench.features.declaration import (
    Aggregate,
    Entity,
    FeatureDeclaration,
    Relative,
    RequestTime,
    SecondsSinceLast,
    WindowedView,
)

FRAUD_PROJECT = "fraud"
FRAUD_SERVICE = "fraud_model_v2"
FRAUD_LABEL = "is_fraud"


def fraud_features(name: str = FRAUD_PROJECT, service: str = FRAUD_SERVICE) -> FeatureDeclaration:
    """The fraud demo's feature declaration over generated transactions (``generate_transactions``)."""
    return FeatureDeclaration(
        name=name,
        service=service,
        timestamp="event_timestamp",
        description="Features of the fraud model: user habits and velocity, merchant risk, novelty, travel.",
        entities=(
            Entity("user", ("user_id",), "A card holder."),
            Entity("merchant", ("merchant_id",), "A merchant accepting card payments."),
            Entity("user_merchant", ("user_id", "merchant_id"), "A card holder at one merchant."),
            Entity("user_country", ("user_id", "country"), "A card holder in one country."),
        ),
        request_columns=("amount", "is_night"),
        views=(
            WindowedView("user_activity", "user", (
                Aggregate("count", "10m", name="user_txn_count_10m"),
                Aggregate("count", "1h", name="user_txn_count_1h"),
                Aggregate("count", "1d", name="user_txn_count_1d"),
                Aggregate("count", "7d", name="user_txn_count_7d"),
                Aggregate("mean", "1d", column="amount", name="user_amount_mean_1d"),
                Aggregate("mean", "7d", column="amount", name="user_amount_mean_7d"),
                Aggregate("std", "7d", column="amount", name="user_amount_std_7d"),
                Aggregate("count", "ever", name="user_txn_count_ever"),
            ), "How much and how often the user spent, before this moment."),
            WindowedView("merchant_risk", "merchant", (
                Aggregate("count", "7d", name="merchant_txn_count_7d"),
                Aggregate("mean", "30d", column="is_fraud", name="merchant_fraud_rate_30d"),
            ), "Merchant volume (7 days) and fraud rate (30 days), before this moment."),
            WindowedView("user_merchant_novelty", "user_merchant", (
                Aggregate("count", "ever", name="user_merchant_txn_count"),
            ), "How often the user paid this merchant before (0: a new merchant)."),
            WindowedView("user_country_travel", "user_country", (
                Aggregate("count", "ever", name="user_country_txn_count"),
            ), "How often the user paid in this country before."),
        ),
        on_demand=(
            SecondsSinceLast("user", name="user_seconds_since_last_txn"),
            Relative("amount_vs_user_mean_7d", value="amount", to="user_amount_mean_7d", fill=1.0),
            Relative("user_country_share", value="user_country_txn_count", to="user_txn_count_ever", fill=1.0),
            RequestTime("hour_of_day", "hour"),
        ),
    )
