"""Profiles computed by DuckDB, checked against pandas and numpy on the same small file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.data.generator import generate_transactions
from workbench.data.profile import QUANTILES, profile_dataset
from workbench.errors import InvalidInput


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = generate_transactions(5_000, seed=8)
    df.loc[df.index % 9 == 0, "amount"] = np.nan
    df["country"] = df["country"].astype(object)
    df.loc[df.index % 13 == 0, "country"] = None
    df["score"] = np.arange(len(df)) % 21  # integers that land exactly on histogram edges
    df["constant"] = 7.0
    return df


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> Path:
    out = tmp_path_factory.mktemp("profile") / "tx.parquet"
    frame.to_parquet(out, index=False)
    return out


@pytest.fixture(scope="module")
def profile(path: Path):
    return profile_dataset(path, bins=20)


def test_numeric_statistics_equal_pandas(profile, frame: pd.DataFrame) -> None:
    assert profile.n_rows == len(frame)
    for name in ("amount", "user_id", "score"):
        col, s = profile[name], frame[name]
        assert (col.count, col.nulls) == (s.count(), s.isna().sum()), name
        assert col.min == pytest.approx(s.min()) and col.max == pytest.approx(s.max())
        assert col.mean == pytest.approx(s.mean(), rel=1e-12)
        assert col.std == pytest.approx(s.std(), rel=1e-9)
        want = s.quantile(list(QUANTILES)).tolist()
        assert [col.quantiles[str(q)] for q in QUANTILES] == pytest.approx(want, rel=1e-12), name
    assert profile["amount"].null_fraction == pytest.approx(frame["amount"].isna().mean())


def test_distinct_counts_are_close(profile, frame: pd.DataFrame) -> None:
    for name in ("user_id", "merchant_id", "category", "amount"):
        true = frame[name].nunique()
        assert abs(profile[name].distinct_approx - true) <= max(2, 0.05 * true), name


def test_histograms_equal_numpy(profile, frame: pd.DataFrame) -> None:
    for name in ("amount", "score", "user_id", "constant"):
        counts, edges = np.histogram(frame[name].dropna(), bins=20)
        hist = profile[name].histogram
        assert hist is not None
        assert hist.counts == counts.tolist(), name
        assert hist.edges == pytest.approx(edges.tolist()), name
    seconds = frame["event_timestamp"].astype("int64") / 1e9
    counts, _ = np.histogram(seconds, bins=20)
    assert profile["event_timestamp"].histogram.counts == counts.tolist()


def test_top_values_and_booleans(profile, frame: pd.DataFrame) -> None:
    top = profile["country"].top_values
    want = frame["country"].value_counts()
    assert top[:3] == list(zip(want.index[:3], want.iloc[:3].tolist(), strict=True))
    assert profile["country"].nulls == frame["country"].isna().sum()
    assert dict(profile["device"].top_values) == frame["device"].value_counts().to_dict()
    assert profile["is_night"].mean == pytest.approx(frame["is_night"].mean())
    assert dict(profile["is_night"].top_values)[True] == frame["is_night"].sum()
    ts = profile["event_timestamp"]
    assert pd.Timestamp(ts.min) == frame["event_timestamp"].min()
    assert pd.Timestamp(ts.max) == frame["event_timestamp"].max()


def test_frame_and_dict_forms(profile, frame: pd.DataFrame) -> None:
    table = profile.to_frame()
    assert table["column"].tolist() == list(frame.columns)
    row = table.set_index("column").loc["amount"]
    assert row["nulls"] == frame["amount"].isna().sum()
    assert row["q0.5"] == pytest.approx(frame["amount"].median())
    data = json.loads(json.dumps(profile.to_dict()))
    amount = next(c for c in data["columns"] if c["name"] == "amount")
    assert sum(amount["histogram"]["counts"]) == frame["amount"].count()


def test_estimated_quantiles_are_close(path: Path, frame: pd.DataFrame) -> None:
    col = profile_dataset(path, exact_quantiles=False)["user_id"]
    want = frame["user_id"].quantile(list(QUANTILES)).tolist()
    spread = frame["user_id"].max() - frame["user_id"].min()
    for q, w in zip(QUANTILES, want, strict=True):
        assert abs(col.quantiles[str(q)] - w) <= 0.03 * spread


def test_csv_profile(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.5, 2.5, None, 4.0], "s": ["a", "b", "a", None]})
    df.to_csv(tmp_path / "d.csv", index=False)
    prof = profile_dataset(tmp_path / "d.csv", bins=3)
    assert (prof["x"].count, prof["x"].nulls, prof["x"].mean) == (3, 1, pytest.approx(8 / 3))
    assert prof["s"].top_values == [("a", 2), ("b", 1)]


def test_bad_bins_and_corrupt_files(tmp_path: Path, path: Path) -> None:
    for bins in (0, -3, 2.5, 10_000):
        with pytest.raises(InvalidInput):
            profile_dataset(path, bins=bins)  # type: ignore[arg-type]
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 nope PAR1")
    with pytest.raises(InvalidInput, match="bad.parquet"):
        profile_dataset(bad)
