"""Feature projects on a cluster that shares no disk with the notebook (``Settings.state_in_bucket``).

A Serve replica there looks features up in the project's online store, which must be one the cluster
reaches (Redis or Postgres: a SQLite file on the notebook's disk is not), but to open the project it needs
what the notebook's apply and materialize wrote into ``<feast_dir>/<project>/``: the declaration (entity
keys, request fields, the on-demand plan), the manifest (column types), Feast's file registry and the
materialization record. So with state in the bucket those files are *published* to
``<object_store_uri>/features/<project>/`` after each apply and materialize, and a replica *mirrors* them
into its own feast_dir before it opens the project (``feature_store.yaml`` is written there from the
replica's settings, so it names the replica's paths and the online store the cluster reaches).

The offline tables (``data/*.parquet``) are not published: only the notebook reads them, to build training
frames. Feast's registry names them by the notebook's paths as file sources; online lookups never read a
source, so a replica does not either.

Folders, not the project module, are this module's currency (it imports nothing of
:mod:`workbench.features.project`, which calls it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from workbench import locations
from workbench.config import Settings
from workbench.errors import ConfigError, InvalidInput, NotFound
from workbench.features.declaration import FeatureDeclaration

UNREACHABLE_ONLINE_STORES = ("sqlite",)
"""Online stores that live on the notebook's disk: a cluster's replicas cannot read them."""


def features_location(settings: Settings) -> str:
    """``s3://<bucket>/<prefix>/features``: where published projects live."""
    return f"{settings.object_store_uri}/features"


def check_online_store(settings: Settings) -> None:
    """ConfigError when the cluster's replicas could not reach the configured online store: with state in
    the bucket, a SQLite file on the notebook's disk is nobody else's."""
    if settings.state_in_bucket and settings.feast_online_store in UNREACHABLE_ONLINE_STORES:
        raise ConfigError(
            "the cluster profile with storage = 's3' serves features from an online store the cluster reaches: "
            "set feast_online_store = 'redis' (or 'postgres') and feast_online_store_connection "
            "(WORKBENCH_FEAST_ONLINE_STORE_CONNECTION, also in the cluster's environment); the default SQLite "
            "file would live on the notebook's disk")


def open_bucket(settings: Settings) -> None:
    """Let this process reach the bucket: a notebook from its settings' keys; a replica on the cluster, whose
    settings carry none, from its node's environment (:mod:`workbench.locations` builds the filesystem from the
    bucket's address in its runtime_env and the keys the cluster's Secret gives the node)."""
    from workbench.storage import activate

    try:
        settings.s3_keys()
    except ConfigError:
        return
    activate(settings)


def publish(settings: Settings, name: str, folder: Path, files: Sequence[str]) -> list[str]:
    """Copy ``files`` of a project's folder (those that exist) to the bucket; the URIs written. A no-op
    unless state lives in the bucket. The declaration goes last: a project is listed by it, so a reader
    that finds it finds the files beside it too."""
    if not settings.state_in_bucket:
        return []
    open_bucket(settings)
    target = locations.join(features_location(settings), name)
    ordered = sorted((f for f in files if (folder / f).is_file()), key=lambda f: f.endswith("declaration.json"))
    written = []
    for file in ordered:
        locations.write_bytes(locations.join(target, file), (folder / file).read_bytes())
        written.append(locations.join(target, file))
    return written


def mirror(settings: Settings, name: str, folder: Path, files: Sequence[str]) -> list[str]:
    """Copy a published project's ``files`` (those published) from the bucket into ``folder``, replacing
    what was there; the names copied. NotFound when the project was never published."""
    open_bucket(settings)
    source = locations.join(features_location(settings), name)
    present = set(locations.list_names(source))
    if not present:
        raise NotFound(f"no feature project {name!r} in the bucket ({source}): apply it from the notebook "
                       "(workbench.features.apply_features) under this profile first")
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for file in files:
        if file in present:
            locations.write_bytes(folder / file, locations.read_bytes(locations.join(source, file)))
            copied.append(file)
    return copied


def published_services(settings: Settings, declaration_file: str) -> dict[str, str]:
    """``{feature service: project}`` of every project published to the bucket."""
    open_bucket(settings)
    root = features_location(settings)
    known: dict[str, str] = {}
    for project in locations.list_names(root):
        uri = locations.join(root, project, declaration_file)
        if not locations.exists(uri):
            continue
        try:
            declaration = FeatureDeclaration.from_dict(json.loads(locations.read_text(uri)))
        except (InvalidInput, ValueError):
            continue
        known[declaration.service_name] = declaration.name
    return known
