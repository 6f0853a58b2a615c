"""The run comparer on a real MLflow server, driven through its controls: sort, filter, select, alias, curves."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.registry import CHALLENGER, CHAMPION

pytestmark = pytest.mark.integration

MLMODEL = "artifact_path: model\nflavors:\n  python_function:\n    loader_module: workbench_test\n"


def test_comparer_sorts_filters_selects_and_sets_aliases_in_mlflow(services: Settings, tmp_path: Path) -> None:
    from workbench.widgets.run_comparer import RunComparer

    settings = services.replace(state_dir=tmp_path / "state")
    client = MlflowClient(settings.mlflow_uri)
    name = f"wr-widget-{uuid.uuid4().hex[:8]}"
    model_name = f"wr-model-{uuid.uuid4().hex[:8]}"
    exp_id = client.create_experiment(name)
    now = int(time.time() * 1000)
    aucs = {"a": 0.71, "b": 0.93, "c": 0.88, "d": 0.65, "e": 0.90}
    ids = {}
    for i, (run_name, auc) in enumerate(aucs.items()):
        run = client.create_run(exp_id, run_name=run_name, start_time=now + i)
        history = [Metric("roc_auc", auc * (step + 1) / 30, now + step, step) for step in range(30)]
        client.log_batch(run.info.run_id, metrics=history,
                         params=[Param("lr", str(0.1 / (i + 1))), Param("opt", "adam" if i % 2 else "sgd")])
        client.log_text(run.info.run_id, MLMODEL, "model/MLmodel")
        client.set_terminated(run.info.run_id, "FINISHED")
        ids[run_name] = run.info.run_id

    comparer = RunComparer(name, settings=settings, sync="first", model_name=model_name, page_size=10)
    model = comparer.model
    assert comparer.error == "" and model is not None
    assert [label.split()[0] for label, _ in comparer.rows.options] == ["b", "e", "c", "a", "d"]  # roc_auc desc

    comparer.ascending.value = True
    assert [rid for _, rid in comparer.rows.options] == [ids[n] for n in ("d", "a", "c", "e", "b")]
    comparer.filter.value = "roc_auc > 0.8 and opt = adam"  # runs 1 and 3: b (0.93) and d (0.65) -> only b
    assert [rid for _, rid in comparer.rows.options] == [ids["b"]]
    comparer.filter.value = "roc_auc > 0.8"
    assert {rid for _, rid in comparer.rows.options} == {ids["b"], ids["c"], ids["e"]}

    comparer.rows.value = (ids["e"],)
    assert model.selected == [ids["e"]]
    comparer.champion_button.click()
    assert comparer.error == "", comparer.error
    assert client.get_model_version_by_alias(model_name, CHAMPION).run_id == ids["e"]
    comparer.rows.value = (ids["c"],)
    comparer.challenger_button.click()
    assert client.get_model_version_by_alias(model_name, CHALLENGER).run_id == ids["c"]
    assert client.get_model_version_by_alias(model_name, CHAMPION).run_id == ids["e"]  # untouched
    comparer.card_button.click()
    assert comparer.error == "" and "Lineage card" in comparer.card.value and ids["c"] in comparer.card.value

    # two selected: curves of both from MLflow's histories, the diff of their params
    comparer.rows.value = (ids["c"], ids["e"])
    comparer.compare.click()
    curves = comparer.curves.children[0]
    by_name = {t.name: np.asarray(t.y) for t in curves.data}
    assert set(by_name) == {"c", "e"}
    assert by_name["e"].tolist() == pytest.approx([0.90 * (s + 1) / 30 for s in range(30)])
    assert "params.lr" in comparer.diff.value and "0.02" in comparer.diff.value
    par = comparer.parcoords.children[0].data[0]
    assert sorted(par.dimensions[-1]["values"]) == pytest.approx([0.88, 0.90])

    # a run that starts later arrives with the next sync; refused actions are messages
    late = client.create_run(exp_id, run_name="late", start_time=now + 100).info.run_id
    client.log_metric(late, "roc_auc", 0.99)
    comparer.sync_button.click()
    assert comparer.last_sync is not None and comparer.last_sync.added == 1
    assert [rid for _, rid in comparer.rows.options][-1] == late  # filter and ascending sort kept: 0.99 last
    comparer.rows.value = (late,)
    comparer.register_button.click()
    assert "logged no model" in comparer.error
