"""reproduce(): train a small real Ray job, register it, then reproduce it from its recorded spec.

Two short training jobs on the session's Ray head: about a minute each on two idle cores (the whole
test took 12 minutes on a heavily loaded machine).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.registry import recorded_spec, register_best, reproduce
from workbench.training import TrainingSpec, submit_training_job
from workbench.training.synthetic import SYNTHETIC_FEATURES, synthetic_training_frame

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


def test_reproduce_trains_again_from_the_recorded_spec_and_compares(services: Settings, tmp_path: Path) -> None:
    frame = tmp_path / "frame.parquet"
    synthetic_training_frame(3000, seed=11).to_parquet(frame)
    experiment = f"test-registry-reproduce-{uuid.uuid4().hex[:8]}"
    spec = TrainingSpec(frame_path=str(frame), feature_columns=list(SYNTHETIC_FEATURES), epochs=2,
                        hidden_sizes=(8,), batch_size=128, lr=5e-3, seed=5, cpus_per_worker=0.5,
                        experiment=experiment, run_name="original", checkpoint_dir=str(tmp_path / "checkpoints"),
                        dataset_version="synthetic-v2", feature_service="fraud_v2")
    job = submit_training_job(services, spec)
    assert job.wait(timeout_s=600, progress=False) == "SUCCEEDED"
    assert recorded_spec(services, job.run_id).seed == 5

    model = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    registered = register_best(services, model_name=model, experiment=experiment, write_card=False)
    assert registered.champion.run_id == job.run_id

    result = reproduce(services, f"models:/{model}@champion", timeout_s=600, progress=False)
    assert result.original_run_id == job.run_id and result.run_id != job.run_id
    assert result.status == "SUCCEEDED"
    assert result.dataset_version == "synthetic-v2" and result.feature_service == "fraud_v2"
    table = result.comparison.set_index("metric")
    assert {"roc_auc", "pr_auc", "val_loss"} <= set(table.index)
    assert table["original"].notna().all() and table["reproduced"].notna().all()
    assert result.max_abs_diff < 0.05, result.comparison  # same seed, data and spec: (nearly) the same numbers
    print(result.summary())
    print(result.comparison.to_string())

    with pytest.raises(InvalidInput):
        reproduce(services, "not-a-model-uri")
    with pytest.raises(NotFound):
        reproduce(services, f"models:/{model}@nobody")
