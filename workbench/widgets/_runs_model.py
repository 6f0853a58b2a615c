"""The run comparer's state and what it draws, with no widget in it (so tests drive it directly).

The runs come from :mod:`workbench.registry.run_cache` (a local copy synced from MLflow), so sorting,
filtering and paging 10,000 runs happen on a frame in the kernel in milliseconds and only one page, one
parallel-coordinates trace (at most ``max_lines`` runs) and a few downsampled curves reach the browser.
The filter is a small language parsed here, never evaluated: clauses like ``metrics.roc_auc > 0.9``,
``params.lr = 0.01``, ``status != FAILED`` or ``run_name ~ sweep`` joined by ``and``; a bare word
searches run names and ids. Actions on the selection call the registry's domain functions.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.monitoring.figures import ReportFigure
from workbench.registry import DEFAULT_MODEL_NAME, LineageCard, ModelVersionInfo, build_lineage_card, set_alias
from workbench.registry.run_cache import RunCache, SyncResult, open_run_cache
from workbench.registry.versions import register_run
from workbench.widgets._runs_downsample import downsample

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq, "=": operator.eq,
    ">": operator.gt, "<": operator.lt, "~": lambda a, b: a}
_CLAUSE = re.compile(r"^\s*(?P<col>`[^`]+`|[A-Za-z_][\w.\-/]*)\s*(?P<op>>=|<=|!=|==|=|>|<|~)\s*(?P<val>.+?)\s*$")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
SHOWN_METRICS = 4
SHOWN_PARAMS = 6
MAX_DIMENSIONS = 12
MAX_CATEGORIES = 30


@dataclass(frozen=True)
class Clause:
    """One parsed filter condition: ``column op value`` (``op`` ``~`` is case-insensitive 'contains')."""

    column: str
    op: str
    value: float | str


def _unquote(text: str) -> float | str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return float(text)
    except ValueError:
        return text


def resolve_column(name: str, columns: Sequence[str]) -> str:
    """The frame column ``name`` means: exact, else ``metrics.<name>`` / ``params.<name>`` / ``m.`` / ``p.``."""
    name = name.strip("`")
    if name in columns:
        return name
    for short, full in (("m.", "metrics."), ("p.", "params."), ("metric.", "metrics."), ("param.", "params.")):
        if name.startswith(short) and full + name[len(short):] in columns:
            return full + name[len(short):]
    for prefix in ("metrics.", "params."):
        if prefix + name in columns:
            return prefix + name
    close = [c for c in columns if name.lower() in c.lower()][:8]
    raise InvalidInput(f"no column {name!r} among the runs" + (f"; did you mean one of {close}?" if close else
                                                              "; columns look like metrics.roc_auc, params.lr"))


def parse_filter(text: str, columns: Sequence[str]) -> list[Clause]:
    """Clauses of ``text`` (``and``-joined); InvalidInput says which part does not parse and why."""
    clauses: list[Clause] = []
    for part in _AND.split(text.strip()) if text and text.strip() else []:
        match = _CLAUSE.match(part)
        if match is None:
            if re.fullmatch(r"[\w.\-]+", part.strip()):  # a bare word: search names and ids
                clauses.append(Clause("*", "~", part.strip()))
                continue
            raise InvalidInput(f"cannot read the filter part {part!r}: write <column> <op> <value> with op one of "
                               f"{sorted(_OPS)}, e.g. metrics.roc_auc > 0.9 and params.lr = 0.01")
        clauses.append(Clause(resolve_column(match["col"], columns), match["op"], _unquote(match["val"])))
    return clauses


def _mask(frame: pd.DataFrame, clause: Clause) -> np.ndarray:
    if clause.column == "*":
        needle = str(clause.value).lower()
        names = frame["run_name"].fillna("").str.lower().str.contains(needle, regex=False)
        return (names | frame["run_id"].str.startswith(needle)).to_numpy()
    series = frame[clause.column]
    if clause.op == "~":
        return series.astype(str).str.lower().str.contains(str(clause.value).lower(), regex=False).to_numpy()
    numeric = pd.api.types.is_numeric_dtype(series)
    if numeric and not isinstance(clause.value, float):
        raise InvalidInput(f"{clause.column} holds numbers: compare it with a number, not {clause.value!r}")
    if numeric:
        with np.errstate(invalid="ignore"):
            return np.asarray(_OPS[clause.op](series.to_numpy(dtype=float), clause.value), dtype=bool)
    value = clause.value
    text = series.astype(object).where(series.notna(), None)
    if isinstance(value, float):  # a text column compared with a number: compare the text forms
        value = f"{value:g}"
    result = text.map(lambda v: v is not None and bool(_OPS[clause.op](str(v), value)))
    return result.to_numpy(dtype=bool)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%m-%d %H:%M")
    return str(value)


def payload_bytes(fig: go.Figure) -> int:
    """Bytes of a figure's JSON, which is what a Plotly widget sends to the browser."""
    return len(pio.to_json(fig, validate=False).encode())


