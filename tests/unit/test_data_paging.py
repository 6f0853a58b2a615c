"""Paging with DuckDB: every page equals what pandas computes on the same small files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.data import paging
from workbench.data.generator import generate_transactions, write_transactions
from workbench.data.paging import MAX_LIMIT, read_page
from workbench.errors import InvalidInput

N = 3_000


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = generate_transactions(N, seed=21)
    df["amount"] = df["amount"].astype("float64")
    df.loc[df.index % 97 == 5, "amount"] = np.nan  # nulls sort last, as in pandas
    return df


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("paging")
    csv = root / "tx.csv"
    frame.to_csv(csv, index=False)
    return {
        "file": write_transactions(frame, root / "tx.parquet"),
        "folder": write_transactions(frame, root / "parts", rows_per_file=700),
        "csv": csv,
    }


def expected(df: pd.DataFrame, offset: int, limit: int, sort_by: str | None = None,
             descending: bool = False) -> pd.DataFrame:
    if sort_by is not None:
        df = df.sort_values(sort_by, ascending=not descending, kind="stable", na_position="last")
    return df.iloc[offset:offset + limit].reset_index(drop=True)


def assert_same(got: pd.DataFrame, want: pd.DataFrame, csv: bool = False) -> None:
    if csv:  # CSV loses dtypes in the round trip; the row identity is what matters
        assert got["transaction_id"].tolist() == want["transaction_id"].tolist()
        return
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


CASES = [(kind, sort_by, desc) for kind in ("file", "folder")
         for sort_by in (None, "amount", "event_timestamp", "category", "user_id") for desc in (False, True)]
CASES += [("csv", None, False), ("csv", "amount", True), ("csv", "category", False)]


@pytest.mark.parametrize(("kind", "sort_by", "descending"), CASES)
def test_pages_equal_pandas(sources: dict[str, Path], frame: pd.DataFrame, kind: str, sort_by: str | None,
                            descending: bool) -> None:
    for offset, limit in [(0, 50), (1_234, 100), (N - 30, 100)]:
        page = read_page(sources[kind], offset=offset, limit=limit, sort_by=sort_by, descending=descending)
        assert page.total_rows == N and (page.offset, page.limit) == (offset, limit)
        assert_same(page.rows, expected(frame, offset, limit, sort_by, descending), csv=kind == "csv")


@pytest.mark.parametrize("descending", [False, True])
def test_deep_pages_through_the_sampled_window_equal_pandas(sources: dict[str, Path], frame: pd.DataFrame,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            descending: bool) -> None:
    monkeypatch.setattr(paging, "_TOPN_MAX", 10)  # make every page past the 10th row take the window path
    monkeypatch.setattr(paging, "_SAMPLE_ROWS", 200)  # a small sample: the exact counts must still hold
    used: list[bool] = []
    original = paging._window_keys

    def spy(*args, **kwargs):
        keys = original(*args, **kwargs)
        used.append(keys is not None)
        return keys

    monkeypatch.setattr(paging, "_window_keys", spy)
    for sort_by in ["amount", "user_id", "category", "event_timestamp"]:
        for offset in [11, 1_000, 2_000, N - 300]:
            page = read_page(sources["folder"], offset=offset, limit=60, sort_by=sort_by, descending=descending)
            assert_same(page.rows, expected(frame, offset, 60, sort_by, descending))
    filters = [("device", "!=", "pos"), ("amount", ">", 10.0)]
    want = frame[(frame["device"] != "pos") & (frame["amount"] > 10.0)]
    for sort_by in ["amount", "category"]:
        page = read_page(sources["folder"], offset=1_000, limit=60, sort_by=sort_by, descending=descending,
                         filters=filters)
        assert page.total_rows == len(want)
        assert_same(page.rows, expected(want, 1_000, 60, sort_by, descending))
    assert used == [True] * 18  # the window served every page, not the top-N fallback


def test_deep_pages_of_one_order_sample_once_and_a_rewritten_file_is_sampled_again(
        tmp_path: Path, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scrolling a sorted view: the sorted sample behind a deep page is taken once per dataset state,
    column and filter, and a file rewritten in place (new size or mtime) is sampled again."""
    monkeypatch.setattr(paging, "_TOPN_MAX", 10)
    monkeypatch.setattr(paging, "_SAMPLES", {})
    path = tmp_path / "one.parquet"
    frame.to_parquet(path, index=False)
    sampled: list[str] = []
    original = paging._sorted_sample

    def spy(con, data, col, where, params, m):  # type: ignore[no-untyped-def]
        before = len(paging._SAMPLES)
        out = original(con, data, col, where, params, m)
        if len(paging._SAMPLES) > before or not paging._SAMPLES:
            sampled.append(col)
        return out

    monkeypatch.setattr(paging, "_sorted_sample", spy)
    for offset in (500, 1_500, 2_500):
        page = read_page(path, offset=offset, limit=50, sort_by="amount")
        assert_same(page.rows, expected(frame, offset, 50, "amount"))
    assert sampled == ['"amount"']  # three deep pages, one sample
    page = read_page(path, offset=700, limit=50, sort_by="amount", filters=[("device", "!=", "pos")])
    assert sampled == ['"amount"', '"amount"']  # another filter, another sample
    changed = frame.assign(amount=frame["amount"][::-1].to_numpy() * 2.0 + 1.0)
    changed.to_parquet(path, index=False)
    page = read_page(path, offset=1_500, limit=50, sort_by="amount")
    assert_same(page.rows, expected(changed, 1_500, 50, "amount"))
    assert len(sampled) == 3


