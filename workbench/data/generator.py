"""Synthetic card transactions whose fraud label follows realistic, learnable signals.

The tabular path of the workbench needs data that looks like a card-payment log (users with habits,
merchants with risk, bursts, night-time spending, travel) *and* a label a model can actually learn, so
the label is drawn from a logistic model over exactly those signals. Everything is vectorised numpy:
one million rows take 1-2 s, and the same seed always gives the same frame.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.errors import InvalidInput

CATEGORIES = ("grocery", "restaurant", "fuel", "travel", "electronics", "fashion", "entertainment",
              "health", "digital_goods", "home")
# Typical spend per category, as an offset on the user's log-amount habit.
_CATEGORY_LOG_OFFSET = np.array([0.0, 0.1, 0.2, 1.2, 1.0, 0.5, 0.0, 0.2, -0.3, 0.6])
_CATEGORY_P = np.array([0.22, 0.18, 0.10, 0.04, 0.06, 0.10, 0.08, 0.07, 0.07, 0.08])
# Some categories attract more fraud (resellable goods, card testing on digital goods).
_CATEGORY_RISK = np.array([0.02, 0.03, 0.03, 0.10, 0.15, 0.06, 0.05, 0.03, 0.18, 0.04])
DEVICES = ("mobile", "web", "pos")
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "BR", "IN")
_COUNTRY_P = np.array([0.35, 0.12, 0.10, 0.09, 0.07, 0.06, 0.05, 0.06, 0.05, 0.05])
# Relative activity per hour of day (UTC is treated as local time): quiet nights, busy evenings.
_HOUR_WEIGHT = np.array([1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 4.0, 4.2, 4.5,
                         5.0, 4.8, 4.5, 4.5, 4.8, 5.2, 5.5, 5.3, 4.6, 3.6, 2.6, 1.6])
NIGHT_HOURS = (0, 6)  # [start, end) hours counted as night
_FAVOURITES = 6  # merchants a user habitually returns to
_BURST_WINDOW_S = 600  # "several transactions within minutes"
ROW_GROUP_ROWS = 16_384

# Logistic model of the fraud label; the intercept puts the rate at roughly 2-3 %.
_INTERCEPT = -5.6
_W_AMOUNT = 1.0  # per standard deviation above the user's habit, beyond 1.5
_W_NIGHT = 1.3
_W_VELOCITY = 0.9  # per earlier transaction of the same user in the last 10 minutes (max 3)
_W_NEW_MERCHANT = 0.8
_W_FOREIGN = 1.6
_W_MERCHANT_RISK = 7.0


def generate_transactions(
    n_rows: int,
    seed: int = 0,
    n_users: int | None = None,
    n_merchants: int | None = None,
    start: str = "2026-01-01",
    days: int = 30,
    with_probability: bool = False,
) -> pd.DataFrame:
    """Generate ``n_rows`` card transactions, sorted by ``event_timestamp`` (UTC).

    ``with_probability=True`` adds ``fraud_probability``, the true P(fraud) each label was drawn from: the
    oracle that scores with it sets the best ROC-AUC any model can reach on these rows (never train on it).

    Columns: transaction_id, user_id, merchant_id, category, amount, event_timestamp, device, country,
    is_night, is_fraud. Fraud is drawn from a logistic model of: amount far above the user's habit,
    night-time hour, velocity bursts, a merchant new to the user, a country other than the user's home,
    and the merchant's risk.
    """
    if n_rows < 0:
        raise InvalidInput(f"n_rows must be >= 0, got {n_rows}")
    if days < 1:
        raise InvalidInput(f"days must be >= 1, got {days}")
    n_users = n_users if n_users is not None else max(50, n_rows // 40)
    n_merchants = n_merchants if n_merchants is not None else max(20, n_rows // 200)
    if n_users < 1 or n_merchants < 1:
        raise InvalidInput(f"n_users and n_merchants must be >= 1, got {n_users} and {n_merchants}")
    try:
        start_ts = pd.Timestamp(start)
    except ValueError as exc:
        raise InvalidInput(f"start must be a date such as '2026-01-01', got {start!r}") from exc
    start_ts = start_ts.tz_localize("UTC") if start_ts.tzinfo is None else start_ts.tz_convert("UTC")
    start_ns = int(start_ts.value)
    rng = np.random.default_rng(seed)
    n = n_rows

    # Users: a home country, a spending habit (log-normal), a favourite device, an activity level,
    # and a handful of merchants they keep going back to.
    home = rng.choice(len(COUNTRIES), size=n_users, p=_COUNTRY_P)
    habit_mu = rng.normal(3.2, 0.6, n_users)
    habit_sigma = rng.uniform(0.25, 0.6, n_users)
    fav_device = rng.choice(len(DEVICES), size=n_users, p=[0.55, 0.30, 0.15])
    activity = rng.lognormal(0.0, 0.8, n_users)
    merchant_pop = rng.pareto(1.5, n_merchants) + 1.0
    merchant_cdf = np.cumsum(merchant_pop) / merchant_pop.sum()
    favourites = _weighted(rng, merchant_cdf, (n_users, _FAVOURITES))

    # Merchants: a category and a risk (mostly low, a few high), higher in risky categories.
    m_category = rng.choice(len(CATEGORIES), size=n_merchants, p=_CATEGORY_P)
    m_risk = np.clip(rng.beta(1.0, 20.0, n_merchants) + _CATEGORY_RISK[m_category]
                     * rng.uniform(0.5, 1.5, n_merchants), 0.0, 1.0)

    # Transactions: who, where, when.
    user = _weighted(rng, np.cumsum(activity) / activity.sum(), n)
    is_fav = rng.random(n) < 0.8
    merchant = np.where(is_fav, favourites[user, rng.integers(0, _FAVOURITES, n)],
                        _weighted(rng, merchant_cdf, n))
    hour = _weighted(rng, np.cumsum(_HOUR_WEIGHT) / _HOUR_WEIGHT.sum(), n)
    ts_s = rng.integers(0, days, n) * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)

    # Velocity bursts: some transactions follow another of the same user within minutes.
    n_burst = int(0.04 * n) if n > 1 else 0
    if n_burst:
        followers = rng.choice(n, size=n_burst, replace=False)
        anchors = rng.integers(0, n, n_burst)
        user[followers] = user[anchors]
        ts_s[followers] = ts_s[anchors] + 5 + rng.exponential(120.0, n_burst).astype(np.int64)
        merchant[followers] = np.where(rng.random(n_burst) < 0.5, merchant[anchors],
                                       _weighted(rng, merchant_cdf, n_burst))
    ts_s = np.minimum(ts_s, days * 86_400 - 1)

    foreign = rng.random(n) < 0.05
    country = np.where(foreign, (home[user] + rng.integers(1, len(COUNTRIES), n)) % len(COUNTRIES),
                       home[user])
    device = np.where(rng.random(n) < 0.85, fav_device[user], rng.integers(0, len(DEVICES), n))
    category = m_category[merchant]
    z = rng.standard_normal(n)
    spike = rng.random(n) < 0.02  # occasional purchases far above habit
    z = np.where(spike, z + rng.uniform(2.0, 5.0, n), z)
    amount = np.round(np.exp(habit_mu[user] + _CATEGORY_LOG_OFFSET[category] + habit_sigma[user] * z), 2)
    amount = np.maximum(amount, 0.5)

    # Time order, then the signals that depend on history.
    order = np.argsort(ts_s, kind="stable")
    user, merchant, ts_s, z = user[order], merchant[order], ts_s[order], z[order]
    country, device, category, amount, foreign = (country[order], device[order], category[order],
                                                  amount[order], foreign[order])
    hour_of_day = (ts_s // 3_600) % 24
    night = (hour_of_day >= NIGHT_HOURS[0]) & (hour_of_day < NIGHT_HOURS[1])
    recent = _recent_count(user, ts_s, _BURST_WINDOW_S)
    new_merchant = ~pd.Series(user.astype(np.int64) * n_merchants + merchant).duplicated().to_numpy()
    logit = (_INTERCEPT + _W_AMOUNT * np.clip(z - 1.5, 0.0, 4.0) + _W_NIGHT * night
             + _W_VELOCITY * np.minimum(recent, 3) + _W_NEW_MERCHANT * new_merchant
             + _W_FOREIGN * foreign + _W_MERCHANT_RISK * m_risk[merchant])
    probability = 1.0 / (1.0 + np.exp(-logit))
    is_fraud = (rng.random(n) < probability).astype(np.int64)

    frame = pd.DataFrame({
        "transaction_id": np.arange(1, n + 1, dtype=np.int64),
        "user_id": user.astype(np.int64),
        "merchant_id": merchant.astype(np.int64),
        "category": np.array(CATEGORIES, dtype=object)[category],
        "amount": amount.astype(np.float64),
        "event_timestamp": pd.DatetimeIndex(
            (start_ns + ts_s.astype(np.int64) * 1_000_000_000).view("datetime64[ns]")).tz_localize("UTC"),
        "device": np.array(DEVICES, dtype=object)[device],
        "country": np.array(COUNTRIES, dtype=object)[country],
        "is_night": night,
        "is_fraud": is_fraud,
    })
    if with_probability:
        frame["fraud_probability"] = probability
    return frame


def _weighted(rng: np.random.Generator, cdf: np.ndarray, size: int | tuple[int, ...]) -> np.ndarray:
    """Draw indices from a categorical distribution given its CDF (faster than rng.choice with p)."""
    idx = np.searchsorted(cdf, rng.random(size), side="right")
    return np.minimum(idx, len(cdf) - 1).astype(np.int64)


def _recent_count(user: np.ndarray, ts_s: np.ndarray, window_s: int) -> np.ndarray:
    """Per transaction: how many of the same user's previous 1-3 transactions fall within the window."""
    n = len(user)
    order = np.lexsort((ts_s, user))
    u, t = user[order], ts_s[order]
    count = np.zeros(n, dtype=np.int64)
    for lag in (1, 2, 3):
        if n <= lag:
            break
        same = (u[lag:] == u[:-lag]) & (t[lag:] - t[:-lag] <= window_s)
        count[lag:] += same
    out = np.empty(n, dtype=np.int64)
    out[order] = count
    return out