class RunComparerModel:
    """Sort, filter, page and select an experiment's runs; draw the comparison; act on the selection."""

    def __init__(self, settings: Settings, experiment: str | None = None, *, cache: RunCache | None = None,
                 metric: str | None = None, mode: str = "max", page_size: int = 25,
                 model_name: str = DEFAULT_MODEL_NAME, max_lines: int = 2000, max_curve_runs: int = 20,
                 curve_points: int = 500) -> None:
        if mode not in ("max", "min"):
            raise InvalidInput(f"mode must be 'max' or 'min', got {mode!r}")
        if not 1 <= page_size <= 500:
            raise InvalidInput(f"page_size must be between 1 and 500, got {page_size}")
        self.settings = settings
        self.cache = cache if cache is not None else open_run_cache(settings, experiment)
        self.mode = mode
        self.page_size = page_size
        self.model_name = model_name
        self.max_lines = max_lines
        self.max_curve_runs = max_curve_runs
        self.curve_points = curve_points
        self.filter_text = ""
        self.clauses: list[Clause] = []
        self.page = 0
        self.selected: list[str] = []
        self.frame = self.cache.frame()
        self.metric = metric or self._default_metric()
        self.sort_by = f"metrics.{self.metric}" if self.metric else "start_time"
        self.ascending = mode == "min" if self.metric else False
        self._view = np.arange(len(self.frame))
        self._apply()

    # ---- the table ------------------------------------------------------------------------------------

    @property
    def experiment(self) -> str:
        return self.cache.experiment_name

    @property
    def metric_names(self) -> list[str]:
        return [c[len("metrics."):] for c in self.frame.columns if c.startswith("metrics.")]

    @property
    def param_names(self) -> list[str]:
        return [c[len("params."):] for c in self.frame.columns if c.startswith("params.")]

    @property
    def view_size(self) -> int:
        return len(self._view)

    @property
    def n_pages(self) -> int:
        return max(1, math.ceil(len(self._view) / self.page_size))

    def _default_metric(self) -> str:
        names = self.metric_names
        for preferred in ("roc_auc", "val_roc_auc", "accuracy", "r2", "val_loss", "loss"):
            if preferred in names:
                return preferred
        return names[0] if names else ""

    def refresh(self) -> None:
        """Read the cache again (after a sync), keeping filter, sort and the selection that still exists."""
        self.frame = self.cache.frame()
        if not self.metric:
            self.metric = self._default_metric()
        if self.sort_by not in self.frame.columns:
            self.sort_by = f"metrics.{self.metric}" if self.metric else "start_time"
        known = set(self.frame["run_id"])
        self.selected = [r for r in self.selected if r in known]
        try:
            self.clauses = parse_filter(self.filter_text, list(self.frame.columns))
        except InvalidInput:
            self.filter_text, self.clauses = "", []
        self._apply()

    def sync(self, **kwargs: Any) -> SyncResult:
        """Sync the cache with MLflow (new and unfinished runs) and show the result."""
        result = self.cache.sync(**kwargs)
        self.refresh()
        return result

    def set_filter(self, text: str) -> int:
        """Filter the table (see the module docstring); returns how many runs match. Page goes to 0."""
        before = (self.clauses, self.filter_text, self.page)
        self.clauses = parse_filter(text, list(self.frame.columns))
        self.filter_text, self.page = text.strip(), 0
        try:
            self._apply()
        except InvalidInput:
            self.clauses, self.filter_text, self.page = before
            self._apply()
            raise
        return self.view_size

    def set_sort(self, column: str, ascending: bool | None = None) -> None:
        """Sort by ``column`` (missing values last); ``ascending`` None keeps the direction."""
        self.sort_by = resolve_column(column, list(self.frame.columns))
        if ascending is not None:
            self.ascending = bool(ascending)
        self.page = 0
        self._apply()

    def set_metric(self, metric: str) -> None:
        """The metric the comparison is about (parallel coordinates' colour, curves, default sort)."""
        if metric not in self.metric_names:
            raise InvalidInput(f"no metric {metric!r} among the runs; they have {self.metric_names[:20]}")
        self.metric = metric

    def set_page(self, page: int) -> int:
        self.page = min(max(0, int(page)), self.n_pages - 1)
        return self.page

    def _apply(self) -> None:
        frame = self.frame
        keep = np.ones(len(frame), dtype=bool)
        for clause in self.clauses:
            keep &= _mask(frame, clause)
        view = np.flatnonzero(keep)
        if self.sort_by in frame.columns and len(view):
            column = frame[self.sort_by].iloc[view]
            order = column.reset_index(drop=True).sort_values(ascending=self.ascending, na_position="last",
                                                              kind="stable").index.to_numpy()
            view = view[order]
        self._view = view
        self.page = min(self.page, self.n_pages - 1)

    def view_run_ids(self, limit: int | None = None) -> list[str]:
        ids = self.frame["run_id"].to_numpy()[self._view if limit is None else self._view[:limit]]
        return [str(r) for r in ids]

    def display_columns(self) -> list[str]:
        """Columns of the table: name, status, the metric first, a few other metrics and params."""
        cols = ["run_name", "status"]
        metrics = [f"metrics.{self.metric}"] if self.metric else []
        metrics += [f"metrics.{m}" for m in self.metric_names if m != self.metric][:SHOWN_METRICS - len(metrics)]
        params = [f"params.{p}" for p in self.param_names][:SHOWN_PARAMS]
        if self.sort_by not in (*cols, *metrics, *params, "run_id"):
            cols.append(self.sort_by)
        return [*cols, *metrics, *params, "start_time"]

    def page_frame(self, page: int | None = None) -> pd.DataFrame:
        """The rows of one page (default: the current one) in the display columns, with their run ids."""
        page = self.page if page is None else page
        rows = self._view[page * self.page_size:(page + 1) * self.page_size]
        return self.frame.iloc[rows][["run_id", *self.display_columns()]].reset_index(drop=True)

    def page_lines(self) -> tuple[str, list[tuple[str, str]]]:
        """The page as fixed-width text: a header line and (label, run id) per row, for a selection list."""
        page = self.page_frame()
        cols = self.display_columns()
        names = [c.split(".", 1)[-1] if c.startswith(("metrics.", "params.")) else c for c in cols]
        cells = [[_fmt(v) for v in page[c]] for c in cols]
        widths = [min(28, max([len(n), *(len(v) for v in col)])) for n, col in zip(names, cells, strict=True)]
        header = "  ".join(n[:w].ljust(w) for n, w in zip(names, widths, strict=True))
        lines = []
        for i, run_id in enumerate(page["run_id"]):
            mark = "●" if run_id in self.selected else " "
            text = "  ".join(col[i][:w].ljust(w) for col, w in zip(cells, widths, strict=True))
            lines.append((f"{mark} {text}", str(run_id)))
        return "  " + header, lines

    # ---- the selection --------------------------------------------------------------------------------

    def select(self, run_ids: Iterable[str], *, replace: bool = True) -> list[str]:
        ids = [str(r) for r in run_ids]
        known = set(self.frame["run_id"])
        unknown = [r for r in ids if r not in known]
        if unknown:
            raise NotFound(f"run(s) {unknown[:5]} are not among the {len(known)} cached runs of "
                           f"{self.experiment!r}; sync first")
        base = [] if replace else list(self.selected)
        self.selected = list(dict.fromkeys([*base, *ids]))
        return self.selected

    def set_page_selection(self, run_ids: Iterable[str]) -> list[str]:
        """The selection as a page's list shows it: the page's rows become ``run_ids``, other pages stay."""
        on_page = set(self.page_frame()["run_id"])
        keep = [r for r in self.selected if r not in on_page]
        return self.select([*keep, *run_ids])

    def toggle(self, run_id: str) -> list[str]:
        if run_id in self.selected:
            self.selected = [r for r in self.selected if r != run_id]
            return self.selected
        return self.select([run_id], replace=False)

    def select_top(self, k: int = 5) -> list[str]:
        """Select the first ``k`` runs of the filtered, sorted table."""
        return self.select(self.view_run_ids(max(0, int(k))))

    def clear_selection(self) -> None:
        self.selected = []

    def _one_selected(self, doing: str) -> str:
        if len(self.selected) != 1:
            raise InvalidInput(f"select exactly one run to {doing} ({len(self.selected)} selected)")
        return self.selected[0]

    # ---- the comparison -------------------------------------------------------------------------------

    def comparison_rows(self) -> pd.DataFrame:
        """The runs compared: the selection when it holds two or more, else the table's first ``max_lines``."""
        if len(self.selected) >= 2:
            index = self.frame.reset_index(drop=True).set_index("run_id").index
            positions = index.get_indexer(self.selected)
            return self.frame.iloc[positions[positions >= 0]]
        return self.frame.iloc[self._view[:self.max_lines]]

    def parcoords_figure(self) -> go.Figure:
        """Parallel coordinates of the params that vary to the metric (Plotly ``parcoords``, WebGL)."""
        rows = self.comparison_rows()
        metric_col = f"metrics.{self.metric}"
        fig = ReportFigure()
        if not self.metric or metric_col not in rows:
            fig.update_layout(title="No metric to compare: the runs logged none")
            return fig
        rows = rows[rows[metric_col].notna()]
        dims: list[dict[str, Any]] = []
        for name in self.param_names:
            if len(dims) >= MAX_DIMENSIONS:
                break
            dim = _dimension(rows[f"params.{name}"], name)
            if dim is not None:
                dims.append(dim)
        values = rows[metric_col].to_numpy(dtype=float)
        dims.append({"label": self.metric, "values": values})
        what = "selected runs" if len(self.selected) >= 2 else (
            f"first {len(rows):,} runs of the table" if self.view_size > len(rows) else f"{len(rows):,} runs")
        fig.add_trace(go.Parcoords(line={"color": values, "colorscale": "Viridis", "showscale": True,
                                         "colorbar": {"title": {"text": self.metric}}},
                                   dimensions=dims, labelangle=-20))
        fig.update_layout(title=f"Params → {self.metric} ({what})", margin={"l": 60, "r": 40, "t": 90, "b": 30},
                          height=420, template="plotly_white")
        return fig

    def curve_run_ids(self) -> list[str]:
        return (self.selected or self.view_run_ids(5))[:self.max_curve_runs]

    def curves_figure(self, metric: str | None = None) -> go.Figure:
        """The metric's history per selected run (or the table's first five), downsampled (MinMaxLTTB)."""
        metric = metric or self.metric
        fig = ReportFigure()
        ids = self.curve_run_ids()
        if not metric or not ids:
            fig.update_layout(title="No runs selected")
            return fig
        names = dict(zip(self.frame["run_id"], self.frame["run_name"], strict=True))
        histories = self.cache.metric_history(ids, metric)
        for run_id in ids:
            hist = histories[run_id]
            x, y = downsample(hist["step"].to_numpy(), hist["value"].to_numpy(), self.curve_points)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if len(x) < 50 else "lines",
                                     name=names.get(run_id) or run_id[:8], hovertext=run_id))
        fig.update_layout(title=f"{metric} per step ({len(ids)} runs, at most {self.curve_points} points each)",
                          xaxis_title="step", yaxis_title=metric, height=380, template="plotly_white",
                          margin={"l": 60, "r": 20, "t": 50, "b": 40})
        return fig

    def diff(self, *, only_differences: bool = True) -> pd.DataFrame:
        """Params and metrics of the selected runs side by side (a column per run), differing rows only."""
        if not self.selected:
            return pd.DataFrame()
        rows = self.frame.set_index("run_id").loc[self.selected]
        keys = [c for c in rows.columns if c.startswith(("params.", "metrics."))]
        table = rows[keys].T
        labels = []
        for run_id in self.selected:
            name = rows.at[run_id, "run_name"] or run_id[:8]
            labels.append(name if name not in labels else f"{name} ({run_id[:6]})")
        table.columns = labels
        table = table.dropna(how="all")
        if only_differences and len(self.selected) > 1:
            as_text = table.astype(str)
            table = table[as_text.nunique(axis=1) > 1]
        return table

    # ---- actions on the selection (registry domain functions) -----------------------------------------

    def register(self, model_name: str | None = None) -> ModelVersionInfo:
        """Register the selected run's model (its existing version when it already is registered)."""
        run_id = self._one_selected("register")
        return register_run(self.settings, model_name or self.model_name, run_id,
                            {"workbench.registered_from": "run comparer"})

    def set_alias(self, alias: str, model_name: str | None = None) -> ModelVersionInfo:
        """Point ``alias`` (``champion``, ``challenger`` ...) at the selected run's version, registering it first."""
        version = self.register(model_name)
        return set_alias(self.settings, version.name, alias, version.version)

    def lineage_card(self, model_name: str | None = None) -> LineageCard:
        """The lineage card of the selected run's registered version (registered first when it is not)."""
        version = self.register(model_name)
        return build_lineage_card(self.settings, version.name, version.version)

    def summary(self) -> str:
        where = f", filter {self.filter_text!r}" if self.filter_text else ""
        return (f"{len(self.frame):,} runs of {self.experiment!r} ({self.view_size:,} shown{where}, sorted by "
                f"{self.sort_by} {'ascending' if self.ascending else 'descending'}); {len(self.selected)} selected")


def _dimension(series: pd.Series, name: str) -> dict[str, Any] | None:
    """A parcoords dimension for a param column, or None when it does not vary (or has too many labels)."""
    present = series.dropna()
    if present.nunique() < 2:
        return None
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=float)
        filled = np.where(np.isnan(values), np.nanmin(values), values)
        return {"label": name, "values": filled}
    labels = sorted({str(v) for v in present})
    if len(labels) > MAX_CATEGORIES:
        return None
    codes = {label: i for i, label in enumerate(labels)}
    values = np.asarray([codes.get(str(v), -1) if v is not None else -1 for v in series], dtype=float)
    values[values < 0] = 0
    return {"label": name, "values": values, "tickvals": list(range(len(labels))),
            "ticktext": [label[:16] for label in labels]}
