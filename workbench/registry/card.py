"""Lineage cards: where a registered model version came from, as JSON and markdown, stored with its run.

The card follows the chain the design asks for — model version → run (params, metrics, start time, git
commit) → training notebook + parameters → feature service → dataset version — from two sources: the
MLflow run (tags the training module writes) and the ``workbench.lineage`` stage records. Every link it
cannot establish is written as ``"unknown"`` and explained under ``gaps``; where the two sources disagree
the card says so rather than picking one silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.lineage import StageRecord, records, trace
from workbench.registry.client import mlflow_client, mlflow_errors
from workbench.registry.versions import ModelVersionInfo, _get_version, get_run

UNKNOWN = "unknown"
CARD_JSON = "lineage_card.json"
CARD_MD = "lineage_card.md"
CARD_FORMAT = 1
_DATASET_TAGS = ("workbench.dataset_version", "dataset_version")
_FEATURE_TAGS = ("workbench.feature_service", "feature_service")
_COMMIT_TAGS = ("mlflow.source.git.commit", "workbench.git_commit")


@dataclass(frozen=True)
class LineageCard:
    """The card's content (``data``, JSON-ready) and the gaps found while building it."""

    data: dict[str, Any]
    gaps: tuple[str, ...] = field(default=())

    @property
    def run_id(self) -> str:
        return str(self.data["run"]["run_id"])

    @property
    def dataset_version(self) -> str:
        return str(self.data["dataset_version"]["value"])

    @property
    def feature_service(self) -> str:
        return str(self.data["feature_service"]["value"])

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.data))

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=False)

    def to_markdown(self) -> str:
        return _markdown(self.data)

    def summary(self) -> str:
        """One paragraph for the model version's description."""
        d = self.data
        training = d["training_stage"]
        notebook = training["notebook"] if training else UNKNOWN
        return (f"Trained in run {d['run']['run_id']} ({d['run']['run_name'] or 'unnamed'}) from notebook {notebook} "
                f"at commit {d['code']['git_commit']}, on feature service {d['feature_service']['value']} over "
                f"dataset version {d['dataset_version']['value']}. Lineage card: runs:/{d['run']['run_id']}/{CARD_MD}"
                + (f". Gaps: {len(self.gaps)} (see the card)." if self.gaps else "."))

    def _repr_html_(self) -> str:
        from workbench.monitoring import reprs

        d = self.data
        model, run, training = d["model"], d["run"], d["training_stage"]
        metrics = reprs.table(["metric", "value"], list(run["metrics"].items()), max_rows=8)
        gaps = "".join(f"<li>{reprs.html.escape(g)}</li>" for g in self.gaps)
        return reprs.card(f"Lineage card: {model['name']} version {model['version']}", {
            "aliases": ", ".join(model["aliases"]) or "none", "run": f"{run['run_id']} ({run['run_name'] or '–'})",
            "experiment": run["experiment"], "notebook": training["notebook"] if training else UNKNOWN,
            "git commit": d["code"]["git_commit"], "feature service": d["feature_service"]["value"],
            "dataset version": d["dataset_version"]["value"]},
            extra=metrics + (f'<div style="font-size:11px">Gaps:<ul style="margin:0">{gaps}</ul></div>' if gaps
                             else ""), status="warn" if self.gaps else "ok")


def _first_tag(tags: dict[str, str], keys: tuple[str, ...]) -> tuple[str, str]:
    for key in keys:
        if tags.get(key):
            return tags[key], f"run tag {key}"
    return "", ""


def _mentions(value: Any, run_id: str) -> bool:
    if isinstance(value, str):
        return value == run_id
    if isinstance(value, list | tuple):
        return any(_mentions(v, run_id) for v in value)
    if isinstance(value, dict):
        return any(_mentions(v, run_id) for v in value.values())
    return False


def find_train_record(settings: Settings, run_id: str) -> StageRecord | None:
    """The newest ``train`` stage record naming ``run_id`` in its outputs (``run_id`` first, then any value)."""
    candidates = list(reversed(records(settings, "train")))
    for record in candidates:
        if record.outputs.get("run_id") == run_id:
            return record
    for record in candidates:
        if _mentions(record.outputs, run_id):
            return record
    return None


def _link(value_from_run: tuple[str, str], value_from_lineage: tuple[str, str], what: str,
          gaps: list[str]) -> dict[str, Any]:
    """Reconcile one link from the run's tags and the lineage records, noting gaps and disagreements."""
    run_value, run_source = value_from_run
    lineage_value, lineage_source = value_from_lineage
    value = run_value or lineage_value or UNKNOWN
    sources = [s for s in (run_source, lineage_source) if s]
    entry: dict[str, Any] = {"value": value, "sources": sources}
    if run_value and lineage_value and run_value != lineage_value:
        entry["conflict"] = {run_source: run_value, lineage_source: lineage_value}
        gaps.append(f"{what}: the run says {run_value!r} but the lineage records say {lineage_value!r}")
    if value == UNKNOWN:
        gaps.append(f"{what}: neither the run's tags nor a lineage record name it")
    return entry


