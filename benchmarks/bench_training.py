"""Training: the same model on the same data, in-process PyTorch vs a Ray job (``submit_training_job``).

Starts its own MLflow server and Ray head (ports 25100 / 26479 / dashboard 28365, state under
benchmarks/_data/trbench) and stops them at the end. Data: a synthetic 50k-row fraud frame
(workbench.training.synthetic). Prints wall time and time-to-first-metric of both paths, their ratios,
and where the Ray job's extra time goes, from the job's own ``workbench: ... timing`` log lines:

- client: the ``submit_training_job`` call (service checks, MLflow run, spec file, Jobs API request)
- job start: submission → the driver process running Python (runtime env, process spawn)
- driver imports, frame check, ``ray.init``
- worker group start: ``TorchTrainer.fit()`` called → the worker's train function running
- epochs: compute; checkpoint write + ``ray.train.report`` per epoch
- MLflow: the first request of a process (plugin loading) and per-epoch logging, measured in-process
- model logging and job teardown

    .venv/bin/python benchmarks/bench_training.py [--rows 50000] [--epochs 5] [--repeat 1] [--keep]

``--to-quality`` (section "Training cost to the quality of bench_quality"): XGBoost and the MLP on the fraud
feature frame that benchmarks/bench_quality.py builds (the product's features stage; ``--quality-rows``,
reused when that script already built it), each trained in-process (``load_training_data`` + the trainer's
fit, no Ray, no MLflow) and as a Ray job (``submit_training_job``) on the shared test services
(``ServiceManager(make_test_settings()).up()``: reused when running, never stopped). Both models are
scored on the same time holdout, the job's as MLflow loads it, so the two reached the same quality; the
job's wall time is split into client submission, job start (runtime env, driver process), driver
imports, frame check, ``ray.init``, the fit (task / worker group start, data loading, compute) and the
rest of the driver (evaluation of the logged model, MLflow model logging), and end detection.

    .venv/bin/python benchmarks/bench_training.py --to-quality [--quality-rows 100000] [--trainers xgboost mlp]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlflow.tracking import MlflowClient  # noqa: E402

from workbench.config import Settings  # noqa: E402
from workbench.services import ServiceManager  # noqa: E402
from workbench.training import TrainingSpec, job_logs, submit_training_job, wait_for_job  # noqa: E402
from workbench.training.frame import load_training_data  # noqa: E402
from workbench.training.loop import train_model  # noqa: E402
from workbench.training.synthetic import SYNTHETIC_FEATURES, synthetic_training_frame  # noqa: E402
from workbench.training.tracking import log_epoch_metrics  # noqa: E402

STATE = ROOT / "benchmarks" / "_data" / "trbench"  # short: Ray's socket paths below it must stay < 108 bytes
PORTS = {"mlflow_port": 25100, "ray_port": 26479, "ray_dashboard_port": 28365, "ray_metrics_port": 29190,
         "serve_port": 27100, "haproxy_stats_port": 28504, "haproxy_metrics_port": 29201}


def bench_settings() -> Settings:
    return Settings(project_dir=ROOT, state_dir=STATE, experiment="bench-training", **PORTS)


def make_spec(frame: Path, epochs: int) -> TrainingSpec:
    return TrainingSpec(frame_path=str(frame), feature_columns=SYNTHETIC_FEATURES, hidden_sizes=(64, 32),
                        epochs=epochs, batch_size=256, lr=1e-3, seed=0, cpus_per_worker=1.0,
                        run_name="bench", dataset_version="synthetic-50k",
                        checkpoint_dir=str(STATE / "checkpoints"))


def in_process(spec: TrainingSpec) -> dict[str, float]:
    """The plain PyTorch loop in this process: no checkpoints, no MLflow; as many threads as the job's
    worker gets (more threads than free cores only slows a small MLP down on a shared machine)."""
    import torch

    torch.set_num_threads(max(1, int(spec.cpus_per_worker)))
    began = time.perf_counter()
    data = load_training_data(spec)
    first: list[float] = []
    epochs: list[float] = []

    def on_epoch(state: object, metrics: dict[str, float]) -> None:
        now = time.perf_counter() - began
        if not first:
            first.append(now)
        epochs.append(metrics["epoch_time_s"])

    train_model(spec, data, on_epoch)
    return {"wall_s": time.perf_counter() - began, "first_metric_s": first[0], "epoch_s": statistics.mean(epochs)}


def side_costs(settings: Settings, spec: TrainingSpec) -> dict[str, float]:
    """Checkpoint write and MLflow logging, timed in-process, one epoch's worth each."""
    data = load_training_data(spec)
    states: list[object] = []
    train_model(spec.replace(epochs=1), data, lambda s, m: states.append((s, m)))
    state, metrics = states[0]  # type: ignore[misc]
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        for i in range(5):
            state.save(Path(tmp) / f"epoch_{i:05d}")
        checkpoint_s = (time.perf_counter() - began) / 5
    client = MlflowClient(settings.mlflow_uri)
    began = time.perf_counter()
    experiment = client.get_experiment_by_name(settings.experiment)  # this process's first MLflow request
    first_request_s = time.perf_counter() - began
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(settings.experiment)
    began = time.perf_counter()
    client.create_run(experiment_id, run_name="side-costs-warm")
    create_run_s = time.perf_counter() - began
    run = client.create_run(experiment_id, run_name="side-costs")
    began = time.perf_counter()
    for epoch in range(5):
        log_epoch_metrics(client, run.info.run_id, metrics, epoch)
    log_s = (time.perf_counter() - began) / 5
    client.set_terminated(run.info.run_id)
    return {"checkpoint_write_s": checkpoint_s, "mlflow_first_request_s": first_request_s,
            "mlflow_create_run_s": create_run_s, "mlflow_log_epoch_s": log_s}


