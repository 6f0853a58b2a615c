"""Object storage (``storage = "s3"``): the bucket the workbench keeps its artifacts in, through pyarrow's S3.

With ``storage = "s3"`` the MLflow server keeps every artifact (models, input examples, reports) under
``<object_store_uri>/mlflow`` and serves them to its clients (proxied artifact access), so notebooks, Ray jobs
and Serve replicas never hold the bucket's address or keys; only the server and this module do. The bucket is
any S3-compatible store: the local profile runs SeaweedFS for it (``workbench.services``) unless
``s3_endpoint_url`` points at a shared one.

pyarrow's S3 filesystem is the client here (pyarrow is already a dependency, and it is what reads Parquet);
the MLflow server uses boto3.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from workbench.config import Settings
from workbench.errors import ConfigError, ServiceUnavailable
from workbench.secrets import redact

if TYPE_CHECKING:
    import pandas as pd

_AUTH_ERRORS = ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "ACCESS_DENIED", "Forbidden")


@dataclass(frozen=True)
class StoredObject:
    """One object of the bucket: its ``s3://`` URI and size."""

    uri: str
    size: int


def s3_filesystem(settings: Settings, *, timeout_s: float | None = None) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem for the configured endpoint and keys (ConfigError when keys are missing)."""
    key, secret = settings.s3_keys()
    endpoint = urlsplit(settings.s3_endpoint)
    timeout = timeout_s or settings.request_timeout_s
    return pafs.S3FileSystem(access_key=key, secret_key=secret, region=settings.s3_region,
                             endpoint_override=endpoint.netloc + endpoint.path.rstrip("/"),
                             scheme=endpoint.scheme or "http", connect_timeout=timeout, request_timeout=timeout,
                             allow_bucket_creation=True, allow_bucket_deletion=False)


def split_uri(uri: str) -> str:
    """``s3://bucket/key`` -> ``bucket/key`` (pyarrow's path); anything else is a ConfigError."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"expected an s3:// URI, got {uri!r}")
    return uri[len("s3://"):].rstrip("/")


def _readable(settings: Settings, exc: BaseException) -> str:
    return redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, settings.s3_keys())


def ensure_bucket(settings: Settings, timeout_s: float | None = None) -> None:
    """Create the bucket unless it exists, retrying while the store starts; wrong keys fail at once.

    A freshly started SeaweedFS answers its health check a few seconds before it takes writes, so
    "not ready" errors are retried until ``timeout_s``; a refused signature is a ConfigError naming the keys.
    """
    deadline = time.monotonic() + (timeout_s or settings.service_timeout_s)
    fs = s3_filesystem(settings)
    while True:
        try:
            info = fs.get_file_info(settings.s3_bucket)
            if info.type != pafs.FileType.Directory:
                fs.create_dir(settings.s3_bucket)
            return
        except OSError as exc:
            text = str(exc)
            if any(code in text for code in _AUTH_ERRORS):
                raise ConfigError(f"the object store at {settings.s3_endpoint} refused the keys (WORKBENCH_S3_"
                                  f"ACCESS_KEY_ID / WORKBENCH_S3_SECRET_ACCESS_KEY): {_readable(settings, exc)}"
                                  ) from exc
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"the object store at {settings.s3_endpoint} did not take bucket "
                                         f"{settings.s3_bucket!r}: {_readable(settings, exc)}") from exc
            time.sleep(0.5)


def bucket_ready(settings: Settings) -> bool:
    """Whether the bucket exists and the keys may list it (the object store's health in ``workbench status``)."""
    try:
        return s3_filesystem(settings, timeout_s=min(5.0, settings.request_timeout_s)).get_file_info(
            settings.s3_bucket).type == pafs.FileType.Directory
    except (OSError, ConfigError):
        return False


def list_objects(settings: Settings, uri: str) -> list[StoredObject]:
    """Every object under an ``s3://`` prefix, sorted by URI (an absent prefix lists nothing)."""
    fs = s3_filesystem(settings)
    try:
        infos = fs.get_file_info(pafs.FileSelector(split_uri(uri), recursive=True, allow_not_found=True))
    except OSError as exc:
        raise ServiceUnavailable(f"could not list {uri}: {_readable(settings, exc)}") from exc
    return sorted((StoredObject(f"s3://{i.path}", int(i.size or 0)) for i in infos if i.type == pafs.FileType.File),
                  key=lambda o: o.uri)


def activate(settings: Settings) -> None:
    """Let this process read and write ``s3://`` locations: data (DuckDB, Parquet footers, snapshots) and run
    state (:mod:`workbench.locations`: specs, frames, metric files, checkpoints)."""
    from workbench import locations
    from workbench.data import _source

    filesystem = s3_filesystem(settings)
    _source.use_object_store(filesystem)
    locations.use_s3(filesystem)


def read_frame(settings: Settings, location: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file or folder as a DataFrame, wherever a stage recorded it: a local path, or an ``s3://`` URI
    of this project's bucket (opened first). Stage notebooks read each other's outputs through this, so the
    same notebook runs in the local and the cluster profile."""
    from workbench import locations

    if locations.is_remote(location):
        activate(settings)
    return locations.read_parquet(location, columns)


COMPLETE = "_workbench_complete"
"""Written last into a copied folder: S3 has no rename, so a copy without it is an interrupted one (and the
data readers skip names starting with '_')."""


def copy_into_bucket(settings: Settings, files: list[tuple[str, str]], target: str) -> None:
    """Copy ``(location, relative name)`` pairs (local paths or ``s3://`` URIs) under the ``target`` URI, once:
    a target holding the completion marker is left as it is (content-addressed snapshots never change)."""
    fs = s3_filesystem(settings)
    key = split_uri(target)
    local = pafs.LocalFileSystem()
    try:
        if fs.get_file_info(f"{key}/{COMPLETE}").type == pafs.FileType.File:
            return
        for location, rel in files:
            remote = location.startswith("s3://")
            pafs.copy_files(split_uri(location) if remote else location, f"{key}/{rel}",
                            source_filesystem=fs if remote else local, destination_filesystem=fs)
        with fs.open_output_stream(f"{key}/{COMPLETE}") as out:
            out.write(b"")
    except OSError as exc:
        raise ServiceUnavailable(f"could not copy into {target}: {_readable(settings, exc)}") from exc
