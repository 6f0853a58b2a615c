"""Drift of any logged column, numeric or categorical, against a reference profiled once.

:func:`workbench.monitoring.drift_report` compares numeric columns. A user's own model also takes
strings, booleans and columns with nulls, and answers with a class label or a value rather than a fraud
score, so this module profiles every column of a training reference once (:class:`ReferenceProfile`):

* **numeric** columns keep their sorted values and decile edges: PSI and Jensen-Shannon on those bins, KS
  and Wasserstein on the values, exactly as :func:`~workbench.monitoring.drift.compare_column`;
* **categorical** columns (strings, booleans, categories) keep their ``max_categories`` most frequent
  values; everything else, in the reference or arriving later, falls in an ``"(other)"`` bucket, so a
  new value cannot grow the bins without bound. PSI and JS over those buckets;
* **nulls** are counted on both sides. When either side has any, the histogram gets a ``"(null)"`` bin
  so a column that starts arriving empty shows as drift instead of vanishing from the statistics.

One profile then checks many windows cheaply (:meth:`ReferenceProfile.compare`, and
:meth:`ReferenceProfile.psi_over_time` for the dashboard's heat map).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from workbench.errors import InvalidInput
from workbench.monitoring.drift import (
    DEFAULT_BINS,
    MIN_STD,
    DriftReport,
    DriftThresholds,
    FeatureDrift,
    _judge,
    js_from_fractions,
    ks_and_wasserstein,
    psi_from_fractions,
    quantile_edges,
)
from workbench.monitoring.performance import window_seconds

MAX_CATEGORIES = 20
"""Categories kept by name per column; the rest share the ``"(other)"`` bucket."""
OTHER = "(other)"
NULL = "(null)"
ColumnType = Literal["numeric", "categorical"]


def column_type(series: pd.Series) -> ColumnType:
    """Numeric for numbers (not booleans), categorical for everything else."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "categorical"
    return "numeric"


