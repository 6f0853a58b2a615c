"""A catalog of dataset versions identified by the hash of their content.

Lineage ("this model was trained on exactly these bytes") needs a dataset identity that cannot drift:
the version id is the sha256 of the files' bytes, so registering the same data twice gives the same
version and changing one byte gives a new one. The index is one JSON file under
``settings.datasets_dir``, rewritten atomically (temp file + ``os.replace``) under a file lock, so a
crash or a second process never leaves it half-written. The data itself stays where the user keeps it
(``snapshot=True`` copies it into the catalog when it must not change under the version).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.config import Settings
from workbench.data import _source
from workbench.data.schema import Schema, validate
from workbench.data.task import Task, check_task
from workbench.errors import InvalidInput, NotFound, ServiceUnavailable, ValidationFailed, WorkbenchError

INDEX_NAME = "catalog.json"
_INDEX_FORMAT = 1
_CHUNK = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HASH_TAG = "workbench.dataset.hash"


@dataclass(frozen=True)
class DatasetVersion:
    """One registered version: where its files are, what is in them, and the hash naming it."""

    name: str
    version: str  # "sha256:" + the first 16 hex digits of the content hash
    path: str
    format: str  # parquet | csv
    n_rows: int
    n_bytes: int
    schema: dict[str, Any]  # the declared schema if one was given, else the inferred one
    created_at: str  # ISO 8601, UTC
    digest: str = ""  # the full sha256 hex digest
    files: list[str] = field(default_factory=list)  # relative paths, in hashing order
    description: str = ""
    valid: bool | None = None  # None when no schema was declared
    task: dict[str, Any] | None = None  # the Task it supports (workbench.data.task), checked against the data

    @property
    def task_spec(self) -> Task | None:
        """The declared :class:`Task`, or None."""
        return Task.from_dict(self.task) if self.task else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetVersion:
        known = {f for f in cls.__dataclass_fields__}
        missing = {"name", "version", "path", "format", "n_rows", "n_bytes", "schema", "created_at"} - set(data)
        if missing:
            raise InvalidInput(f"dataset version record lacks {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def content_hash(source: _source.Source) -> tuple[str, int]:
    """sha256 over the data files' bytes in sorted relative-path order, streamed; returns (hex, bytes)."""
    data = _source.resolve(source)
    h = hashlib.sha256()
    total = 0
    for path in data.files:
        try:
            with _source.open_binary(path) as fh:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
                    total += len(chunk)
        except OSError as exc:
            raise InvalidInput(f"could not read {path}: {exc.strerror or exc}") from exc
    return h.hexdigest(), total


def version_id(digest: str) -> str:
    return f"sha256:{digest[:16]}"


