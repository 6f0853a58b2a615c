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
         "serve_port": 27100}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the benchmark's services running")
    args = parser.parse_args()

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
