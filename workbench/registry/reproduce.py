"""Reproduce a model: train again from the spec its run recorded, on the same data version, and compare.

A registered model is only trustworthy if the run behind it can be repeated. The training module logs
the exact :class:`~workbench.training.TrainingSpec` of every run as the artifact ``workbench/spec.json``
(also kept on disk, path in the ``workbench.spec_path`` tag); this module reads it back, submits it again
through the training module's public API (same seed, same frame, same hyper-parameters), and reports
per metric the original value, the reproduced one and the difference.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.exceptions import MlflowException

from workbench import locations
from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.registry.client import mlflow_client, mlflow_errors
from workbench.registry.versions import get_run, resolve_model_uri

if TYPE_CHECKING:
    from workbench.training import TrainingSpec

SPEC_ARTIFACT = "workbench/spec.json"  # where workbench.training logs the spec (jobs.SPEC_ARTIFACT)
TAG_SPEC_PATH = "workbench.spec_path"
TAG_REPRODUCES = "workbench.reproduces"
DEFAULT_METRICS = ("roc_auc", "pr_auc", "precision", "recall", "val_loss", "loss")


@dataclass(frozen=True)
class ReproduceResult:
    """The original and the reproducing run, and (once it finished) their metrics side by side."""

    model_uri: str
    original_run_id: str
    run_id: str
    job_id: str
    status: str  # SUBMITTED (wait=False) or the job's final status
    dataset_version: str
    feature_service: str
    comparison: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["metric", "original", "reproduced", "diff"]))
    tolerance: float = 1e-3

    @property
    def max_abs_diff(self) -> float:
        diffs = self.comparison["diff"].abs().dropna() if len(self.comparison) else pd.Series(dtype=float)
        return float(diffs.max()) if len(diffs) else math.nan

    @property
    def matches(self) -> bool:
        """Every compared metric within ``tolerance`` (and at least one was compared)."""
        return bool(len(self.comparison)) and bool((self.comparison["diff"].abs() <= self.tolerance).all())

    def __repr__(self) -> str:
        return (f"ReproduceResult(model_uri={self.model_uri!r}, original_run_id={self.original_run_id!r}, "
                f"run_id={self.run_id!r}, status={self.status!r}, metrics_compared={len(self.comparison)}, "
                f"max_abs_diff={self.max_abs_diff:.3g}, matches={self.matches})")

    def _repr_html_(self) -> str:
        from workbench.monitoring import reprs

        rows = [tuple(r) for r in self.comparison[["metric", "original", "reproduced", "diff"]].itertuples(
            index=False)] if len(self.comparison) else []
        verdict = ("matches" if self.matches else "differs") if rows else "not compared yet"
        return reprs.card(f"Reproduction of {self.model_uri}: {verdict}", {
            "original run": self.original_run_id, "new run": self.run_id, "job": self.job_id, "status": self.status,
            "dataset version": self.dataset_version, "tolerance": self.tolerance},
            extra=reprs.table(["metric", "original", "reproduced", "diff"], rows) if rows else "",
            status="ok" if self.matches else "warn")

    def summary(self) -> str:
        if not len(self.comparison):
            return (f"run {self.run_id} (job {self.job_id}) reproduces {self.original_run_id}: {self.status}; "
                    "metrics not compared yet")
        verdict = "reproduced" if self.matches else "NOT reproduced"
        return (f"{verdict} within {self.tolerance:g}: max |diff| {self.max_abs_diff:.3g} over "
                f"{len(self.comparison)} metrics (run {self.run_id} vs {self.original_run_id})")


def recorded_spec(settings: Settings, run_id: str) -> TrainingSpec:
    """The TrainingSpec a run was trained from: the logged artifact, else the file its tag points at."""
    from workbench.training import TrainingSpec

    client = mlflow_client(settings)
    run = get_run(client, settings, run_id)
    if settings.state_in_bucket:  # the spec names its frame in the bucket, which loading checks
        from workbench.storage import activate

        activate(settings)
    with tempfile.TemporaryDirectory(prefix="workbench-spec-") as tmp:
        try:
            path = client.download_artifacts(run_id, SPEC_ARTIFACT, tmp)
            return TrainingSpec.load(path)
        except (MlflowException, OSError):
            pass
    spec_path = run.data.tags.get(TAG_SPEC_PATH, "")
    if spec_path and locations.exists(spec_path):
        return TrainingSpec.load(spec_path)
    raise NotFound(f"run {run_id} recorded no training spec (no artifact {SPEC_ARTIFACT}, no readable "
                   f"{TAG_SPEC_PATH} tag): it was not trained by workbench.training, so it cannot be reproduced")


def compare_metrics(settings: Settings, original_run_id: str, reproduced_run_id: str,
                    metrics: tuple[str, ...] | list[str] | None = None) -> pd.DataFrame:
    """Final metric values of two runs: columns metric, original, reproduced, diff (reproduced - original)."""
    client = mlflow_client(settings)
    original = get_run(client, settings, original_run_id).data.metrics
    reproduced = get_run(client, settings, reproduced_run_id).data.metrics
    names = list(metrics) if metrics else [m for m in DEFAULT_METRICS if m in original] or sorted(original)
    rows: list[dict[str, Any]] = []
    for name in names:
        a, b = original.get(name, math.nan), reproduced.get(name, math.nan)
        rows.append({"metric": name, "original": a, "reproduced": b, "diff": b - a})
    return pd.DataFrame(rows, columns=["metric", "original", "reproduced", "diff"])


def reproduce(
    settings: Settings,
    model_uri: str,
    wait: bool = True,
    *,
    timeout_s: float = 3600.0,
    tolerance: float = 1e-3,
    progress: bool = True,
) -> ReproduceResult:
    """Train again what produced ``model_uri`` (any URI :func:`resolve_model_uri` accepts) and compare.

    The new run is tagged ``workbench.reproduces=<original run id>`` and named ``<original>-repro``. With
    ``wait`` it blocks until the job ends (JobFailed / TrainingTimeout from the training module propagate)
    and fills ``comparison``; without, compare later with :func:`compare_metrics`.
    """
    from workbench.training import submit_training_job, wait_for_job

    resolved = resolve_model_uri(settings, model_uri)
    if not resolved.run_id:
        raise NotFound(f"{model_uri} records no source run, so there is nothing to reproduce")
    client = mlflow_client(settings, check=False)
    original = get_run(client, settings, resolved.run_id)
    try:
        spec = recorded_spec(settings, resolved.run_id)
    except InvalidInput as exc:  # the spec no longer validates: typically its frame is gone
        raise InvalidInput(f"the recorded spec of run {resolved.run_id} cannot be used as is: {exc}. Rebuild the "
                           f"training frame of dataset version "
                           f"{original.data.tags.get('workbench.dataset_version') or 'unknown'} first") from exc
    name = f"{original.info.run_name or resolved.run_id[:8]}-repro"
    spec = spec.replace(run_name=name, tags={**spec.tags, TAG_REPRODUCES: resolved.run_id})
    job = submit_training_job(settings, spec)
    result = ReproduceResult(model_uri=model_uri, original_run_id=resolved.run_id, run_id=job.run_id,
                             job_id=job.job_id, status="SUBMITTED", dataset_version=spec.dataset_version or "unknown",
                             feature_service=spec.feature_service or "unknown", tolerance=tolerance)
    if not wait:
        return result
    status = wait_for_job(settings, job.job_id, timeout_s=timeout_s, progress=progress)
    with mlflow_errors(f"comparing run {job.run_id} with {resolved.run_id}"):
        comparison = compare_metrics(settings, resolved.run_id, job.run_id)
    return ReproduceResult(model_uri=model_uri, original_run_id=resolved.run_id, run_id=job.run_id, job_id=job.job_id,
                           status=status, dataset_version=result.dataset_version,
                           feature_service=result.feature_service, comparison=comparison, tolerance=tolerance)
