"""Monitoring a registered model end to end on the real MLflow server: the drift reference is found from
the model version (its run's training frame), the model's own scores on that frame are the output's
reference, and quality joins labels by request id. The log is written by the real PredictionLogWriter;
expected values are computed here from the frames the fixtures returned (scipy / sklearn)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from monitoring_fixtures import LoggedModel, register_binary_model, score, write_log
from scipy import stats
from sklearn import metrics as skm

from workbench.config import Settings
from workbench.monitoring.deployment import drift_for_deployment, monitoring_report, quality_for_deployment

pytestmark = pytest.mark.integration
START = pd.Timestamp("2026-03-01T00:00:00", tz="UTC")


@pytest.fixture(scope="module")
def setup(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, LoggedModel, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("mo-generic")
    settings = services.replace(state_dir=folder / "state")
    model = register_binary_model(settings, folder / "model", f"mo-binary-{uuid.uuid4().hex[:6]}", "mo-monitoring")
    logged = write_log(settings, "mo-dep", model, start=START)
    return settings, model, logged


def test_drift_uses_the_models_training_frame_and_its_own_scores_as_reference(setup: tuple) -> None:
    settings, model, logged = setup
    before = drift_for_deployment(settings, "mo-dep", until=START + pd.Timedelta(seconds=300 * 6),
                                  model_uri=model.uri)
    after = drift_for_deployment(settings, "mo-dep", since=START + pd.Timedelta(seconds=300 * 6),
                                 model_uri=model.uri)
    assert {r.feature for r in after.features} == {"amount", "colour", "score"}
    ks = stats.ks_2samp(model.frame["amount"], logged["amount"].iloc[300:])
    assert after["amount"].ks_statistic == pytest.approx(ks.statistic)
    ref_scores = score(model.frame)
    ks_score = stats.ks_2samp(ref_scores, logged["score"].iloc[300:])
    assert after["score"].kind == "score" and after["score"].ks_statistic == pytest.approx(ks_score.statistic)
    assert after["colour"].column_type == "categorical" and after["colour"].has_null_bin
    assert after["colour"].null_current == pytest.approx(logged["colour"].iloc[300:].isna().mean())
    assert after["colour"].status == "drift" and after["amount"].status == "drift"
    assert before["colour"].status == "ok" and before["amount"].psi < 0.1


def test_quality_and_report_for_the_deployment(setup: tuple) -> None:
    settings, model, logged = setup
    rng = np.random.default_rng(8)
    y = (rng.random(len(logged)) < logged["score"]).astype(int)
    labels = pd.DataFrame({"request_id": logged["request_id"], "label": y})
    q = quality_for_deployment(settings, "mo-dep", labels, model_uri=model.uri)
    assert q.task == "binary" and q.threshold == 0.6 and q.n_labelled == len(logged)
    assert q["roc_auc"] == pytest.approx(skm.roc_auc_score(y, logged["score"]))
    assert q["recall"] == pytest.approx(skm.recall_score(y, logged["score"] >= 0.6))
    with Path(next((settings.predictions_dir / "mo-dep").glob("*.jsonl"))).open("a") as handle:
        handle.write('{"request_id": "cut-sho\n')
    report = monitoring_report(settings, "mo-dep", labels=labels, model_uri=model.uri)
    assert report.window.unparsed == 1 and report.window.rows == len(logged)
    assert report.performance is not None and report.performance.requests == len(logged)
    assert report.drift is not None and report.quality is not None and report.cost is not None
    assert any(a.rule == "feature_psi_drift" for a in report.alerts)
    html = report._repr_html_()
    assert "Monitoring mo-dep" in html and "unparsed log lines" in html and "ROC-AUC" in html
