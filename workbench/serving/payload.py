"""The scoring request: what a client sends, checked field by field before anything is scored.

A request is ``{"instances": [{"user_id": 7, "merchant_id": 12, "amount": 31.5}, ...]}``. Optional per
instance: ``request_id`` (echoed back and used as the prediction log key; generated when absent) and
``timestamp`` (ISO 8601, the transaction time; defaults to now, UTC). ``hour_of_day`` and ``is_night``
are derived from the timestamp exactly as the training frame derives them. Anything else is refused,
so a misspelt field fails loudly instead of being ignored.
"""

from __future__ import annotations

import math
import numbers
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workbench.errors import InvalidInput

MAX_INSTANCES = 1000
MAX_ID = 2**63 - 1
MAX_REQUEST_ID_CHARS = 128
NIGHT_HOURS = range(0, 6)  # 00:00-05:59 UTC, as workbench.features.training.entity_frame
REQUIRED_FIELDS = ("user_id", "merchant_id", "amount")
REQUEST_COLUMNS = ("amount", "hour_of_day", "is_night")
"""Model inputs taken from the request (= workbench.features.REQUEST_FEATURES); the rest come from Feast."""
DEPLOYMENT_CLASS = "FraudScorer"
"""The Ray Serve deployment inside each workbench application."""
OPTIONAL_FIELDS = ("request_id", "timestamp")


class PayloadError(InvalidInput):
    """A request that cannot be scored; ``field`` names where (e.g. ``instances[3].amount``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


@dataclass(frozen=True)
class Instance:
    """One validated transaction to score."""

    request_id: str
    user_id: int
    merchant_id: int
    amount: float
    timestamp: datetime

    @property
    def hour_of_day(self) -> int:
        return self.timestamp.hour

    @property
    def is_night(self) -> int:
        return int(self.timestamp.hour in NIGHT_HOURS)


def _int_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise PayloadError(where, f"must be an integer id, got {value!r}")
    if not 0 <= int(value) <= MAX_ID:
        raise PayloadError(where, f"must be between 0 and {MAX_ID}, got {value}")
    return int(value)


def _amount(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PayloadError(where, f"must be a number, got {value!r}")
    amount = float(value)
    if not math.isfinite(amount) or amount < 0:
        raise PayloadError(where, f"must be a finite amount >= 0, got {value!r}")
    return amount


def _timestamp(value: Any, where: str, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise PayloadError(where, f"must be an ISO 8601 string such as '2026-01-31T13:45:00Z', got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise PayloadError(where, f"is not an ISO 8601 time: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _request_id(value: Any, where: str) -> str:
    if value is None:
        return uuid.uuid4().hex
    if not isinstance(value, str) or not value or len(value) > MAX_REQUEST_ID_CHARS:
        raise PayloadError(where, f"must be a non-empty string of at most {MAX_REQUEST_ID_CHARS} characters")
    return value


def parse_instance(raw: Any, where: str = "instance", now: datetime | None = None) -> Instance:
    """One instance from its JSON form; PayloadError names the first bad field."""
    if not isinstance(raw, dict):
        raise PayloadError(where, f"must be an object with {list(REQUIRED_FIELDS)}, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise PayloadError(f"{where}.{unknown[0]}", f"is not a known field; send {list(REQUIRED_FIELDS)} "
                           f"and optionally {list(OPTIONAL_FIELDS)}")
    for name in REQUIRED_FIELDS:
        if name not in raw:
            raise PayloadError(f"{where}.{name}", "is required")
    return Instance(
        request_id=_request_id(raw.get("request_id"), f"{where}.request_id"),
        user_id=_int_id(raw["user_id"], f"{where}.user_id"),
        merchant_id=_int_id(raw["merchant_id"], f"{where}.merchant_id"),
        amount=_amount(raw["amount"], f"{where}.amount"),
        timestamp=_timestamp(raw.get("timestamp"), f"{where}.timestamp", now or datetime.now(UTC)),
    )


def parse_payload(body: Any) -> list[Instance]:
    """Every instance of a request body, or PayloadError for the first problem found.

    Request ids must be unique within a request: the prediction log is keyed by them.
    """
    if not isinstance(body, dict) or "instances" not in body:
        raise PayloadError("instances", 'is required: send {"instances": [{"user_id": …, "merchant_id": …, '
                           '"amount": …}]}')
    extra = sorted(set(body) - {"instances"})
    if extra:
        raise PayloadError(extra[0], 'is not a known field; the body holds only "instances"')
    raw = body["instances"]
    if not isinstance(raw, list) or not raw:
        raise PayloadError("instances", "must be a non-empty list of objects")
    if len(raw) > MAX_INSTANCES:
        raise PayloadError("instances", f"holds {len(raw)} items; send at most {MAX_INSTANCES} per request")
    now = datetime.now(UTC)
    instances = [parse_instance(item, f"instances[{i}]", now) for i, item in enumerate(raw)]
    seen: set[str] = set()
    for i, instance in enumerate(instances):
        if instance.request_id in seen:
            raise PayloadError(f"instances[{i}].request_id", f"{instance.request_id!r} appears twice in this request")
        seen.add(instance.request_id)
    return instances
