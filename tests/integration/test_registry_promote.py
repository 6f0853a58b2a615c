"""Registering the best run, aliases, the champion guard and lineage cards, on a real MLflow server.

The runs carry tiny real pyfunc models (a logistic score of one feature, logged as "models from code"),
so a holdout frame tells a good model from a bad one regardless of what the runs recorded.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.lineage import record_stage
from workbench.registry import (
    CHALLENGER,
    CHAMPION,
    PromotionRefused,
    best_run,
    build_lineage_card,
    get_model_version,
    holdout_roc_auc,
    register_best,
    resolve_model_uri,
    set_alias,
)

pytestmark = pytest.mark.integration

MODEL_CODE = '''
import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class LogisticScore(PythonModel):
    def load_context(self, context):
        config = context.model_config or {}
        self.feature = config["feature"]
        self.coef = float(config["coef"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[float]:
        x = pd.DataFrame(model_input)[self.feature].to_numpy(dtype=float)
        return (1.0 / (1.0 + np.exp(-self.coef * x))).tolist()


mlflow.models.set_model(LogisticScore())
'''

# name -> (group tag, recorded roc_auc history, model feature, model coefficient)
MODEL_RUNS = {
    "good": ("main", [0.80, 0.95], "signal", 2.0),  # best recorded, and truly good
    "medium": ("main", [0.85, 0.90], "weak", 1.0),  # runner-up
    "bad": ("worse", [0.60, 0.70], "signal", -2.0),  # worse by record and on the holdout
    "trap": ("trap", [0.90, 0.99], "signal", -2.0),  # best by record, but bad on the holdout
}


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    signal = rng.normal(size=600)
    weak = 0.4 * signal + rng.normal(size=600)
    label = (signal + 0.5 * rng.normal(size=600) > 1.0).astype(int)
    return pd.DataFrame({"signal": signal, "weak": weak, "is_fraud": label})


@pytest.fixture(scope="module")
def model_runs(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """An experiment with four model runs (MODEL_RUNS), a run without a model and an unfinished run."""
    code = tmp_path_factory.mktemp("model-code") / "logistic_score.py"
    code.write_text(MODEL_CODE)
    client = MlflowClient(services.mlflow_uri)
    mlflow.set_tracking_uri(services.mlflow_uri)
    name = f"test-registry-promote-{uuid.uuid4().hex[:8]}"
    exp_id = client.create_experiment(name)
    ids: dict[str, str] = {}
    now = int(time.time() * 1000)
    for run_name, (group, aucs, feature, coef) in MODEL_RUNS.items():
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name, log_system_metrics=False,
                              tags={"group": group, "workbench.dataset_version": "ds-abc",
                                    "workbench.feature_service": "fraud_fs"}) as run:
            client.log_batch(run.info.run_id, params=[Param("feature", feature), Param("coef", str(coef))],
                             metrics=[Metric("roc_auc", v, now, step) for step, v in enumerate(aucs)])
            mlflow.pyfunc.log_model(name="model", python_model=str(code), model_config={"feature": feature,
                                    "coef": coef}, pip_requirements=["mlflow", "numpy", "pandas"])
            ids[run_name] = run.info.run_id
    no_model = client.create_run(exp_id, run_name="no-model", tags={"group": "main"})
    client.log_batch(no_model.info.run_id, metrics=[Metric("roc_auc", 0.999, now, 0)])
    client.set_terminated(no_model.info.run_id, "FINISHED")
    running = client.create_run(exp_id, run_name="running", tags={"group": "main"})
    client.log_batch(running.info.run_id, metrics=[Metric("roc_auc", 0.9999, now, 0)])
    ids["no-model"], ids["running"] = no_model.info.run_id, running.info.run_id
    return name, ids


def _lineage_settings(services: Settings, tmp_path: Path, run_id: str) -> Settings:
    """Settings whose lineage records trace run_id back to a notebook, a feature service and a dataset."""
    settings = services.replace(state_dir=tmp_path / "state")
    record_stage(settings, "data", {"dataset_version": "ds-abc"}, notebook="notebooks/01_data.ipynb")
    record_stage(settings, "features", {"feature_service": "fraud_fs", "frame_path": "/frames/f1.parquet"},
                 inputs={"dataset_version": "ds-abc"}, notebook="notebooks/02_features.ipynb")
    record_stage(settings, "train", {"run_id": run_id}, inputs={"frame_path": "/frames/f1.parquet"},
                 parameters={"epochs": 3, "lr": 0.01}, notebook="notebooks/03_train.ipynb")
    return settings


def test_best_run_skips_runs_without_a_model_and_unfinished_runs(
        services: Settings, model_runs: tuple[str, dict[str, str]]) -> None:
    name, ids = model_runs
    best = best_run(services, experiment=name, filter_string="attributes.status = 'FINISHED' and tags.group = 'main'")
    assert best.run_id == ids["good"] and best.value == pytest.approx(0.95)
    assert best.model_uri and best.model_uri.startswith("models:/m-")
    lowest = best_run(services, metric="roc_auc", mode="min", experiment=name)
    assert lowest.run_id == ids["bad"]
    with pytest.raises(NotFound, match="has metric 'pr_auc'"):
        best_run(services, metric="pr_auc", experiment=name)


def test_register_best_sets_champion_challenger_and_lineage_card(
        services: Settings, model_runs: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    name, ids = model_runs
    settings = _lineage_settings(services, tmp_path, ids["good"])
    model = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    result = register_best(settings, model_name=model, experiment=name,
                           filter_string="attributes.status = 'FINISHED' and tags.group = 'main'")
    assert result.best.run_id == ids["good"] and result.runner_up is not None
    assert result.runner_up.run_id == ids["medium"]
    assert result.previous_champion is None and result.comparison is None and result.changed
    champion = get_model_version(settings, model, CHAMPION)
    challenger = get_model_version(settings, model, CHALLENGER)
    assert champion.run_id == ids["good"] and CHAMPION in champion.aliases
    assert challenger.run_id == ids["medium"] and challenger.version != champion.version
    assert champion.tags["workbench.selected_by"] == "roc_auc (max)"
    assert get_model_version(settings, model, int(champion.version)) == champion
    assert get_model_version(settings, model, "latest").version == max(champion.version, challenger.version, key=int)

    # the lineage card: on the run as artifacts, summarised on the version
    client = MlflowClient(services.mlflow_uri)
    artifacts = {f.path for f in client.list_artifacts(ids["good"])}
    assert {"lineage_card.json", "lineage_card.md"} <= artifacts
    card = json.loads(Path(client.download_artifacts(ids["good"], "lineage_card.json", str(tmp_path))).read_text())
    assert card["run"]["run_id"] == ids["good"]
    assert card["dataset_version"]["value"] == "ds-abc" and card["feature_service"]["value"] == "fraud_fs"
    assert card["training_stage"]["notebook"] == "notebooks/03_train.ipynb"
    assert card["training_stage"]["parameters"] == {"epochs": 3, "lr": 0.01}
    assert [r["stage"] for r in card["chain"]] == ["train", "features", "data"]
    assert card["run"]["metrics"]["roc_auc"] == pytest.approx(0.95)
    assert card["gaps"] == [] or all("git commit" in g for g in card["gaps"])
    markdown = Path(client.download_artifacts(ids["good"], "lineage_card.md", str(tmp_path))).read_text()
    assert ids["good"] in markdown and "notebooks/03_train.ipynb" in markdown and "ds-abc" in markdown
    assert champion.tags["workbench.dataset_version"] == "ds-abc"
    assert champion.tags["workbench.training_notebook"] == "notebooks/03_train.ipynb"
    assert ids["good"] in champion.description

    # registering again reuses the versions instead of piling up new ones
    again = register_best(settings, model_name=model, experiment=name,
                          filter_string="attributes.status = 'FINISHED' and tags.group = 'main'")
    assert again.champion.version == champion.version and not again.changed

    resolved = resolve_model_uri(settings, f"models:/{model}@{CHAMPION}")
    assert resolved.run_id == ids["good"] and resolved.load_uri == f"models:/{model}/{champion.version}"
    moved = set_alias(settings, model, "staging", challenger.version)
    assert "staging" in moved.aliases


def test_card_without_lineage_records_says_unknown(
        services: Settings, model_runs: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    name, ids = model_runs
    settings = services.replace(state_dir=tmp_path / "empty-state")
    model = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    register_best(settings, model_name=model, experiment=name, write_card=False,
                  filter_string="attributes.status = 'FINISHED' and tags.group = 'main'")
    card = build_lineage_card(settings, model, CHAMPION)
    assert card.data["training_stage"] is None
    assert card.dataset_version == "ds-abc"  # still known from the run's tags
    assert any("training notebook" in gap for gap in card.gaps)
    assert "notebook `unknown`" in card.to_markdown()


def test_guard_refuses_a_worse_candidate_on_the_holdout_and_force_overrides(
        services: Settings, model_runs: tuple[str, dict[str, str]], holdout: pd.DataFrame) -> None:
    name, ids = model_runs
    model = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    first = register_best(services, model_name=model, experiment=name, write_card=False,
                          filter_string="attributes.status = 'FINISHED' and tags.group = 'main'")
    trap = "attributes.status = 'FINISHED' and tags.group = 'trap'"
    with pytest.raises(PromotionRefused, match="force=True") as refused:
        register_best(services, model_name=model, experiment=name, holdout=holdout, filter_string=trap,
                      write_card=False)
    comparison = refused.value.comparison
    assert comparison.basis == "holdout roc_auc" and comparison.candidate < 0.5 < 0.8 < (comparison.champion or 0)
    assert f"{comparison.candidate:.4f}" in str(refused.value) and f"{comparison.champion:.4f}" in str(refused.value)
    assert get_model_version(services, model, CHAMPION).version == first.champion.version  # nothing changed
    assert isinstance(refused.value, InvalidInput)

    forced = register_best(services, model_name=model, experiment=name, holdout=holdout, filter_string=trap,
                           force=True, write_card=False)
    assert forced.forced and forced.changed and forced.best.run_id == ids["trap"]
    assert get_model_version(services, model, CHAMPION).run_id == ids["trap"]
    assert forced.previous_champion is not None and forced.previous_champion.run_id == ids["good"]

    # the holdout tells the good model from the bad one directly
    good_auc = holdout_roc_auc(services, first.champion.uri, holdout)
    assert good_auc > 0.8
    assert holdout_roc_auc(services, f"models:/{model}@{CHAMPION}", holdout) == pytest.approx(comparison.candidate)


def test_a_champion_whose_training_frame_is_gone_is_replaced_without_a_comparison(
        services: Settings, tmp_path: Path, holdout: pd.DataFrame) -> None:
    """A champion trained on a frame that was deleted since (an earlier session's state) can be neither
    monitored nor reproduced: a worse candidate replaces it, and says why, instead of being refused."""
    code = tmp_path / "logistic_score.py"
    code.write_text(MODEL_CODE)
    frame = tmp_path / "frames" / "old.parquet"
    frame.parent.mkdir()
    holdout.to_parquet(frame)
    client = MlflowClient(services.mlflow_uri)
    mlflow.set_tracking_uri(services.mlflow_uri)
    experiment = f"test-registry-stale-{uuid.uuid4().hex[:8]}"
    exp_id = client.create_experiment(experiment)
    runs = {}
    for group, coef, auc, frame_path in (("old", 2.0, 0.95, str(frame)), ("new", -2.0, 0.97, str(tmp_path / "x.pq"))):
        with mlflow.start_run(experiment_id=exp_id, run_name=group, log_system_metrics=False,
                              tags={"group": group}) as run:
            client.log_batch(run.info.run_id, params=[Param("frame_path", frame_path)],
                             metrics=[Metric("roc_auc", auc, int(time.time() * 1000), 0)])
            mlflow.pyfunc.log_model(name="model", python_model=str(code), model_config={"feature": "signal",
                                    "coef": coef}, pip_requirements=["mlflow", "numpy", "pandas"])
            runs[group] = run.info.run_id
    model = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    only = "attributes.status = 'FINISHED' and tags.group = '{}'"
    first = register_best(services, model_name=model, experiment=experiment, filter_string=only.format("old"),
                          write_card=False)
    assert first.champion.run_id == runs["old"] and not first.stale_champion
    with pytest.raises(PromotionRefused):  # frame still there: the guard compares, and the new run is worse
        register_best(services, model_name=model, experiment=experiment, holdout=holdout,
                      filter_string=only.format("new"), write_card=False)

    frame.unlink()
    result = register_best(services, model_name=model, experiment=experiment, holdout=holdout,
                           filter_string=only.format("new"), write_card=False)
    assert result.changed and not result.forced and result.comparison is None
    assert get_model_version(services, model, CHAMPION).run_id == runs["new"]
    assert str(frame) in result.stale_champion and f"version {first.champion.version}" in result.stale_champion
    assert result.stale_champion in result.summary()


def test_guard_on_recorded_metric_without_holdout(
        services: Settings, model_runs: tuple[str, dict[str, str]]) -> None:
    name, ids = model_runs
    model = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    register_best(services, model_name=model, experiment=name, write_card=False,
                  filter_string="attributes.status = 'FINISHED' and tags.group = 'main'")
    worse = "attributes.status = 'FINISHED' and tags.group = 'worse'"
    with pytest.raises(PromotionRefused, match=r"recorded roc_auc.*0\.7000.*0\.9500.*force=True"):
        register_best(services, model_name=model, experiment=name, filter_string=worse, write_card=False)
    result = register_best(services, model_name=model, experiment=name, filter_string=worse, force=True,
                           write_card=False)
    assert result.champion.run_id == ids["bad"] and result.forced and result.challenger is None


def test_missing_models_versions_and_aliases_are_not_found(
        services: Settings, model_runs: tuple[str, dict[str, str]]) -> None:
    name, _ = model_runs
    model = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    with pytest.raises(NotFound, match="no registered model"):
        get_model_version(services, model, CHAMPION)
    register_best(services, model_name=model, experiment=name, write_card=False,
                  filter_string="attributes.status = 'FINISHED' and tags.group = 'main'")
    with pytest.raises(NotFound, match="has no version 99"):
        get_model_version(services, model, 99)
    with pytest.raises(NotFound, match=r"no alias 'production'.*champion"):
        get_model_version(services, model, "production")
    with pytest.raises(NotFound):
        resolve_model_uri(services, f"models:/{model}@production")
    with pytest.raises(NotFound):
        set_alias(services, model, "staging", 99)
    with pytest.raises(InvalidInput):
        resolve_model_uri(services, "models:/no-version-here")
    with pytest.raises(NotFound, match="no logged model"):
        resolve_model_uri(services, "models:/m-" + "0" * 32)


def test_the_guard_scores_any_task_on_the_holdout(services: Settings) -> None:
    """The champion guard's holdout metric per task: RMSE for regression, accuracy of the most probable class
    for multiclass, computed here from the models' own predictions."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from workbench.registry.promote import holdout_score

    rng = np.random.default_rng(11)
    x = pd.DataFrame({"a b": rng.normal(size=120), "c.d": rng.normal(size=120)})
    y = 2.0 * x["a b"] - x["c.d"] + rng.normal(scale=0.3, size=120)
    mlflow.set_tracking_uri(services.mlflow_uri)
    mlflow.set_experiment("workbench-tests-holdout")
    reg = LinearRegression().fit(x.iloc[:80], y.iloc[:80])
    with mlflow.start_run():
        uri = mlflow.sklearn.log_model(reg, name="model", input_example=x.head(2)).model_uri
    holdout = x.iloc[80:].assign(y=y.iloc[80:].to_numpy())
    expected = float(np.sqrt(np.mean((reg.predict(x.iloc[80:]) - y.iloc[80:].to_numpy()) ** 2)))
    assert holdout_score(services, uri, holdout, "y", "regression") == pytest.approx(expected, rel=1e-9)

    classes = np.where(y > 0.5, "high", np.where(y < -0.5, "low", "mid"))
    clf = LogisticRegression(max_iter=500).fit(x.iloc[:80], classes[:80])

    class Proba(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return pd.DataFrame(clf.predict_proba(model_input), columns=[f"proba_{c}" for c in clf.classes_])

    with mlflow.start_run():
        muri = mlflow.pyfunc.log_model(name="model", python_model=Proba(), input_example=x.head(2)).model_uri
    labelled = x.iloc[80:].assign(kind=classes[80:])
    accuracy = float(np.mean(clf.predict(x.iloc[80:]) == classes[80:]))
    assert holdout_score(services, muri, labelled, "kind", "multiclass") == pytest.approx(accuracy)
    with pytest.raises(InvalidInput, match="task must be one of"):
        holdout_score(services, uri, holdout, "y", "ranking")
