"""The data browser: pick a dataset version or a file, scroll its rows, see its profile, report and history.

Presentation only: rows come from :func:`workbench.data.read_page` (DuckDB in the kernel, sorted and
filtered there), the side panels from :func:`~workbench.data.profile_dataset`,
:func:`~workbench.data.validate` and :class:`~workbench.data.DatasetCatalog`.

What crosses the comm (so a 10M-row dataset never does):

- synced traits hold only small metadata: the catalog's names, the open source, its columns and row
  count, the profile, the validation report, the version history, a status line and an error line;
- the browser asks for rows with a custom message ``{"type": "page", "id", "offset", "limit",
  "sort": [{"column", "desc"}], "filters": [{"column", "op", "value"}]}`` (never SQL), checked by
  :func:`._data_requests.parse_page_request`;
- the kernel answers ``{"type": "page", "id", "offset", "n_rows", "total_rows", "bytes", "seconds"}``
  with one binary buffer, an Arrow IPC stream of at most ~4 MB, or ``{"type": "error", "id",
  "message"}``.

Requests run on a worker thread (one at a time, in order), so the kernel stays free while DuckDB reads
and the slow panels (profile, validation) never hold up paging. Every failure is a message in the
widget, never a traceback. With no kernel (papermill, an HTML export) the output's ``text/html`` is a
static snapshot: the source, its size and its first rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anywidget
import pandas as pd
import traitlets

from workbench.config import Settings, load_settings
from workbench.data import DatasetCatalog, DatasetVersion, Schema, profile_dataset, read_page, validate
from workbench.errors import InvalidInput, readable
from workbench.widgets._data_html import SNAPSHOT_ROWS, snapshot_html
from workbench.widgets._data_requests import (
    MAX_PAGE_ROWS,
    check_under_roots,
    encode_page,
    jsonable,
    page_table,
    parse_page_request,
)

__all__ = ["DataBrowser"]

_STATIC = Path(__file__).parent / "static"
_log = logging.getLogger(__name__)



class _Open:
    """The source being browsed: what read_page is given, and a key telling replies of old sources apart."""

    def __init__(self, source: str | DatasetVersion, key: str, columns: list[str], schema: Schema | None) -> None:
        self.source, self.key, self.columns, self.schema = source, key, columns, schema


class DataBrowser(anywidget.AnyWidget):  # type: ignore[misc]
    """Browse a registered dataset version or a file under the project and datasets folders.

    ``DataBrowser(dataset="transactions")`` opens the latest version, ``version=`` another one;
    ``DataBrowser(path="data/x.parquet")`` opens a file (relative paths start at the project folder).
    ``schema`` is what the validation panel checks a plain file against (a registered version carries
    its own). ``background=False`` answers requests in the calling thread (tests, scripts).
    """

    _esm = _STATIC / "data_browser.js"
    _css = _STATIC / "data_browser.css"

    datasets = traitlets.List(traitlets.Dict()).tag(sync=True)  # [{name, versions: [..], latest}]
    roots = traitlets.List(traitlets.Unicode()).tag(sync=True)
    source = traitlets.Dict().tag(sync=True)  # {kind, name, version, path, label, key}
    columns = traitlets.List(traitlets.Dict()).tag(sync=True)  # [{name, type, dtype}]
    total_rows = traitlets.Int(0).tag(sync=True)
    page_size = traitlets.Int(100).tag(sync=True)
    history = traitlets.List(traitlets.Dict()).tag(sync=True)
    profile = traitlets.Dict().tag(sync=True)
    validation = traitlets.Dict().tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, dataset: str | None = None, version: str | None = None, path: str | Path | None = None,
                 *, settings: Settings | None = None, schema: Schema | Mapping[str, Any] | None = None,
                 page_size: int = 100, background: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 1 <= page_size <= MAX_PAGE_ROWS:
            raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_ROWS}, got {page_size}")
        self.settings = settings if settings is not None else load_settings()
        self.catalog = DatasetCatalog(self.settings)
        self._roots = [Path(self.settings.project_dir), Path(self.settings.datasets_dir)]
        self._schema = schema if schema is None or isinstance(schema, Schema) else Schema.from_dict(schema)
        self._lock = threading.Lock()
        self._open: _Open | None = None
        self._opened = 0
        self._background = background
        self._pages = ThreadPoolExecutor(1, thread_name_prefix="wb-data-pages") if background else None
        self._panels = ThreadPoolExecutor(1, thread_name_prefix="wb-data-panels") if background else None
        self._futures: list[Future[None]] = []
        self.page_size = page_size
        self.roots = [str(r) for r in self._roots]
        self.on_msg(self._on_custom_msg)
        self._guard(self.refresh_catalog)
        if dataset is not None and path is not None:
            self.error = "give either a dataset or a path, not both"
        elif dataset is not None:
            self._guard(lambda: self.open_dataset(dataset, version))
        elif path is not None:
            self._guard(lambda: self.open_path(path))

    # ---- opening --------------------------------------------------------------------------------
    def refresh_catalog(self) -> None:
        """Re-read the catalog's dataset names and versions (for the picker)."""
        entries = []
        for name in self.catalog.names():
            versions = self.catalog.versions(name)
            entries.append({"name": name, "versions": [v.version for v in versions],
                            "latest": versions[-1].version if versions else ""})
        self.datasets = entries

    def open_dataset(self, name: str, version: str | None = None) -> None:
        """Open a registered version (the latest by default); NotFound names the known ones."""
        record = self.catalog.get(name, version)
        declared = Schema.from_dict(record.schema) if record.valid is not None else self._schema
        self._set_source(record, {"kind": "dataset", "name": name, "version": record.version, "path": record.path,
                                  "label": f"{name} {record.version}"}, declared, self._history(name, record))

    def open_path(self, path: str | Path) -> None:
        """Open a Parquet/CSV file or folder under the allowed roots; anything else is refused."""
        resolved = check_under_roots(path, self._roots)
        history: list[dict[str, Any]] = []
        for record in self.catalog.list():  # a file that is also registered shows its history
            if Path(record.path).resolve() == resolved:
                history = self._history(record.name, record)
                break
        self._set_source(str(resolved), {"kind": "path", "name": "", "version": "", "path": str(resolved),
                                         "label": str(resolved)}, self._schema, history)

    def _history(self, name: str, current: DatasetVersion) -> list[dict[str, Any]]:
        return [{"name": name, "version": v.version, "created_at": v.created_at, "n_rows": v.n_rows,
                 "n_bytes": v.n_bytes, "valid": v.valid, "description": v.description,
                 "current": v.version == current.version} for v in reversed(self.catalog.versions(name))]

    def _set_source(self, source: str | DatasetVersion, info: dict[str, Any], schema: Schema | None,
                    history: list[dict[str, Any]]) -> None:
        head = read_page(source, 0, 0)  # the row count and the column types, no rows
        table = page_table(head.rows)
        logical = {c.name: c.dtype for c in Schema.infer(source).columns}
        columns = [{"name": f.name, "type": str(f.type), "dtype": logical.get(f.name, "other")} for f in table.schema]
        with self._lock:
            self._opened += 1
            key = f"{self._opened}:{info['path']}"
            self._open = _Open(source, key, [c["name"] for c in columns], schema)
        with self.hold_sync():
            self.source = {**info, "key": key}
            self.columns = columns
            self.total_rows = head.total_rows
            self.history = history
            self.profile = {}
            self.validation = {}
            self.error = ""
            self.status = ""

    # ---- messages from the browser --------------------------------------------------------------
    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        self.handle_request(content)

    def handle_request(self, content: Any) -> Future[None]:
        """Answer one browser request (page, open, profile, validate, refresh); returns when it is done."""
        kind = content.get("type") if isinstance(content, Mapping) else None
        if kind == "page":
            return self._run(self._pages, lambda: self._serve_page(content))
        if kind == "open":
            return self._run(self._pages, lambda: self._guard(lambda: self._open_request(content)))
        if kind == "refresh":
            return self._run(self._pages, lambda: self._guard(self.refresh_catalog))
        if kind == "profile":
            return self._run(self._panels, self._compute_profile)
        if kind == "validate":
            return self._run(self._panels, self._compute_validation)
        return self._run(None, lambda: self._reply({"type": "error", "id": _request_id(content),
                                                   "message": f"unknown request type {kind!r}"}))

    def _run(self, pool: ThreadPoolExecutor | None, work: Callable[[], None]) -> Future[None]:
        if pool is None:
            done: Future[None] = Future()
            try:
                work()
                done.set_result(None)
            except BaseException as exc:  # work() reports its own errors; this is a last resort
                done.set_exception(exc)
            return done
        future = pool.submit(work)
        self._futures = [f for f in self._futures if not f.done()] + [future]
        return future

    def wait(self, timeout: float | None = 60.0) -> None:
        """Block until every request handed to the worker threads so far is answered."""
        for future in list(self._futures):
            future.result(timeout)

    def _guard(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:
            _log.debug("data browser request failed", exc_info=True)
            self.error = readable(exc)

    def _open_request(self, content: Mapping[str, Any]) -> None:
        if content.get("path"):
            self.open_path(str(content["path"]))
        elif content.get("dataset"):
            version = content.get("version") or None
            self.open_dataset(str(content["dataset"]), None if version is None else str(version))
        else:
            raise InvalidInput("choose a dataset, or type a path, to open")

    def _serve_page(self, content: Mapping[str, Any]) -> None:
        request_id = _request_id(content)
        try:
            with self._lock:
                current = self._open
            if current is None:
                raise InvalidInput("no dataset is open: choose one above")
            request = parse_page_request(content, current.columns)
            started = time.perf_counter()
            page = read_page(current.source, request.offset, request.limit, sort_by=request.sort_by or None,
                             descending=request.descending, filters=request.filters or None)
            data, n_rows = encode_page(page.rows)
            reply = {"type": "page", "id": request_id, "key": current.key, "offset": request.offset,
                     "limit": request.limit, "n_rows": n_rows, "total_rows": page.total_rows, "bytes": len(data),
                     "seconds": round(time.perf_counter() - started, 4)}
        except Exception as exc:
            _log.debug("data browser page failed", exc_info=True)
            self._reply({"type": "error", "id": request_id, "message": readable(exc)})
            return
        self._reply(reply, [data])

    def _reply(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.send(content, buffers)

    # ---- side panels ----------------------------------------------------------------------------
    def _panel(self, what: str, compute: Callable[[_Open], dict[str, Any]], trait: str) -> None:
        with self._lock:
            current = self._open
        if current is None:
            self.error = "no dataset is open: choose one above"
            return
        self.status = f"{what} {self.source.get('label', '')}…"
        try:
            value = compute(current)
        except Exception as exc:
            _log.debug("data browser %s failed", what, exc_info=True)
            value, message = {}, readable(exc)
        else:
            message = ""
        with self._lock:
            still_open = self._open is current
        if still_open:  # a reply for a source closed meanwhile is dropped
            with self.hold_sync():
                setattr(self, trait, value)
                self.status = ""
                if message:
                    self.error = message

    def _compute_profile(self) -> None:
        self._panel("profiling", lambda cur: jsonable(profile_dataset(cur.source).to_dict()), "profile")

    def _compute_validation(self) -> None:
        def run(cur: _Open) -> dict[str, Any]:
            declared = cur.schema is not None
            schema = cur.schema if cur.schema is not None else Schema.infer(cur.source)
            report = validate(cur.source, schema)
            return {**jsonable(report.to_dict()), "declared": declared, "summary": report.summary()}
        self._panel("validating", run, "validation")

    # ---- static snapshot ------------------------------------------------------------------------
    def first_page(self) -> pd.DataFrame | None:
        """The first rows of the open source, as the snapshot shows them (None when nothing is open)."""
        with self._lock:
            current = self._open
        if current is None:
            return None
        return read_page(current.source, 0, min(self.page_size, SNAPSHOT_ROWS)).rows

    def snapshot_html(self) -> str:
        page, error = None, self.error
        try:
            page = self.first_page()
        except Exception as exc:
            error = readable(exc)
        return snapshot_html(str(self.source.get("label", "")), self.total_rows if self.source else None,
                             self.columns, page, error)

    def __repr__(self) -> str:
        if not self.source:
            return "DataBrowser(no dataset open)"
        return f"DataBrowser({self.source.get('label')}, {self.total_rows:,} rows, {len(self.columns)} columns)"

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if bundle is not None else ({}, {})
        return {**data, "text/plain": repr(self), "text/html": self.snapshot_html()}, metadata

    def close(self) -> None:
        for pool in (getattr(self, "_pages", None), getattr(self, "_panels", None)):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        super().close()


def _request_id(content: Any) -> Any:
    return content.get("id") if isinstance(content, Mapping) else None
