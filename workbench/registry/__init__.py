"""MLflow registry: compare runs, register the best as ``champion``, aliases, lineage cards, reproduce a run.

Everything goes through ``MlflowClient`` on ``settings.mlflow_uri``; MLflow errors surface as
``NotFound`` / ``InvalidInput`` / ``ServiceUnavailable`` with a message to act on.
"""

from workbench.registry.card import LineageCard, build_lineage_card, find_train_record, write_lineage_card
from workbench.registry.promote import (
    Comparison,
    PromotionRefused,
    RankedRun,
    RegistrationResult,
    best_run,
    holdout_roc_auc,
    ranked_runs,
    register_best,
)
from workbench.registry.reproduce import ReproduceResult, compare_metrics, recorded_spec, reproduce
from workbench.registry.run_cache import RunCache, SyncResult, open_run_cache
from workbench.registry.runs import compare_runs, fetch_runs, iter_runs, runs_frame
from workbench.registry.versions import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_MODEL_NAME,
    ModelRef,
    ModelVersionInfo,
    ResolvedModel,
    get_model_version,
    parse_model_uri,
    resolve_model_uri,
    run_model_uri,
    set_alias,
)

__all__ = [
    "RunCache",
    "SyncResult",
    "open_run_cache",
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_MODEL_NAME",
    "Comparison",
    "LineageCard",
    "ModelRef",
    "ModelVersionInfo",
    "PromotionRefused",
    "RankedRun",
    "RegistrationResult",
    "ReproduceResult",
    "ResolvedModel",
    "best_run",
    "build_lineage_card",
    "compare_metrics",
    "compare_runs",
    "fetch_runs",
    "find_train_record",
    "get_model_version",
    "holdout_roc_auc",
    "iter_runs",
    "parse_model_uri",
    "ranked_runs",
    "recorded_spec",
    "register_best",
    "reproduce",
    "resolve_model_uri",
    "run_model_uri",
    "runs_frame",
    "set_alias",
    "write_lineage_card",
]
