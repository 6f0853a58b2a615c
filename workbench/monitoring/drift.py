"""Drift of served inputs (and scores) against the training reference, one row per feature.

Four statistics per feature, each answering a different question:

* **PSI** (population stability index) on bins cut at the reference's quantiles: how much the mass
  moved between bins. ``sum((c - r) * ln(c / r))`` over bins, where ``r``/``c`` are the reference and
  current fractions; an empty bin's fraction is replaced by :data:`PSI_EPSILON` (1e-4) so the log is
  finite (Evidently uses 1e-4 too, unless a non-empty bin holds less than that).
* **Kolmogorov-Smirnov** statistic and p-value: the largest gap between the two empirical CDFs; equal to
  ``scipy.stats.ks_2samp`` (exact p-value up to 10,000 rows per side, Smirnov's asymptotic one above,
  as scipy's ``method="auto"``).
* **Jensen-Shannon distance**, base 2 (0 = same, 1 = disjoint), on the same bins as PSI; equal to
  ``scipy.spatial.distance.jensenshannon(r, c, base=2)`` on those histograms. Empty bins need no epsilon.
* **Wasserstein-1 distance** (earth mover's), equal to ``scipy.stats.wasserstein_distance``, in the
  feature's units; it is judged relative to the reference standard deviation (``wasserstein_norm``).

Speed comes from sorting each column once: KS and Wasserstein walk the merged sorted values, and every
histogram is a handful of ``searchsorted`` calls on sorted data. A :class:`DriftReference` keeps the
sorted reference so checking many windows against one training set sorts it only once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
from scipy import special, stats

from workbench.errors import InvalidInput
from workbench.monitoring import reprs as _reprs
from workbench.monitoring.prediction_log import LogSource, log_columns, numeric_columns, read_log

PSI_EPSILON = 1e-4
"""Fraction used in place of an empty bin in PSI (ln 0 is undefined): small enough not to mask a real
shift, large enough that one empty tail bin cannot dominate the sum."""
DEFAULT_BINS = 10
"""Deciles: the bin count the usual PSI thresholds (0.1 / 0.2) were calibrated for."""
KS_EXACT_MAX_N = 10_000
"""Up to this many rows on each side the KS p-value is exact (scipy's ``method="auto"`` rule)."""
MIN_STD = 1e-3
"""Floor of the reference std that ``wasserstein_norm`` divides by, so constant features do not blow up."""

Binning = Literal["quantile", "uniform"]
_T = TypeVar("_T")
DriftStatus = Literal["ok", "warn", "drift"]


@dataclass(frozen=True)
class DriftThresholds:
    """When a statistic says "drift" (strictly above / below these values).

    Defaults follow common practice: PSI above 0.1 is a shift worth a look and above 0.2 a significant
    one; KS needs both significance (p < 0.01) and a gap above 0.1, because with many rows any tiny
    difference is significant; JS distance (base 2) above 0.1; a Wasserstein distance above 0.1 reference
    standard deviations. A feature drifts when any statistic says so; the data set drifts when at least
    ``share_drifted`` of its features do.
    """

    psi_warn: float = 0.1
    psi_drift: float = 0.2
    ks_pvalue: float = 0.01
    ks_statistic: float = 0.1
    js_distance: float = 0.1
    wasserstein_norm: float = 0.1
    share_drifted: float = 0.5

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise InvalidInput(f"DriftThresholds.{name} must be a number >= 0, got {value!r}")
        if self.psi_warn > self.psi_drift:
            raise InvalidInput(f"DriftThresholds.psi_warn ({self.psi_warn}) must not exceed psi_drift "
                               f"({self.psi_drift})")
        if not 0 < self.ks_pvalue <= 1 or self.share_drifted > 1:
            raise InvalidInput("DriftThresholds.ks_pvalue must be in (0, 1] and share_drifted in [0, 1]")


@dataclass(frozen=True)
class FeatureDrift:
    """Drift statistics of one column, with the histogram they were computed on.

    ``bin_edges`` are the inner edges; bins are ``(-inf, e0), [e0, e1), ..., [e_last, +inf)``. A
    categorical column (``column_type="categorical"``) has no edges: its bins are ``categories`` (the
    reference's most frequent values, then ``"(other)"``). When either side holds nulls, the last bin is
    ``"(null)"``, so a column that starts arriving empty drifts too. KS and Wasserstein are NaN for a
    categorical column (they need an order).
    """

    feature: str
    kind: Literal["feature", "score", "output"]
    n_reference: int
    n_current: int
    psi: float
    ks_statistic: float
    ks_pvalue: float
    js_distance: float
    wasserstein: float
    wasserstein_norm: float
    reference_std: float
    status: DriftStatus
    reasons: tuple[str, ...]
    bin_edges: tuple[float, ...] = field(repr=False)
    reference_fractions: tuple[float, ...] = field(repr=False)
    current_fractions: tuple[float, ...] = field(repr=False)
    column_type: Literal["numeric", "categorical"] = "numeric"
    categories: tuple[str, ...] = field(default=(), repr=False)
    null_reference: float = 0.0  # share of the reference that is null
    null_current: float = 0.0
    has_null_bin: bool = field(default=False, repr=False)

    def bin_labels(self) -> list[str]:
        """A readable name per bin (the categories, or the numeric intervals), for tables and plots."""
        if self.column_type == "categorical":
            labels = list(self.categories)
        else:
            edges = [f"{e:.4g}" for e in self.bin_edges]
            labels = ([f"< {edges[0]}"] + [f"[{a}, {b})" for a, b in zip(edges, edges[1:], strict=False)]
                      + [f">= {edges[-1]}"]) if edges else ["all"]
        return [*labels, "(null)"] if self.has_null_bin else labels

    @property
    def drifted(self) -> bool:
        return self.status == "drift"


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift of a current sample against a reference; ``to_frame()`` for a table."""

    features: tuple[FeatureDrift, ...]
    thresholds: DriftThresholds
    bins: int
    binning: Binning

    def __getitem__(self, feature: str) -> FeatureDrift:
        for row in self.features:
            if row.feature == feature:
                return row
        raise KeyError(f"no drift computed for {feature!r}; computed: {[r.feature for r in self.features]}")

    @property
    def drifted_features(self) -> list[str]:
        """Input features (not the score) flagged as drifted."""
        return [r.feature for r in self.features if r.kind == "feature" and r.drifted]

    @property
    def share_drifted(self) -> float:
        inputs = [r for r in self.features if r.kind == "feature"]
        return sum(r.drifted for r in inputs) / len(inputs) if inputs else 0.0

    @property
    def dataset_drifted(self) -> bool:
        return any(r.kind == "feature" for r in self.features) and (
            self.share_drifted >= self.thresholds.share_drifted)

    def to_frame(self) -> pd.DataFrame:
        """One row per feature: the statistics, ``status``, ``drifted`` and the reasons."""
        columns = ["feature", "kind", "n_reference", "n_current", "psi", "ks_statistic", "ks_pvalue",
                   "js_distance", "wasserstein", "wasserstein_norm", "reference_std", "status"]
        rows = [{c: getattr(r, c) for c in columns} | {"drifted": r.drifted, "reasons": "; ".join(r.reasons)}
                for r in self.features]
        return pd.DataFrame(rows, columns=[*columns, "drifted", "reasons"])

    def metrics(self) -> dict[str, float]:
        """Flat ``drift.<feature>.<statistic>`` values (plus ``drift.share_drifted``) for alert rules."""
        out: dict[str, float] = {}
        for r in self.features:
            for stat in ("psi", "ks_statistic", "ks_pvalue", "js_distance", "wasserstein", "wasserstein_norm"):
                out[f"drift.{r.feature}.{stat}"] = float(getattr(r, stat))
        out["drift.share_drifted"] = self.share_drifted
        return out

    def _repr_html_(self) -> str:
        rows = sorted(self.features, key=lambda r: -r.psi if not math.isnan(r.psi) else 0.0)
        worst = {"drift": 2, "warn": 1, "ok": 0}
        status = max((r.status for r in rows), key=lambda s: worst.get(s, 0), default="ok")
        body = _reprs.table(["feature", "status", "PSI", "KS p", "JS", "n ref", "n cur"],
                            [(r.feature + (" (score)" if r.kind == "score" else ""), r.status, r.psi, r.ks_pvalue,
                              r.js_distance, r.n_reference, r.n_current) for r in rows], max_rows=15)
        title = (f"Drift: {len(self.drifted_features)} of {sum(r.kind == 'feature' for r in rows)} features drifted"
                 + (" — dataset drifted" if self.dataset_drifted else ""))
        return _reprs.card(title, extra=body, status=status,
                           note=f"{self.bins} {self.binning} bins; PSI warn {self.thresholds.psi_warn:g}, "
                                f"drift {self.thresholds.psi_drift:g}")


# Statistics on (sorted) arrays --------------------------------------------------------------------

def psi_from_fractions(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray,
                       epsilon: float = PSI_EPSILON) -> float:
    """PSI of two histograms given as fractions per bin; empty bins count as ``epsilon``."""
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    if r.shape != c.shape:
        raise InvalidInput(f"histograms must have the same bins, got {r.shape} and {c.shape}")
    r = np.where(r == 0, epsilon, r)
    c = np.where(c == 0, epsilon, c)
    return float(np.sum((c - r) * np.log(c / r)))


def js_from_fractions(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> float:
    """Jensen-Shannon distance, base 2, of two histograms (same formula as scipy's ``jensenshannon``)."""
    p = np.asarray(reference, dtype=float)
    q = np.asarray(current, dtype=float)
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2.0
    js = (np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))) / np.log(2.0)
    return float(np.sqrt(max(js, 0.0) / 2.0))