@pytest.mark.parametrize("descending", [False, True])
def test_first_pages_bounded_by_row_group_statistics_equal_pandas(tmp_path: Path, frame: pd.DataFrame,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  descending: bool) -> None:
    path = tmp_path / "small_groups.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=25)  # 120 groups
    bounds: list[object] = []
    original = paging._stats_bound

    def spy(*args, **kwargs):
        bounds.append(original(*args, **kwargs))
        return bounds[-1]

    monkeypatch.setattr(paging, "_stats_bound", spy)
    for sort_by in ["amount", "user_id", "merchant_id"]:
        for offset, limit in [(0, 60), (40, 60), (100, 20)]:
            page = read_page(path, offset=offset, limit=limit, sort_by=sort_by, descending=descending)
            assert_same(page.rows, expected(frame, offset, limit, sort_by, descending))
    assert len(bounds) == 9 and all(b is not None for b in bounds)
    read_page(path, offset=200, limit=60, sort_by="amount")  # more rows than row groups: no bound
    assert bounds[-1] is None


def test_pages_tile_the_sorted_dataset(sources: dict[str, Path], frame: pd.DataFrame) -> None:
    ids = []
    for offset in range(0, N, 400):
        ids += read_page(sources["folder"], offset=offset, limit=400, sort_by="merchant_id").rows[
            "transaction_id"].tolist()
    assert ids == frame.sort_values("merchant_id", kind="stable")["transaction_id"].tolist()


def test_filters_equal_pandas(sources: dict[str, Path], frame: pd.DataFrame) -> None:
    cases = [
        ([("amount", ">", 40.0)], frame["amount"] > 40.0),
        ([("amount", "<=", 12.5)], frame["amount"] <= 12.5),
        ([("amount", ">=", 30), ("amount", "<", 31)], (frame["amount"] >= 30) & (frame["amount"] < 31)),
        ([("device", "==", "web")], frame["device"] == "web"),
        ([("device", "!=", "web")], frame["device"] != "web"),
        ([("category", "in", ["travel", "fuel"])], frame["category"].isin(["travel", "fuel"])),
        ([("country", "contains", "U")], frame["country"].str.contains("U", regex=False)),
        ([("is_fraud", "==", 1), ("is_night", "==", True)], (frame["is_fraud"] == 1) & frame["is_night"]),
        ([("event_timestamp", ">=", "2026-01-15")],
         frame["event_timestamp"] >= pd.Timestamp("2026-01-15", tz="UTC")),
        ([("event_timestamp", "<", pd.Timestamp("2026-01-03", tz="UTC"))],
         frame["event_timestamp"] < pd.Timestamp("2026-01-03", tz="UTC")),
        ([("amount", "==", None)], frame["amount"].isna()),
        ([{"column": "user_id", "op": "in", "value": [1, 2, 3]}], frame["user_id"].isin([1, 2, 3])),
        ([("category", "in", [])], pd.Series(False, index=frame.index)),
    ]
    for i, (filters, mask) in enumerate(cases):
        want = frame[mask]
        for kind in ("folder", "csv") if i % 4 == 0 else ("folder",):
            page = read_page(sources[kind], offset=5, limit=40, sort_by="amount", descending=True, filters=filters)
            assert page.total_rows == len(want), filters
            assert_same(page.rows, expected(want, 5, 40, "amount", True), csv=kind == "csv")


