"""Writes notebooks 04-06 from the cell sources below (edit here, then run: python tools/make_notebooks.py)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]


def notebook(cells: list[tuple[str, str]], name: str = "") -> nbformat.NotebookNode:
    """The notebook of ``cells``; cell ids come from the notebook's name and the cell's place, so
    regenerating an unchanged notebook changes nothing in git."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in cells:
        if kind == "md":
            nb.cells.append(new_markdown_cell(source.strip()))
        else:
            cell = new_code_cell(source.strip())
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):
        cell.id = hashlib.sha1(f"{name}:{i}".encode()).hexdigest()[:8]
    return nb


REGISTRY = [
    ("md", """
# 04 · Registry: compare runs, register the best as `champion`, write its lineage card

The training runs of the experiment, as one tidy table (params, final and best metrics, duration,
dataset version), filtered and ordered by MLflow. The best run by `metric` (by default the task's own:
ROC-AUC for binary, log loss for multiclass, RMSE for regression) is registered under `model_name` and
aliased **`champion`** (the runner-up becomes `challenger`), unless it is worse than the current champion,
in which case the champion stays (set `force = True` to promote anyway). The lineage card traces the
version back to its run, notebook, parameters, git commit, feature service and dataset version; it is
logged on the run and summarised on the version.
"""),
    ("params", """
# Parameters
metric = ""                   # empty: the task's metric (roc_auc, log_loss or rmse)
model_name = ""               # empty: "<dataset>-<task>", e.g. transactions-binary
force = False                 # promote even when worse than the current champion
holdout_rows = 5000           # rows of the holdout (kept apart by 02_features) the guard compares models on
run_id = ""                   # the training run to register (empty: the run recorded by 03_train)
pipeline_run_id = ""
"""),
    ("code", """
import pandas as pd
import plotly.express as px
from IPython.display import Markdown, display

from workbench.config import load_settings
from workbench.monitoring.figures import use_offline_renderer
from workbench.data import Task
from workbench.lineage import latest_record, record_stage
from workbench.registry import PromotionRefused, build_lineage_card, compare_runs, get_model_version, register_best
from workbench.registry.reproduce import recorded_spec
from workbench.training.spec import DEFAULT_SWEEP_METRIC, MAXIMISED

use_offline_renderer()  # every figure also as offline HTML: seen in the executed copy and its HTML export
settings = load_settings()
train = latest_record(settings, "train")
run_id = run_id or train.outputs["run_id"]
task = Task.from_dict(train.outputs["task"])
metric = metric or DEFAULT_SWEEP_METRIC[task.kind]
mode = "max" if metric in MAXIMISED else "min"
model_name = model_name or f"{latest_record(settings, 'data').outputs['dataset_name']}-{task.kind}"
print(f"MLflow {settings.mlflow_uri}, experiment {settings.experiment!r}; latest training run {run_id}")
print(f"{task.kind} on {task.label!r}: ranking by {metric} ({mode} is better), registering as {model_name!r}")
"""),
    ("md", "## The runs, side by side"),
    ("code", """
runs = compare_runs(settings, filter_string="attributes.status = 'FINISHED'",
                    order_by=[f"metrics.{metric} {'DESC' if mode == 'max' else 'ASC'}"],
                    max_results=200, best_of={metric: mode})
wanted = ["run_id", "run_name", f"metrics.{metric}", f"best.{metric}", "params.trainer", "params.lr",
          "params.hidden_sizes", "params.epochs", "params.n_estimators", "duration_s",
          "tags.workbench.dataset_version"]
shown = [c for c in wanted if c in runs.columns]
runs = runs[runs[f"metrics.{metric}"].notna()] if f"metrics.{metric}" in runs.columns else runs
runs[shown].head(10)
"""),
    ("code", """
top = runs.head(20).assign(run=lambda f: f["run_name"].fillna(f["run_id"].str[:8]))
px.bar(top, x="run", y=f"metrics.{metric}", height=300, title=f"final {metric} by run (best first)")
"""),
    ("md", """
## Register the best run, guarded against the current champion

The guard scores both models on the holdout rows 02_features kept apart (the latest by time): ROC-AUC for
binary, accuracy for multiclass, RMSE for regression. Runs were ranked on their own validation split.
"""),
    ("code", """
features = latest_record(settings, "features")
spec = recorded_spec(settings, run_id)          # the run's own inputs and label
holdout = pd.read_parquet(features.outputs["holdout_frame_path"], columns=[*spec.feature_columns, task.label])
holdout = holdout.head(holdout_rows)
print(f"holdout: {len(holdout):,} rows no run trained, ranked or stopped on ({features.outputs['holdout_rule']})")
try:
    result = register_best(settings, metric=metric, mode=mode, model_name=model_name, holdout=holdout,
                           force=force, label_column=task.label, task=task.kind, positive=task.positive)
    print(result.summary())
    champion = result.champion
except PromotionRefused as refused:
    print(f"kept the current champion: {refused}")
    champion = get_model_version(settings, model_name, "champion")
model_uri = f"models:/{model_name}/{champion.version}"
print(f"champion: {model_uri} (run {champion.run_id})")
"""),
    ("md", "## The lineage card"),
    ("code", """
card = build_lineage_card(settings, model_name, champion.version)
display(Markdown(card.to_markdown()))
assert card.dataset_version, "the card must reach the dataset version"
"""),
    ("code", """
record = record_stage(
    settings, "registry",
    outputs={"model_name": model_name, "model_version": str(champion.version), "model_uri": model_uri,
             "champion_run_id": champion.run_id, "task": task.to_dict()},
    inputs={"train_run_id": run_id, "dataset_version": card.dataset_version},
    parameters={"metric": metric, "force": force, "holdout_rows": len(holdout)},
    notebook="04_registry.ipynb", pipeline_run_id=pipeline_run_id,
)
record.outputs
"""),
]

