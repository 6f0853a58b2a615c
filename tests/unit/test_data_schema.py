"""Schema validation with DuckDB: every rule fails on purpose on a small crafted file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.data.generator import generate_transactions, write_transactions
from workbench.data.schema import TRANSACTIONS_SCHEMA, ColumnSpec, Schema, validate
from workbench.errors import InvalidInput, NotFound, ValidationFailed

SCHEMA = Schema([
    ColumnSpec("id", "int", nullable=False, unique=True, min=1),
    ColumnSpec("amount", "float", nullable=False, min=0.0, max=100.0),
    ColumnSpec("kind", "string", allowed=["a", "b"]),
    ColumnSpec("flag", "bool"),
    ColumnSpec("ts", "timestamp", min="2026-01-01", max="2026-12-31T23:59:59Z"),
], name="crafted")


def good_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6],
        "amount": [1.0, 2.5, 99.0, 0.0, 100.0, 50.0],
        "kind": ["a", "b", "a", None, "b", "a"],
        "flag": [True, False, True, True, False, False],
        "ts": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01",
                              "2026-12-31"], utc=True),
    })


def write(tmp_path: Path, df: pd.DataFrame, name: str = "d.parquet") -> Path:
    path = tmp_path / name
    if name.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def only_issue(report, rule: str):
    found = [i for i in report.issues if i.rule == rule]
    assert len(found) == 1, report.summary()
    return found[0]


def test_good_file_passes(tmp_path: Path) -> None:
    report = validate(write(tmp_path, good_frame()), SCHEMA)
    assert report.ok and report.issues == [] and report.n_rows == 6
    assert report.raise_if_failed() is report
    assert report.to_frame().empty


def test_missing_column(tmp_path: Path) -> None:
    report = validate(write(tmp_path, good_frame().drop(columns=["flag"])), SCHEMA)
    issue = only_issue(report, "missing_column")
    assert issue.column == "flag" and issue.count == 6
    assert len(report.issues) == 1


def test_wrong_type(tmp_path: Path) -> None:
    df = good_frame().assign(id=[str(i) for i in range(1, 7)])
    issue = only_issue(validate(write(tmp_path, df), SCHEMA), "wrong_type")
    assert issue.column == "id" and "VARCHAR" in issue.message and "expected int" in issue.message


def test_int_is_accepted_where_float_is_declared(tmp_path: Path) -> None:
    df = good_frame().assign(amount=[1, 2, 3, 4, 5, 6])
    assert validate(write(tmp_path, df), SCHEMA).ok


def test_nulls(tmp_path: Path) -> None:
    df = good_frame()
    df["amount"] = [1.0, None, 3.0, None, 5.0, 6.0]
    issue = only_issue(validate(write(tmp_path, df), SCHEMA), "nulls")
    assert issue.column == "amount" and issue.count == 2
    assert [e["row"] for e in issue.examples] == [1, 3]


def test_below_min_and_above_max(tmp_path: Path) -> None:
    df = good_frame()
    df["amount"] = [-1.0, 2.0, 100.5, -0.01, 150.0, 3.0]
    report = validate(write(tmp_path, df), SCHEMA)
    low, high = only_issue(report, "below_min"), only_issue(report, "above_max")
    assert (low.count, [e["row"] for e in low.examples], [e["value"] for e in low.examples]) == \
        (2, [0, 3], [-1.0, -0.01])
    assert (high.count, [e["row"] for e in high.examples]) == (2, [2, 4])
    with pytest.raises(ValidationFailed) as err:
        report.raise_if_failed()
    assert "amount" in str(err.value) and "below the minimum" in str(err.value)
    assert err.value.report is report


def test_timestamp_bounds(tmp_path: Path) -> None:
    df = good_frame()
    df["ts"] = pd.to_datetime(["2025-12-31 23:00", "2026-02-01 00:00", "2027-01-01 00:00", "2026-04-01 00:00",
                               "2026-05-01 00:00", "2026-06-01 00:00"], utc=True)
    report = validate(write(tmp_path, df), SCHEMA)
    assert [e["row"] for e in only_issue(report, "below_min").examples] == [0]
    high = only_issue(report, "above_max")
    assert high.count == 1 and high.examples[0]["value"].startswith("2027-01-01")


def test_duplicates(tmp_path: Path) -> None:
    df = good_frame().assign(id=[1, 2, 2, 3, 2, 3])
    issue = only_issue(validate(write(tmp_path, df), SCHEMA), "duplicates")
    assert issue.count == 3  # rows beyond the first of each value
    first = issue.examples[0]
    assert first["value"] == 2 and first["occurrences"] == 3 and first["row"] == [1, 2, 4]


def test_not_in_allowed(tmp_path: Path) -> None:
    df = good_frame().assign(kind=["a", "c", "b", None, "zz", "a"])
    issue = only_issue(validate(write(tmp_path, df), SCHEMA), "not_allowed")
    assert issue.count == 2  # nulls are the nullable rule's business, not this one's
    assert [(e["row"], e["value"]) for e in issue.examples] == [(1, "c"), (4, "zz")]


def test_unexpected_column_only_when_extras_are_forbidden(tmp_path: Path) -> None:
    path = write(tmp_path, good_frame().assign(extra=1))
    assert validate(path, SCHEMA).ok
    strict = Schema(SCHEMA.columns, allow_extra_columns=False)
    assert only_issue(validate(path, strict), "unexpected_column").column == "extra"


def test_csv_and_folders_name_file_and_row(tmp_path: Path) -> None:
    df = good_frame()
    df.loc[4, "amount"] = -5.0
    report = validate(write(tmp_path, df, "d.csv"), SCHEMA)
    assert [(e["file"], e["row"]) for e in only_issue(report, "below_min").examples] == [("d.csv", 4)]

    folder = tmp_path / "parts"
    folder.mkdir()
    df.iloc[:3].to_parquet(folder / "a.parquet")
    df.iloc[3:].to_parquet(folder / "b.parquet")
    report = validate(folder, SCHEMA)
    assert [(e["file"], e["row"]) for e in only_issue(report, "below_min").examples] == [("b.parquet", 1)]


def test_report_is_json_and_a_frame(tmp_path: Path) -> None:
    df = good_frame().assign(id=[1, 1, 2, 3, 4, 5], kind=["x", "a", "a", "a", "a", "a"])
    report = validate(write(tmp_path, df), SCHEMA)
    frame = report.to_frame()
    assert list(frame.columns) == ["column", "rule", "count", "message", "examples"]
    assert set(frame["rule"]) == {"duplicates", "not_allowed"}
    assert json.loads(json.dumps(report.to_dict()))["ok"] is False


def test_schema_round_trips_through_json() -> None:
    data = json.loads(json.dumps(TRANSACTIONS_SCHEMA.to_dict()))
    assert Schema.from_dict(data) == TRANSACTIONS_SCHEMA
    assert Schema.from_dict(SCHEMA.to_dict()) == SCHEMA
    assert SCHEMA["ts"].min == "2026-01-01T00:00:00+00:00"


def test_generated_transactions_match_their_schema(tmp_path: Path) -> None:
    path = write_transactions(generate_transactions(3_000, seed=9), tmp_path / "tx", rows_per_file=1_000)
    report = validate(path, TRANSACTIONS_SCHEMA)
    assert report.ok, report.summary()
    assert report.n_rows == 3_000


@pytest.mark.parametrize("spec", [
    {"name": "a", "dtype": "integer"},
    {"name": "", "dtype": "int"},
    {"name": "a", "dtype": "string", "min": 1},
    {"name": "a", "dtype": "int", "allowed": "abc"},
    {"name": "a", "dtype": "timestamp", "min": "yesterday-ish"},
    {"name": "a", "dtype": "int", "colour": "red"},
])
def test_bad_specs_are_rejected(spec: dict) -> None:
    with pytest.raises(InvalidInput):
        ColumnSpec.from_dict(spec)


def test_duplicate_column_specs_are_rejected() -> None:
    with pytest.raises(InvalidInput):
        Schema([ColumnSpec("a", "int"), ColumnSpec("a", "float")])


def test_corrupt_missing_and_unsupported_sources(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all PAR1")
    with pytest.raises(InvalidInput, match="bad.parquet"):
        validate(bad, SCHEMA)
    with pytest.raises(NotFound):
        validate(tmp_path / "nope.parquet", SCHEMA)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInput, match="unsupported"):
        validate(tmp_path / "notes.txt", SCHEMA)