def _number(log: str, name: str) -> float | None:
    match = re.search(rf"\b{name}=([0-9.]+)", log)
    return float(match.group(1)) if match else None


def _all_numbers(log: str, name: str) -> list[float]:
    return [float(v) for v in re.findall(rf"\b{name}=([0-9.]+)", log)]


def ray_job(settings: Settings, spec: TrainingSpec) -> dict[str, float]:
    """submit_training_job → SUCCEEDED, with time to the first metric seen in MLflow."""
    client = MlflowClient(settings.mlflow_uri)
    submitted_unix = time.time()
    began = time.perf_counter()
    job = submit_training_job(settings, spec)
    submit_s = time.perf_counter() - began
    first_metric_s = float("nan")
    while True:
        status = job.status()
        if first_metric_s != first_metric_s and client.get_metric_history(job.run_id, "loss"):
            first_metric_s = time.perf_counter() - began
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(0.2)
    wall_s = time.perf_counter() - began
    wait_for_job(settings, job.job_id, timeout_s=10, progress=False)  # raises if it failed
    log = job_logs(settings, job.job_id)
    history = client.get_metric_history(job.run_id, "loss")
    driver_started = _number(log, "driver_started_unix") or submitted_unix
    fit_started = _number(log, "fit_started_unix") or driver_started
    worker_started = _number(log, "started_unix") or fit_started
    epoch_ends = _all_numbers(log, "at_unix")
    first_logged = min(m.timestamp for m in history) / 1000 if history else float("nan")
    parts = {
        "wall_s": wall_s,
        "first_metric_s": first_metric_s,
        "client_submit_s": submit_s,
        "job_start_s": driver_started - (submitted_unix + submit_s),
        "driver_imports_s": _number(log, "driver_imports_s") or 0.0,
        "frame_check_s": _number(log, "read_frame_s") or 0.0,
        "ray_init_s": _number(log, "ray_init_s") or 0.0,
        "worker_group_start_s": worker_started - fit_started,
        "worker_setup_s": _number(log, "worker_setup_s") or 0.0,
        "epochs_compute_s": sum(_all_numbers(log, "train_s")),
        "checkpoint_report_s": sum(_all_numbers(log, "checkpoint_report_s")),
        "relay_to_mlflow_first_s": first_logged - epoch_ends[0] if epoch_ends else float("nan"),
        "fit_s": _number(log, "fit_s") or 0.0,
        "log_model_s": _number(log, "log_model_s") or 0.0,
        "driver_total_s": _number(log, "driver_total_s") or 0.0,
    }
    parts["fit_teardown_s"] = parts["fit_s"] - (worker_started - fit_started) - (
        (epoch_ends[-1] - worker_started) if epoch_ends else 0.0)
    parts["job_end_detect_s"] = wall_s - (driver_started - submitted_unix) - parts["driver_total_s"]
    return parts


