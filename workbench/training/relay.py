"""The driver's relay of worker metric files into MLflow (see :mod:`workbench.training.metric_files`).

Training: one stream folder, the spec's run. Sweep: one folder per trial under a root; the relay
creates the trial's child run (tag ``mlflow.parentRunId``) when the trial's ``stream.json`` appears,
logs its epochs as they land and closes it when ``status.json`` does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.tracking import MlflowClient

from workbench import locations
from workbench.training.metric_files import STATUS_FILE, STREAM_FILE, read_epoch_metrics, read_json
from workbench.training.tracking import (
    TAG_DATASET_VERSION,
    TAG_FEATURE_SERVICE,
    TAG_KIND,
    TAG_PARENT,
    log_epoch_metrics,
    log_params,
    logged_steps,
)


@dataclass
class _Stream:
    run_id: str
    logged: set[int] = field(default_factory=set)
    closed: bool = False


class MetricRelay:
    """Copies new epoch files into MLflow, in epoch order, each step once; call :meth:`flush` or run
    it in the background with :meth:`start` / :meth:`stop`."""

    def __init__(self, client: MlflowClient, run_id: str, folder: str | Path, *, trials: bool = False,
                 experiment_id: str = "", lineage: dict[str, str] | None = None, interval_s: float = 0.5) -> None:
        self.client = client
        self.run_id = run_id
        self.folder = folder
        self.trials = trials
        self.experiment_id = experiment_id
        self.lineage = lineage or {}
        self.interval_s = interval_s
        self.streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        if not trials:
            self.streams[""] = _Stream(run_id, set(logged_steps(client, run_id)))

    # foreground ---------------------------------------------------------------------------------
    def flush(self) -> int:
        """Log every epoch file not logged yet; return how many epochs were logged."""
        with self._lock:
            if not self.trials:
                return self._flush_stream(self.folder, self.streams[""])
            count = 0
            for name in locations.list_names(self.folder):
                trial_dir = locations.join(self.folder, name)
                if not locations.is_dir(trial_dir):
                    continue
                stream = self.streams.get(name) or self._open_trial(trial_dir, name)
                if stream is not None:
                    count += self._flush_stream(trial_dir, stream)
            return count

    def child_run_id(self, trial_name: str) -> str | None:
        stream = self.streams.get(trial_name)
        return stream.run_id if stream else None

    def close_open_children(self, status: str = "FAILED") -> None:
        """Mark trials that never wrote a status (killed, crashed) as ``status``."""
        with self._lock:
            for stream in self.streams.values():
                if self.trials and not stream.closed:
                    self.client.set_terminated(stream.run_id, status)
                    stream.closed = True

    # background ---------------------------------------------------------------------------------
    def start(self) -> MetricRelay:
        self._thread = threading.Thread(target=self._loop, name="workbench-metric-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - retried next tick; the final flush raises for real
                self.error = exc

    # internals ----------------------------------------------------------------------------------
    def _flush_stream(self, folder: str | Path, stream: _Stream) -> int:
        count = 0
        for epoch, metrics in read_epoch_metrics(folder):
            if epoch in stream.logged:
                continue
            log_epoch_metrics(self.client, stream.run_id, metrics, epoch)
            stream.logged.add(epoch)
            count += 1
        if self.trials and not stream.closed:
            status = read_json(locations.join(folder, STATUS_FILE))
            if status is not None:
                self.client.set_terminated(stream.run_id, str(status.get("status", "FINISHED")))
                stream.closed = True
        return count

    def _open_trial(self, folder: str, name: str) -> _Stream | None:
        info = read_json(locations.join(folder, STREAM_FILE))
        if info is None:
            return None
        run = self.client.create_run(
            self.experiment_id, run_name=str(info.get("run_name") or name),
            tags={TAG_PARENT: self.run_id, TAG_KIND: "sweep-trial", "workbench.trial_id": str(info.get("trial_id")),
                  TAG_DATASET_VERSION: self.lineage.get("dataset_version", ""),
                  TAG_FEATURE_SERVICE: self.lineage.get("feature_service", "")})
        log_params(self.client, run.info.run_id, dict(info.get("params", {})))
        stream = _Stream(run.info.run_id)
        self.streams[name] = stream
        return stream