def test_columns_are_selected_in_the_order_asked(sources: dict[str, Path], frame: pd.DataFrame) -> None:
    page = read_page(sources["folder"], limit=5, sort_by="amount", columns=["amount", "transaction_id"])
    assert list(page.rows.columns) == ["amount", "transaction_id"]
    want = expected(frame, 0, 5, "amount")[["amount", "transaction_id"]]
    pd.testing.assert_frame_equal(page.rows, want, check_dtype=False)


def test_timestamps_stay_utc_and_page_is_json(sources: dict[str, Path]) -> None:
    page = read_page(sources["file"], limit=3, sort_by="event_timestamp", descending=True)
    assert str(page.rows["event_timestamp"].dt.tz) == "UTC"
    payload = json.loads(json.dumps(page.to_dict()))
    assert payload["total_rows"] == N and len(payload["rows"]) == 3
    assert payload["rows"][0]["event_timestamp"].endswith("+00:00")


def test_limits_offsets_and_the_end(sources: dict[str, Path]) -> None:
    page = read_page(sources["folder"], offset=N - 10, limit=100)
    assert len(page.rows) == 10 and not page.has_next
    empty = read_page(sources["folder"], offset=N + 5, limit=100, sort_by="amount")
    assert empty.rows.empty and empty.total_rows == N
    assert list(empty.rows.columns) == list(read_page(sources["folder"], limit=1).rows.columns)
    capped = read_page(sources["folder"], limit=MAX_LIMIT * 5)
    assert capped.limit == MAX_LIMIT and len(capped.rows) == N
    assert read_page(sources["folder"], limit=0).rows.empty
    assert read_page(sources["folder"], offset=0, limit=100).page_count == 30
    for bad in [{"offset": -1}, {"limit": -5}, {"offset": "10"}, {"limit": 2.5}]:
        with pytest.raises(InvalidInput):
            read_page(sources["folder"], **bad)


@pytest.mark.parametrize("kwargs", [
    {"sort_by": 'amount" DESC; DROP TABLE x; --'},
    {"sort_by": "amount; SELECT 1"},
    {"sort_by": ["amount", "amount"]},
    {"columns": ['"amount"']},
    {"columns": ["amount", "1; DELETE"]},
    {"columns": "amount"},
    {"filters": [("amount) OR (1=1", ">", 0)]},
    {"filters": [("amount", "; DROP", 0)]},
    {"filters": [("amount", "LIKE", "%")]},
    {"filters": [("amount", ">")]},
    {"filters": "amount > 0"},
    {"filters": [("category", "in", "travel")]},
    {"filters": [("amount", ">", None)]},
    {"filters": [("amount", ">", object())]},
])
def test_injection_and_bad_requests_are_rejected(sources: dict[str, Path], kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        read_page(sources["folder"], **kwargs)


def test_hostile_values_are_only_values(sources: dict[str, Path]) -> None:
    page = read_page(sources["folder"], filters=[("category", "==", "x' OR '1'='1")])
    assert page.total_rows == 0
    page = read_page(sources["folder"], filters=[("country", "contains", "%")])
    assert page.total_rows == 0  # contains is literal, not a LIKE pattern


def test_corrupt_file_is_invalid_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1garbagePAR1")
    with pytest.raises(InvalidInput, match="bad.parquet"):
        read_page(bad)