def quantile_edges(reference_sorted: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's 1/bins, 2/bins, ... quantiles, deduplicated.

    A reference with fewer than ``bins`` distinct values (a 0/1 flag mostly 0) gets one bin per value
    instead: quantile edges would merge the rare value into the common one and hide a shift toward it.

    Linear interpolation between order statistics (numpy's default quantile method), read directly off
    the sorted values instead of re-partitioning them.
    """
    n = reference_sorted.size
    position = (n - 1) * (np.arange(1, bins) / bins)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    weight = position - below
    low, high = reference_sorted[below], reference_sorted[above]
    edges = np.unique(low + (high - low) * weight)
    if edges.size < bins - 1:  # point masses collapsed some quantiles: a flag, a count, a category code
        change = np.flatnonzero(np.diff(reference_sorted)) if n > 1 else np.array([], dtype=np.int64)
        if change.size < bins:  # few distinct values: one bin per value, cut halfway between neighbours
            return (reference_sorted[change] + reference_sorted[change + 1]) / 2.0
    return edges


def uniform_edges(reference_sorted: np.ndarray, current_sorted: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of ``bins`` equal-width bins over both samples' range (``np.histogram_bin_edges``)."""
    lo = min(reference_sorted[0], current_sorted[0])
    hi = max(reference_sorted[-1], current_sorted[-1])
    return np.histogram_bin_edges(np.array([lo, hi]), bins=bins)[1:-1]


def bin_fractions(values_sorted: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Fractions of sorted values in ``(-inf, e0), [e0, e1), ..., [e_last, +inf)``: one searchsorted."""
    cuts = np.searchsorted(values_sorted, inner_edges, side="left")
    counts = np.diff(np.concatenate(([0], cuts, [values_sorted.size])))
    return counts / values_sorted.size


def ks_and_wasserstein(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> tuple[float, float, float]:
    """KS statistic, KS p-value and Wasserstein-1 distance of two sorted samples, from one merged pass.

    Both are read off the two empirical CDFs at every observed value, as scipy does; here the CDFs come
    from merging the sorted samples (a stable argsort of two sorted runs is a linear merge) and counting,
    instead of two binary searches per value.
    """
    n1, n2 = reference_sorted.size, current_sorted.size
    both = np.concatenate((reference_sorted, current_sorted))
    order = np.argsort(both, kind="stable")
    merged = both[order]
    count_type = np.int32 if n1 + n2 < 2**31 else np.int64  # int32 cumsum is several times faster
    below_ref: np.ndarray = np.cumsum(order < n1, dtype=count_type)  # reference values up to each position
    below_cur: np.ndarray = np.arange(1, n1 + n2 + 1, dtype=count_type) - below_ref
    cdf_gap = below_ref / n1 - below_cur / n2
    deltas = np.diff(merged)
    # Tied values: the CDFs are only defined after the last of a run of equal values.
    if np.count_nonzero(deltas) == deltas.size:
        at_values = cdf_gap
    else:
        at_values = np.append(cdf_gap[np.flatnonzero(deltas)], cdf_gap[-1])
    statistic = float(max(np.clip(-at_values.min(), 0, 1), at_values.max()))
    wasserstein = float(np.dot(np.abs(cdf_gap[:-1]), deltas))  # zero-width steps inside ties add nothing
    if max(n1, n2) <= KS_EXACT_MAX_N:
        exact = stats.ks_2samp(reference_sorted, current_sorted)  # scipy's own exact path; cheap at this size
        return float(exact.statistic), float(exact.pvalue), wasserstein
    m, n = sorted((float(n1), float(n2)), reverse=True)
    pvalue = float(np.clip(stats.kstwo.sf(statistic, np.round(m * n / (m + n))), 0, 1))
    return statistic, pvalue, wasserstein


# Preparing columns --------------------------------------------------------------------------------

def _sorted_finite(values: np.ndarray | pd.Series, name: str, side: str) -> np.ndarray:
    """The column's values as sorted float64, missing values dropped; InvalidInput if unusable."""
    try:
        if isinstance(values, pd.Series):  # nullable dtypes (Float64, Int64, boolean) carry pd.NA
            array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"column {name!r} of the {side} is not numeric; drift is computed on numeric "
                           "features only (pass features=[...] to choose them)") from exc
    array = array[~np.isnan(array)]
    if array.size == 0:
        raise InvalidInput(f"column {name!r} of the {side} has no values (all missing); drop it from features")
    if np.isinf(array).any():
        raise InvalidInput(f"column {name!r} of the {side} holds infinite values; replace or drop them first")
    return np.sort(array)


@dataclass
class DriftReference:
    """A training reference prepared once (sorted columns, std), to compare many windows against.

    Build it with :meth:`from_frame`; :func:`drift_report` accepts it wherever it accepts a frame.
    """

    columns: dict[str, np.ndarray]  # sorted, finite values per column
    score_column: str | None = None
    _std: dict[str, float] = field(default_factory=dict, repr=False)
    _edges: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_frame(cls, reference: LogSource, features: Iterable[str] | None = None,
                   score_column: str | None = "score") -> DriftReference:
        frame = read_log(reference) if not isinstance(reference, pd.DataFrame) else reference
        names = list(features) if features is not None else numeric_columns(frame)
        if score_column and score_column in frame.columns and score_column not in names:
            names.append(score_column)
        else:
            score_column = score_column if score_column in names else None
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise InvalidInput(f"the reference lacks feature column(s) {missing}; it has {list(frame.columns)}")
        if not names:
            raise InvalidInput("the reference has no numeric feature columns to compare")
        columns = _map_columns(lambda c: _sorted_finite(frame[c], c, "reference"), names)
        return cls(columns=columns, score_column=score_column)

    def std(self, name: str) -> float:
        if name not in self._std:
            self._std[name] = float(np.std(self.columns[name]))
        return self._std[name]

    def quantile_edges(self, name: str, bins: int) -> np.ndarray:
        key = (name, bins)
        if key not in self._edges:
            self._edges[key] = quantile_edges(self.columns[name], bins)
        return self._edges[key]


def _map_columns(func: Callable[[str], _T], names: Sequence[str]) -> dict[str, _T]:
    """Apply ``func`` to each column name on a few threads (numpy sorts and searches release the GIL)."""
    workers = max(1, min(len(names), os.cpu_count() or 1))
    if workers == 1:
        return {name: func(name) for name in names}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(names, pool.map(func, names), strict=True))


def _judge(psi: float, ks_stat: float, ks_p: float, js: float, w_norm: float,
           t: DriftThresholds) -> tuple[DriftStatus, tuple[str, ...]]:
    reasons: list[str] = []
    if psi > t.psi_drift:
        reasons.append(f"PSI {psi:.3g} > {t.psi_drift:g}")
    if ks_p < t.ks_pvalue and ks_stat > t.ks_statistic:
        reasons.append(f"KS {ks_stat:.3g} > {t.ks_statistic:g} (p={ks_p:.2g} < {t.ks_pvalue:g})")
    if js > t.js_distance:
        reasons.append(f"JS distance {js:.3g} > {t.js_distance:g}")
    if w_norm > t.wasserstein_norm:
        reasons.append(f"Wasserstein {w_norm:.3g} reference std > {t.wasserstein_norm:g}")
    if reasons:
        return "drift", tuple(reasons)
    if psi > t.psi_warn:
        return "warn", (f"PSI {psi:.3g} > {t.psi_warn:g} (warning level)",)
    return "ok", ()


def compare_column(reference_sorted: np.ndarray, current_sorted: np.ndarray, name: str = "value", *,
                   kind: Literal["feature", "score"] = "feature", thresholds: DriftThresholds | None = None,
                   bins: int = DEFAULT_BINS, binning: Binning = "quantile", reference_std: float | None = None,
                   inner_edges: np.ndarray | None = None) -> FeatureDrift:
    """All drift statistics of one column, given both samples sorted and free of NaN."""
    t = thresholds or DriftThresholds()
    if inner_edges is None:
        inner_edges = (quantile_edges(reference_sorted, bins) if binning == "quantile"
                       else uniform_edges(reference_sorted, current_sorted, bins))
    ref_frac = bin_fractions(reference_sorted, inner_edges)
    cur_frac = bin_fractions(current_sorted, inner_edges)
    psi = psi_from_fractions(ref_frac, cur_frac)
    js = js_from_fractions(ref_frac, cur_frac)
    ks_stat, ks_p, wasserstein = ks_and_wasserstein(reference_sorted, current_sorted)
    std = float(np.std(reference_sorted)) if reference_std is None else reference_std
    w_norm = wasserstein / max(std, MIN_STD)
    status, reasons = _judge(psi, ks_stat, ks_p, js, w_norm, t)
    return FeatureDrift(
        feature=name, kind=kind, n_reference=int(reference_sorted.size), n_current=int(current_sorted.size),
        psi=psi, ks_statistic=ks_stat, ks_pvalue=ks_p, js_distance=js, wasserstein=wasserstein,
        wasserstein_norm=w_norm, reference_std=std, status=status, reasons=reasons,
        bin_edges=tuple(float(e) for e in inner_edges), reference_fractions=tuple(float(f) for f in ref_frac),
        current_fractions=tuple(float(f) for f in cur_frac))


def drift_report(reference: LogSource | DriftReference, current: LogSource, features: Sequence[str] | None = None,
                 thresholds: DriftThresholds | None = None, *, bins: int = DEFAULT_BINS,
                 binning: Binning = "quantile", score_column: str | None = "score") -> DriftReport:
    """Drift of ``current`` (a prediction log window) against ``reference`` (the training frame).

    ``features`` defaults to the numeric columns the two share (log bookkeeping columns excluded); the
    score distribution is compared too when both sides have ``score_column``. ``binning="quantile"``
    (default) cuts PSI/JS bins at reference quantiles; ``"uniform"`` uses equal-width bins over both
    samples' range, as Evidently does.
    """
    if bins < 2:
        raise InvalidInput(f"bins must be at least 2, got {bins}")
    if binning not in ("quantile", "uniform"):
        raise InvalidInput(f"binning must be 'quantile' or 'uniform', got {binning!r}")
    t = thresholds or DriftThresholds()
    cur_cols = log_columns(current)
    if isinstance(reference, DriftReference):
        prepared = reference
        names = list(features) if features is not None else [
            c for c in prepared.columns if c != prepared.score_column and c in cur_cols]
        unknown = [c for c in names if c not in prepared.columns]
        if unknown:
            raise InvalidInput(f"feature(s) {unknown} are not in the prepared reference; it has "
                               f"{sorted(prepared.columns)}")
        score = score_column if score_column and prepared.score_column == score_column else None
    else:
        ref_frame = reference if isinstance(reference, pd.DataFrame) else read_log(reference)
        names = list(features) if features is not None else [
            c for c in numeric_columns(ref_frame) if c in cur_cols]
        score = score_column if score_column and score_column in ref_frame.columns else None
        prepared = DriftReference.from_frame(ref_frame, names, score_column=score)
    if score is not None and score not in cur_cols:
        score = None  # nothing to compare the reference scores with
    if not names and score is None:
        raise InvalidInput("no common numeric feature columns between reference and current; pass features=[...]")
    wanted = [*names, *([score] if score else [])]
    missing = [c for c in wanted if c not in cur_cols]
    if missing:
        raise InvalidInput(f"the current sample lacks column(s) {missing}; it has {cur_cols}")
    cur_frame = current if isinstance(current, pd.DataFrame) else read_log(current, wanted)

    def one(name: str) -> FeatureDrift:
        ref_sorted = prepared.columns[name]
        cur_sorted = _sorted_finite(cur_frame[name], name, "current sample")
        edges = prepared.quantile_edges(name, bins) if binning == "quantile" else None
        return compare_column(ref_sorted, cur_sorted, name, kind="score" if name == score else "feature",
                              thresholds=t, bins=bins, binning=binning, reference_std=prepared.std(name),
                              inner_edges=edges)

    for name in wanted:  # fill the caches before threads share them
        prepared.std(name)
        if binning == "quantile":
            prepared.quantile_edges(name, bins)
    results = _map_columns(one, wanted)
    return DriftReport(features=tuple(results[n] for n in wanted), thresholds=t, bins=bins, binning=binning)


@dataclass(frozen=True)
class HistogramComparison:
    """Reference and current fractions on shared equal-width bins, for plotting one feature."""

    feature: str
    edges: tuple[float, ...]  # all bins' edges, len = bins + 1
    reference_fractions: tuple[float, ...]
    current_fractions: tuple[float, ...]


def histogram_comparison(reference: pd.DataFrame | Mapping[str, np.ndarray],
                         current: pd.DataFrame | Mapping[str, np.ndarray],
                         feature: str, bins: int = 30) -> HistogramComparison:
    """Equal-width histograms of ``feature`` over both samples' range (last bin closed, as numpy's)."""
    for side, data in (("reference", reference), ("current sample", current)):
        if feature not in data:
            raise InvalidInput(f"the {side} has no column {feature!r}")
    ref = _sorted_finite(reference[feature], feature, "reference")
    cur = _sorted_finite(current[feature], feature, "current sample")
    inner = uniform_edges(ref, cur, bins)
    lo, hi = min(ref[0], cur[0]), max(ref[-1], cur[-1])
    all_edges = np.histogram_bin_edges(np.array([lo, hi]), bins=bins)
    return HistogramComparison(feature, tuple(float(e) for e in all_edges),
                               tuple(float(f) for f in bin_fractions(ref, inner)),
                               tuple(float(f) for f in bin_fractions(cur, inner)))