class DatasetCatalog:
    """Register, look up and log dataset versions; the index lives in ``settings.datasets_dir``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.datasets_dir)
        self.index_path = self.root / INDEX_NAME
        if settings.storage == "s3":  # versions kept in the bucket are read by their s3:// URIs
            from workbench.storage import activate

            activate(settings)

    # Index I/O ---------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".catalog.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.index_path.read_text()
        except FileNotFoundError:
            return {"format": _INDEX_FORMAT, "datasets": {}}
        try:
            index = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"the dataset catalog {self.index_path} is not valid JSON ({exc}); restore "
                                 "it from a backup or move it away to start an empty catalog") from exc
        if not isinstance(index, dict) or not isinstance(index.get("datasets"), dict):
            raise WorkbenchError(f"the dataset catalog {self.index_path} has an unexpected layout")
        return index

    def _save(self, index: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".catalog-", suffix=".json.tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(index, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.index_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # Registering -------------------------------------------------------------------------------
    def register(
        self,
        name: str,
        path: str | Path,
        schema: Schema | Mapping[str, Any] | None = None,
        description: str = "",
        allow_invalid: bool = False,
        snapshot: bool = False,
        task: Task | Mapping[str, Any] | None = None,
    ) -> DatasetVersion:
        """Register a Parquet/CSV file or folder as a version of ``name`` (idempotent per content).

        With a ``schema``, the data is validated first and a failing version is refused with
        ValidationFailed unless ``allow_invalid=True`` (then it is recorded with ``valid=False``).
        With a ``task`` (label, kind, keys, timestamp), it is checked against the data first (a missing,
        constant or wrongly typed label is an InvalidInput naming the column) and stored with the version;
        registering the same content with another task updates the version's task.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(f"dataset name {name!r} must be 1-128 letters, digits, '.', '_' or '-', "
                               "starting with a letter or digit")
        data = _source.resolve(path)
        n_rows, inferred = _inspect(data)
        digest, n_bytes = content_hash(data.root)
        vid = version_id(digest)

        checked = None if task is None else self._check_task(task, data, inferred)
        existing = self._find(name, digest)
        if existing is not None:
            if checked is None or existing.task == checked.to_dict():
                return existing
            return self._set_task(name, digest, checked)

        declared = None if schema is None else (schema if isinstance(schema, Schema) else Schema.from_dict(schema))
        valid: bool | None = None
        if declared is not None:
            report = validate(data, declared)
            valid = report.ok
            if not report.ok and not allow_invalid:
                raise ValidationFailed(f"dataset {name!r} was not registered:\n{report.summary()}", report=report)

        stored = data.root
        if snapshot:
            stored = self._snapshot(name, digest, data)
        record = DatasetVersion(
            name=name, version=vid, path=str(stored), format=data.format, n_rows=n_rows, n_bytes=n_bytes,
            schema=(declared or inferred).to_dict(),
            created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"),
            digest=digest, files=data.relative(), description=description, valid=valid,
            task=checked.to_dict() if checked else None)
        with self._locked():
            index = self._load()
            versions = index["datasets"].setdefault(name, [])
            for v in versions:  # registered meanwhile by another process
                if v.get("digest") == digest:
                    return DatasetVersion.from_dict(v)
            versions.append(record.to_dict())
            self._save(index)
        return record

    def _check_task(self, task: Task | Mapping[str, Any], data: _source.DataFiles, inferred: Schema) -> Task:
        spec = task if isinstance(task, Task) else Task.from_dict(task)
        columns = [c.name for c in inferred.columns]
        con = _source.connect()
        try:
            with _source.errors_as_invalid_input(data, "check the task of"):
                return check_task(spec, _source.scan_sql(data), columns, con, _source.params(data))
        finally:
            con.close()

    def _set_task(self, name: str, digest: str, task: Task) -> DatasetVersion:
        with self._locked():
            index = self._load()
            for v in index["datasets"].get(name, []):
                if v.get("digest") == digest:
                    v["task"] = task.to_dict()
                    self._save(index)
                    return DatasetVersion.from_dict(v)
        raise NotFound(f"dataset {name!r} lost its version {version_id(digest)} while its task was set")

    def _find(self, name: str, digest: str) -> DatasetVersion | None:
        for v in self._load()["datasets"].get(name, []):
            if v.get("digest") == digest:
                return DatasetVersion.from_dict(v)
        return None

    def _snapshot(self, name: str, digest: str, data: _source.DataFiles) -> str:
        """A copy of the files that later edits of the source cannot change: under the catalog's folder, or
        in the bucket with ``storage = "s3"``."""
        if self.settings.storage == "s3":
            from workbench.storage import copy_into_bucket

            target = f"{self.settings.object_store_uri}/datasets/{name}/{digest[:16]}"
            copy_into_bucket(self.settings, list(zip(data.files, data.relative(), strict=True)), target)
            return target + ("/" + data.relative()[0] if data.is_file else "")
        if data.remote:
            raise InvalidInput(f"{data.root} is in object storage: a snapshot of it needs storage = 's3'")
        local = self.root / "snapshots" / name / digest[:16]
        if local.exists():
            return str(local / data.relative()[0] if data.is_file else local)
        tmp = Path(tempfile.mkdtemp(prefix=".snap-", dir=self.root))
        try:
            for src, rel in zip(data.files, data.relative(), strict=True):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, tmp / rel)
            local.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, local)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return str(local / data.relative()[0] if data.is_file else local)

    # Looking up --------------------------------------------------------------------------------
    def versions(self, name: str) -> list[DatasetVersion]:
        """All versions of a dataset, oldest first."""
        records = self._load()["datasets"].get(name)
        if not records:
            raise NotFound(f"no dataset named {name!r} in the catalog; known: {self.names()}")
        return [DatasetVersion.from_dict(r) for r in records]

    def get(self, name: str, version: str | None = None) -> DatasetVersion:
        """A version by id ("sha256:…", or a unique prefix of the hex digest); the latest by default."""
        versions = self.versions(name)
        if version is None or version == "latest":
            return versions[-1]
        wanted = version.removeprefix("sha256:")
        matches = [v for v in versions if v.version == version or (len(wanted) >= 6 and v.digest.startswith(wanted))]
        if len(matches) != 1:
            known = [v.version for v in versions]
            raise NotFound(f"dataset {name!r} has no single version {version!r}; versions: {known}")
        return matches[0]

    def names(self) -> list[str]:
        return sorted(self._load()["datasets"])

    def list(self) -> list[DatasetVersion]:
        """The latest version of every dataset, by name."""
        index = self._load()["datasets"]
        return [DatasetVersion.from_dict(index[n][-1]) for n in sorted(index) if index[n]]

    def verify(self, version: DatasetVersion) -> bool:
        """Whether the files at the version's path still hash to the version (data is not copied)."""
        try:
            digest, _ = content_hash(version.path)
        except (NotFound, InvalidInput):
            return False
        return digest == version.digest

    # MLflow ------------------------------------------------------------------------------------
    def log_to_mlflow(self, version: DatasetVersion, run_id: str | None = None,
                      context: str = "training") -> str:
        """Log the version as a dataset input of an MLflow run (the active one by default).

        The MLflow dataset's digest is the version id, its schema the version's columns, its profile
        the row and byte counts; the input and the run are tagged with the hash. Returns the run id.
        """
        uri = self.settings.mlflow_uri
        _check_mlflow(uri, self.settings.request_timeout_s)  # before the slow mlflow import

        import mlflow
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.exceptions import MlflowException

        if run_id is None:
            active = mlflow.active_run()
            if active is None:
                raise InvalidInput("no active MLflow run: pass run_id, or call inside `with mlflow.start_run()`")
            run_id = active.info.run_id
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are local paths
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(version.path)
        meta = MetaDataset(source=source, name=version.name,  # type: ignore[abstract]
                           digest=version.version, schema=_mlflow_schema(version.schema))
        config = meta.to_dict()
        profile = {"num_rows": version.n_rows, "num_bytes": version.n_bytes, "num_files": len(version.files),
                   "format": version.format, "sha256": version.digest}
        entity = Dataset(name=config["name"], digest=config["digest"], source_type=config["source_type"],
                         source=config["source"], schema=config.get("schema"), profile=json.dumps(profile))
        tags = [InputTag("mlflow.data.context", context), InputTag(HASH_TAG, version.version)]
        client = mlflow.MlflowClient(tracking_uri=uri)
        try:
            client.log_inputs(run_id, datasets=[DatasetInput(entity, tags)])
            client.set_tag(run_id, f"{HASH_TAG}.{version.name}", version.version)
        except MlflowException as exc:
            raise NotFound(f"could not log dataset {version.name} {version.version} to run {run_id} at {uri}: "
                           f"{exc.message}") from exc
        return run_id