DEPLOY = [
    ("md", """
# 05 · Deployment: the champion on Ray Serve

The registered version is served by a **Ray Serve** application on the configured Ray cluster (the local
head here, a KubeRay cluster in the `cluster` profile): each replica loads the model from MLflow, reads
what a request must carry from the model's signature (plus, for a model trained on a feature project, the
entity keys Feast looks up), scores in batches and appends every prediction to the prediction log that
06_monitor reads. The endpoint speaks `/predict`, MLflow's `/invocations` and the Open Inference Protocol
(`/v2/models/<name>/infer`), so a client written for the exported KServe service works here too.
Re-running this notebook with another version
rolls the deployment in place (no request fails); `rollback(settings, name)` goes back.
The same deployment is exported as a KServe `InferenceService` manifest for Kubernetes.
"""),
    ("params", """
# Parameters
model_uri = ""                # empty: the version recorded by 04_registry
deployment_name = ""          # empty: the model's name
replicas = 1
autoscale_max_replicas = 0    # > 0: Serve autoscales between `replicas` and this many on load
num_cpus = 0.5                # per replica
num_gpus = 0.0                # per replica; the same code scores on CPU
max_batch_size = 32
smoke_requests = 200          # a short load check after deploying
concurrency = 8
pipeline_run_id = ""
"""),
    ("code", """
import concurrent.futures as cf
import time

import numpy as np
import pandas as pd
import plotly.express as px
import requests

from workbench.config import load_settings
from workbench.monitoring.figures import use_offline_renderer
from workbench.errors import InvalidInput
from workbench.lineage import latest_record, record_stage
from workbench.serving import (Autoscaling, Resources, deploy, endpoint_url, get_deployment, kserve_manifest,
                               list_deployments, log_dir, predict, request_fields, update_deployment,
                               write_manifest)

use_offline_renderer()  # every figure also as offline HTML: seen in the executed copy and its HTML export
settings = load_settings()
if not model_uri:
    model_uri = latest_record(settings, "registry").outputs["model_uri"]
deployment_name = deployment_name or model_uri.split("/")[1].lower()[:40].strip("-")
autoscaling = (Autoscaling(min_replicas=replicas, max_replicas=autoscale_max_replicas)
               if autoscale_max_replicas else None)
resources = Resources(replicas=replicas, num_cpus=num_cpus, num_gpus=num_gpus, max_batch_size=max_batch_size,
                      autoscaling=autoscaling)
print(f"deploying {model_uri} as {deployment_name!r} on Ray at {settings.ray_address}")
"""),
    ("md", "## Deploy, or roll the existing deployment to this version"),
    ("code", """
if deployment_name in [d.name for d in list_deployments(settings)]:
    info = update_deployment(settings, deployment_name, model_uri, resources=resources)
else:
    info = deploy(settings, model_uri, deployment_name, resources=resources)
print(f"{info.name}: {info.status}, model version {info.model_version}, replicas {info.replicas}")
print(f"POST {endpoint_url(settings, deployment_name)}")
"""),
    ("md", "## What a request carries, a first request, and a bad one"),
    ("code", """
schema = request_fields(settings, deployment_name)
fields = [f["name"] for f in schema["fields"]]
optional = list(schema.get("optional", []))   # request_id, timestamp
print("fields:", fields, "| optional:", optional)
rows = pd.read_parquet(latest_record(settings, "data").outputs["dataset_path"]).sample(smoke_requests, random_state=0)
missing = [c for c in fields if c not in rows.columns]
assert not missing, f"the dataset lacks request fields {missing}"
sent = fields + [c for c in optional if c in rows.columns and c != "request_id"]
event_time = latest_record(settings, "data").outputs["task"].get("timestamp")
if "timestamp" in optional and event_time in rows.columns:
    rows["timestamp"] = rows[event_time]    # the request's own time: windowed features age with it
    sent.append("timestamp")

def instance(row):
    out = {}
    for name in sent:
        value = row[name]
        if isinstance(value, pd.Timestamp):
            value = value.isoformat()
        elif pd.isna(value):
            value = None
        elif hasattr(value, "item"):
            value = value.item()
        out[name] = value
    return out

instances = [instance(r) for _, r in rows.iterrows()]
predict(settings, deployment_name, instances[:3])
"""),
    ("code", """
wrong = dict(instances[0])
numeric = next(f["name"] for f in schema["fields"] if f.get("type") in ("double", "float", "long", "integer"))
wrong[numeric] = "a lot"
try:
    predict(settings, deployment_name, [wrong])
except InvalidInput as error:
    print(error)    # a 422 that names the field, never a 500
"""),
    ("md", "## A short load check"),
    ("code", """
session = requests.Session()
session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=concurrency))

def one(instance):
    began = time.perf_counter()
    predict(settings, deployment_name, [instance], session=session)
    return (time.perf_counter() - began) * 1000

began = time.perf_counter()
with cf.ThreadPoolExecutor(concurrency) as pool:
    latencies = np.array(list(pool.map(one, instances)))
elapsed = time.perf_counter() - began
print(f"{len(latencies)} requests at concurrency {concurrency}: {len(latencies) / elapsed:.0f} req/s, "
      f"p50 {np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} ms (client side)")
px.histogram(x=latencies, nbins=40, height=280, labels={"x": "latency (ms)"}, title="client-side latency")
"""),
    ("md", "## The same deployment for KServe"),
    ("code", """
manifest = kserve_manifest(settings, model_uri, deployment_name, resources=resources)
manifest_path = write_manifest(manifest, settings.state_dir / "manifests" / f"{deployment_name}.yaml")
print(manifest_path.read_text())
"""),
    ("code", """
info = get_deployment(settings, deployment_name)
assert info.running
record = record_stage(
    settings, "deploy",
    outputs={"deployment": deployment_name, "endpoint": endpoint_url(settings, deployment_name),
             "model_version": info.model_version, "model_uri": info.model_uri,
             "prediction_log": str(log_dir(settings, deployment_name)), "kserve_manifest": str(manifest_path)},
    inputs={"model_uri": model_uri},
    parameters={"replicas": replicas, "autoscale_max_replicas": autoscale_max_replicas, "num_cpus": num_cpus,
                "num_gpus": num_gpus, "max_batch_size": max_batch_size},
    notebook="05_deploy.ipynb", pipeline_run_id=pipeline_run_id,
)
record.outputs
"""),
]

