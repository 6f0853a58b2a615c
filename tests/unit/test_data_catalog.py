"""The dataset catalog: content hashing, idempotent versions, refusing bad data, atomic index writes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from workbench.config import Settings
from workbench.data import catalog as catalog_module
from workbench.data.catalog import DatasetCatalog, DatasetVersion, content_hash
from workbench.data.generator import generate_transactions, write_transactions
from workbench.data.schema import TRANSACTIONS_SCHEMA
from workbench.errors import InvalidInput, NotFound, ServiceUnavailable, ValidationFailed, WorkbenchError


@pytest.fixture()
def catalog(tmp_path: Path) -> DatasetCatalog:
    return DatasetCatalog(Settings(project_dir=tmp_path / "project", mlflow_port=1))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_transactions(1_500, seed=3)


@pytest.fixture()
def parts(tmp_path: Path, frame: pd.DataFrame) -> Path:
    return write_transactions(frame, tmp_path / "parts", rows_per_file=500)


def flip_one_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_same_bytes_same_hash_one_byte_changed_other_hash(tmp_path: Path, parts: Path) -> None:
    digest, n_bytes = content_hash(parts)
    assert len(digest) == 64 and n_bytes == sum(p.stat().st_size for p in parts.iterdir())
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(parts, copy)
    assert content_hash(copy)[0] == digest  # the location does not matter, the bytes do
    (copy / "_SUCCESS").write_text("")  # markers are not data
    assert content_hash(copy)[0] == digest
    csv = tmp_path / "a.csv"
    csv.write_text("x,y\n1,2\n3,4\n")
    before = content_hash(csv)[0]
    csv.write_text("x,y\n1,2\n3,5\n")
    assert content_hash(csv)[0] != before


def test_hash_covers_files_in_sorted_relative_path_order(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    (folder / "b").mkdir(parents=True)
    (folder / "a.csv").write_text("x\n1\n")
    (folder / "b" / "c.csv").write_text("x\n2\n")
    import hashlib
    expected = hashlib.sha256(b"x\n1\n" + b"x\n2\n").hexdigest()
    assert content_hash(folder)[0] == expected


def test_register_is_idempotent_and_new_content_is_a_new_version(catalog: DatasetCatalog, parts: Path) -> None:
    v1 = catalog.register("tx", parts, description="first")
    assert v1.version.startswith("sha256:") and len(v1.version) == len("sha256:") + 16
    assert v1.digest.startswith(v1.version.removeprefix("sha256:"))
    assert (v1.n_rows, v1.format, v1.files) == (1_500, "parquet",
                                               ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"])
    assert [c["name"] for c in v1.schema["columns"]][:3] == ["transaction_id", "user_id", "merchant_id"]
    assert v1.valid is None
    assert catalog.register("tx", parts) == v1
    assert len(catalog.versions("tx")) == 1

    write_transactions(generate_transactions(1_500, seed=4), parts, rows_per_file=500, overwrite=True)
    v2 = catalog.register("tx", parts)
    assert v2.version != v1.version
    assert [v.version for v in catalog.versions("tx")] == [v1.version, v2.version]
    assert catalog.get("tx") == v2
    assert catalog.get("tx", v1.version) == v1
    assert catalog.get("tx", v1.digest[:10]) == v1
    assert [v.name for v in catalog.list()] == ["tx"] and catalog.names() == ["tx"]


def test_one_changed_byte_is_a_new_version(catalog: DatasetCatalog, tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text("id,amount\n1,10.5\n2,20.25\n")
    v1 = catalog.register("small", path)
    flip_one_byte(path, offset=len("id,amount\n1,10."))  # 10.5 -> 10.4
    assert path.read_text() == "id,amount\n1,10.4\n2,20.25\n"
    v2 = catalog.register("small", path)
    assert v2.version != v1.version and v2.n_rows == 2
    assert catalog.get("small") == v2


def test_unknown_names_and_versions(catalog: DatasetCatalog, parts: Path) -> None:
    with pytest.raises(NotFound):
        catalog.get("nothing")
    catalog.register("tx", parts)
    with pytest.raises(NotFound):
        catalog.get("tx", "sha256:0000000000000000")
    with pytest.raises(InvalidInput):
        catalog.register("bad name!", parts)


def test_schema_failures_refuse_registration_unless_allowed(catalog: DatasetCatalog, tmp_path: Path,
                                                             frame: pd.DataFrame) -> None:
    bad = frame.copy()
    bad.loc[3, "amount"] = -2.0
    path = write_transactions(bad, tmp_path / "bad.parquet")
    with pytest.raises(ValidationFailed, match="amount") as err:
        catalog.register("tx", path, schema=TRANSACTIONS_SCHEMA)
    assert err.value.report is not None and not err.value.report.ok
    with pytest.raises(NotFound):
        catalog.versions("tx")  # nothing was recorded
    v = catalog.register("tx", path, schema=TRANSACTIONS_SCHEMA, allow_invalid=True)
    assert v.valid is False and v.schema == TRANSACTIONS_SCHEMA.to_dict()
    good = catalog.register("good", write_transactions(frame, tmp_path / "good.parquet"),
                            schema=TRANSACTIONS_SCHEMA.to_dict())
    assert good.valid is True


def test_csv_is_registered(catalog: DatasetCatalog, tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "tx.csv"
    frame.to_csv(path, index=False)
    v = catalog.register("csv", path)
    assert (v.format, v.n_rows, v.files) == ("csv", 1_500, ["tx.csv"])


def test_broken_inputs_are_named(catalog: DatasetCatalog, tmp_path: Path, parts: Path) -> None:
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1" + b"\x00" * 64)
    with pytest.raises(InvalidInput, match="corrupt.parquet"):
        catalog.register("x", corrupt)
    truncated = tmp_path / "trunc" / "part.parquet"
    truncated.parent.mkdir()
    truncated.write_bytes((parts / "part-00000.parquet").read_bytes()[:-20])
    with pytest.raises(InvalidInput, match="part.parquet"):
        catalog.register("x", truncated.parent)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="no Parquet or CSV"):
        catalog.register("x", tmp_path / "empty")
    with pytest.raises(NotFound, match="missing"):
        catalog.register("x", tmp_path / "missing")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(InvalidInput, match="data.json"):
        catalog.register("x", tmp_path / "data.json")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InvalidInput, match="empty.csv"):
        catalog.register("x", tmp_path / "empty.csv")
    mixed = tmp_path / "mixed"
    shutil.copytree(parts, mixed)
    (mixed / "extra.csv").write_text("a\n1\n")
    with pytest.raises(InvalidInput, match="mixes"):
        catalog.register("x", mixed)
    other = tmp_path / "other_schema"
    shutil.copytree(parts, other)
    pd.DataFrame({"a": [1]}).to_parquet(other / "part-00009.parquet")
    with pytest.raises(InvalidInput, match="part-00009.parquet"):
        catalog.register("x", other)
    with pytest.raises(NotFound):
        catalog.versions("x")


def test_index_is_json_and_survives_a_crash_mid_write(catalog: DatasetCatalog, parts: Path,
                                                      tmp_path: Path, frame: pd.DataFrame,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = catalog.register("tx", parts)
    before = catalog.index_path.read_text()
    assert json.loads(before)["datasets"]["tx"][0]["version"] == v1.version

    def crash(src: str, dst: str) -> None:
        raise OSError("disk pulled out")

    monkeypatch.setattr(catalog_module.os, "replace", crash)
    with pytest.raises(OSError):
        catalog.register("tx2", write_transactions(frame.iloc[:10], tmp_path / "small.parquet"))
    monkeypatch.setattr(catalog_module.os, "replace", os.replace)
    assert catalog.index_path.read_text() == before  # the old index is intact
    assert [p.name for p in catalog.root.iterdir() if p.name.endswith(".tmp")] == []  # no litter
    assert DatasetCatalog(catalog.settings).get("tx") == v1


def test_a_corrupt_index_is_reported_not_overwritten(catalog: DatasetCatalog, parts: Path) -> None:
    catalog.root.mkdir(parents=True)
    catalog.index_path.write_text("{not json")
    with pytest.raises(WorkbenchError, match="catalog.json"):
        catalog.register("tx", parts)
    assert catalog.index_path.read_text() == "{not json"


def test_version_record_round_trips(catalog: DatasetCatalog, parts: Path) -> None:
    v = catalog.register("tx", parts, schema=TRANSACTIONS_SCHEMA)
    assert DatasetVersion.from_dict(json.loads(json.dumps(v.to_dict()))) == v
    with pytest.raises(InvalidInput):
        DatasetVersion.from_dict({"name": "x"})


def test_snapshot_and_verify(catalog: DatasetCatalog, parts: Path) -> None:
    plain = catalog.register("tx", parts)
    snap = catalog.register("tx-snap", parts, snapshot=True)
    assert snap.version == plain.version and Path(snap.path).is_relative_to(catalog.root)
    assert catalog.verify(plain) and catalog.verify(snap)
    write_transactions(generate_transactions(100, seed=8), parts, overwrite=True)
    assert not catalog.verify(plain)  # the user's files changed under the version
    assert catalog.verify(snap)  # the snapshot did not


def test_log_to_mlflow_without_a_server_says_so(catalog: DatasetCatalog, parts: Path) -> None:
    v = catalog.register("tx", parts)
    with pytest.raises(ServiceUnavailable, match="workbench up"):
        catalog.log_to_mlflow(v, run_id="0" * 32)
