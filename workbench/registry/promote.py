"""Pick the best run, register its model and make it ``champion`` — unless that would make things worse.

Ranking is MLflow's (``order_by`` on the metric), so it scales with the experiment. The guard exists
because "best run in this experiment" is not "better than what is serving": when a champion already
exists the candidate is compared with it, on a holdout frame when one is given (both models loaded with
``mlflow.pyfunc`` and scored with ROC-AUC, the only fair comparison across data versions), else on the
metric the runs recorded. A worse candidate is refused with the numbers, unless ``force=True``.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.model_schema import conform_frame
from workbench.registry.client import experiment_ids, mlflow_client, mlflow_errors, translate
from workbench.registry.runs import iter_runs
from workbench.registry.versions import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_MODEL_NAME,
    ModelVersionInfo,
    _get_version,
    check_alias,
    get_run,
    register_run_model,
    run_model_uri,
)

if TYPE_CHECKING:
    from workbench.registry.card import LineageCard

Mode = Literal["max", "min"]
FINISHED_ONLY = "attributes.status = 'FINISHED'"
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PromotionRefused(InvalidInput):
    """The candidate scores worse than the current champion; nothing was changed."""

    def __init__(self, message: str, comparison: Comparison) -> None:
        super().__init__(message)
        self.comparison = comparison


@dataclass(frozen=True)
class RankedRun:
    """A run as ranked by one metric, with the model it logged (None: it logged none)."""

    run_id: str
    run_name: str
    experiment_id: str
    metric: str
    value: float
    model_uri: str | None

    def _repr_html_(self) -> str:
        from workbench.monitoring import reprs

        return reprs.card(f"Run {self.run_name or self.run_id}: {self.metric} = {reprs.fmt(self.value)}", {
            "run id": self.run_id, "experiment": self.experiment_id, "model": self.model_uri or "none logged"})


@dataclass(frozen=True)
class Comparison:
    """Candidate vs champion on one basis: ``holdout roc_auc`` or ``recorded <metric>``."""

    basis: str
    mode: Mode
    candidate_run_id: str
    candidate: float
    champion_version: str
    champion_run_id: str
    champion: float | None  # None: the champion's value is unknown (no recorded metric)

    @property
    def candidate_is_worse(self) -> bool:
        if self.champion is None or math.isnan(self.champion):
            return False
        return self.candidate < self.champion if self.mode == "max" else self.candidate > self.champion

    def describe(self) -> str:
        champion = "unknown" if self.champion is None else f"{self.champion:.4f}"
        return (f"{self.basis}: candidate run {self.candidate_run_id} {self.candidate:.4f} vs champion version "
                f"{self.champion_version} (run {self.champion_run_id}) {champion} ({self.mode} is better)")

    def _repr_html_(self) -> str:
        from workbench.monitoring import reprs

        verdict = "worse than the champion" if self.candidate_is_worse else "not worse than the champion"
        return reprs.card(f"Candidate vs champion ({self.basis}): {verdict}", extra=reprs.table(
            ["", "run", "value"], [("candidate", self.candidate_run_id, self.candidate),
                                   (f"champion v{self.champion_version}", self.champion_run_id, self.champion)]),
            note=f"{self.mode} is better", status="warn" if self.candidate_is_worse else "ok")


@dataclass(frozen=True)
class RegistrationResult:
    """What :func:`register_best` did: the champion and challenger versions and why."""

    model_name: str
    champion: ModelVersionInfo
    best: RankedRun
    challenger: ModelVersionInfo | None
    runner_up: RankedRun | None
    previous_champion: ModelVersionInfo | None
    comparison: Comparison | None
    forced: bool
    changed: bool  # False when the best run's version already was the champion
    card: LineageCard | None = None
    stale_champion: str = ""  # why the previous champion was replaced without a comparison ('' if it was not)

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.model_name}@{CHAMPION}"

    def summary(self) -> str:
        lines = [f"{self.model_name} version {self.champion.version} is {CHAMPION} (run {self.best.run_id}, "
                 f"{self.best.metric}={self.best.value:.4f})"]
        if not self.changed:
            lines.append("it already was the champion")
        elif self.previous_champion is not None:
            lines.append(f"replacing version {self.previous_champion.version}"
                         + (" (forced)" if self.forced and self.comparison and self.comparison.candidate_is_worse
                            else ""))
        if self.stale_champion:
            lines.append(self.stale_champion)
        if self.comparison is not None:
            lines.append(self.comparison.describe())
        if self.challenger is not None and self.runner_up is not None:
            lines.append(f"version {self.challenger.version} is {CHALLENGER} (run {self.runner_up.run_id}, "
                         f"{self.runner_up.metric}={self.runner_up.value:.4f})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from workbench.monitoring import reprs

        rows: list[tuple[str, str, str, float | None]] = [
            (CHAMPION, self.champion.version, self.best.run_id, self.best.value)]
        if self.challenger is not None and self.runner_up is not None:
            rows.append((CHALLENGER, self.challenger.version, self.runner_up.run_id, self.runner_up.value))
        if self.previous_champion is not None and self.changed:
            rows.append(("previous champion", self.previous_champion.version, self.previous_champion.run_id, None))
        extra = reprs.table(["alias", "version", "run", self.best.metric], rows)
        notes = [] if self.changed else ["it already was the champion"]
        if self.stale_champion:
            notes.append(self.stale_champion)
        if self.comparison is not None:
            notes.append(self.comparison.describe())
        if self.card is not None and self.card.gaps:
            notes.append(f"lineage card: {len(self.card.gaps)} gap(s)")
        return reprs.card(f"{self.model_name}: version {self.champion.version} is {CHAMPION}"
                          + (" (forced)" if self.forced else ""), extra=extra, note="; ".join(notes))


def _order_key(metric: str) -> str:
    if not isinstance(metric, str) or not metric or "`" in metric:
        raise InvalidInput(f"metric must be a metric name such as 'roc_auc', got {metric!r}")
    return f"metrics.{metric}" if _PLAIN_KEY.match(metric) else f"metrics.`{metric}`"


def ranked_runs(
    settings: Settings,
    metric: str = "roc_auc",
    mode: Mode = "max",
    experiment: str | None = None,
    filter_string: str = FINISHED_ONLY,
    *,
    limit: int = 2,
    require_model: bool = True,
) -> list[RankedRun]:
    """The top ``limit`` runs by ``metric`` (ranked by MLflow), skipping runs without a model if asked."""
    if mode not in ("max", "min"):
        raise InvalidInput(f"mode must be 'max' or 'min', got {mode!r}")
    order = f"{_order_key(metric)} {'DESC' if mode == 'max' else 'ASC'}"
    client = mlflow_client(settings)
    ids = experiment_ids(client, settings, experiment)
    found: list[RankedRun] = []
    for run in iter_runs(client, ids, filter_string=filter_string, order_by=(order,), max_results=None,
                         page_size=100):
        value = run.data.metrics.get(metric)
        if value is None or math.isnan(value):
            break  # MLflow sorts runs without the metric (or NaN) last: nothing better follows
        model_uri = run_model_uri(client, run)
        if require_model and model_uri is None:
            continue
        found.append(RankedRun(run.info.run_id, run.info.run_name or "", run.info.experiment_id, metric,
                               float(value), model_uri))
        if len(found) >= limit:
            break
    return found


def best_run(
    settings: Settings,
    metric: str = "roc_auc",
    mode: Mode = "max",
    experiment: str | None = None,
    filter_string: str = FINISHED_ONLY,
    *,
    require_model: bool = True,
) -> RankedRun:
    """The run with the best ``metric`` (its latest value) that logged a model; NotFound when none does."""
    runs = ranked_runs(settings, metric, mode, experiment, filter_string, limit=1, require_model=require_model)
    if not runs:
        where = experiment or settings.experiment
        raise NotFound(f"no run of experiment {where!r} matching {filter_string!r} has metric {metric!r}"
                       + (" and a logged model" if require_model else ""))
    return runs[0]


def _scores(prediction: Any) -> np.ndarray:
    """A 1-D array of scores from what a pyfunc returns (array, Series, or a frame of 1 or 2 columns)."""
    if isinstance(prediction, pd.DataFrame):
        prediction = prediction.iloc[:, -1]  # one column, or (p0, p1): the positive class
    values = np.asarray(prediction, dtype=np.float64)
    if values.ndim == 2:
        values = values[:, -1]
    return values.reshape(-1)


def _predict(settings: Settings, model_uri: str, features: pd.DataFrame) -> Any:
    """What a registered model (downloaded, loaded with ``mlflow.pyfunc``) predicts for ``features``."""
    with tempfile.TemporaryDirectory(prefix="workbench-model-") as tmp:
        with mlflow_errors(f"downloading model {model_uri}"):
            local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp,
                                                        tracking_uri=settings.mlflow_uri,
                                                        registry_uri=settings.mlflow_uri)
        try:
            model = mlflow.pyfunc.load_model(local)
            return model.predict(conform_frame(model.metadata.get_input_schema(), features))
        except MlflowException as exc:
            raise translate(exc, f"loading or scoring model {model_uri}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"model {model_uri} could not score the holdout frame (columns "
                               f"{list(features.columns)}): {exc}") from exc


def holdout_roc_auc(settings: Settings, model_uri: str, holdout: pd.DataFrame, label_column: str = "is_fraud") -> float:
    """ROC-AUC of a model (loaded with ``mlflow.pyfunc``) on a holdout frame of features plus the label."""
    from sklearn.metrics import roc_auc_score

    _check_holdout(holdout, label_column)
    labels = holdout[label_column].to_numpy()
    scores = _scores(_predict(settings, model_uri, holdout.drop(columns=[label_column])))
    if len(scores) != len(labels):
        raise InvalidInput(f"model {model_uri} returned {len(scores)} scores for {len(labels)} holdout rows")
    return float(roc_auc_score(labels, scores))


HOLDOUT_METRIC = {"binary": ("roc_auc", "max"), "multiclass": ("accuracy", "max"), "regression": ("rmse", "min")}
"""What the champion guard compares on a holdout, per task kind: one metric every model of the task has."""


def holdout_score(settings: Settings, model_uri: str, holdout: pd.DataFrame, label_column: str,
                  task: str = "binary", positive: Any = 1) -> float:
    """The task's holdout metric (:data:`HOLDOUT_METRIC`) of a registered model on a frame of features plus
    the label: ROC-AUC of P(positive) for binary, accuracy of the most probable class for multiclass, RMSE
    for regression."""
    if task not in HOLDOUT_METRIC:
        raise InvalidInput(f"task must be one of {sorted(HOLDOUT_METRIC)}, got {task!r}")
    if task == "binary":
        coded = holdout.assign(**{label_column: (holdout[label_column] == positive).astype("int64")})
        return holdout_roc_auc(settings, model_uri, coded, label_column)
    if not isinstance(holdout, pd.DataFrame) or label_column not in holdout.columns or holdout.empty:
        raise InvalidInput(f"holdout must be a non-empty DataFrame of features and {label_column!r}")
    prediction = _predict(settings, model_uri, holdout.drop(columns=[label_column]))
    if task == "regression":
        values = np.asarray(prediction, dtype=np.float64).reshape(-1)
        truth = holdout[label_column].to_numpy(dtype=np.float64)
        return float(np.sqrt(np.mean((values - truth) ** 2)))
    if not isinstance(prediction, pd.DataFrame):
        raise InvalidInput(f"model {model_uri} returned {type(prediction).__name__}, not a frame of class "
                           "probabilities (proba_<class> columns)")
    columns = [c for c in prediction.columns if str(c).startswith("proba_")]
    best = prediction[columns].to_numpy(dtype=np.float64).argmax(axis=1)
    predicted = [str(columns[i])[len("proba_"):] for i in best]
    return float(np.mean([p == str(t) for p, t in zip(predicted, holdout[label_column], strict=True)]))


def _check_holdout(holdout: Any, label_column: str) -> None:
    if not isinstance(holdout, pd.DataFrame):
        raise InvalidInput(f"holdout must be a pandas DataFrame of features and {label_column!r}, "
                           f"got {type(holdout).__name__}")
    if label_column not in holdout.columns:
        raise InvalidInput(f"the holdout frame has no label column {label_column!r}; its columns are "
                           f"{list(holdout.columns)}")
    classes = set(pd.unique(holdout[label_column].dropna()))
    if len(classes) < 2:
        raise InvalidInput(f"the holdout frame needs both classes in {label_column!r} to score ROC-AUC; found "
                           f"{sorted(classes)} in {len(holdout)} rows")


def _compare(settings: Settings, candidate: RankedRun, champion: ModelVersionInfo, mode: Mode,
             holdout: pd.DataFrame | None, label_column: str, task: str | None = None,
             positive: Any = 1) -> Comparison:
    if holdout is not None:
        assert candidate.model_uri is not None
        if task is None:  # the binary guard of old: labels already 0/1
            cand = holdout_roc_auc(settings, candidate.model_uri, holdout, label_column)
            champ: float | None = holdout_roc_auc(settings, champion.uri, holdout, label_column)
            return Comparison("holdout roc_auc", "max", candidate.run_id, cand, champion.version, champion.run_id,
                              champ)
        name, better = HOLDOUT_METRIC[task]
        cand = holdout_score(settings, candidate.model_uri, holdout, label_column, task, positive)
        champ = holdout_score(settings, champion.uri, holdout, label_column, task, positive)
        return Comparison(f"holdout {name}", better, candidate.run_id, cand, champion.version,  # type: ignore[arg-type]
                          champion.run_id, champ)
    champ = None
    if champion.run_id:
        run = get_run(mlflow_client(settings, check=False), settings, champion.run_id)
        champ = run.data.metrics.get(candidate.metric)
    return Comparison(f"recorded {candidate.metric}", mode, candidate.run_id, candidate.value, champion.version,
                      champion.run_id, champ)


def stale_reason(settings: Settings, version: ModelVersionInfo) -> str:
    """Why ``version`` cannot stay champion ('' when it can): its run's training frame (param ``frame_path``)
    was a local path that no longer exists, so monitoring has no reference and ``reproduce`` no data.

    Remote (``s3://…``) and relative paths are not checked here; a run that recorded no frame is not stale.
    """
    if not version.run_id:
        return ""
    try:
        run = get_run(mlflow_client(settings, check=False), settings, version.run_id)
    except NotFound:
        return f"version {version.version}'s run {version.run_id} is gone: replaced without a comparison"
    frame = str(run.data.params.get("frame_path") or "")
    if not frame or "://" in frame or not Path(frame).is_absolute() or Path(frame).exists():
        return ""
    return (f"version {version.version}'s training frame {frame} is gone (it could not be monitored or "
            "reproduced): replaced without a comparison")


def _current(settings: Settings, model_name: str, alias: str) -> ModelVersionInfo | None:
    client = mlflow_client(settings, check=False)
    try:
        return ModelVersionInfo.from_mlflow(_get_version(client, settings, model_name, alias))
    except NotFound:
        return None


def register_best(
    settings: Settings,
    metric: str = "roc_auc",
    mode: Mode = "max",
    model_name: str = DEFAULT_MODEL_NAME,
    holdout: pd.DataFrame | None = None,
    force: bool = False,
    *,
    experiment: str | None = None,
    filter_string: str = FINISHED_ONLY,
    label_column: str = "is_fraud",
    task: str | None = None,
    positive: Any = 1,
    champion_alias: str = CHAMPION,
    challenger_alias: str = CHALLENGER,
    write_card: bool = True,
) -> RegistrationResult:
    """Register the best run's model as ``champion`` and the runner-up's as ``challenger``.

    When ``champion`` already exists and is another run's, the candidate must not be worse: on
    ``holdout`` when given (rows no run was ranked or stopped on; scored with the ``task``'s
    :data:`HOLDOUT_METRIC`, or ROC-AUC of 0/1 labels when ``task`` is None), else on the recorded
    ``metric``. A worse candidate raises :class:`PromotionRefused` (an InvalidInput) with both numbers and
    changes nothing, unless ``force``. A champion whose training frame is gone (:func:`stale_reason`) is
    replaced without a comparison, since it could be neither monitored nor reproduced; the result's
    ``stale_champion`` says so. Versions are reused when a run's model is already registered under
    ``model_name``. With ``write_card`` the champion's lineage card is logged to its run and summarised on
    the version.
    """
    check_alias(champion_alias)
    check_alias(challenger_alias)
    ranked = ranked_runs(settings, metric, mode, experiment, filter_string, limit=2, require_model=True)
    if not ranked:
        where = experiment or settings.experiment
        raise NotFound(f"no finished run of experiment {where!r} has metric {metric!r} and a logged model; "
                       "train one first (workbench.training)")
    best, runner_up = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    previous = _current(settings, model_name, champion_alias)
    comparison, stale = None, ""
    if previous is not None and previous.run_id != best.run_id:
        stale = stale_reason(settings, previous)
    if previous is not None and previous.run_id != best.run_id and not stale:
        comparison = _compare(settings, best, previous, mode, holdout, label_column, task, positive)
        if comparison.candidate_is_worse and not force:
            raise PromotionRefused(
                f"not promoting run {best.run_id} to {model_name}@{champion_alias}: it is worse than the current "
                f"champion ({comparison.describe()}). Pass force=True to promote anyway.", comparison)
    client = mlflow_client(settings, check=False)
    tags = {"workbench.selected_by": f"{metric} ({mode})", f"workbench.{metric}": f"{best.value:.6g}"}
    if comparison is not None and comparison.basis.startswith("holdout"):
        tags[f"workbench.{comparison.basis.replace(' ', '_')}"] = f"{comparison.candidate:.6g}"
    with mlflow_errors(f"registering run {best.run_id} as {model_name!r}"):
        champion_mv = register_run_model(client, settings, model_name, get_run(client, settings, best.run_id), tags)
        client.set_registered_model_alias(model_name, champion_alias, champion_mv.version)
    challenger = None
    if runner_up is not None:
        with mlflow_errors(f"registering runner-up run {runner_up.run_id} as {model_name!r}"):
            mv = register_run_model(client, settings, model_name, get_run(client, settings, runner_up.run_id),
                                    {"workbench.selected_by": f"{metric} ({mode}), runner-up",
                                     f"workbench.{metric}": f"{runner_up.value:.6g}"})
            client.set_registered_model_alias(model_name, challenger_alias, mv.version)
            challenger = ModelVersionInfo.from_mlflow(client.get_model_version(model_name, mv.version))
    card = None
    if write_card:
        from workbench.registry.card import write_lineage_card

        card = write_lineage_card(settings, model_name, champion_mv.version)
    with mlflow_errors(f"reading version {champion_mv.version} of {model_name!r}"):
        champion = ModelVersionInfo.from_mlflow(client.get_model_version(model_name, champion_mv.version))
    return RegistrationResult(model_name=model_name, champion=champion, best=best, challenger=challenger,
                              runner_up=runner_up, previous_champion=previous, comparison=comparison,
                              forced=bool(force and comparison is not None and comparison.candidate_is_worse),
                              changed=previous is None or previous.version != champion.version, card=card,
                              stale_champion=stale)
