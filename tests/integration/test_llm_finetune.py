"""A brief fine-tune of the tiny GPT-2 as a Ray job (CPU), its losses in MLflow, registered from the same run."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import InvalidInput
from workbench.llm import finetune_llm, log_llm, make_tiny_gpt2, read_model_folder
from workbench.registry import get_model_version

pytestmark = pytest.mark.integration


def test_finetune_job_lowers_the_loss_and_registers_the_result(services: Settings, tmp_path: Path) -> None:
    base = make_tiny_gpt2(tmp_path / "base")
    result = finetune_llm(services, base.path, tmp_path / "tuned", steps=6, learning_rate=1e-2, batch_size=4,
                          experiment="workbench-llm-tests")
    assert len(result.losses) == 6 and result.device == "cpu"
    assert result.losses[-1] < result.losses[0], result.losses
    tuned = read_model_folder(result.out_dir)
    assert tuned.name == "tiny-gpt2-ft" and tuned.files_sha256 != base.files_sha256
    logged = log_llm(services, tuned, model_name="tiny-gpt2-finetuned-test", run_id=result.run_id,
                     alias="challenger")
    assert logged.run_id == result.run_id
    version = get_model_version(services, "tiny-gpt2-finetuned-test", "challenger")
    assert version.run_id == result.run_id and version.version == logged.version.version
    with pytest.raises(InvalidInput, match="config.json"):
        finetune_llm(services, tmp_path, tmp_path / "x")
