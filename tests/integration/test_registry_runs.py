"""compare_runs against a real MLflow server: values, best-of-history, ordering and filters pushed to MLflow."""

from __future__ import annotations

import time
import uuid

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.registry import compare_runs

pytestmark = pytest.mark.integration

# run name -> (lr, roc_auc history, val_loss history); final = last value, best = max/min over history
RUNS = {
    "r-low": ("0.1", [0.55, 0.60, 0.58], [0.70, 0.65, 0.66]),
    "r-peak": ("0.01", [0.60, 0.91, 0.85], [0.50, 0.31, 0.35]),
    "r-high": ("0.01", [0.70, 0.80, 0.90], [0.45, 0.40, 0.38]),
    "r-mid": ("0.001", [0.65, 0.70, 0.75], [0.60, 0.55, 0.50]),
}


@pytest.fixture(scope="module")
def experiment(services: Settings) -> tuple[str, dict[str, str]]:
    """A fresh experiment holding RUNS, a child run of r-high, and a run that logged no roc_auc."""
    client = MlflowClient(services.mlflow_uri)
    name = f"test-registry-runs-{uuid.uuid4().hex[:8]}"
    exp_id = client.create_experiment(name)
    ids: dict[str, str] = {}
    now = int(time.time() * 1000)
    for i, (run_name, (lr, aucs, losses)) in enumerate(RUNS.items()):
        run = client.create_run(exp_id, run_name=run_name, start_time=now + i,
                                tags={"workbench.dataset_version": f"ds-{i % 2}", "workbench.feature_service": "fs1",
                                      "workbench.kind": "training"})
        metrics = [Metric("roc_auc", v, now, step) for step, v in enumerate(aucs)]
        metrics += [Metric("val_loss", v, now, step) for step, v in enumerate(losses)]
        client.log_batch(run.info.run_id, metrics=metrics,
                         params=[Param("lr", lr), Param("hidden_sizes", "[64, 32]")])
        client.set_terminated(run.info.run_id, "FINISHED", end_time=now + 2000 + i)
        ids[run_name] = run.info.run_id
    child = client.create_run(exp_id, run_name="r-child", start_time=now + 10,
                              tags={"mlflow.parentRunId": ids["r-high"], "workbench.kind": "sweep-trial"})
    client.log_batch(child.info.run_id, metrics=[Metric("roc_auc", 0.5, now, 0)], params=[Param("lr", "0.5")])
    client.set_terminated(child.info.run_id, "FINISHED")
    ids["r-child"] = child.info.run_id
    bare = client.create_run(exp_id, run_name="r-bare", start_time=now + 11)  # still RUNNING, no metrics
    ids["r-bare"] = bare.info.run_id
    return name, ids


def test_final_and_best_values_params_and_tags(services: Settings, experiment: tuple[str, dict[str, str]]) -> None:
    name, ids = experiment
    frame = compare_runs(services, experiment=name, best_of={"roc_auc": "max", "val_loss": "min"})
    assert len(frame) == 6
    row = frame.set_index("run_name").loc["r-peak"]
    assert row["run_id"] == ids["r-peak"]
    assert row["metrics.roc_auc"] == pytest.approx(0.85)  # the latest value
    assert row["best.roc_auc"] == pytest.approx(0.91)  # the best over the history
    assert row["best_step.roc_auc"] == 1
    assert row["metrics.val_loss"] == pytest.approx(0.35)
    assert row["best.val_loss"] == pytest.approx(0.31)
    assert row["params.lr"] == pytest.approx(0.01)
    assert row["params.hidden_sizes"] == "[64, 32]"
    assert row["dataset_version"] == "ds-1" and row["feature_service"] == "fs1" and row["kind"] == "training"
    assert row["status"] == "FINISHED" and row["duration_s"] == pytest.approx(2.001, abs=0.01)
    child = frame.set_index("run_name").loc["r-child"]
    assert child["parent_run_id"] == ids["r-high"]
    bare = frame.set_index("run_name").loc["r-bare"]
    assert bare["status"] == "RUNNING" and bare[["metrics.roc_auc", "best.roc_auc"]].isna().all()


def test_ordering_and_filters_are_pushed_to_mlflow(services: Settings, experiment: tuple[str, dict[str, str]]) -> None:
    name, _ = experiment
    by_auc = compare_runs(services, experiment=name)  # default order: metrics.roc_auc DESC
    assert by_auc["run_name"].tolist()[:5] == ["r-high", "r-peak", "r-mid", "r-low", "r-child"]
    assert by_auc["run_name"].iloc[-1] == "r-bare"  # no roc_auc: MLflow sorts it last
    by_loss = compare_runs(services, experiment=name, order_by=["metrics.val_loss ASC"],
                           filter_string="attributes.status = 'FINISHED' and params.lr = '0.01'")
    assert by_loss["run_name"].tolist() == ["r-peak", "r-high"]  # final val_loss 0.35 < 0.38
    top = compare_runs(services, experiment=name, max_results=3, page_size=2, metrics=["roc_auc"], params=["lr"])
    assert top["run_name"].tolist() == ["r-high", "r-peak", "r-mid"]  # paged by token across 2 pages
    assert [c for c in top.columns if c.startswith(("metrics.", "params."))] == ["params.lr", "metrics.roc_auc"]
    children = compare_runs(services, experiment=name, filter_string="tags.`mlflow.parentRunId` != ''")
    assert children["run_name"].tolist() == ["r-child"]


def test_client_sort_and_parallel_partitions_give_mlflows_order(
        services: Settings, experiment: tuple[str, dict[str, str]]) -> None:
    name, _ = experiment
    for order_by, max_results in [(("metrics.roc_auc DESC",), None), (("metrics.val_loss ASC",), 3), ((), None),
                                  (("metrics.val_loss ASC", "attributes.end_time DESC"), None),
                                  (("attributes.start_time ASC",), 4), (("params.lr DESC",), None)]:
        mlflow_order = compare_runs(services, experiment=name, order_by=order_by, max_results=max_results,
                                    sort="server")["run_id"].tolist()
        for threads in (1, 4):
            ours = compare_runs(services, experiment=name, order_by=order_by, max_results=max_results,
                                threads=threads)
            assert ours["run_id"].tolist() == mlflow_order, (order_by, max_results, threads)
    filtered = compare_runs(services, experiment=name, filter_string="params.lr = '0.01'", threads=4,
                            max_results=None)
    assert filtered["run_name"].tolist() == ["r-high", "r-peak"]


def test_bad_filters_and_unknown_experiments(services: Settings, experiment: tuple[str, dict[str, str]]) -> None:
    name, _ = experiment
    with pytest.raises(InvalidInput, match="MLflow rejected the run search") as info:
        compare_runs(services, experiment=name, filter_string="metrics.roc_auc >")
    with pytest.raises(InvalidInput, match="MLflow rejected the run search"):
        compare_runs(services, experiment=name, filter_string="metrics.roc_auc >", threads=4)
    assert "metrics.roc_auc >" in str(info.value)
    with pytest.raises(InvalidInput, match="order_by"):
        compare_runs(services, experiment=name, order_by=["metrics.roc_auc SIDEWAYS"])
    with pytest.raises(InvalidInput, match="max_results"):
        compare_runs(services, experiment=name, max_results=0)
    with pytest.raises(NotFound, match="no MLflow experiment named"):
        compare_runs(services, experiment=f"missing-{uuid.uuid4().hex[:6]}")
