"""Datasets: generate, validate, version (content hash), page through and profile them.

Everything here reads Parquet/CSV through DuckDB so that large datasets are validated, paged and
profiled without being loaded into memory.
"""

from workbench.data.catalog import DatasetCatalog, DatasetVersion, content_hash
from workbench.data.generator import generate_transactions, write_transactions
from workbench.data.paging import MAX_LIMIT, Page, read_page
from workbench.data.profile import ColumnProfile, DatasetProfile, Histogram, profile_dataset
from workbench.data.schema import (
    TRANSACTIONS_SCHEMA,
    ColumnSpec,
    Schema,
    ValidationIssue,
    ValidationReport,
    validate,
)
from workbench.data.task import TASK_KINDS, Task, check_task

__all__ = [
    "MAX_LIMIT",
    "TASK_KINDS",
    "TRANSACTIONS_SCHEMA",
    "ColumnProfile",
    "ColumnSpec",
    "DatasetCatalog",
    "DatasetProfile",
    "DatasetVersion",
    "Histogram",
    "Page",
    "Schema",
    "Task",
    "ValidationIssue",
    "ValidationReport",
    "check_task",
    "content_hash",
    "generate_transactions",
    "profile_dataset",
    "read_page",
    "validate",
    "write_transactions",
]