def _check_mlflow(uri: str, timeout_s: float) -> None:
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout_s).raise_for_status()
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"MLflow at {uri} is not answering ({type(exc).__name__}): run `workbench up`"
                                 ) from exc


def _mlflow_schema(schema: Mapping[str, Any]) -> Any:
    from mlflow.types import ColSpec, DataType
    from mlflow.types import Schema as MlflowSchema

    kinds = {"int": DataType.long, "float": DataType.double, "string": DataType.string,
             "bool": DataType.boolean, "timestamp": DataType.datetime}
    cols: list[Any] = [ColSpec(kinds[c["dtype"]], c["name"], required=not c.get("nullable", True))
                       for c in schema.get("columns", []) if c.get("dtype") in kinds]
    return MlflowSchema(cols) if cols else None


def _inspect(data: _source.DataFiles) -> tuple[int, Schema]:
    """Row count and inferred schema, checking every file is readable and all files agree."""
    for path in data.files:
        if _source.stat(path)[0] == 0:
            raise InvalidInput(f"{path} is empty (0 bytes)")
    if data.format == "parquet":
        n_rows, first = 0, None
        for path in data.files:
            try:
                with _source.open_binary(path) as fh:
                    meta = pq.ParquetFile(fh)
                    arrow_schema = meta.schema_arrow
                    n_rows += meta.metadata.num_rows
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise InvalidInput(f"{path} is not a readable Parquet file: {exc}") from exc
            if first is None:
                first = (path, arrow_schema)
            elif not arrow_schema.remove_metadata().equals(first[1].remove_metadata()):
                raise InvalidInput(f"{path} has columns {arrow_schema.names} of other types than {first[0]} "
                                   f"({first[1].names}); all files of a dataset need one schema")
        return n_rows, Schema.infer(data)
    con = _source.connect()
    try:
        n_rows = 0
        for path in data.files:
            one = _source.DataFiles(path, (path,), "csv")
            try:
                row = con.execute(f"SELECT count(*) FROM {_source.scan_sql(one)}", _source.params(one)).fetchone()
            except duckdb.Error as exc:
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InvalidInput(f"{path} is not a readable CSV file: {detail}") from exc
            n_rows += int(row[0]) if row else 0
    finally:
        con.close()
    return n_rows, Schema.infer(data)
