"""The Ray job's driver: ``python -m workbench.training.entrypoint --spec <file> --run-id <id> ...``.

Submitted by :func:`workbench.training.submit_training_job`; it expects the spec JSON that the submitter
wrote (already resolved: experiment, checkpoint dir, GPU fallback applied), the MLflow run the submitter
created, and the tracking URI. It validates the frame's contents before starting any worker (a bad label
fails in seconds, with its message in the job log), trains (or sweeps), logs the model and closes the
run: FINISHED, FAILED on an error, KILLED when the job is stopped.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from types import FrameType

_STARTED = time.perf_counter()
_STARTED_UNIX = time.time()

import ray  # noqa: E402 - imports are timed from process start
from mlflow.tracking import MlflowClient  # noqa: E402

import workbench  # noqa: E402
from workbench.training.frame import read_frame  # noqa: E402
from workbench.training.joblog import say  # noqa: E402
from workbench.training.spec import TrainingSpec  # noqa: E402
from workbench.training.tracking import tracking_client  # noqa: E402
from workbench.training.trainers import JobContext, get_trainer  # noqa: E402


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through `finally`, so the run is marked KILLED


def _warm_up(client: MlflowClient, run_id: str) -> threading.Thread:
    """Make the first MLflow request in the background, overlapping the frame check and ``ray.init``:
    it loads every MLflow plugin installed, which can take seconds."""
    def ask() -> None:
        try:
            client.get_run(run_id)
        except Exception:  # noqa: BLE001 - the real calls report errors; this only pre-pays start-up
            pass

    thread = threading.Thread(target=ask, name="mlflow-warm-up", daemon=True)
    thread.start()
    return thread


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workbench.training.entrypoint",
                                     description="Run one workbench training job (inside a Ray job).")
    parser.add_argument("--spec", required=True, help="path of the TrainingSpec JSON")
    parser.add_argument("--run-id", required=True, help="the MLflow run to log into")
    parser.add_argument("--tracking-uri", required=True, help="the MLflow tracking server")
    parser.add_argument("--job-id", default="", help="the Ray job's submission id (printed; the submitter tags it)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    say(f"job {args.job_id or '?'} for MLflow run {args.run_id}; workbench from "
        f"{os.path.dirname(workbench.__file__)}; timing driver_started_unix={_STARTED_UNIX:.3f} "
        f"driver_imports_s={time.perf_counter() - _STARTED:.3f}")
    client = tracking_client(args.tracking_uri)
    status = "FAILED"
    try:
        spec = TrainingSpec.load(args.spec)
        trainer = get_trainer(spec.trainer)
        warming = _warm_up(client, args.run_id)
        example = None
        if trainer.uses_frame:
            began = time.perf_counter()
            frame = read_frame(spec)  # fails fast on labels that do not fit the task
            example = frame[list(spec.feature_columns)].head(5)
            say(f"timing read_frame_s={time.perf_counter() - began:.3f} rows={len(frame)}")
            del frame
            began = time.perf_counter()
            ray.init(log_to_driver=True)
            say(f"timing ray_init_s={time.perf_counter() - began:.3f}")
        warming.join()
        experiment_id = client.get_run(args.run_id).info.experiment_id
        job = JobContext(spec, args.run_id, args.tracking_uri, experiment_id, example)
        if spec.sweep is not None:
            from workbench.training.sweep import run_sweep

            outcome = run_sweep(job)
        else:
            outcome = trainer.train(job)
        headline = next((f", {k}={outcome.metrics[k]:.4f}" for k in ("roc_auc", "accuracy", "rmse")
                         if k in outcome.metrics), "")
        if outcome.model_uri:
            say(f"logged model {outcome.model_uri} (epoch {outcome.step}{headline})")
        status = "FINISHED"
    except SystemExit:
        status = "KILLED"
        raise
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        try:
            client.set_terminated(args.run_id, status)
        except Exception as exc:  # noqa: BLE001 - never hide the job's own error behind this one
            print(f"workbench: could not mark run {args.run_id} {status}: {exc}", file=sys.stderr)
    say(f"timing driver_total_s={time.perf_counter() - _STARTED:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
