"""Where a dataset's files are and how DuckDB reads them; shared by validation, paging and profiling.

A *source* is a Parquet or CSV file, a folder of them, or anything with a ``path`` attribute (such as a
:class:`~workbench.data.catalog.DatasetVersion`). Resolving it once, with clear errors, keeps every
entry point from handing DuckDB a path it would fail on with a less helpful message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import duckdb

from workbench.errors import InvalidInput, NotFound

Format = Literal["parquet", "csv"]
_EXTENSIONS: dict[str, Format] = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
VIEW = "src"  # the name every query uses for the dataset
DEFAULT_MEMORY_LIMIT = "2GB"
_DB: duckdb.DuckDBPyConnection | None = None
_DB_PID = -1
_DB_LOCK = threading.Lock()


class HasPath(Protocol):
    @property
    def path(self) -> str | Path: ...


S3 = "s3://"
_OBJECT_STORE: list[Any] = []  # the pyarrow S3 filesystem of this process (workbench.storage.activate sets it)


def use_object_store(filesystem: Any) -> None:
    """Read and write ``s3://`` locations through ``filesystem`` (a pyarrow ``S3FileSystem``) in this process:
    DuckDB reaches it as an fsspec filesystem (its own httpfs extension would be downloaded at run time)."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    class _S3(ArrowFSWrapper):  # type: ignore[misc]
        protocol = ("s3",)

        def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
            if mode == "rb":
                return PositionalFile(self.fs.open_input_file(self._strip_protocol(path)))
            return super()._open(path, mode, *args, **kwargs)

    _OBJECT_STORE[:] = [filesystem, _S3(filesystem)]
    with _DB_LOCK:
        if _DB is not None and _DB_PID == os.getpid():
            _register(_DB)


