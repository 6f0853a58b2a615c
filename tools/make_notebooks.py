"""Writes notebooks 04-06 from the cell sources below (edit here, then run: python tools/make_notebooks.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]


def notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
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
    return nb


REGISTRY = [
    ("md", """
# 04 · Registry: compare runs, register the best as `champion`, write its lineage card

The training runs of the experiment, as one tidy table (params, final and best metrics, duration,
dataset version), filtered and ordered by MLflow. The best run by `metric` is registered under
`model_name` and aliased **`champion`** (the runner-up becomes `challenger`), unless it is worse than
the current champion on a holdout, in which case the champion stays (set `force = True` to promote
anyway). The lineage card traces the version back to its run, notebook, parameters, git commit, feature
service and dataset version; it is logged on the run and summarised on the version.
"""),
    ("params", """
# Parameters
metric = "roc_auc"
model_name = "fraud-detector"
force = False                 # promote even when worse than the current champion on the holdout
holdout_rows = 5000           # rows of the training frame's validation split used to compare models
run_id = ""                   # the training run to register (empty: the run recorded by 03_train)
pipeline_run_id = ""
"""),
    ("code", """
import pandas as pd
import plotly.express as px
from IPython.display import Markdown, display

from workbench.config import load_settings
from workbench.features import MODEL_FEATURES
from workbench.lineage import latest_record, record_stage
from workbench.registry import PromotionRefused, build_lineage_card, compare_runs, get_model_version, register_best
from workbench.training.frame import split_indices

settings = load_settings()
train = latest_record(settings, "train")
run_id = run_id or train.outputs["run_id"]
print(f"MLflow {settings.mlflow_uri}, experiment {settings.experiment!r}; latest training run {run_id}")
"""),
    ("md", "## The runs, side by side"),
    ("code", """
runs = compare_runs(settings, filter_string="attributes.status = 'FINISHED'", order_by=[f"metrics.{metric} DESC"],
                    max_results=200, best_of={metric: "max"})
wanted = ["run_id", "run_name", f"metrics.{metric}", f"best.{metric}", "metrics.pr_auc", "params.lr",
          "params.hidden_sizes", "params.epochs", "duration_s", "tags.workbench.dataset_version"]
shown = [c for c in wanted if c in runs.columns]
runs[shown].head(10)
"""),
    ("code", """
top = runs.head(20).assign(run=lambda f: f["run_name"].fillna(f["run_id"].str[:8]))
px.bar(top, x="run", y=f"metrics.{metric}", height=300, title=f"final {metric} by run (best first)")
"""),
    ("md", "## Register the best run, guarded by a holdout"),
    ("code", """
frame = pd.read_parquet(train.inputs["training_frame_path"], columns=[*MODEL_FEATURES, "is_fraud"])
_, val_rows = split_indices(frame["is_fraud"].to_numpy(dtype="int64"), 0.2, 0)  # the split training held out
holdout = frame.iloc[val_rows].head(holdout_rows).reset_index(drop=True)
try:
    result = register_best(settings, metric=metric, model_name=model_name, holdout=holdout, force=force)
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
             "champion_run_id": champion.run_id},
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
head here, a KubeRay cluster in the `cluster` profile): each replica loads the model from MLflow, looks
the request's user and merchant up in the Feast online store, scores in batches and appends every
prediction to the prediction log that 06_monitor reads. Re-running this notebook with another version
rolls the deployment in place (no request fails); `rollback(settings, name)` goes back.
The same deployment is exported as a KServe `InferenceService` manifest for Kubernetes.
"""),
    ("params", """
# Parameters
model_uri = ""                # empty: the version recorded by 04_registry
deployment_name = "fraud"
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
from workbench.errors import InvalidInput
from workbench.lineage import latest_record, record_stage
from workbench.serving import (Autoscaling, Resources, deploy, endpoint_url, get_deployment, kserve_manifest,
                               list_deployments, log_dir, predict, update_deployment, write_manifest)

