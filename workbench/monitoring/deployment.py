"""Monitoring one deployment of any model: its log, its model's training reference, drift, quality, cost.

Everything is found from the deployment's name: its prediction log (``settings.predictions_dir``), the
model version each row names, that version's run and the training frame the run recorded (param
``frame_path``), and the model's MLflow metadata ``{"workbench": {"task", "classes", "positive",
"threshold", "feature_columns"}}``. The drift reference for the model's *outputs* is the model's own
answers on a sample of its training frame, scored here once per version and cached, so a score or a
predicted class is compared like for like.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.dataset as pads

from workbench import locations
from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, ServiceUnavailable, WorkbenchError
from workbench.model_schema import conform_frame
from workbench.monitoring import reprs as _reprs
from workbench.monitoring.alerts import Alert, AlertRule, default_alert_rules, evaluate_alerts
from workbench.monitoring.column_drift import ReferenceProfile
from workbench.monitoring.cost import CostEstimate, estimate_cost
from workbench.monitoring.drift import DEFAULT_BINS, DriftReport, DriftThresholds
from workbench.monitoring.performance import (
    PerformanceSummary,
    histogram_quantile,
    metric_total,
    performance_summary,
    scrape_metrics,
)
from workbench.monitoring.prediction_log import log_row_counts, read_log
from workbench.monitoring.task_quality import TASK_OUTPUTS, TaskQuality, task_quality

REFERENCE_ROWS = 20_000
"""Rows of the training frame sampled as the drift reference (enough for stable deciles and PSI)."""
_BOOKKEEPING = ("request_id", "timestamp", "deployment", "model_version", "latency_ms", "event_timestamp", "task")
_OUTPUTS = ("score", "predicted_label", "probabilities", "prediction")
_INPUT_PREFIX = "input:"


@dataclass(frozen=True)
class ModelReference:
    """What monitoring needs to know about one model version."""

    model_uri: str  # models:/<name>/<version>
    name: str
    version: str
    run_id: str
    task: str | None
    classes: tuple[Any, ...]
    positive: Any
    threshold: float
    feature_columns: tuple[str, ...]
    frame_path: str  # the training frame recorded in the run ('' when the run recorded none)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The log columns holding this model's answers that drift is computed on."""
        return {"binary": ("score",), "multiclass": ("predicted_label",)}.get(self.task or "", ("prediction",))


