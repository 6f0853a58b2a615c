"""Ray Train's report interval: the same quick-epoch job with Ray's default (2 s) and the workbench's
``train_report_interval_s`` (0.25 s), on the shared test services (``ServiceManager(make_test_settings())``:
reused when running, never stopped).

A worker's ``ray.train.report`` waits in a queue of one until the controller collects it, once per
``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``; with epochs shorter than that, the interval is the epoch time. Both
jobs train the same MLP on the same 2,000-row synthetic frame for ``--epochs`` epochs; the script prints
each job's fit time (from its own ``timing fit_s`` log line), the median per-epoch report wait and the ratio.

    .venv/bin/python benchmarks/bench_train_report.py [--epochs 30]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import make_test_settings  # noqa: E402
from workbench.services import ServiceManager  # noqa: E402
from workbench.training import TrainingSpec, job_logs, submit_training_job, wait_for_job  # noqa: E402
from workbench.training.synthetic import SYNTHETIC_FEATURES, synthetic_training_frame  # noqa: E402


def run(interval_s: float, frame: Path, folder: Path, epochs: int) -> tuple[float, float]:
    settings = make_test_settings(train_report_interval_s=interval_s, experiment="bench-train-report")
    spec = TrainingSpec(frame_path=str(frame), feature_columns=SYNTHETIC_FEATURES, epochs=epochs,
                        num_workers=1, cpus_per_worker=0.5,
                        hidden_sizes=(8,), checkpoint_dir=str(folder / f"ckpt-{interval_s:g}"))
    job = submit_training_job(settings, spec)
    wait_for_job(settings, job.job_id, timeout_s=1800, progress=False)
    log = job_logs(settings, job.job_id)
    fit_s = float(re.findall(r"timing fit_s=([0-9.]+)", log)[-1])
    waits = [float(x) for x in re.findall(r"checkpoint_report_s=([0-9.]+)", log)]
    return fit_s, statistics.median(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    ServiceManager(make_test_settings()).up()
    with tempfile.TemporaryDirectory(dir=make_test_settings().state_dir) as tmp:
        folder = Path(tmp)
        frame = folder / "frame.parquet"
        synthetic_training_frame(2_000, seed=3).to_parquet(frame)
        ray_fit, ray_wait = run(2.0, frame, folder, args.epochs)
        our_fit, our_wait = run(0.25, frame, folder, args.epochs)
    print(f"{args.epochs} epochs of a 2,000-row MLP, one worker")
    print(f"  Ray's default interval 2 s:  fit {ray_fit:7.1f} s, median report wait {ray_wait:.3f} s")
    print(f"  workbench interval 0.25 s:   fit {our_fit:7.1f} s, median report wait {our_wait:.3f} s")
    print(f"  ratio (Ray default / workbench): {ray_fit / our_fit:.1f}x")


if __name__ == "__main__":
    main()
