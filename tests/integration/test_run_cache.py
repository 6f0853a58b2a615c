"""The run cache against a real MLflow server: full sync, then incremental syncs of new and running runs."""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric, Param, ViewType
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.errors import NotFound
from workbench.registry.run_cache import open_run_cache

pytestmark = pytest.mark.integration


def _server_view(client: MlflowClient, experiment_id: str) -> dict[str, tuple[Any, ...]]:
    """Every active run of the experiment as MLflow reports it now (the test's own search)."""
    out = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                  page_token=token)
        for run in page:
            out[run.info.run_id] = (run.info.run_name, run.info.status, run.info.start_time, run.info.end_time,
                                    dict(run.data.params), dict(run.data.metrics), dict(run.data.tags))
        token = page.token
        if not token:
            return out


def _cache_view(cache: Any) -> dict[str, tuple[Any, ...]]:
    return {r.run_id: (r.run_name, r.status, r.start_time, r.end_time, r.params, r.metrics, r.tags)
            for r in cache.runs()}


def _run(client: MlflowClient, exp_id: str, name: str, start: int, *, finish: bool, auc: float) -> str:
    run = client.create_run(exp_id, run_name=name, start_time=start, tags={"workbench.dataset_version": "ds-1"})
    client.log_batch(run.info.run_id, metrics=[Metric("roc_auc", auc, start, 0), Metric("loss", 1 - auc, start, 0)],
                     params=[Param("lr", str(auc / 10)), Param("depth", str(int(auc * 10)))])
    if finish:
        client.set_terminated(run.info.run_id, "FINISHED", end_time=start + 1000)
    return run.info.run_id


def test_sync_new_and_running_runs_incrementally(services: Settings, tmp_path: Path) -> None:
    settings = services.replace(state_dir=tmp_path / "state")
    client = MlflowClient(settings.mlflow_uri)
    name = f"wr-cache-{uuid.uuid4().hex[:8]}"
    exp_id = client.create_experiment(name)
    now = int(time.time() * 1000)
    ids = {i: _run(client, exp_id, f"r{i}", now + i, finish=i not in (1, 3, 4), auc=0.5 + i / 20) for i in range(7)}

    cache = open_run_cache(settings, name)
    first = cache.sync()
    assert first.full and first.added == 7 and first.total == 7
    assert _cache_view(cache) == _server_view(client, exp_id)
    assert len(cache) == 7 and cache.last_sync is not None

    # a running run finishes with a new metric value, another is deleted, a third moves on but keeps running;
    # a finished run gets a tag after the fact (the cache must not fetch it again); three new runs start
    client.log_metric(ids[1], "roc_auc", 0.99, step=1)
    client.set_terminated(ids[1], "FINISHED")
    client.delete_run(ids[3])
    client.log_metric(ids[4], "roc_auc", 0.77, step=1)
    client.set_tag(ids[2], "late", "yes")
    new = [_run(client, exp_id, f"n{i}", now + 100 + i, finish=True, auc=0.6) for i in range(3)]

    second = cache.sync()
    assert not second.full
    assert (second.added, second.removed) == (3, 1)
    # fetched: the 3 new runs, the run at the newest cached start time (>=), and the 2 unfinished ones left
    assert second.fetched == 6
    server = _server_view(client, exp_id)
    cached = _cache_view(cache)
    assert set(cached) == set(server) == (set(ids.values()) - {ids[3]}) | set(new)
    assert server[ids[2]][6].get("late") == "yes" and "late" not in cached[ids[2]][6]  # finished: not refetched
    assert {k: v for k, v in cached.items() if k != ids[2]} == {k: v for k, v in server.items() if k != ids[2]}
    assert cached[ids[1]][1] == "FINISHED" and cached[ids[1]][5]["roc_auc"] == 0.99
    assert cached[ids[4]][1] == "RUNNING" and cached[ids[4]][5]["roc_auc"] == 0.77

    third = cache.sync()
    assert (third.added, third.removed, third.fetched) == (0, 0, 2)  # newest start time + the one still running

    # the frame: same runs, same values as the server's, newest first
    frame = cache.frame()
    assert len(frame) == 9
    assert frame["start_time"].is_monotonic_decreasing
    row = frame.set_index("run_id").loc[ids[1]]
    assert row["metrics.roc_auc"] == 0.99 and row["params.lr"] == pytest.approx(float(server[ids[1]][4]["lr"]))
    assert row["dataset_version"] == "ds-1"

    # a second open of the same cache needs no server lookup and sees the same runs
    again = open_run_cache(settings, name, offline=True)
    assert again.path == cache.path and again.run_ids() == cache.run_ids()
    with pytest.raises(NotFound):
        open_run_cache(settings, "wr-never-opened", offline=True)


def test_metric_history_is_cached_for_finished_runs(services: Settings, tmp_path: Path) -> None:
    settings = services.replace(state_dir=tmp_path / "state")
    client = MlflowClient(settings.mlflow_uri)
    name = f"wr-history-{uuid.uuid4().hex[:8]}"
    exp_id = client.create_experiment(name)
    now = int(time.time() * 1000)
    done = client.create_run(exp_id, run_name="done", start_time=now).info.run_id
    live = client.create_run(exp_id, run_name="live", start_time=now + 1).info.run_id
    for step in range(5):
        client.log_metric(done, "loss", 1 / (step + 1), step=step, timestamp=now + step)
        client.log_metric(live, "loss", 2 / (step + 1), step=step, timestamp=now + step)
    client.set_terminated(done, "FINISHED")
    cache = open_run_cache(settings, name, sync=True)

    first = cache.metric_history([done, live], "loss")
    assert list(first[done]["value"]) == pytest.approx([1 / (s + 1) for s in range(5)])
    assert list(first[live]["step"]) == list(range(5))

    client.log_metric(done, "loss", 123.0, step=9)  # after the fact: the cached finished history is kept
    client.log_metric(live, "loss", 0.1, step=5)  # the running run's history is read again
    second = cache.metric_history([done, live], "loss")
    assert len(second[done]) == 5 and not (second[done]["value"] == 123.0).any()
    assert len(second[live]) == 6 and second[live]["value"].iloc[-1] == 0.1
    assert cache.metric_history([done], "no_such_metric")[done].empty
    assert not math.isnan(second[done]["value"].iloc[0])
