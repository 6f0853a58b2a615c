"""The package's own errors: each says what went wrong and what the user can do about it."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose."""


class InvalidInput(WorkbenchError):
    """An argument, a notebook parameter, a payload or a file does not have the expected shape."""


class ConfigError(InvalidInput):
    """A setting in workbench.toml or a WORKBENCH_* variable is missing or wrong."""


class NotFound(WorkbenchError):
    """A dataset, version, run, job or file that was asked for does not exist."""


class ServiceUnavailable(WorkbenchError):
    """A service (MLflow, Ray, Feast, vLLM) does not answer or could not be started."""


class JobFailed(WorkbenchError):
    """A Ray job ended in FAILED or STOPPED; the message carries the tail of its log."""

    def __init__(self, message: str, *, job_id: str = "", status: str = "", log_tail: str = "") -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status
        self.log_tail = log_tail


class ValidationFailed(WorkbenchError):
    """A dataset broke its declared schema; `report` names the columns and rows at fault."""

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


class StageFailed(WorkbenchError):
    """A stage notebook of a batch run failed; the message names the stage and the executed copy."""


def readable(exc: BaseException) -> str:
    """The message a data scientist sees for ``exc`` in a widget or a panel: the workbench's own errors as
    written (they say what to do), anything else named by its kind, never a traceback."""
    if isinstance(exc, WorkbenchError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"