def write_transactions(
    df: pd.DataFrame,
    path: str | Path,
    rows_per_file: int = 1_000_000,
    overwrite: bool = False,
) -> Path:
    """Write a frame to Parquet: one file if ``path`` ends in ``.parquet``, else a folder of parts.

    Timestamps are stored as microseconds (UTC), which every engine downstream (DuckDB, Feast, Spark)
    reads. The layout is tuned for paging (see ``_write_table``).
    """
    path = Path(path)
    if rows_per_file < 1:
        raise InvalidInput(f"rows_per_file must be >= 1, got {rows_per_file}")
    table = pa.Table.from_pandas(df, preserve_index=False)
    if path.suffix == ".parquet":
        if path.exists() and not overwrite:
            raise InvalidInput(f"{path} exists; pass overwrite=True to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_table(table, path)
        return path
    if path.exists():
        if not path.is_dir():
            raise InvalidInput(f"{path} exists and is not a folder")
        if any(path.iterdir()):
            if not overwrite:
                raise InvalidInput(f"{path} is not empty; pass overwrite=True to replace its contents")
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    n_parts = max(1, -(-table.num_rows // rows_per_file))
    for i in range(n_parts):
        _write_table(table.slice(i * rows_per_file, rows_per_file), path / f"part-{i:05d}.parquet")
    return path


def _write_table(table: pa.Table, path: Path) -> None:
    # Laid out for paging. Dictionary-encode only strings and booleans: a dictionary of near-unique
    # numbers must be decoded whole before one row can be read. Row groups of 16k rows make min/max
    # statistics selective enough to skip most groups for a first page, and keep fetching a single
    # row cheap; scans and compression are unaffected.
    dictionary = [f.name for f in table.schema
                  if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                  or pa.types.is_boolean(f.type) or pa.types.is_dictionary(f.type)]
    pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS, use_dictionary=dictionary,
                   coerce_timestamps="us", allow_truncated_timestamps=True)