def _record_summary(record: StageRecord) -> dict[str, Any]:
    return {"stage": record.stage, "record_id": record.record_id, "notebook": record.notebook or UNKNOWN,
            "created_at": record.created_at, "git_commit": record.git_commit or UNKNOWN,
            "git_dirty": record.git_dirty, "pipeline_run_id": record.pipeline_run_id, "outputs": record.outputs,
            "inputs": record.inputs}


def _stage_value(chain: list[StageRecord], stage: str, key: str) -> tuple[str, str]:
    """``key`` from the outputs of ``stage`` in the chain, else from any later stage's inputs or outputs."""
    for record in chain:
        if record.stage == stage and record.outputs.get(key):
            return str(record.outputs[key]), f"lineage {stage} record {record.record_id}"
    for record in chain:
        for where in ("outputs", "inputs", "parameters"):
            value = getattr(record, where).get(key)
            if value:
                return str(value), f"lineage {record.stage} record {record.record_id} ({where})"
    return "", ""


def build_lineage_card(settings: Settings, model_name: str, alias_or_version: str | int) -> LineageCard:
    """Assemble the card of one model version from MLflow and the lineage records (writes nothing)."""
    client = mlflow_client(settings)
    version = ModelVersionInfo.from_mlflow(_get_version(client, settings, model_name, alias_or_version))
    return _build(settings, client, version)


def _build(settings: Settings, client: MlflowClient, version: ModelVersionInfo) -> LineageCard:
    gaps: list[str] = []
    run: Run | None = get_run(client, settings, version.run_id) if version.run_id else None
    if run is None:
        gaps.append(f"model version {version.version} records no source run")
    tags = dict(run.data.tags) if run else {}
    record = find_train_record(settings, version.run_id) if version.run_id else None
    chain = trace(settings, record) if record else []
    if record is None:
        gaps.append(f"training notebook: no 'train' lineage record under {settings.lineage_dir} names run "
                    f"{version.run_id or UNKNOWN} (was the model trained outside the stage notebooks?)")
    else:
        found = {r.stage for r in chain}
        for stage in ("features", "data"):
            if stage not in found:
                gaps.append(f"no '{stage}' lineage record matches the inputs of the stage after it")

    commit, commit_source = _first_tag(tags, _COMMIT_TAGS)
    dirty: bool | None = None
    if not commit and record is not None and record.git_commit:
        commit, commit_source, dirty = record.git_commit, f"lineage train record {record.record_id}", record.git_dirty
    if not commit:
        gaps.append("git commit: the run has no mlflow.source.git.commit tag and no lineage record names one")

    experiment_name = UNKNOWN
    if run is not None:
        with mlflow_errors(f"reading experiment {run.info.experiment_id}"):
            experiment_name = client.get_experiment(run.info.experiment_id).name

    def millis(value: int | None) -> str | None:
        return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat() if value else None

    data: dict[str, Any] = {
        "card_format": CARD_FORMAT,
        "generated_at": datetime.now(UTC).isoformat(),
        "model": version.to_dict(),
        "run": {
            "run_id": version.run_id or UNKNOWN,
            "run_name": run.info.run_name if run else None,
            "experiment_id": run.info.experiment_id if run else None,
            "experiment": experiment_name,
            "status": run.info.status if run else UNKNOWN,
            "start_time": millis(run.info.start_time) if run else None,
            "end_time": millis(run.info.end_time) if run else None,
            "url": (f"{settings.mlflow_uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
                    if run else None),
            "params": dict(sorted(run.data.params.items())) if run else {},
            "metrics": dict(sorted(run.data.metrics.items())) if run else {},
            "tags": {k: v for k, v in sorted(tags.items()) if k.startswith("workbench.") or k == "mlflow.parentRunId"},
        },
        "code": {"git_commit": commit or UNKNOWN, "source": commit_source or None, "git_dirty": dirty},
        "training_stage": None if record is None else {
            "record_id": record.record_id, "notebook": record.notebook or UNKNOWN, "parameters": record.parameters,
            "created_at": record.created_at, "pipeline_run_id": record.pipeline_run_id,
            "git_commit": record.git_commit or UNKNOWN, "git_dirty": record.git_dirty},
        "feature_service": _link(_first_tag(tags, _FEATURE_TAGS), _stage_value(chain, "features", "feature_service"),
                                 "feature service", gaps),
        "dataset_version": _link(_first_tag(tags, _DATASET_TAGS), _stage_value(chain, "data", "dataset_version"),
                                 "dataset version", gaps),
        "chain": [_record_summary(r) for r in chain],
    }
    data["gaps"] = list(gaps)
    return LineageCard(data, tuple(gaps))


