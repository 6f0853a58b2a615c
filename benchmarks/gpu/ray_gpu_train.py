"""A Ray Train job with ``use_gpu=True`` against the same job on CPU: same model, data and steps.

Starts its own Ray head (on 127.0.0.1, in a temp folder), submits two jobs through the Jobs API (as the
workbench's training module does), waits for both and prints the seconds each took and the device the
worker saw. For a GPU host (benchmarks/gpu/run.sh).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

TRAIN = r'''
import sys, time, torch
import ray.train
from ray.train import ScalingConfig
from ray.train.torch import TorchTrainer, prepare_model

def loop(config):
    device = ray.train.torch.get_device()
    model = prepare_model(torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 1)))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.randn(8192, 512, device=device), torch.randn(8192, 1, device=device)
    began = time.perf_counter()
    for step in range(config["steps"]):
        opt.zero_grad(); loss = torch.nn.functional.mse_loss(model(x), y); loss.backward(); opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    metrics = {"seconds": round(time.perf_counter() - began, 3), "loss": float(loss), "device": str(device),
               "name": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"}
    print("RESULT", metrics, flush=True)  # Train V2 keeps Result.metrics empty without a checkpoint
    ray.train.report(metrics)

use_gpu = sys.argv[1] == "gpu"
result = TorchTrainer(loop, train_loop_config={"steps": 200},
                      scaling_config=ScalingConfig(num_workers=1, use_gpu=use_gpu)).fit()
print("FIT DONE use_gpu", use_gpu, "error", result.error)
'''


def main() -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    temp = tempfile.mkdtemp(prefix="ray-gpu-")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(["ray", "start", "--head", "--block", "--port=26900", "--dashboard-port=28900",
                             "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", f"--temp-dir={temp}",
                             "--ray-client-server-port=26901", "--dashboard-agent-listen-port=28901",
                             "--object-store-memory=1000000000", "--disable-usage-stats"],
                            env=env, start_new_session=True)  # stopped below by its own process group
    try:
        client = None
        for _ in range(60):
            try:
                client = JobSubmissionClient("http://127.0.0.1:28900")
                break
            except Exception:  # noqa: BLE001 - the dashboard is not up yet
                time.sleep(2)
        if client is None:
            raise SystemExit("the Ray head did not come up within 120 s")
        script = os.path.join(temp, "train.py")
        with open(script, "w") as handle:
            handle.write(TRAIN)
        for device in sys.argv[1:] or ("gpu", "cpu"):
            began = time.monotonic()
            for attempt in range(60):  # the dashboard answers before its job agent is ready
                try:
                    job = client.submit_job(entrypoint=f"{sys.executable} {script} {device}", entrypoint_num_gpus=0,
                                            runtime_env={"env_vars": {"PYTHONUNBUFFERED": "1"}})
                    break
                except RuntimeError as exc:
                    if "No available agent" not in str(exc) or attempt == 59:
                        raise
                    time.sleep(2)
            while (status := client.get_job_status(job)) not in (JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                               JobStatus.STOPPED):
                time.sleep(2)
            logs = client.get_job_logs(job)
            result = [line for line in logs.splitlines() if "RESULT" in line]
            print(f"Ray job use_gpu={device == 'gpu'}: {status}, {time.monotonic() - began:.1f} s end to end; "
                  f"{result[-1] if result else logs[-2000:]}")
    finally:
        head.terminate()  # `ray start --block` drains the node and stops its own processes
        try:
            head.wait(90)
        finally:
            os.killpg(head.pid, signal.SIGKILL)  # whatever did not stop


if __name__ == "__main__":
    main()
