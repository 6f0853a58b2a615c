"""Features served by Feast: declare, apply, materialize, point-in-time frames, online lookup.

Your own features: declare them (:mod:`workbench.features.declaration`) and each declaration becomes a
Feast project of its own under ``feast_dir/<name>/`` (:mod:`workbench.features.project`)::

    from workbench.features import (Aggregate, Entity, FeatureDeclaration, SecondsSinceLast,
                                    WindowedView, apply_features, feature_frame,
                                    materialize_features, online_features)
    decl = FeatureDeclaration(name="shop", timestamp="ts", entities=[Entity("customer", ["customer_id"])],
                              views=[WindowedView("activity", "customer", [Aggregate("count", "7d")])],
                              on_demand=[SecondsSinceLast("customer")], request_columns=["basket"])
    project = apply_features(settings, decl, "data/orders.parquet")
    materialize_features(settings, "shop")
    frame = feature_frame(settings, "shop", "data/orders.parquet", label="churned")
    online_features(settings, "shop", [{"customer_id": 7, "basket": 31.0, "ts": "2026-03-01T12:00Z"}])

The fraud demo's declaration is :func:`fraud_features` (project ``fraud``, service ``fraud_model_v2``).
Without features (``features=None``), :func:`dataset_frame` gives the dataset's own columns per the Task.

The first fraud repository (one global state under ``feast_dir``), in six calls, is still there until
the notebook moves to the ``fraud`` project::

    from workbench.features import (compute_features, apply_repo, materialize, training_frame,
                                    save_training_frame, online_features)
    compute_features(settings, "data/transactions")   # DuckDB windows -> Parquet under feast_dir/data
    apply_repo(settings)                              # feature_store.yaml + registry (idempotent)
    materialize(settings)                             # latest values -> online store
    frame = training_frame(settings, "data/transactions")   # point-in-time correct, label last
    path, version = save_training_frame(frame, settings)     # feast_dir/frames/frame-<hash>.parquet
    online_features(settings, [42], [7])                     # user ids, merchant ids

Every feature of a row at time ``t`` comes from transactions strictly before ``t`` (merchant features:
before the start of ``t``'s UTC day), so a training row never sees its own label or the future.
Missing history (a first transaction, an id the online store has never seen) is filled with the
same ``FILL_VALUES`` in training frames and online lookups; pass ``fill=False`` to see NaN instead.
``MODEL_FEATURES`` names the numeric model inputs of a frame, in order.

The same repository on a cluster: nothing in the code changes, only the settings. In
``workbench.toml``::

    [profiles.cluster]
    feast_online_store = "redis"                                    # or "postgres"
    feast_online_store_connection = "redis.feast.svc:6379"          # Redis: host:port[,db=0,...]
    # feast_online_store_connection = "postgresql://feast:secret@pg.feast.svc:5432/feast?sslmode=require"

(or ``WORKBENCH_FEAST_ONLINE_STORE`` / ``WORKBENCH_FEAST_ONLINE_STORE_CONNECTION``), then run
``apply_repo(settings)`` once: it rewrites ``feature_store.yaml`` with that online store and creates its
tables; ``materialize`` then fills Redis/Postgres and ``online_features`` reads from there. The offline
store stays Parquet files, so ``feast_dir`` must sit on storage shared by the notebooks and whoever
materializes. For anything this module does not wrap, ``feature_store(settings)`` returns Feast's own
``FeatureStore`` for the applied repository.
"""

from workbench.features.compute import (
    FILL_VALUES,
    MERCHANT_FEATURES,
    USER_FEATURES,
    FeatureTables,
    compute_features,
    compute_merchant_features,
    compute_user_features,
    fill_missing,
)
from workbench.features.declaration import (
    AGGREGATES,
    Aggregate,
    ColumnsView,
    Entity,
    FeatureDeclaration,
    Relative,
    RequestTime,
    SecondsSinceLast,
    WindowedView,
)
from workbench.features.fraud import FRAUD_LABEL, FRAUD_PROJECT, FRAUD_SERVICE, fraud_features
from workbench.features.materialize import MaterializeInfo, materialize
from workbench.features.online import fraud_online_features, online_features
from workbench.features.plain import dataset_frame
from workbench.features.project import (
    FeatureProject,
    ProjectMaterializeInfo,
    apply_features,
    feature_frame,
    feature_project,
    historical_features,
    load_declaration,
    lookup_online,
    materialize_features,
    project_dir,
    project_for_service,
    project_store,
)
from workbench.features.repo import (
    FEATURE_SERVICE,
    FeatureRepoInfo,
    apply_repo,
    feature_store,
    feature_store_yaml,
    repo_info,
)
from workbench.features.training import (
    MODEL_FEATURES,
    REQUEST_FEATURES,
    entity_frame,
    frame_version,
    save_training_frame,
    training_frame,
)
from workbench.features.transform import REQUEST_TIME

__all__ = [
    "AGGREGATES",
    "FEATURE_SERVICE",
    "FRAUD_LABEL",
    "FRAUD_PROJECT",
    "FRAUD_SERVICE",
    "REQUEST_TIME",
    "Aggregate",
    "ColumnsView",
    "Entity",
    "FeatureDeclaration",
    "FeatureProject",
    "ProjectMaterializeInfo",
    "Relative",
    "RequestTime",
    "SecondsSinceLast",
    "WindowedView",
    "apply_features",
    "dataset_frame",
    "feature_frame",
    "feature_project",
    "fraud_features",
    "fraud_online_features",
    "historical_features",
    "load_declaration",
    "lookup_online",
    "materialize_features",
    "project_dir",
    "project_for_service",
    "project_store",
    "FILL_VALUES",
    "MERCHANT_FEATURES",
    "MODEL_FEATURES",
    "REQUEST_FEATURES",
    "USER_FEATURES",
    "FeatureRepoInfo",
    "FeatureTables",
    "MaterializeInfo",
    "apply_repo",
    "compute_features",
    "compute_merchant_features",
    "compute_user_features",
    "entity_frame",
    "feature_store",
    "feature_store_yaml",
    "fill_missing",
    "frame_version",
    "materialize",
    "online_features",
    "repo_info",
    "save_training_frame",
    "training_frame",
]