settings = load_settings()
if not model_uri:
    model_uri = latest_record(settings, "registry").outputs["model_uri"]
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
    ("md", "## A first request, and a bad one"),
    ("code", """
transactions = pd.read_parquet(latest_record(settings, "data").outputs["dataset_path"],
                               columns=["user_id", "merchant_id", "amount"]).sample(smoke_requests, random_state=0)
instances = [{"user_id": int(r.user_id), "merchant_id": int(r.merchant_id), "amount": float(r.amount)}
             for r in transactions.itertuples()]
predict(settings, deployment_name, instances[:3])
"""),
    ("code", """
try:
    predict(settings, deployment_name, [{"user_id": 1, "merchant_id": 2, "amount": "a lot"}])
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

Traffic is simulated against the live deployment: first transactions like the training data, then a
**drifted segment** (larger amounts, more night-time transactions, unseen users). Everything below is
computed from the prediction log the replicas wrote and from Ray Serve's Prometheus metrics: latency
percentiles and throughput over time, an **estimated** cost per 1,000 predictions, drift per feature
and on the score against the training reference (PSI, Kolmogorov–Smirnov, Jensen–Shannon, Wasserstein),
model quality once labels arrive (joined by request id), and the alert rules that fire.
"""),
    ("params", """
# Parameters
deployment = ""               # empty: the deployment recorded by 05_deploy
normal_requests = 400
drifted_requests = 400
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
from workbench.features import MODEL_FEATURES
from workbench.lineage import latest_record, record_stage
from workbench.monitoring import (collect_metrics, default_alert_rules, drift_report, estimate_cost,
                                  evaluate_alerts, histogram_quantile, latency_over_time, metric_total,
                                  performance_summary, quality_over_time, quality_report, scrape_metrics,
                                  subtract_samples)
from workbench.monitoring import figures
from workbench.serving import get_deployment, predict, read_predictions

settings = load_settings()
deploy_record = latest_record(settings, "deploy")
deployment = deployment or deploy_record.outputs["deployment"]
info = get_deployment(settings, deployment)
print(f"{deployment}: {info.status}, model version {info.model_version}")
"""),
    ("md", "## Simulated traffic: normal, then drifted"),
    ("code", """
dataset = pd.read_parquet(latest_record(settings, "data").outputs["dataset_path"])
picked = dataset.sample(normal_requests + drifted_requests, random_state=seed, replace=len(dataset) < normal_requests
                        + drifted_requests).reset_index(drop=True)
normal = picked.iloc[:normal_requests].copy()       # known users and merchants, as in training
drifted = picked.iloc[normal_requests:].copy()
drifted["amount"] = drifted["amount"] * 4.0                                   # bigger baskets
drifted["event_timestamp"] = drifted["event_timestamp"].dt.floor("D") + pd.Timedelta(hours=3)  # at night
drifted["user_id"] = drifted["user_id"] + 10_000_000                         # users never seen
traffic = pd.concat([normal.assign(segment="normal"), drifted.assign(segment="drifted")], ignore_index=True)
traffic["request_id"] = [f"{pipeline_run_id or 'sim'}-{seed}-{i}" for i in range(len(traffic))]

session = requests.Session()
session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=concurrency))
before = scrape_metrics(settings.ray_metrics_url)

def send(rows):
    instances = [{"request_id": r.request_id, "user_id": int(r.user_id), "merchant_id": int(r.merchant_id),
                  "amount": float(r.amount), "timestamp": r.event_timestamp.isoformat()} for r in rows.itertuples()]
    return predict(settings, deployment, instances, session=session)["predictions"]

served, http_requests = [], 0
for segment in ("normal", "drifted"):
    rows = traffic[traffic.segment == segment]
    chunks = [rows.iloc[i:i + 4] for i in range(0, len(rows), 4)]  # 4 transactions per request
    http_requests += len(chunks)
    with cf.ThreadPoolExecutor(concurrency) as pool:
        for answer in pool.map(send, chunks):
            served += answer
print(f"{len(served)} predictions served in {http_requests} requests")
"""),
    ("md", "## Latency and throughput, from the prediction log"),
    ("code", """
log = read_predictions(settings, deployment)
log = log[log.request_id.isin(traffic.request_id)].merge(traffic[["request_id", "segment"]], on="request_id")
assert len(log) == len(traffic) and log.request_id.is_unique, "every served prediction is logged exactly once"
summary = performance_summary(log)
print(summary)
over_time = latency_over_time(log, window)
figures.latency_figure(over_time)
"""),
    ("code", "figures.throughput_figure(over_time)"),
    ("md", "## Ray Serve's own metrics, and the estimated cost"),
    ("code", """
import time

deadline = time.monotonic() + 60   # Ray exports metrics every few seconds
while True:
    delta = subtract_samples(scrape_metrics(settings.ray_metrics_url), before)
    served_by_serve = metric_total(delta, "ray_serve_deployment_request_counter_total", {"application": deployment})
    if served_by_serve >= http_requests or time.monotonic() > deadline:
        break
    time.sleep(2)
serve_p99 = histogram_quantile(delta, 0.99, "ray_serve_deployment_processing_latency_ms",
                               {"application": deployment})
print(f"Ray Serve counted {served_by_serve:.0f} of our {http_requests} HTTP requests; replica processing p99 "
      f"≈ {serve_p99:.1f} ms (interpolated within histogram buckets)")
deployment_cpus = sum(info.replicas.values()) * float(
    info.config["deployments"][0].get("ray_actor_options", {}).get("num_cpus", 0.5))
cost = estimate_cost(summary.throughput_rps, cpus=deployment_cpus, prices=settings.prices)
print(cost.label)
figures.cost_figure({"this deployment": cost})
"""),
    ("md", """
## Drift against the training reference

What the model sees per request is compared with what it was trained on. Request-time inputs (`amount`,
`hour_of_day`) are quiet for normal traffic and drift in the drifted segment. Some feature-store inputs
differ even for normal traffic: the online store holds each merchant's *latest* values (a few point
masses) where training saw them evolve, and `user_seconds_since_last_txn` is frozen at the user's last
materialized transaction. That is a training/serving skew of the feature design, and the report shows it
rather than hiding it.
"""),
    ("code", """
train_inputs = latest_record(settings, "train").inputs
reference = pd.read_parquet(train_inputs["training_frame_path"], columns=list(MODEL_FEATURES))
features = list(MODEL_FEATURES)
normal_drift = drift_report(reference, log[log.segment == "normal"], features)
drifted_drift = drift_report(reference, log[log.segment == "drifted"], features)
score_drift = drift_report(log[log.segment == "normal"].rename(columns={"score": "model_score"}),
                           log[log.segment == "drifted"].rename(columns={"score": "model_score"}), ["model_score"])
pd.DataFrame({"feature": features, "PSI, normal segment": normal_drift.to_frame()["psi"],
              "PSI, drifted segment": drifted_drift.to_frame()["psi"],
              "drifted?": drifted_drift.to_frame()["drifted"]})
"""),
    ("code", "figures.drift_psi_figure(drifted_drift)"),
    ("code", """
print(f"normal segment: drifted features {normal_drift.drifted_features}")
print(f"drifted segment: drifted features {drifted_drift.drifted_features}")
print(f"score distribution, drifted vs normal segment: PSI {score_drift['model_score'].psi:.3f}, "
      f"KS p-value {score_drift['model_score'].ks_pvalue:.2g}")
assert "amount" in drifted_drift.drifted_features, "the drifted segment must be caught"
assert "amount" not in normal_drift.drifted_features, "normal traffic must not look drifted in the request"
"""),
    ("md", "## Model quality, once labels arrive (joined by request id)"),
    ("code", """
labels = traffic[["request_id", "is_fraud"]].rename(columns={"is_fraud": "label"})
quality = quality_report(log, labels)
print(quality)
figures.quality_figure(quality_over_time(log, labels, window))
"""),
    ("md", "## Alerts"),
    ("code", """
metrics = collect_metrics(summary.metrics(), cost.metrics(), drifted_drift.metrics(), quality.metrics())
rules = default_alert_rules(latency_p99_ms=latency_p99_ms, min_roc_auc=min_roc_auc,
                            max_cost_per_1k_usd=max_cost_per_1k_usd)
alerts = evaluate_alerts(rules, metrics, skip_missing=True)
pd.DataFrame([a.__dict__ for a in alerts]) if alerts else "no alert fires"
"""),
    ("code", """
report = {"deployment": deployment, "model_version": info.model_version, "predictions": len(log),
          "performance": summary.metrics(), "cost_estimate": cost.metrics(), "quality": quality.metrics(),
          "drift_normal": normal_drift.metrics(), "drift_drifted": drifted_drift.metrics(),
          "alerts": [{"rule": a.rule, "metric": a.metric, "observed": a.observed, "severity": a.severity}
                     for a in alerts]}
report_path = settings.state_dir / "reports" / f"monitor-{deployment}-{pipeline_run_id or 'manual'}.json"
report_path.parent.mkdir(parents=True, exist_ok=True)
report_path.write_text(json.dumps(report, indent=2, default=str))
record = record_stage(
    settings, "monitor",
    outputs={"report_path": str(report_path), "alerts": sorted({f"{a.rule}: {a.metric}" for a in alerts}),
             "drifted_features": drifted_drift.drifted_features, "roc_auc": quality.metrics().get("roc_auc")},
    inputs={"deployment": deployment, "model_version": info.model_version},
    parameters={"normal_requests": normal_requests, "drifted_requests": drifted_requests, "seed": seed},
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
        nbformat.write(notebook(cells), ROOT / "notebooks" / name)
        print("wrote", name)
