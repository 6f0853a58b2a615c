from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.lineage import latest_record, record_stage, records, trace


def test_record_and_read_back(tmp_path: Path) -> None:
    s = Settings(project_dir=tmp_path)
    rec = record_stage(s, "data", {"dataset_version": "sha256:abc"}, parameters={"n_rows": 10},
                       notebook="01_data.ipynb", pipeline_run_id="r1")
    assert latest_record(s, "data").record_id == rec.record_id
    assert latest_record(s, "data", "r1").outputs == {"dataset_version": "sha256:abc"}
    assert records(s, "data")[0].parameters == {"n_rows": 10}
    with pytest.raises(NotFound, match="never recorded"):
        latest_record(s, "train")
    with pytest.raises(NotFound, match="batch run r2"):
        latest_record(s, "data", "r2")


def test_trace_walks_back_through_matching_outputs(tmp_path: Path) -> None:
    s = Settings(project_dir=tmp_path)
    record_stage(s, "data", {"dataset_version": "v-old"})
    data = record_stage(s, "data", {"dataset_version": "v1"})
    record_stage(s, "data", {"dataset_version": "v2"})  # newer, but not what features consumed
    feats = record_stage(s, "features", {"feature_service": "fs", "training_frame_version": "f1"},
                         inputs={"dataset_version": "v1"})
    train = record_stage(s, "train", {"run_id": "abc"}, inputs={"training_frame_version": "f1"})
    chain = trace(s, train)
    assert [r.record_id for r in chain] == [train.record_id, feats.record_id, data.record_id]


def test_bad_stage_and_unserialisable_outputs(tmp_path: Path) -> None:
    s = Settings(project_dir=tmp_path)
    with pytest.raises(InvalidInput, match="unknown stage"):
        record_stage(s, "deploy-now", {})
    with pytest.raises(InvalidInput, match="JSON"):
        record_stage(s, "data", {"y": {1, 2}})


def test_git_commit_recorded_inside_a_repository(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    rec = record_stage(Settings(project_dir=root, state_dir=tmp_path / "state"), "data", {"a": 1})
    assert len(rec.git_commit) == 40


def test_llm_records_never_shadow_the_tabular_ones(tmp_path: Path) -> None:
    s = Settings(project_dir=tmp_path)
    tabular = record_stage(s, "registry", {"model_uri": "models:/fraud/3"}, pipeline_run_id="r1")
    llm = record_stage(s, "registry", {"model_uri": "models:/smollm2/1"}, pipeline_run_id="r1", path="llm")
    assert latest_record(s, "registry").record_id == tabular.record_id  # the LLM's is newer, and elsewhere
    assert latest_record(s, "registry", path="llm").record_id == llm.record_id
    assert latest_record(s, "registry", "r1").outputs["model_uri"] == "models:/fraud/3"
    assert latest_record(s, "registry", "r1", path="llm").outputs["model_uri"] == "models:/smollm2/1"
    assert [r.record_id for r in records(s, "registry")] == [tabular.record_id]
    deploy = record_stage(s, "deploy", {"endpoint": "e"}, inputs={"model_uri": "models:/smollm2/1"}, path="llm")
    assert [r.record_id for r in trace(s, deploy)] == [deploy.record_id, llm.record_id]
    with pytest.raises(NotFound, match="on the llm path"):
        latest_record(s, "monitor", path="llm")
    with pytest.raises(InvalidInput, match="unknown lineage path"):
        record_stage(s, "data", {}, path="vision")


def test_two_lifecycles_side_by_side_each_trace_to_their_own_frame_and_dataset(tmp_path: Path) -> None:
    """The old trace linked on *any* shared key: a model trained on frame A traced to frame B because both
    frames were built for the same feature service, and B's record was newer."""
    s = Settings(project_dir=tmp_path)
    data_a = record_stage(s, "data", {"dataset_version": "sha256:aaa", "dataset": "cards"})
    data_b = record_stage(s, "data", {"dataset_version": "sha256:bbb", "dataset": "cards"})
    feats_a = record_stage(s, "features", {"feature_service": "fs", "training_frame_version": "fa",
                                           "training_frame_path": "/f/a.parquet"},
                           inputs={"dataset_version": "sha256:aaa", "dataset": "cards"})
    feats_b = record_stage(s, "features", {"feature_service": "fs", "training_frame_version": "fb",
                                           "training_frame_path": "/f/b.parquet"},
                           inputs={"dataset_version": "sha256:bbb", "dataset": "cards"})
    train_a = record_stage(s, "train", {"run_id": "run-a", "experiment": "e"},
                           inputs={"training_frame_version": "fa", "feature_service": "fs"})
    train_b = record_stage(s, "train", {"run_id": "run-b", "experiment": "e"},
                           inputs={"training_frame_version": "fb", "feature_service": "fs"})
    reg_a = record_stage(s, "registry", {"model_uri": "models:/m/1"}, inputs={"run_id": "run-a", "experiment": "e"})
    assert feats_a.parents == [data_a.record_id] and train_a.parents == [feats_a.record_id]
    assert [r.record_id for r in trace(s, reg_a)] == [reg_a.record_id, train_a.record_id, feats_a.record_id,
                                                      data_a.record_id]
    assert [r.record_id for r in trace(s, train_b)] == [train_b.record_id, feats_b.record_id, data_b.record_id]


def test_explicit_parents_win_and_names_alone_link_nothing(tmp_path: Path) -> None:
    s = Settings(project_dir=tmp_path)
    data_1 = record_stage(s, "data", {"dataset_version": "v1", "dataset": "cards"})
    record_stage(s, "data", {"dataset_version": "v2", "dataset": "cards"})
    only_names = record_stage(s, "features", {"feature_service": "fs"}, inputs={"dataset": "cards"})
    assert only_names.parents == [] and trace(s, only_names) == [only_names]
    explicit = record_stage(s, "features", {"feature_service": "fs"}, inputs={"dataset": "cards"},
                            parents=[data_1])
    assert [r.record_id for r in trace(s, explicit)] == [explicit.record_id, data_1.record_id]
