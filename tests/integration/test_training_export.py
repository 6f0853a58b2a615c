"""Logging into a run the workbench created, from a process where the user chose another experiment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.training.export import resumed_run

pytestmark = pytest.mark.integration


@pytest.fixture()
def users_experiment(services: Settings) -> Iterator[str]:
    """What a notebook does first: ``mlflow.set_experiment`` to an experiment of its own."""
    before = os.environ.get("MLFLOW_EXPERIMENT_ID")
    mlflow.set_tracking_uri(services.mlflow_uri)
    chosen = mlflow.set_experiment(f"users-own-{uuid.uuid4().hex[:8]}").experiment_id
    yield chosen
    if before is None:
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    else:
        os.environ["MLFLOW_EXPERIMENT_ID"] = before


def test_a_run_of_another_experiment_resumes_and_the_users_choice_stays(services: Settings,
                                                                       users_experiment: str) -> None:
    client = MlflowClient(services.mlflow_uri)
    workbench_exp = client.create_experiment(f"workbench-runs-{uuid.uuid4().hex[:8]}")
    run_id = client.create_run(workbench_exp).info.run_id
    assert workbench_exp != users_experiment

    with resumed_run(services.mlflow_uri, run_id) as run:  # plain start_run(run_id=...) raises here
        assert run.info.run_id == run_id
        mlflow.log_param("logged_by", "resumed_run")
    assert client.get_run(run_id).data.params == {"logged_by": "resumed_run"}
    assert client.get_run(run_id).info.experiment_id == workbench_exp

    with mlflow.start_run() as next_run:  # the user's next run goes where the user said
        pass
    assert next_run.info.experiment_id == users_experiment
    assert os.environ["MLFLOW_EXPERIMENT_ID"] == users_experiment