def _quality_specs(built: dict[str, object], trainers: list[str], settings: Settings) -> dict[str, TrainingSpec]:
    """The specs of bench_quality (notebook 03's defaults; the spec's own early stopping for xgboost)."""
    common = {"seed": 0, "cpus_per_worker": 1.0, "experiment": "bq-training", "run_name": "bq-to-quality",
              "checkpoint_dir": str(settings.checkpoints_dir), "dataset_version": "bq-quality"}
    task, frame, inputs = built["task"], built["frame_path"], built["inputs"]
    options = {"mlp": {"hidden_sizes": [64, 32], "lr": 0.003, "batch_size": 256, "epochs": 3},
               "xgboost": {"n_estimators": 600, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8,
                           "colsample_bytree": 0.8}}
    return {name: TrainingSpec.from_task(task, frame, inputs, trainer=name, **options[name], **common)  # type: ignore[arg-type]
            for name in trainers}


def _holdout_auc(model: object, spec: TrainingSpec, holdout: object) -> float:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rows = holdout[list(spec.feature_columns)]  # type: ignore[index]
    if hasattr(model, "load_context"):  # the pyfunc itself, in this process
        p = np.asarray(model.predict(None, rows))  # type: ignore[attr-defined]
    else:  # as MLflow loads it, in the signature's types (as the registry's guard does)
        from workbench.model_schema import conform_frame

        schema = model.metadata.get_input_schema()  # type: ignore[attr-defined]
        p = np.asarray(model.predict(conform_frame(schema, rows)))  # type: ignore[attr-defined]
    return float(roc_auc_score((holdout[spec.label_column] == 1).to_numpy(), p))  # type: ignore[index]


def quality_in_process(spec: TrainingSpec, holdout: object) -> dict[str, float]:
    """The trainer's own fit in this process (what bench_quality runs), wall time from reading the frame."""
    from benchmarks.bench_quality import train_mlp, train_xgb

    load_began = time.perf_counter()
    load_training_data(spec, mode="ordinal" if spec.trainer == "xgboost" else "onehot")
    load_s = time.perf_counter() - load_began  # measured apart: the fit below reads the frame again
    began = time.perf_counter()
    model, _ = train_mlp(spec) if spec.trainer == "mlp" else train_xgb(spec)
    wall_s = time.perf_counter() - began
    return {"wall_s": wall_s, "data_load_s": load_s, "roc_auc": _holdout_auc(model, spec, holdout)}


def quality_ray_job(settings: Settings, spec: TrainingSpec, holdout: object) -> dict[str, float]:
    """submit_training_job → SUCCEEDED, the parts of its wall time from the job's timing lines, and the
    holdout ROC-AUC of the model as MLflow loads it."""
    import mlflow

    submitted_unix = time.time()
    began = time.perf_counter()
    job = submit_training_job(settings, spec)
    submit_s = time.perf_counter() - began
    while job.status() not in ("SUCCEEDED", "FAILED", "STOPPED"):
        time.sleep(0.2)
    wall_s = time.perf_counter() - began
    wait_for_job(settings, job.job_id, timeout_s=10, progress=False)  # raises if it failed
    log = job_logs(settings, job.job_id)
    driver_started = _number(log, "driver_started_unix") or submitted_unix
    fit_s = _number(log, "fit_s") or 0.0
    setup_s = _number(log, "worker_setup_s") or 0.0
    if spec.trainer == "xgboost":
        compute_s = _number(log, "boost_s") or 0.0
        io_s = 0.0
    else:
        compute_s = sum(_all_numbers(log, "train_s"))
        io_s = sum(_all_numbers(log, "checkpoint_report_s"))
    parts = {
        "wall_s": wall_s,
        "client_submit_s": submit_s,
        "job_start_s": driver_started - (submitted_unix + submit_s),
        "driver_imports_s": _number(log, "driver_imports_s") or 0.0,
        "frame_check_s": _number(log, "read_frame_s") or 0.0,
        "ray_init_s": _number(log, "ray_init_s") or 0.0,
        "fit_s": fit_s,
        "worker_data_load_s": setup_s,
        "compute_s": compute_s,
        "checkpoint_report_s": io_s,
        "driver_total_s": _number(log, "driver_total_s") or 0.0,
    }
    parts["task_or_worker_group_start_s"] = fit_s - setup_s - compute_s - io_s
    parts["evaluate_and_log_model_s"] = parts["driver_total_s"] - parts["driver_imports_s"] - parts[
        "frame_check_s"] - parts["ray_init_s"] - fit_s
    parts["job_end_detect_s"] = wall_s - (driver_started - submitted_unix) - parts["driver_total_s"]
    model_uri = MlflowClient(settings.mlflow_uri).get_run(job.run_id).data.tags.get(
        "workbench.model_uri", f"runs:/{job.run_id}/model")
    parts["roc_auc"] = _holdout_auc(mlflow.pyfunc.load_model(model_uri), spec, holdout)
    return parts