MONITOR = [
    ("md", """
# 06 · Monitoring: latency, throughput, cost, drift, model quality, alerts

Traffic is replayed against the live deployment, in time order, each request at its own event time: rows
of the model's training frame as they are (the **normal segment**), then later rows (the holdout) where one
numeric input is four times larger (the **drifted segment**). With a feature store, the replay is a
stream: before each batch of requests, the online store gets each entity's state as it stood just before
that request (what a streaming feature pipeline would have left), so the replicas look up what the
training frame holds for the same row, and the notebook checks that they do. Everything below is
computed from the prediction log the replicas wrote, for any model: latency percentiles and throughput
over time, an **estimated** cost per 1,000 predictions, drift of every
logged input and of the model's output against that model's training frame (PSI, Kolmogorov–Smirnov,
categories with an "other" bucket, nulls counted), the task's quality once labels arrive (joined by
request id), and the alert rules that fire.
"""),
    ("params", """
# Parameters
deployment = ""               # empty: the deployment recorded by 05_deploy
normal_requests = 400
drifted_requests = 400
drift_factor = 4.0            # the drifted segment multiplies one numeric input by this
concurrency = 8
window = "5s"                 # time window of the over-time plots
latency_p99_ms = 500.0        # alert thresholds
min_roc_auc = 0.6
max_cost_per_1k_usd = 0.10
seed = 1
pipeline_run_id = ""
"""),
    ("code", """
import concurrent.futures as cf
import json

import numpy as np
import pandas as pd
import requests

from workbench.config import load_settings
from workbench.monitoring.figures import use_offline_renderer
from workbench.data import Task
from workbench.features import load_declaration, materialize_features, project_for_service
from workbench.features.stream import state_keys, stream_batches, write_states_as_of
from workbench.lineage import latest_record, record_stage
from workbench.monitoring import (default_alert_rules, estimate_cost, latency_over_time, monitoring_report,
                                  performance_summary)
from workbench.monitoring import figures
from workbench.monitoring.deployment import drift_for_deployment
from workbench.serving import get_deployment, predict, read_predictions, request_fields

use_offline_renderer()  # every figure also as offline HTML: seen in the executed copy and its HTML export
settings = load_settings()
deployed = latest_record(settings, "deploy")
deployment = deployment or deployed.outputs["deployment"]
info = get_deployment(settings, deployment)
task = Task.from_dict(latest_record(settings, "registry").outputs["task"])
print(f"{deployment}: model version {info.model_version}, {task.kind} on {task.label!r}")
"""),
    ("md", "## Replayed traffic: training rows as requests, then later rows with a drifted input"),
    ("code", """
schema = request_fields(settings, deployment)
fields = [f["name"] for f in schema["fields"]]
optional = [c for c in schema.get("optional", []) if c != "request_id"]
features_record = latest_record(settings, "features")
trained_on = pd.read_parquet(features_record.outputs["training_frame_path"])
later = pd.read_parquet(features_record.outputs["holdout_frame_path"])
missing = [c for c in fields if c not in trained_on.columns]
assert not missing, f"the training frame of the features stage lacks request fields {missing} of {deployment!r}"
sent = fields + [c for c in optional if c in trained_on.columns]
if "timestamp" in optional and task.timestamp in trained_on.columns and "timestamp" not in sent:
    trained_on["timestamp"], later["timestamp"] = trained_on[task.timestamp], later[task.timestamp]
    sent.append("timestamp")   # each request at its own time: windows age with it
numeric = [f["name"] for f in schema["fields"] if f.get("type") in ("double", "float")]
drift_column = numeric[0]
print(f"request fields {fields}; the drifted segment multiplies {drift_column!r} by {drift_factor}")

rng = np.random.default_rng(seed)
normal = trained_on.iloc[rng.choice(len(trained_on), normal_requests, replace=len(trained_on) < normal_requests)]
drifted = later.iloc[rng.choice(len(later), drifted_requests, replace=len(later) < drifted_requests)].copy()
drifted[drift_column] = drifted[drift_column] * drift_factor
order = [task.timestamp] if task.timestamp in trained_on.columns else []
traffic = pd.concat([normal.sort_values(order, kind="stable").assign(segment="normal") if order else
                     normal.assign(segment="normal"),
                     drifted.sort_values(order, kind="stable").assign(segment="drifted") if order else
                     drifted.assign(segment="drifted")], ignore_index=True)
run_token = pipeline_run_id or f"manual{pd.Timestamp.now(tz='UTC'):%Y%m%d%H%M%S%f}"  # a rerun logs new ids
traffic["request_id"] = [f"{run_token}-{seed}-{i}" for i in range(len(traffic))]

# with a feature store whose features change over time, replay as a stream (see the introduction)
project = project_for_service(settings, info.feature_service) if info.feature_service else ""
streamed = bool(project) and bool(load_declaration(settings, project).timestamp) and bool(order)
keys = state_keys(settings, project) if streamed else []
print(f"features: {'streamed from project ' + repr(project) if streamed else project or 'all in the request'}")

def value(v):
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v

session = requests.Session()
session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=concurrency))

def send(rows):
    instances = [{"request_id": r["request_id"], **{c: value(r[c]) for c in sent}} for _, r in rows.iterrows()]
    return predict(settings, deployment, instances, session=session)["predictions"]

def batches(rows):  # up to `concurrency` requests of 4 rows at a time; streamed: no entity twice in one
    if not streamed:
        yield from (rows.iloc[i:i + 4 * concurrency] for i in range(0, len(rows), 4 * concurrency))
        return
    for batch in stream_batches(rows, keys, task.timestamp, max_rows=4 * concurrency):
        write_states_as_of(settings, project, batch, time_column=task.timestamp)
        yield batch

starts = {}
served, http_requests = [], 0
with cf.ThreadPoolExecutor(concurrency) as pool:
    for segment in ("normal", "drifted"):
        starts[segment] = pd.Timestamp.now(tz="UTC")
        for batch in batches(traffic[traffic.segment == segment]):
            chunks = [batch.iloc[i:i + 4] for i in range(0, len(batch), 4)]  # 4 rows per request
            http_requests += len(chunks)
            for answer in pool.map(send, chunks):
                served += answer
ended = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=1)
if streamed:
    materialize_features(settings, project)  # leave the online store at the end of the data, as 02 did
print(f"{len(served)} predictions served in {http_requests} requests")
"""),
    ("md", "## Latency and throughput, from the prediction log"),
    ("code", """
log = read_predictions(settings, deployment)
log = log[log.request_id.isin(traffic.request_id)].merge(traffic[["request_id", "segment"]], on="request_id")
assert len(log) == len(traffic) and log.request_id.is_unique, "every served prediction is logged exactly once"
summary = performance_summary(log)
summary
"""),
    ("md", """
### Served features equal the training features

For each request of the normal segment, the features the replica used (logged with the prediction) and
the row of the training frame it came from: with no training/serving skew they are the same numbers.
"""),
    ("code", """
inputs = [c for c in features_record.outputs["feature_columns"] if c in trained_on.columns]
logged = log.set_index("request_id")
truth = traffic.set_index("request_id").loc[logged.index]
normal_ids = truth.index[truth.segment == "normal"]
rows = []
for column in inputs:
    got = logged.loc[normal_ids, column if column in logged.columns else f"input:{column}"]
    want = truth.loc[normal_ids, column]
    if pd.api.types.is_numeric_dtype(want):
        g, w = pd.to_numeric(got, errors="coerce").to_numpy(float), want.to_numpy(float)
        same = np.isclose(g, w, rtol=1e-9, atol=1e-9) | (np.isnan(g) & np.isnan(w))
        worst = float(np.nanmax(np.abs(g - w))) if len(g) else 0.0
    else:
        same = got.astype(str).where(got.notna(), None).to_numpy() == want.astype(str).where(
            want.notna(), None).to_numpy()
        worst = float("nan")
    rows.append({"feature": column, "requests equal": int(same.sum()), "of": len(same),
                 "max |served - training|": worst})
skew = pd.DataFrame(rows).set_index("feature")
unequal = skew[skew["requests equal"] < skew["of"]]
assert unequal.empty, f"served features differ from the training frame's: {unequal.to_dict('index')}"
skew
"""),
    ("code", """
over_time = latency_over_time(log, window)
figures.latency_figure(over_time)
"""),
    ("code", "figures.throughput_figure(over_time)"),
    ("md", "## The report: cost, drift against the training reference, quality once labels arrive, alerts"),
    ("code", """
labels = traffic[["request_id", task.label]].rename(columns={task.label: "label"})
deployment_cpus = sum(info.replicas.values()) * float(
    info.config["deployments"][0].get("ray_actor_options", {}).get("num_cpus", 0.5))
rules = default_alert_rules(latency_p99_ms=latency_p99_ms, min_roc_auc=min_roc_auc,
                            max_cost_per_1k_usd=max_cost_per_1k_usd)
report = monitoring_report(settings, deployment, labels=labels, since=starts["normal"], until=ended,
                           cpus=deployment_cpus, rules=rules)
report
"""),
    ("code", "figures.cost_figure({'this deployment': report.cost}) if report.cost else 'no cost estimate'"),
    ("md", """
### Drift, segment by segment

Normal traffic should look like the training frame; the drifted segment must be caught on the input that
changed (and usually on the model's output).
"""),
    ("code", """
normal_drift = drift_for_deployment(settings, deployment, since=starts["normal"], until=starts["drifted"])
drifted_drift = drift_for_deployment(settings, deployment, since=starts["drifted"], until=ended)
table = pd.DataFrame({"PSI, normal segment": normal_drift.to_frame().set_index("feature")["psi"],
                      "PSI, drifted segment": drifted_drift.to_frame().set_index("feature")["psi"],
                      "drifted?": drifted_drift.to_frame().set_index("feature")["drifted"]})
table
"""),
    ("code", "figures.drift_psi_figure(drifted_drift)"),
    ("code", """
print(f"normal segment: drifted features {normal_drift.drifted_features}")
print(f"drifted segment: drifted features {drifted_drift.drifted_features}")
drifted_input = next(f for f in drifted_drift.to_frame()["feature"] if f.endswith(drift_column))
assert drifted_input in drifted_drift.drifted_features, "the drifted segment must be caught"
# PSI over 10 bins of a few hundred rows has sampling noise of ~0.05: "quiet" is below 0.25 (PSI's moderate
# band) and far below the drifted segment's
normal_psi, drifted_psi = normal_drift[drifted_input].psi, drifted_drift[drifted_input].psi
assert normal_psi < 0.25 and drifted_psi > 4 * normal_psi, "normal traffic must not look drifted in the request"
print(f"PSI of {drifted_input!r}: {normal_drift[drifted_input].psi:.3f} normal, "
      f"{drifted_drift[drifted_input].psi:.3f} drifted")
"""),
    ("code", """
report.quality
"""),
    ("code", """
"no alert fires" if not report.alerts else pd.DataFrame([a.__dict__ for a in report.alerts])
"""),
    ("code", """
out = {"deployment": deployment, "model_version": info.model_version, "task": task.kind, "predictions": len(log),
       "metrics": report.metrics(), "drift_normal": normal_drift.metrics(), "drift_drifted": drifted_drift.metrics(),
       "alerts": [{"rule": a.rule, "metric": a.metric, "observed": a.observed, "severity": a.severity}
                  for a in report.alerts], "problems": list(report.problems)}
report_path = settings.state_dir / "reports" / f"monitor-{deployment}-{pipeline_run_id or 'manual'}.json"
report_path.parent.mkdir(parents=True, exist_ok=True)
report_path.write_text(json.dumps(out, indent=2, default=str))
labels_path = report_path.with_name(f"labels-{deployment}-{pipeline_run_id or 'manual'}.parquet")
labels.to_parquet(labels_path, index=False)   # the ground truth that "arrived", for anyone to recompute
quality = report.quality.metrics() if report.quality else {}
record = record_stage(
    settings, "monitor",
    outputs={"report_path": str(report_path), "labels_path": str(labels_path),
             "alerts": sorted({f"{a.rule}: {a.metric}" for a in report.alerts}),
             "drifted_features": drifted_drift.drifted_features, "drift_column": drift_column,
             "normal_psi": {r.feature: r.psi for r in normal_drift.features},
             "features_streamed": streamed, "served_features_checked": int(skew["of"].sum()),
             "served_features_equal": int(skew["requests equal"].sum()),
             "quality": {k: v for k, v in quality.items() if not pd.isna(v)}},
    inputs={"deployment": deployment, "model_version": info.model_version},
    parameters={"normal_requests": normal_requests, "drifted_requests": drifted_requests, "seed": seed,
                "drift_factor": drift_factor},
    notebook="06_monitor.ipynb", pipeline_run_id=pipeline_run_id,
)
record.outputs
"""),
]

if __name__ == "__main__":
    targets = {"04_registry.ipynb": REGISTRY, "05_deploy.ipynb": DEPLOY, "06_monitor.ipynb": MONITOR}
    for name, cells in targets.items():
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        nbformat.write(notebook(cells, name), ROOT / "notebooks" / name)
        print("wrote", name)