def _as_float(series: pd.Series) -> np.ndarray:
    """Values as float64 with NaN for nulls; text that is not a number counts as null."""
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        series = pd.to_numeric(series, errors="coerce")
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _as_text(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values as strings, null mask). Booleans read ``True``/``False`` on both sides, whatever the source."""
    null = series.isna().to_numpy()
    values = series.astype(object).where(~null, None).map(lambda v: "" if v is None else str(v)).to_numpy(dtype=object)
    return values, null


@dataclass
class ColumnProfile:
    """One reference column, prepared: its type, bins and reference fractions."""

    name: str
    kind: Literal["feature", "score", "output"]
    column_type: ColumnType
    n: int  # reference rows, nulls included
    null_fraction: float
    sorted_values: np.ndarray = field(repr=False)  # numeric: sorted finite values; categorical: empty
    inner_edges: np.ndarray = field(repr=False)  # numeric only
    categories: tuple[str, ...] = ()  # categorical: kept names, then OTHER
    std: float = math.nan

    def counts(self, series: pd.Series) -> tuple[np.ndarray, int, np.ndarray]:
        """(counts per non-null bin, nulls, sorted finite values (numeric) or empty) of a sample."""
        if self.column_type == "numeric":
            values = _as_float(series)
            finite = values[np.isfinite(values)]
            nulls = int(values.size - finite.size)
            ordered = np.sort(finite)
            cuts = np.searchsorted(ordered, self.inner_edges, side="left")
            return np.diff(np.concatenate(([0], cuts, [ordered.size]))), nulls, ordered
        text, null = _as_text(series)
        index = {c: i for i, c in enumerate(self.categories[:-1])}
        codes = np.fromiter((index.get(v, len(index)) for v in text[~null]), dtype=np.int64, count=int((~null).sum()))
        return np.bincount(codes, minlength=len(self.categories)), int(null.sum()), np.array([])

    def fractions(self, counts: np.ndarray, nulls: int, with_null: bool) -> np.ndarray:
        total = counts.sum() + nulls
        if total == 0:
            return np.zeros(len(counts) + with_null)
        parts = [counts / total] + ([np.array([nulls / total])] if with_null else [])
        return np.concatenate(parts)


@dataclass
class ReferenceProfile:
    """Every column of a reference sample, profiled once; compare windows of a log against it."""

    columns: dict[str, ColumnProfile]
    reference_counts: dict[str, tuple[np.ndarray, int]] = field(repr=False)
    bins: int = DEFAULT_BINS

    @classmethod
    def from_frame(cls, reference: pd.DataFrame, features: Sequence[str], outputs: Sequence[str] = (), *,
                   bins: int = DEFAULT_BINS, max_categories: int = MAX_CATEGORIES) -> ReferenceProfile:
        """Profile ``features`` (inputs) and ``outputs`` (the model's answers on the reference) of ``reference``."""
        if bins < 2:
            raise InvalidInput(f"bins must be at least 2, got {bins}")
        missing = [c for c in [*features, *outputs] if c not in reference.columns]
        if missing:
            raise InvalidInput(f"the reference lacks column(s) {missing}; it has {list(reference.columns)}")
        columns: dict[str, ColumnProfile] = {}
        counts: dict[str, tuple[np.ndarray, int]] = {}
        for name in [*features, *outputs]:
            series = reference[name]
            kind: Literal["feature", "score", "output"] = (
                "feature" if name in features else "score" if name == "score" else "output")
            ctype = column_type(series)
            if ctype == "numeric":
                values = _as_float(series)
                finite = np.sort(values[np.isfinite(values)])
                edges = quantile_edges(finite, bins) if finite.size else np.array([])
                profile = ColumnProfile(name, kind, ctype, int(values.size),
                                        float(1 - finite.size / values.size) if values.size else 0.0,
                                        finite, edges, std=float(np.std(finite)) if finite.size else math.nan)
            else:
                text, null = _as_text(series)
                ranked = pd.Series(text[~null]).value_counts(sort=True)
                kept = [str(v) for v in ranked.index[:max_categories]]
                profile = ColumnProfile(name, kind, ctype, int(len(series)),
                                        float(null.mean()) if len(series) else 0.0, np.array([]), np.array([]),
                                        categories=(*kept, OTHER))
            columns[name] = profile
            bin_counts, nulls, _ = profile.counts(series)
            counts[name] = (bin_counts, nulls)
        return cls(columns=columns, reference_counts=counts, bins=bins)

    def _compare_one(self, profile: ColumnProfile, series: pd.Series, t: DriftThresholds) -> FeatureDrift:
        ref_counts, ref_nulls = self.reference_counts[profile.name]
        cur_counts, cur_nulls, cur_sorted = profile.counts(series)
        with_null = bool(ref_nulls or cur_nulls)
        ref = profile.fractions(ref_counts, ref_nulls, with_null)
        cur = profile.fractions(cur_counts, cur_nulls, with_null)
        n_cur = int(cur_counts.sum() + cur_nulls)
        psi = psi_from_fractions(ref, cur) if n_cur and ref.sum() else math.nan
        js = js_from_fractions(ref, cur) if n_cur and ref.sum() else math.nan
        ks_stat = ks_p = wasserstein = w_norm = math.nan
        if profile.column_type == "numeric" and cur_sorted.size and profile.sorted_values.size:
            ks_stat, ks_p, wasserstein = ks_and_wasserstein(profile.sorted_values, cur_sorted)
            w_norm = wasserstein / max(profile.std, MIN_STD)
        status, reasons = _judge(psi, ks_stat, ks_p, js, w_norm, t)
        if n_cur == 0:
            status, reasons = "ok", ("no rows in this window",)
        return FeatureDrift(
            feature=profile.name, kind=profile.kind, n_reference=profile.n, n_current=n_cur, psi=psi,
            ks_statistic=ks_stat, ks_pvalue=ks_p, js_distance=js, wasserstein=wasserstein, wasserstein_norm=w_norm,
            reference_std=profile.std, status=status, reasons=reasons,
            bin_edges=tuple(float(e) for e in profile.inner_edges),
            reference_fractions=tuple(float(f) for f in ref), current_fractions=tuple(float(f) for f in cur),
            column_type=profile.column_type, categories=profile.categories,
            null_reference=profile.null_fraction, null_current=cur_nulls / n_cur if n_cur else 0.0,
            has_null_bin=with_null)

    def compare(self, current: pd.DataFrame, thresholds: DriftThresholds | None = None) -> DriftReport:
        """Drift of every profiled column that ``current`` has (columns it lacks are skipped)."""
        t = thresholds or DriftThresholds()
        rows = [self._compare_one(p, current[name], t) for name, p in self.columns.items() if name in current.columns]
        if not rows:
            raise InvalidInput(f"the current sample has none of the reference's columns {list(self.columns)}; "
                               f"it has {list(current.columns)}")
        return DriftReport(features=tuple(rows), thresholds=t, bins=self.bins, binning="quantile")

    def psi_over_time(self, current: pd.DataFrame, window: str | pd.Timedelta = "1h",
                      time_column: str = "timestamp") -> pd.DataFrame:
        """PSI per column per window of ``time_column`` (tidy: window_start, feature, kind, psi, n).

        Windows are aligned to the epoch, like :func:`~workbench.monitoring.latency_over_time`.
        """
        columns = ["window_start", "feature", "kind", "psi", "n"]
        if current.empty or time_column not in current.columns:
            return pd.DataFrame(columns=columns)
        width_us = int(round(window_seconds(window) * 1e6))
        micros = pd.to_datetime(current[time_column], utc=True, format="ISO8601").dt.as_unit("us").astype("int64")
        rows = []
        for bucket, part in current.groupby((micros // width_us).to_numpy(), sort=True):
            start = pd.Timestamp(int(bucket) * width_us, unit="us", tz="UTC")
            for name, profile in self.columns.items():
                if name not in part.columns:
                    continue
                ref_counts, ref_nulls = self.reference_counts[name]
                cur_counts, cur_nulls, _ = profile.counts(part[name])
                with_null = bool(ref_nulls or cur_nulls)
                psi = psi_from_fractions(profile.fractions(ref_counts, ref_nulls, with_null),
                                         profile.fractions(cur_counts, cur_nulls, with_null))
                rows.append({"window_start": start, "feature": name, "kind": profile.kind, "psi": psi,
                             "n": int(cur_counts.sum() + cur_nulls)})
        return pd.DataFrame(rows, columns=columns)


def column_drift_report(reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str] | None = None,
                        outputs: Sequence[str] = (), thresholds: DriftThresholds | None = None, *,
                        bins: int = DEFAULT_BINS, max_categories: int = MAX_CATEGORIES) -> DriftReport:
    """Drift of numeric and categorical columns of ``current`` against ``reference`` (both frames).

    ``features`` defaults to the columns both share; ``outputs`` are compared too, reported as outputs.
    """
    names = list(features) if features is not None else [
        c for c in reference.columns if c in current.columns and c not in outputs]
    profile = ReferenceProfile.from_frame(reference, names, [o for o in outputs if o in reference.columns],
                                          bins=bins, max_categories=max_categories)
    return profile.compare(current, thresholds)


__all__ = ["MAX_CATEGORIES", "NULL", "OTHER", "ColumnProfile", "ReferenceProfile", "column_drift_report",
           "column_type"]
