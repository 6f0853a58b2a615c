"""Training on Ray: validated job specs (CPU/GPU), submit, status, logs, stop, resume; sweeps with Tune.

Everything is logged to MLflow in the run that :func:`submit_training_job` creates before submitting.
"""

from workbench.training.cluster import check_mlflow, check_ray, cluster_gpus
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
from workbench.training.spec import SweepSpec, TrainingSpec

__all__ = [
    "SweepSpec",
    "TrainingJob",
    "TrainingSpec",
    "TrainingTimeout",
    "check_mlflow",
    "check_ray",
    "cluster_gpus",
    "job_logs",
    "job_status",
    "resume_training_job",
    "stop_job",
    "stream_job_logs",
    "submit_training_job",
    "wait_for_job",
]
