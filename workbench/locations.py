"""Run state at a *location*: a local path, or an ``s3://`` URI when the cluster shares no disk with the notebook.

A training job's spec, its metric files, its checkpoints and its training frame are read and written
through here, so the same code runs on a local Ray head (local paths) and on a remote cluster
(``profile = "cluster"`` with ``storage = "s3"``: everything under the bucket). Every location maps to a
pyarrow filesystem and a path on it; Ray Train takes the same pair (``RunConfig(storage_path,
storage_filesystem)``).

Which S3 filesystem: the one :func:`use_s3` registered in this process (the notebook's, built from its
settings by :func:`workbench.storage.activate`), else one built from the environment. That is how a job
on a shared cluster reaches the bucket: it carries the bucket's *address* (``WORKBENCH_S3_ENDPOINT_URL``,
``WORKBENCH_S3_REGION``, not secret), and the *keys* come from the cluster's own environment, never from the
job: the head and worker pods' ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (from a Kubernetes Secret),
or ``WORKBENCH_S3_ACCESS_KEY_ID`` / ``WORKBENCH_S3_SECRET_ACCESS_KEY``, which a head the workbench starts
gets from its settings (Ray workers inherit the head's environment; a job's ``runtime_env`` is shown by
Ray's dashboard, so it carries no secret).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from workbench.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

S3 = "s3://"
ENDPOINT_ENV = "WORKBENCH_S3_ENDPOINT_URL"
REGION_ENV = "WORKBENCH_S3_REGION"
_KEY_ENV = (("WORKBENCH_S3_ACCESS_KEY_ID", "WORKBENCH_S3_SECRET_ACCESS_KEY"),
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
_S3FS: list[pafs.FileSystem] = []


def is_remote(location: str | Path) -> bool:
    return str(location).startswith(S3)


def join(location: str | Path, *parts: str) -> str:
    """``location/part/...`` for a path or a URI (``Path`` would fold ``s3://`` into ``s3:/``)."""
    if is_remote(location):
        return "/".join([str(location).rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(location, *parts))


def use_s3(filesystem: pafs.FileSystem) -> None:
    """Read and write ``s3://`` locations through ``filesystem`` in this process."""
    _S3FS[:] = [filesystem]


def _s3_from_env() -> pafs.FileSystem:
    endpoint = os.environ.get(ENDPOINT_ENV, "")
    if not endpoint:
        raise ConfigError(f"this process has no object store for s3:// locations: {ENDPOINT_ENV} is not set "
                          "(a notebook opens it with workbench.storage.activate(settings))")
    keys = next(((os.environ[k], os.environ[s]) for k, s in _KEY_ENV if os.environ.get(k) and os.environ.get(s)),
                None)
    if keys is None:
        raise ConfigError(f"the object store at {endpoint} needs keys, and this process has none: give the Ray "
                          "cluster's head and workers AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
                          "WORKBENCH_S3_ACCESS_KEY_ID and WORKBENCH_S3_SECRET_ACCESS_KEY) in their environment (on "
                          "Kubernetes, from a Secret); jobs never carry them")
    parts = urlsplit(endpoint)
    fs = pafs.S3FileSystem(access_key=keys[0], secret_key=keys[1], region=os.environ.get(REGION_ENV, "us-east-1"),
                           endpoint_override=parts.netloc + parts.path.rstrip("/"), scheme=parts.scheme or "http")
    use_s3(fs)
    return fs


def resolve(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path on it) of a location."""
    text = str(location)
    if is_remote(text):
        fs = _S3FS[0] if _S3FS else _s3_from_env()
        return fs, text[len(S3):].rstrip("/")
    return pafs.LocalFileSystem(), str(Path(text).absolute())


def exists(location: str | Path) -> bool:
    fs, path = resolve(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(location: str | Path) -> bool:
    fs, path = resolve(location)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def list_names(location: str | Path) -> list[str]:
    """Names directly under a folder location (none when it does not exist)."""
    fs, path = resolve(location)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(info.base_name for info in infos)


def list_tree(location: str | Path) -> list[tuple[str, bool]]:
    """Every ``(relative path, is folder)`` under a folder location, recursively."""
    fs, path = resolve(location)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return [(info.path[len(path):].lstrip("/"), info.type == pafs.FileType.Directory) for info in infos]


def read_bytes(location: str | Path) -> bytes:
    fs, path = resolve(location)
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read())


def read_text(location: str | Path) -> str:
    return read_bytes(location).decode()


def write_bytes(location: str | Path, content: bytes) -> None:
    """Write a file whole: a reader sees the old content or the new, never half (a local file is written
    beside and renamed; an S3 object appears only when its upload completes)."""
    fs, path = resolve(location)
    parent = path.rsplit("/", 1)[0]
    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.{path.rsplit('/', 1)[-1]}.{os.getpid()}.tmp"
        with fs.open_output_stream(tmp) as out:
            out.write(content)
        fs.move(tmp, path)
        return
    with fs.open_output_stream(path) as out:
        out.write(content)


def write_text(location: str | Path, text: str) -> None:
    write_bytes(location, text.encode())


def upload_file(local: str | Path, location: str) -> None:
    fs, path = resolve(location)
    pafs.copy_files(str(Path(local).absolute()), path, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)


@contextmanager
def local_copy(location: str | Path) -> Iterator[Path]:
    """A folder location as a local folder: itself when local, else a temporary download of it."""
    if not is_remote(location):
        yield Path(location)
        return
    fs, path = resolve(location)
    with tempfile.TemporaryDirectory(prefix="workbench-") as tmp:
        pafs.copy_files(path, tmp, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        yield Path(tmp)


def ray_storage(location: str | Path) -> tuple[str, pafs.FileSystem | None]:
    """``RunConfig``'s ``(storage_path, storage_filesystem)`` for Ray Train's (or Tune's) storage at
    ``location``: a local folder as it is, an ``s3://`` one as a path on this process's S3 filesystem (Ray
    would build its own S3 client from the URI, which knows no endpoint)."""
    if not is_remote(location):
        return str(location), None
    fs, path = resolve(location)
    return path, fs


def read_parquet(location: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file or folder, local or in the bucket, as a DataFrame (``columns`` only, when given)."""
    import pandas as pd

    fs, path = resolve(location)
    return pd.read_parquet(path, columns=columns, filesystem=fs)


def read_arrow(location: str | Path, columns: list[str] | None = None) -> pa.Table:
    """A Parquet file or folder, local or in the bucket, as an Arrow table (what DuckDB scans in place)."""
    import pyarrow.dataset as pads

    fs, path = resolve(location)
    return pads.dataset(path, filesystem=fs, format="parquet").to_table(columns=columns)