def _shared_services_up(manager: ServiceManager) -> None:
    """The shared test services, never stopped here: when both answer they are used as they are, else
    ``up()`` starts what is missing. (``up()`` alone can refuse running services whose recorded
    ``create_time`` no longer matches psutil's after the clock moved: it then tries to start them again
    and fails on their busy port.)"""
    if manager.mlflow_healthy() and manager.ray_healthy():
        return
    manager.up()


def finish_costs(settings: Settings, spec: TrainingSpec) -> dict[str, float]:
    """The job's last step (``evaluation.finish_model``) in this process, part by part, into a fresh run of
    the shared MLflow: re-reading the frame, the model's validation predictions, ``log_tabular_model``
    (pyfunc + signature + input example), the reliability JSON and PNG."""
    import mlflow

    from benchmarks.bench_quality import train_xgb
    from workbench.training.evaluation import _log_reliability_png
    from workbench.training.export import log_tabular_model
    from workbench.training.frame import read_frame, split_frame
    from workbench.training.metrics import reliability_curve
    from workbench.training.xgb import BOOSTER_FILE, fit_booster, save_bundle

    client = MlflowClient(settings.mlflow_uri)
    experiment = client.get_experiment_by_name(spec.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(spec.experiment)
    run = client.create_run(experiment_id, run_name="bq-finish-costs")
    data = load_training_data(spec, mode="ordinal")
    folder = save_bundle(Path(tempfile.mkdtemp(prefix="bq-fc-")), fit_booster(spec, data), data, spec)
    artifacts = {"booster": folder / BOOSTER_FILE, "meta": folder / "meta.json"}
    model, _ = train_xgb(spec)
    out: dict[str, float] = {}
    began = time.perf_counter()
    frame = read_frame(spec)
    y, _, val_idx, _ = split_frame(spec, frame)
    out["reread_frame_s"] = time.perf_counter() - began
    began = time.perf_counter()
    features = list(spec.feature_columns)
    output = model.predict(None, frame.iloc[val_idx][features].reset_index(drop=True))
    out["predict_validation_s"] = time.perf_counter() - began
    example = frame[features].head(5).reset_index(drop=True)
    began = time.perf_counter()
    log_tabular_model(settings.mlflow_uri, run.info.run_id, artifacts, example, model.predict(None, example))
    out["log_model_s"] = time.perf_counter() - began
    began = time.perf_counter()
    curve = reliability_curve(y[val_idx], output)
    client.log_dict(run.info.run_id, curve, "workbench/reliability.json")
    _log_reliability_png(client, run.info.run_id, curve)
    out["reliability_json_png_s"] = time.perf_counter() - began
    client.set_terminated(run.info.run_id)
    mlflow.end_run()
    return out


JOB_PARTS = ("client_submit_s", "job_start_s", "driver_imports_s", "frame_check_s", "ray_init_s",
             "task_or_worker_group_start_s", "worker_data_load_s", "compute_s", "checkpoint_report_s",
             "evaluate_and_log_model_s", "job_end_detect_s")


def to_quality(args: argparse.Namespace) -> None:
    """The section "Training cost to the quality of bench_quality" (see the module docstring)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_test_settings

    from benchmarks.bench_quality import bench_settings as quality_settings
    from benchmarks.bench_quality import build_frames

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    built = build_frames(quality_settings(), args.quality_rows, 0, reuse=True)
    holdout = built["holdout"]
    settings = make_test_settings()
    os.environ.setdefault("RAY_DASHBOARD_STARTUP_TIMEOUT_S", "300")
    began = time.perf_counter()
    _shared_services_up(ServiceManager(settings))
    os.environ.update(settings.engine_env())
    print(f"{args.quality_rows:,} rows ({len(built['train']):,} to train on, {len(holdout):,} held out); "
          f"test services up in {time.perf_counter() - began:.1f} s", flush=True)
    specs = _quality_specs(built, args.trainers, settings)
    results: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for name, spec in specs.items():
        local = quality_in_process(spec, holdout)
        print(f"  {name} in-process: {local['wall_s']:.1f} s, holdout ROC-AUC {local['roc_auc']:.4f}", flush=True)
        remote = quality_ray_job(settings, spec, holdout)
        print(f"  {name} Ray job: {remote['wall_s']:.1f} s, holdout ROC-AUC {remote['roc_auc']:.4f}", flush=True)
        results[name] = (local, remote)
    side = finish_costs(settings, specs["xgboost"]) if "xgboost" in specs else {}
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    print("\n| trainer | in-process s | Ray job s | ratio | overhead s | ROC-AUC in-process | ROC-AUC job |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (local, remote) in results.items():
        ratio = remote["wall_s"] / local["wall_s"]
        print(f"| {name} | {local['wall_s']:.1f} | {remote['wall_s']:.1f} | {ratio:.1f}x | "
              f"{remote['wall_s'] - local['wall_s']:.1f} | {local['roc_auc']:.4f} | {remote['roc_auc']:.4f} |")
    print("\nwhere the Ray job's time goes (seconds):")
    print("| part | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for key in JOB_PARTS:
        print(f"| {key} | " + " | ".join(f"{remote[key]:.2f}" for _, remote in results.values()) + " |")
    print("| in-process: data load (read + encode) | " + " | ".join(
        f"{local['data_load_s']:.2f}" for local, _ in results.values()) + " |")
    if side:
        print("\nthe job's last step (finish_model) timed in this process, xgboost (seconds):")
        for key, value in side.items():
            print(f"  {key:<26} {value:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to-quality", action="store_true",
                        help="XGBoost and MLP to bench_quality's quality: in-process vs a Ray job on the test services")
    parser.add_argument("--quality-rows", type=int, default=100_000)
    parser.add_argument("--trainers", nargs="+", default=["xgboost", "mlp"])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the benchmark's services running")
    args = parser.parse_args()
    if args.to_quality:
        to_quality(args)
        return

    settings = bench_settings()
    os.environ.update(settings.engine_env())
    STATE.mkdir(parents=True, exist_ok=True)
    frame = STATE / f"frame_{args.rows}.parquet"
    if not frame.is_file():
        synthetic_training_frame(args.rows, seed=0).to_parquet(frame)
    spec = make_spec(frame, args.epochs)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print(f"data: {args.rows} rows x {len(SYNTHETIC_FEATURES)} features; model {list(spec.hidden_sizes)}, "
          f"{args.epochs} epochs, batch {spec.batch_size}")

    local = [in_process(spec) for _ in range(args.repeat)]
    print(f"in-process: wall {statistics.median(r['wall_s'] for r in local):.2f} s, first metric "
          f"{statistics.median(r['first_metric_s'] for r in local):.2f} s", flush=True)
    # a busy 2-core machine can take longer than Ray's default 60 s to start the dashboard (the Jobs API)
    os.environ.setdefault("RAY_DASHBOARD_STARTUP_TIMEOUT_S", "300")
    manager = ServiceManager(settings)
    began = time.perf_counter()
    manager.up()
    print(f"services up in {time.perf_counter() - began:.1f} s (MLflow {settings.mlflow_uri}, "
          f"Ray {settings.ray_address})", flush=True)
    try:
        side = side_costs(settings, spec)
        remote = [ray_job(settings, spec) for _ in range(args.repeat)]
    finally:
        if not args.keep:
            manager.down()
    print(f"load average {os.getloadavg()[0]:.1f} at end")

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print("\n| path | wall s | first metric s |")
    print("|---|---:|---:|")
    print(f"| in-process PyTorch loop | {med(local, 'wall_s'):.2f} | {med(local, 'first_metric_s'):.2f} |")
    print(f"| Ray job (submit_training_job) | {med(remote, 'wall_s'):.1f} | {med(remote, 'first_metric_s'):.1f} |")
    print(f"| ratio job / in-process | {med(remote, 'wall_s') / med(local, 'wall_s'):.0f}x | "
          f"{med(remote, 'first_metric_s') / med(local, 'first_metric_s'):.0f}x |")
    print(f"\nin-process epoch: {med(local, 'epoch_s'):.3f} s")
    print("\nwhere the Ray job's time goes (median over repeats, seconds):")
    for key in ("client_submit_s", "job_start_s", "driver_imports_s", "frame_check_s", "ray_init_s",
                "worker_group_start_s", "worker_setup_s", "epochs_compute_s", "checkpoint_report_s",
                "fit_teardown_s", "relay_to_mlflow_first_s", "log_model_s", "job_end_detect_s"):
        print(f"  {key:<26} {med(remote, key):8.2f}")
    print("\nside costs measured in-process:")
    for key, value in side.items():
        print(f"  {key:<26} {value:8.3f}")


if __name__ == "__main__":
    main()
