"""Training on Ray: validated job specs (CPU/GPU), registered trainers (the built-in "mlp" and "xgboost",
the user's own "custom" code), submit, status, logs, stop, resume; sweeps with Tune.

Everything is logged to MLflow in the run that :func:`submit_training_job` creates before submitting.
"""

from workbench.training.cluster import check_mlflow, check_ray, cluster_gpus
from workbench.training.custom import CustomContext
from workbench.training.jobs import (
    TrainingJob,
    TrainingTimeout,
    job_logs,
    job_status,
    resume_training_job,
    stop_job,
    stream_job_logs,
    submit_training_job,
    wait_for_job,
)
from workbench.training.spec import METRICS_BY_TASK, SweepSpec, TrainingSpec
from workbench.training.trainers import (
    JobContext,
    Trainer,
    TrainOutcome,
    get_trainer,
    register_trainer,
    trainer_names,
)

__all__ = [
    "METRICS_BY_TASK",
    "CustomContext",
    "JobContext",
    "SweepSpec",
    "TrainOutcome",
    "Trainer",
    "TrainingJob",
    "TrainingSpec",
    "TrainingTimeout",
    "check_mlflow",
    "check_ray",
    "cluster_gpus",
    "get_trainer",
    "job_logs",
    "job_status",
    "register_trainer",
    "resume_training_job",
    "stop_job",
    "stream_job_logs",
    "submit_training_job",
    "trainer_names",
    "wait_for_job",
]