class PositionalFile:
    """A read-only file over a pyarrow random-access file whose position is kept per thread.

    DuckDB reads a Python filesystem's file as ``seek(offset)`` then ``read(n)``, and its threads share one
    file object per file: with one position for all, two threads reading row groups of the same object
    interleave and get each other's bytes (seen as "TProtocolException: Invalid data" on sorted pages). Each
    read here is a positional ``read_at``, from the calling thread's own position.
    """

    def __init__(self, native: Any) -> None:
        self._file = native
        self._size = int(native.size())
        self._local = threading.local()
        self.closed = False

    @property
    def size(self) -> int:
        return self._size

    def tell(self) -> int:
        return int(getattr(self._local, "pos", 0))

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.tell(), 2: self._size}[whence]
        self._local.pos = max(0, base + offset)
        return self._local.pos

    def read(self, n: int = -1) -> bytes:
        pos = self.tell()
        if n is None or n < 0:
            n = self._size - pos
        data = self._file.read_at(max(0, min(n, self._size - pos)), pos) if pos < self._size else b""
        self._local.pos = pos + len(data)
        return bytes(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            self.closed = True

    def __enter__(self) -> PositionalFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _register(db: duckdb.DuckDBPyConnection) -> None:
    if _OBJECT_STORE:
        if db.filesystem_is_registered("s3"):
            db.unregister_filesystem("s3")
        db.register_filesystem(_OBJECT_STORE[1])


def object_store() -> Any:
    """The pyarrow filesystem for ``s3://`` locations; InvalidInput when this process has none."""
    if not _OBJECT_STORE:
        raise InvalidInput("s3:// data needs the object store of storage = 's3': open it through "
                           "DatasetCatalog(settings) (or workbench.storage.activate(settings)) first")
    return _OBJECT_STORE[0]


def is_remote(location: str | Path) -> bool:
    return str(location).startswith(S3)


def _key(location: str) -> str:
    return location[len(S3):]


def open_binary(location: str) -> Any:
    """A readable binary file for a local path or an ``s3://`` URI (seekable: Parquet footers need it)."""
    if is_remote(location):
        return object_store().open_input_file(_key(location))
    return open(location, "rb")  # noqa: SIM115 - the caller closes it


def stat(location: str) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of a local file or an object."""
    if is_remote(location):
        info = object_store().get_file_info(_key(location))
        mtime = info.mtime_ns if info.mtime_ns is not None else 0
        return int(info.size or 0), int(mtime)
    st = os.stat(location)
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class DataFiles:
    """The resolved files of a dataset, in sorted relative-path order (the order rows are read in).

    ``root`` and ``files`` are locations: absolute local paths, or ``s3://`` URIs of objects (read through
    :func:`use_object_store`'s filesystem; DuckDB reads both).
    """

    root: str
    files: tuple[str, ...]
    format: Format
    is_file: bool = False  # the root is one file, not a folder

    @property
    def remote(self) -> bool:
        return is_remote(self.root)

    def relative(self) -> list[str]:
        if self.is_file:
            return [self.root.rstrip("/").rsplit("/", 1)[-1]]
        base = self.root.rstrip("/") + "/"
        return [f[len(base):] for f in self.files]

    def describe(self) -> str:
        return self.root


Source = str | Path | HasPath | DataFiles


def file_format(path: Path | str) -> Format | None:
    """The format named by a file's extension (``.csv.gz`` counts as CSV), or None."""
    name = str(path).rsplit("/", 1)[-1].lower()
    if name.endswith(".csv.gz"):
        return "csv"
    return _EXTENSIONS.get(Path(name).suffix.lower())


def _hidden(rel: Path) -> bool:
    # Spark/Hadoop markers (_SUCCESS, _metadata, .crc files) and dot-files are not data.
    return any(part.startswith((".", "_")) for part in rel.parts)


def resolve(source: Source) -> DataFiles:
    """Resolve a source to its data files; NotFound if missing, InvalidInput if unusable."""
    if isinstance(source, DataFiles):
        return source
    raw = source if isinstance(source, str | os.PathLike) else getattr(source, "path", None)
    if raw is None:
        raise InvalidInput(f"expected a file or folder path (or a dataset version), got {source!r}")
    if is_remote(str(raw)):
        return _resolve_remote(str(raw))
    root = Path(raw).expanduser()
    if not root.exists():
        raise NotFound(f"dataset path {root} does not exist")
    if root.is_file():
        fmt = file_format(root)
        if fmt is None:
            raise InvalidInput(f"{root}: unsupported file type; expected .parquet, .pq, .csv or .csv.gz")
        return DataFiles(str(root.resolve()), (str(root.resolve()),), fmt, is_file=True)
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            if _hidden(path.relative_to(root)):
                continue
            if file_format(path) is None:
                raise InvalidInput(f"{path}: unsupported file type in dataset folder {root}; expected only "
                                   ".parquet, .pq, .csv or .csv.gz files")
            files.append(path.resolve())
    if not files:
        raise InvalidInput(f"dataset folder {root} holds no Parquet or CSV files")
    root = root.resolve()
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    return _one_format(str(root), tuple(str(f) for f in files))


def _one_format(root: str, files: tuple[str, ...]) -> DataFiles:
    formats = {file_format(f) for f in files}
    if len(formats) > 1:
        raise InvalidInput(f"dataset folder {root} mixes Parquet and CSV files; keep one format per dataset")
    fmt = file_format(files[0])
    assert fmt is not None
    return DataFiles(root, files, fmt)


def _resolve_remote(uri: str) -> DataFiles:
    """An object, or every data object under a prefix, of the object store."""
    import pyarrow.fs as pafs

    fs, key = object_store(), _key(uri).rstrip("/")
    try:
        info = fs.get_file_info(key)
        if info.type == pafs.FileType.File:
            fmt = file_format(key)
            if fmt is None:
                raise InvalidInput(f"{uri}: unsupported file type; expected .parquet, .pq, .csv or .csv.gz")
            return DataFiles(S3 + key, (S3 + key,), fmt, is_file=True)
        infos = fs.get_file_info(pafs.FileSelector(key, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise InvalidInput(f"could not list {uri}: {str(exc).splitlines()[0]}") from exc
    files = []
    for item in infos:
        if item.type != pafs.FileType.File:
            continue
        rel = item.path[len(key) + 1:]
        if _hidden(Path(rel)):
            continue
        if file_format(rel) is None:
            raise InvalidInput(f"s3://{item.path}: unsupported file type in dataset folder {uri}; expected only "
                               ".parquet, .pq, .csv or .csv.gz files")
        files.append(S3 + item.path)
    if not files:
        raise NotFound(f"dataset location {uri} holds no Parquet or CSV objects")
    files.sort()
    return _one_format(S3 + key, tuple(files))


def threads() -> int:
    """DuckDB threads: the cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def connect() -> duckdb.DuckDBPyConnection:
    """A cursor on this process's in-memory DuckDB database; close it when done.

    Opening a DuckDB database costs 30-100 ms, a cursor almost nothing, and a data browser asks for
    page after page; so one database per process (re-created after a fork) serves every call, within
    a memory budget and the machine's cores. Local files are not cached by DuckDB, so a rewritten
    file is always read afresh.
    """
    global _DB, _DB_PID
    with _DB_LOCK:
        if _DB is None or _DB_PID != os.getpid():
            try:
                db = duckdb.connect(config={"threads": threads(), "memory_limit": DEFAULT_MEMORY_LIMIT})
                db.execute("LOAD icu")  # time zones; built into DuckDB
                _register(db)
            except duckdb.Error as exc:  # pragma: no cover - only with a broken DuckDB install
                raise InvalidInput(f"could not open DuckDB: {exc}") from exc
            _DB, _DB_PID = db, os.getpid()
        cursor = _DB.cursor()
    cursor.execute("SET TimeZone = 'UTC'")  # timestamps come back in UTC whatever the machine's zone
    return cursor


def scan_sql(data: DataFiles) -> str:
    """The table function reading the files; the file list is bound as parameter ``$files``."""
    if data.format == "parquet":
        return "read_parquet($files)"
    return "read_csv($files, header = true, auto_detect = true)"


def params(data: DataFiles, **extra: Any) -> dict[str, Any]:
    return {"files": list(data.files), **extra}


@contextmanager
def errors_as_invalid_input(data: DataFiles, doing: str) -> Iterator[None]:
    """Turn DuckDB's errors about a broken or mismatching file into InvalidInput naming the dataset."""
    try:
        yield
    except duckdb.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"could not {doing} {data.describe()}: {detail}") from exc


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB; callers still check the name against the dataset's columns."""
    return '"' + name.replace('"', '""') + '"'


def columns_of(con: duckdb.DuckDBPyConnection, data: DataFiles) -> dict[str, str]:
    """Column name -> DuckDB type, in file order."""
    with errors_as_invalid_input(data, "read the columns of"):
        rows = con.execute(f"DESCRIBE SELECT * FROM {scan_sql(data)}", params(data)).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def count_rows(con: duckdb.DuckDBPyConnection, data: DataFiles) -> int:
    with errors_as_invalid_input(data, "count the rows of"):
        row = con.execute(f"SELECT count(*) FROM {scan_sql(data)}", params(data)).fetchone()
    return int(row[0]) if row else 0


def numbered_sql(data: DataFiles) -> str:
    """A FROM-clause subquery adding ``__wb_file`` (file index) and ``__wb_row`` (row in that file).

    Parquet exposes these as virtual columns at no cost. CSV has none, so rows are numbered in read
    order with a streaming window (DuckDB preserves insertion order), which is fine for the CSV sizes
    users bring; a partitioned window would not keep that order.
    """
    scan = scan_sql(data)
    if data.format == "parquet":
        return f"(SELECT *, file_index AS __wb_file, file_row_number AS __wb_row FROM {scan})"
    return ("(SELECT * EXCLUDE (__wb_g), __wb_g - min(__wb_g) OVER (PARTITION BY __wb_file) AS __wb_row "
            f"FROM (SELECT *, file_index AS __wb_file, row_number() OVER () - 1 AS __wb_g FROM {scan}))")


_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
              "UBIGINT", "UHUGEINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}


def logical_type(duck_type: str) -> str:
    """Map a DuckDB type to the schema's dtypes: int, float, string, bool, timestamp (or other)."""
    t = duck_type.upper().strip()
    if t in _INT_TYPES:
        return "int"
    if t in _FLOAT_TYPES or t.startswith("DECIMAL"):
        return "float"
    if t == "VARCHAR" or t.startswith("VARCHAR("):
        return "string"
    if t == "BOOLEAN":
        return "bool"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "timestamp"
    return "other"