def write_lineage_card(settings: Settings, model_name: str, alias_or_version: str | int) -> LineageCard:
    """Build the card, log it on the run (``lineage_card.json`` / ``.md``) and summarise it on the version."""
    client = mlflow_client(settings)
    version = ModelVersionInfo.from_mlflow(_get_version(client, settings, model_name, alias_or_version))
    card = _build(settings, client, version)
    with mlflow_errors(f"logging the lineage card of {model_name} version {version.version}"):
        if version.run_id:
            client.log_text(version.run_id, card.to_json(), CARD_JSON)
            client.log_text(version.run_id, card.to_markdown(), CARD_MD)
        training = card.data["training_stage"]
        version_tags = {
            "workbench.run_id": version.run_id or UNKNOWN,
            "workbench.dataset_version": card.dataset_version,
            "workbench.feature_service": card.feature_service,
            "workbench.training_notebook": training["notebook"] if training else UNKNOWN,
            "workbench.git_commit": card.data["code"]["git_commit"],
            "workbench.lineage_card": f"runs:/{version.run_id}/{CARD_JSON}" if version.run_id else UNKNOWN,
            "workbench.lineage_gaps": str(len(card.gaps)),
        }
        if card.feature_service in ("", UNKNOWN):
            # a model trained without a feature store has no service: a tag saying "unknown" would send
            # serving to look one up
            version_tags.pop("workbench.feature_service")
        for key, value in version_tags.items():
            client.set_model_version_tag(model_name, version.version, key, value)
        client.update_model_version(model_name, version.version, description=card.summary())
    return card


def _cell(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: dict[str, Any], left: str, right: str) -> list[str]:
    if not rows:
        return ["(none recorded)", ""]
    return [f"| {left} | {right} |", "|---|---|", *(f"| {_cell(k)} | {_cell(v)} |" for k, v in rows.items()), ""]


def _markdown(d: dict[str, Any]) -> str:
    model, run, code, training = d["model"], d["run"], d["code"], d["training_stage"]
    notebook = training["notebook"] if training else UNKNOWN
    aliases = ", ".join(model["aliases"]) or "none"
    lines = [
        f"# Lineage card: {model['name']} version {model['version']}",
        "",
        f"Aliases: {aliases} · registered {model['created_at'] or UNKNOWN} · source `{model['source']}`",
        "",
        "## Chain",
        "",
        f"model version **{model['version']}** → run `{run['run_id']}` → notebook `{notebook}` (commit "
        f"`{code['git_commit']}`) → feature service `{d['feature_service']['value']}` → dataset version "
        f"`{d['dataset_version']['value']}`",
        "",
        "## Run",
        "",
        *_table({"run id": run["run_id"], "name": run["run_name"], "experiment": run["experiment"],
                 "status": run["status"], "started": run["start_time"], "ended": run["end_time"],
                 "git commit": f"{code['git_commit']} ({code['source'] or 'no source'})", "link": run["url"]},
                "field", "value"),
        "## Metrics (latest values)",
        "",
        *_table(run["metrics"], "metric", "value"),
        "## Parameters",
        "",
        *_table(run["params"], "param", "value"),
        "## Training stage",
        "",
    ]
    if training:
        lines += [f"Notebook `{training['notebook']}`, lineage record `{training['record_id']}` "
                  f"({training['created_at']})", "", *_table(training["parameters"], "notebook parameter", "value")]
    else:
        lines += ["unknown: no lineage record of the training stage names this run", ""]
    lines += ["## Upstream", "",
              *_table({"feature service": f"{d['feature_service']['value']} "
                                          f"({', '.join(d['feature_service']['sources']) or 'no source'})",
                       "dataset version": f"{d['dataset_version']['value']} "
                                          f"({', '.join(d['dataset_version']['sources']) or 'no source'})"},
                      "link", "value")]
    if d["chain"]:
        lines += ["| stage | record | notebook | outputs |", "|---|---|---|---|",
                  *(f"| {r['stage']} | {r['record_id']} | {_cell(r['notebook'])} | {_cell(r['outputs'])} |"
                    for r in d["chain"]), ""]
    lines += ["## Gaps", ""]
    lines += [f"- {gap}" for gap in d["gaps"]] or ["none: every link was found"]
    return "\n".join(lines) + "\n"