def model_reference(settings: Settings, model_uri: str) -> ModelReference:
    """Read a registered model version's task contract and training frame from MLflow."""
    from mlflow.models import get_model_info

    from workbench.data.task import TAG_TASK
    from workbench.registry import resolve_model_uri
    from workbench.registry.client import mlflow_client
    from workbench.serving.contract import contract_from_metadata

    resolved = resolve_model_uri(settings, model_uri)
    if resolved.version is None:
        raise InvalidInput(f"{model_uri} is not a registered model version: monitor a deployed model")
    version = resolved.version
    run = mlflow_client(settings).get_run(version.run_id) if version.run_id else None
    params = dict(run.data.params) if run else {}
    tags = dict(run.data.tags) if run else {}
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    try:
        info = get_model_info(resolved.load_uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds for a missing model
        raise NotFound(f"cannot read the model at {resolved.load_uri}: {exc}") from exc
    meta = dict((info.metadata or {}).get("workbench") or {})
    contract = contract_from_metadata(info.metadata, run_task=version.tags.get(TAG_TASK) or tags.get(TAG_TASK))
    features = tuple(meta.get("feature_columns") or (info.signature.inputs.input_names() if info.signature else ()))
    return ModelReference(model_uri=f"models:/{version.name}/{version.version}", name=version.name,
                          version=version.version, run_id=version.run_id, task=contract.task,
                          classes=contract.classes, positive=contract.positive, threshold=contract.threshold,
                          feature_columns=features, frame_path=str(params.get("frame_path") or ""))


def log_column(name: str) -> str:
    """The prediction log's column for model input ``name`` (clashes with bookkeeping are prefixed)."""
    return _INPUT_PREFIX + name if name in _BOOKKEEPING or name in _OUTPUTS else name


def read_reference_frame(path: str | Path, columns: Sequence[str], rows: int = REFERENCE_ROWS) -> pd.DataFrame:
    """A reproducible sample of ``rows`` rows of a Parquet training frame (file or folder, local or ``s3://``),
    ``columns`` only."""
    if not locations.exists(path):
        raise NotFound(f"the training frame {path} recorded in the model's run does not exist any more; pass "
                       "reference=<a frame> to compare against another sample")
    con = duckdb.connect()
    try:
        if locations.is_remote(path):  # in the bucket: the needed columns through pyarrow's S3, sampled here
            fs, key = locations.resolve(path)
            schema = pads.dataset(key, filesystem=fs, format="parquet").schema
            table = pads.dataset(key, filesystem=fs, format="parquet").to_table(
                columns=[c for c in columns if c in schema.names] or None)
            con.register("reference_frame", table)
            scan = "reference_frame"
        else:
            source = Path(path)
            glob = str(source / "**" / "*.parquet") if source.is_dir() else str(source)
            scan = "read_parquet('" + glob.replace("'", "''") + "', union_by_name=true)"
        present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
        wanted = [c for c in columns if c in present]
        select = ", ".join('"' + c.replace('"', '""') + '"' for c in wanted) or "*"
        return con.execute(f"SELECT {select} FROM {scan} USING SAMPLE reservoir({int(rows)} ROWS) "
                           "REPEATABLE (7)").df()
    finally:
        con.close()


def reference_outputs(settings: Settings, ref: ModelReference, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's answers on ``frame`` in the log's columns (``score`` / ``predicted_label`` / ``prediction``)."""
    import mlflow

    from workbench.serving.contract import ModelContract, score_rows

    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    model = mlflow.pyfunc.load_model(ref.model_uri)
    raw = model.predict(conform_frame(model.metadata.get_input_schema(), frame.loc[:, list(ref.feature_columns)]))
    contract = ModelContract(task=ref.task, classes=ref.classes, positive=ref.positive, threshold=ref.threshold)
    scored = score_rows(contract, raw, len(frame))
    rows = [{("predicted_label" if k == "label" else k): v for k, v in s.outputs.items()} for s in scored]
    return pd.DataFrame(rows, index=frame.index)


_profiles: dict[tuple[str, int, int], tuple[ReferenceProfile, pd.DataFrame]] = {}
_profiles_lock = threading.Lock()


def reference_profile(settings: Settings, ref: ModelReference, *, bins: int = DEFAULT_BINS,
                      rows: int = REFERENCE_ROWS, with_outputs: bool = True) -> tuple[ReferenceProfile, pd.DataFrame]:
    """The profiled training reference of a model version (and the sample), computed once per process."""
    key = (ref.model_uri + ("+out" if with_outputs else ""), bins, rows)
    with _profiles_lock:
        if key in _profiles:
            return _profiles[key]
    if not ref.frame_path:
        raise NotFound(f"the run {ref.run_id} of {ref.model_uri} recorded no training frame (param frame_path); "
                       "pass reference=<a frame of training rows> to compare against")
    if locations.is_remote(ref.frame_path):
        from workbench.storage import activate

        activate(settings)  # the frame the job read from the bucket
    sample = read_reference_frame(ref.frame_path, ref.feature_columns, rows)
    outputs: list[str] = []
    if with_outputs and ref.feature_columns and all(c in sample.columns for c in ref.feature_columns):
        try:
            answers = reference_outputs(settings, ref, sample)
            outputs = [c for c in ref.output_columns if c in answers.columns]
            sample = pd.concat([sample, answers[outputs]], axis=1)
        except Exception as exc:  # noqa: BLE001 - a model that cannot be loaded here still has input drift
            warnings.warn(f"output drift of {ref.model_uri} left out: scoring its training sample failed ({exc})",
                          stacklevel=2)
            outputs = []
    renamed = sample.rename(columns={c: log_column(c) for c in ref.feature_columns})
    features = [log_column(c) for c in ref.feature_columns if c in sample.columns]
    profile = ReferenceProfile.from_frame(renamed, features, outputs, bins=bins)
    with _profiles_lock:
        _profiles[key] = (profile, renamed)
    return profile, renamed


@dataclass(frozen=True)
class LogWindow:
    """The rows of a deployment's log in a time window, and what could not be read."""

    frame: pd.DataFrame = field(repr=False)
    rows: int  # rows in the window
    rows_in_log: int
    unparsed: int  # lines of the log that could not be parsed (counted, never silently dropped)
    model_versions: tuple[str, ...]

    def describe(self) -> str:
        text = f"{self.rows:,} of {self.rows_in_log:,} logged predictions in the window"
        return text + (f"; {self.unparsed} log line(s) could not be parsed" if self.unparsed else "")


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def read_window(settings: Settings, deployment: str, since: Any = None, until: Any = None,
                model_version: str | None = None) -> LogWindow:
    """The deployment's logged predictions with ``since <= timestamp < until`` (None: unbounded)."""
    from workbench.serving.prediction_log import find_log_dir

    folder, looked = find_log_dir(settings, deployment)
    if not folder.is_dir() or not any(folder.rglob("*.jsonl")) and not any(folder.rglob("*.parquet")):
        raise NotFound(f"no predictions logged for deployment {deployment!r} yet (looked in "
                       f"{', '.join(map(str, looked))})")
    rows, unparsed = log_row_counts(folder)
    frame = read_log(folder)
    stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    keep = pd.Series(True, index=frame.index)
    start, end = _utc(since), _utc(until)
    if start is not None:
        keep &= stamps >= start
    if end is not None:
        keep &= stamps < end
    if model_version is not None and "model_version" in frame.columns:
        keep &= frame["model_version"].astype(str) == str(model_version)
    window = frame.loc[keep].assign(timestamp=stamps[keep]).sort_values("timestamp", kind="stable")
    versions = tuple(dict.fromkeys(window["model_version"].astype(str))) if "model_version" in window else ()
    return LogWindow(window.reset_index(drop=True), len(window), rows, unparsed, versions)


def deployment_model_uri(settings: Settings, deployment: str, version: str | None = None) -> str:
    """``models:/<name>/<version>`` of what the deployment serves (or of ``version`` of the same model)."""
    from workbench.serving.deployments import get_deployment

    info = get_deployment(settings, deployment)
    uri = info.model_uri
    if version is None or not uri.startswith("models:/"):
        return uri
    name = uri[len("models:/"):].split("/")[0].split("@")[0]
    return f"models:/{name}/{version}"


def _resolve_model(settings: Settings, deployment: str, window: LogWindow, model_uri: str | None) -> ModelReference:
    latest = window.model_versions[-1] if window.model_versions else None
    if model_uri is None:
        model_uri = deployment_model_uri(settings, deployment, latest)
    return model_reference(settings, model_uri)


def drift_for_deployment(settings: Settings, deployment: str, *, since: Any = None, until: Any = None,
                         model_uri: str | None = None, reference: pd.DataFrame | None = None,
                         thresholds: DriftThresholds | None = None, bins: int = DEFAULT_BINS,
                         window: LogWindow | None = None) -> DriftReport:
    """Drift of every logged input column and of the model's output, in ``[since, until)``, against the
    training frame of the model version that served those rows (the latest one, when several did).

    ``model_uri`` (``models:/<name>/<version>``) names the model when Ray Serve is not reachable to ask
    the deployment; ``reference`` replaces the recorded training frame (its columns named as the inputs).
    """
    window = window or read_window(settings, deployment, since, until)
    if window.rows == 0:
        raise InvalidInput(f"no predictions of {deployment!r} in the window [{since}, {until}); widen it")
    ref = _resolve_model(settings, deployment, window, model_uri)
    current = window.frame.loc[window.frame["model_version"].astype(str) == ref.version]
    if current.empty:
        current = window.frame
    if reference is not None:
        renamed = reference.rename(columns={c: log_column(c) for c in ref.feature_columns})
        features = [c for c in renamed.columns if c in current.columns and c not in _OUTPUTS]
        outputs = [c for c in ref.output_columns if c in renamed.columns]
        profile = ReferenceProfile.from_frame(renamed, features, outputs, bins=bins)
    else:
        profile, _ = reference_profile(settings, ref, bins=bins)
    return profile.compare(current, thresholds)


def quality_for_deployment(settings: Settings, deployment: str, labels: pd.DataFrame, *, since: Any = None,
                           until: Any = None, model_uri: str | None = None,
                           window: LogWindow | None = None) -> TaskQuality:
    """The task's quality metrics over the window's predictions that have a label (joined by request id)."""
    window = window or read_window(settings, deployment, since, until)
    ref = _resolve_model(settings, deployment, window, model_uri) if model_uri or window.model_versions else None
    task = (ref.task if ref else None) or _logged_task(window.frame)
    if task not in TASK_OUTPUTS:
        raise InvalidInput(f"deployment {deployment!r} serves a model without a task (binary, multiclass or "
                           "regression): its quality cannot be judged from labels")
    return task_quality(window.frame, labels, task, positive=ref.positive if ref else 1,
                        threshold=ref.threshold if ref else 0.5, classes=ref.classes if ref else ())


def _logged_task(frame: pd.DataFrame) -> str | None:
    if "task" in frame.columns and frame["task"].notna().any():
        return str(frame["task"].dropna().iloc[-1])
    return None


def serve_error_rate(settings: Settings, deployment: str, timeout_s: float = 2.0) -> tuple[float, float]:
    """(error responses, requests) Ray Serve counted for the deployment since it started; NaN when its
    metrics endpoint does not answer (the log only holds answered predictions, so errors come from here)."""
    try:
        samples = scrape_metrics(settings.ray_metrics_url, timeout_s)
    except (ServiceUnavailable, WorkbenchError):
        return math.nan, math.nan
    labels = {"application": deployment}
    totals = []
    for metric in ("ray_serve_num_http_error_requests", "ray_serve_num_http_requests"):
        try:
            totals.append(metric_total(samples, metric + "_total", labels))
        except NotFound:
            try:
                totals.append(metric_total(samples, metric, labels))
            except NotFound:
                totals.append(0.0 if metric.endswith("error_requests") else math.nan)
    return totals[0], totals[1]


INGRESS_LATENCY_METRIC = "ray_serve_http_request_latency_ms"
"""Serve's end-to-end histogram at the ingress, per application: its Python proxy records it, and in the
HAProxy ingress Ray derives it from HAProxy's per-request log, so both modes answer it."""


def ingress_latency_ms(settings: Settings, deployment: str, quantiles: Sequence[float] = (0.5, 0.9, 0.99),
                       timeout_s: float = 2.0) -> dict[str, float]:
    """End-to-end latency percentiles at the ingress (``{"ingress_p50_ms": ...}``) since the deployment
    started, estimated from Serve's histogram as PromQL's ``histogram_quantile`` does.

    The prediction log's ``latency_ms`` is measured inside the replica; this one adds the ingress, the
    queue and the network hop, so the two side by side say where a slow request spent its time. Empty
    when the metrics endpoint does not answer or has not seen the deployment yet.
    """
    try:
        samples = scrape_metrics(settings.ray_metrics_url, timeout_s)
        return {f"ingress_p{round(q * 100):d}_ms": histogram_quantile(samples, q, INGRESS_LATENCY_METRIC,
                                                                      {"application": deployment})
                for q in quantiles}
    except (ServiceUnavailable, NotFound, InvalidInput, WorkbenchError):
        return {}


@dataclass(frozen=True)
class MonitoringReport:
    """Everything monitoring says about one deployment over one window."""

    deployment: str
    model_uri: str
    task: str | None
    window: LogWindow
    performance: PerformanceSummary | None
    cost: CostEstimate | None
    drift: DriftReport | None
    quality: TaskQuality | None
    alerts: tuple[Alert, ...]
    error_rate: float = math.nan
    problems: tuple[str, ...] = ()  # parts that could not be computed, and why
    ingress_latency: dict[str, float] = field(default_factory=dict)  # end to end, from Serve's histogram

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"unparsed_log_rows": float(self.window.unparsed), "error_rate": self.error_rate,
                                 **self.ingress_latency}
        for part in (self.performance, self.cost, self.drift, self.quality):
            if part is not None:
                out.update(part.metrics())
        return out

    def __repr__(self) -> str:
        return (f"MonitoringReport(deployment={self.deployment!r}, model={self.model_uri!r}, rows={self.window.rows}, "
                f"unparsed={self.window.unparsed}, alerts={len(self.alerts)}, problems={len(self.problems)})")

    def _repr_html_(self) -> str:
        worst = "error" if any(a.severity == "critical" for a in self.alerts) else "warn" if self.alerts else "ok"
        head = _reprs.card(f"Monitoring {self.deployment}", {
            "model": self.model_uri or "–", "task": self.task or "–", "predictions": self.window.rows,
            "unparsed log lines": self.window.unparsed, "error rate": self.error_rate,
            **{f"{k.removesuffix('_ms').replace('_', ' ')} (end to end, ms)": v
               for k, v in self.ingress_latency.items()},
            "firing alerts": len(self.alerts)}, note=self.window.describe(), status=worst)
        parts = [head] + [p._repr_html_() for p in (self.performance, self.cost, self.drift, self.quality)
                          if p is not None]
        if self.alerts:
            parts.append(_reprs.card("Firing alerts", extra=_reprs.table(
                ["rule", "severity", "metric", "observed", "rule"],
                [(a.rule, a.severity, a.metric, a.observed, f"{a.op} {a.threshold:g}") for a in self.alerts]),
                status=worst))
        if self.problems:
            parts.append(_reprs.card("Not computed", extra=_reprs.table(["part", "why"],
                         [p.split(": ", 1) if ": " in p else (p, "") for p in self.problems]), status="warn"))
        return "".join(parts)


def monitoring_report(settings: Settings, deployment: str, *, labels: pd.DataFrame | None = None,
                      since: Any = None, until: Any = None, model_uri: str | None = None,
                      reference: pd.DataFrame | None = None, cpus: float = 1.0, gpus: float = 0.0,
                      rules: Iterable[AlertRule] | None = None) -> MonitoringReport:
    """Performance, cost, drift, quality (when ``labels`` are given) and firing alerts for a deployment.

    A part that cannot be computed (no labels yet, no training frame recorded, MLflow down) is left
    out with the reason in ``problems``; the rest of the report still comes.
    """
    window = read_window(settings, deployment, since, until)
    problems: list[str] = []
    perf = cost = drift = quality = None
    ref: ModelReference | None = None
    try:
        ref = _resolve_model(settings, deployment, window, model_uri)
    except WorkbenchError as exc:
        problems.append(f"model: {exc}")
    if window.rows:
        perf = performance_summary(window.frame)
        if not math.isnan(perf.throughput_rps) and (cpus or gpus):
            cost = estimate_cost(perf.throughput_rps, cpus, gpus, settings.prices)
        elif not (cpus or gpus):  # Serve runs a replica that reserves nothing; there is no held resource to price
            problems.append("cost: the deployment reserves no CPU or GPU (num_cpus=0), so there is nothing to price")
        if ref is not None:
            try:
                drift = drift_for_deployment(settings, deployment, model_uri=ref.model_uri, reference=reference,
                                             window=window)
            except WorkbenchError as exc:
                problems.append(f"drift: {exc}")
        if labels is not None:
            try:
                quality = quality_for_deployment(settings, deployment, labels, window=window,
                                                 model_uri=ref.model_uri if ref else None)
            except WorkbenchError as exc:
                problems.append(f"quality: {exc}")
    else:
        problems.append("performance: no predictions in the window")
    errors, requests_ = serve_error_rate(settings, deployment)
    error_rate = errors / requests_ if requests_ and not math.isnan(requests_) else math.nan
    report = MonitoringReport(deployment, ref.model_uri if ref else (model_uri or ""), ref.task if ref else
                              _logged_task(window.frame), window, perf, cost, drift, quality, (), error_rate,
                              tuple(problems), ingress_latency_ms(settings, deployment))
    metrics = {k: v for k, v in report.metrics().items() if not math.isnan(v)}
    alerts = evaluate_alerts(list(rules) if rules is not None else default_alert_rules(), metrics, skip_missing=True)
    return MonitoringReport(**{**report.__dict__, "alerts": tuple(alerts)})
