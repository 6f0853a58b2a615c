"""The data browser through its model and messages: every page equals DuckDB's own query on the files.

Requests go to the handler that receives the browser's custom messages; what the widget sends is
captured from ``send`` and its Arrow buffer decoded with pyarrow. The expected rows come from a
plain DuckDB query written here, ordered by file and row number as the widget promises.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.config import Settings
from workbench.data import TRANSACTIONS_SCHEMA, DatasetCatalog, profile_dataset
from workbench.data.generator import generate_transactions, write_transactions
from workbench.widgets import _data_requests
from workbench.widgets.data_browser import DataBrowser

N = 2_500
STATIC = Path(__file__).resolve().parents[2] / "workbench" / "widgets" / "static"


class Recorder:
    """Stands in for the comm: keeps what the widget sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], list[bytes] | None]] = []

    def __call__(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.sent.append((content, buffers))

    @property
    def last(self) -> tuple[dict[str, Any], list[bytes] | None]:
        return self.sent[-1]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wd_project")
    df = generate_transactions(N, seed=5)
    df["amount"] = df["amount"].astype("float64")
    df.loc[df.index % 53 == 7, "amount"] = np.nan
    write_transactions(df, root / "data" / "tx", rows_per_file=900)
    return root


@pytest.fixture()
def settings(project: Path) -> Settings:
    return Settings(project_dir=project)


@pytest.fixture()
def browser(settings: Settings) -> Iterator[tuple[DataBrowser, Recorder]]:
    widget = DataBrowser(path="data/tx", settings=settings, background=False)
    recorder = Recorder()
    widget.send = recorder  # type: ignore[method-assign]
    yield widget, recorder
    widget.close()


def files(project: Path) -> list[str]:
    return sorted(str(p) for p in (project / "data" / "tx").glob("*.parquet"))


def duck(project: Path, where: str = "TRUE", order: str = "", offset: int = 0, limit: int = 100,
         params: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], int]:
    """The page and the total by DuckDB directly: file order breaks ties, nulls sort last."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    scan = "read_parquet($files, filename = true, file_row_number = true)"
    keys = ", ".join([*([order] if order else []), "filename", "file_row_number"])
    args = {"files": files(project), **(params or {})}
    rows = con.sql(f"SELECT * EXCLUDE (filename, file_row_number) FROM {scan} WHERE {where} "
                   f"ORDER BY {keys} LIMIT {limit} OFFSET {offset}", params=args).to_arrow_table().to_pylist()
    total = con.execute(f"SELECT count(*) FROM {scan} WHERE {where}", args).fetchone()
    con.close()
    assert total is not None
    return rows, int(total[0])


def page(widget: DataBrowser, recorder: Recorder, **request: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    widget.handle_request({"type": "page", "id": 7, **request}).result(60)
    content, buffers = recorder.last
    assert content["type"] == "page", content
    assert buffers is not None and len(buffers) == 1
    table = pa.ipc.open_stream(buffers[0]).read_all()
    assert content["bytes"] == len(buffers[0]) and content["n_rows"] == table.num_rows
    return content, table.to_pylist()


def error(widget: DataBrowser, recorder: Recorder, **request: Any) -> str:
    widget.handle_request({"type": "page", "id": 9, **request}).result(60)
    content, buffers = recorder.last
    assert content["type"] == "error" and content["id"] == 9 and not buffers, content
    assert "Traceback" not in content["message"]
    return str(content["message"])


def test_opening_a_file_syncs_only_metadata(browser: tuple[DataBrowser, Recorder], project: Path) -> None:
    widget, _ = browser
    _, total = duck(project, limit=0)
    assert widget.error == ""
    assert widget.total_rows == total == N
    assert [c["name"] for c in widget.columns] == pq.read_schema(files(project)[0]).names
    assert {c["name"]: c["dtype"] for c in widget.columns}["amount"] == "float"
    state = {k: v for k, v in widget.get_state().items() if k not in ("_esm", "_css")}  # the code itself
    assert len(json.dumps(state)) < 5_000  # no frame in a trait


@pytest.mark.parametrize("offset", [0, 850, N - 30])
def test_pages_equal_duckdb(browser: tuple[DataBrowser, Recorder], project: Path, offset: int) -> None:
    widget, recorder = browser
    content, rows = page(widget, recorder, offset=offset, limit=100)
    want, total = duck(project, offset=offset, limit=100)
    assert rows == want
    assert content["total_rows"] == total and content["offset"] == offset and content["id"] == 7


@pytest.mark.parametrize("column,desc", [("amount", False), ("amount", True), ("event_timestamp", True),
                                         ("category", False)])
def test_sorted_pages_equal_duckdb(browser: tuple[DataBrowser, Recorder], project: Path, column: str,
                                   desc: bool) -> None:
    widget, recorder = browser
    for offset in (0, 1_300):
        _, rows = page(widget, recorder, offset=offset, limit=60, sort=[{"column": column, "desc": desc}])
        want, _ = duck(project, order=f'"{column}" {"DESC" if desc else "ASC"} NULLS LAST', offset=offset, limit=60)
        assert rows == want


def test_filtered_pages_equal_duckdb(browser: tuple[DataBrowser, Recorder], project: Path) -> None:
    widget, recorder = browser
    filters = [{"column": "category", "op": "in", "value": ["travel", "fuel"]},
               {"column": "amount", "op": ">", "value": 40.5}]
    content, rows = page(widget, recorder, offset=10, limit=50, filters=filters,
                         sort=[{"column": "amount", "desc": True}])
    want, total = duck(project, where="category IN ('travel', 'fuel') AND amount > 40.5",
                       order="amount DESC NULLS LAST", offset=10, limit=50)
    assert rows == want and content["total_rows"] == total < N

    content, rows = page(widget, recorder, offset=0, limit=100,
                         filters=[{"column": "amount", "op": "==", "value": None}])
    want, total = duck(project, where="amount IS NULL")
    assert rows == want and content["total_rows"] == total > 0
    assert all(r["amount"] is None for r in rows)

    content, rows = page(widget, recorder, offset=0, limit=20,
                         filters=[{"column": "device", "op": "contains", "value": "ob"}])
    want, total = duck(project, where="contains(device, 'ob')", limit=20)
    assert rows == want and content["total_rows"] == total


def test_bad_requests_are_messages(browser: tuple[DataBrowser, Recorder]) -> None:
    widget, recorder = browser
    assert "unknown column 'nope'" in error(widget, recorder, sort=[{"column": "nope", "desc": False}])
    assert "unknown column 'x'" in error(widget, recorder, filters=[{"column": "x", "op": "==", "value": 1}])
    assert "operator 'LIKE'" in error(widget, recorder, filters=[{"column": "amount", "op": "LIKE", "value": 1}])
    assert "offset" in error(widget, recorder, offset=-1)
    assert "limit" in error(widget, recorder, limit=_data_requests.MAX_PAGE_ROWS + 1)
    assert "unknown keys" in error(widget, recorder, sql="SELECT 1")
    assert "only == and !=" in error(widget, recorder, filters=[{"column": "amount", "op": "<", "value": None}])
    assert "one direction" in error(widget, recorder, sort=[{"column": "amount", "desc": True},
                                                            {"column": "user_id", "desc": False}])
    # A value of the wrong kind reaches DuckDB's binder: still a message, not a traceback.
    assert error(widget, recorder, filters=[{"column": "event_timestamp", "op": ">", "value": "not a date"}])
    widget.handle_request({"type": "drop table"}).result(5)
    assert recorder.last[0]["type"] == "error" and "unknown request type" in recorder.last[0]["message"]


def test_paths_outside_the_roots_are_refused(settings: Settings, project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.parquet"
    pq.write_table(pa.table({"x": [1]}), outside)
    widget = DataBrowser(path=outside, settings=settings, background=False)
    assert "outside the folders" in widget.error and not widget.source
    link = project / "link.parquet"
    link.symlink_to(outside)
    try:
        widget.handle_request({"type": "open", "path": str(link)}).result(5)
        assert "outside the folders" in widget.error and not widget.source
        widget.handle_request({"type": "open", "path": "../" * 12 + "etc/passwd"}).result(5)
        assert "outside the folders" in widget.error
        widget.handle_request({"type": "open", "path": "data/tx"}).result(5)
        assert widget.error == "" and widget.total_rows == N
        widget.handle_request({"type": "open", "path": "data/missing.parquet"}).result(5)
        assert "does not exist" in widget.error and widget.source["path"].endswith("tx")
    finally:
        link.unlink()
        widget.close()


def test_registered_versions_history_and_panels(settings: Settings, project: Path, tmp_path: Path) -> None:
    catalog = DatasetCatalog(settings)
    df = generate_transactions(400, seed=9)
    first = catalog.register("wd-tx", write_transactions(df, tmp_path / "v1.parquet"), schema=TRANSACTIONS_SCHEMA)
    broken = df.copy()
    broken.loc[[3, 10], "amount"] = -5.0
    second = catalog.register("wd-tx", write_transactions(broken, tmp_path / "v2.parquet"),
                              schema=TRANSACTIONS_SCHEMA, allow_invalid=True)
    widget = DataBrowser(dataset="wd-tx", settings=settings, background=False)
    recorder = Recorder()
    widget.send = recorder  # type: ignore[method-assign]
    try:
        assert widget.source["version"] == second.version and widget.total_rows == 400
        assert [h["version"] for h in widget.history] == [second.version, first.version]
        assert [h["current"] for h in widget.history] == [True, False]
        assert any(d["name"] == "wd-tx" and d["versions"] == [first.version, second.version]
                   for d in widget.datasets)

        widget.handle_request({"type": "validate"}).result(60)
        issues = widget.validation["issues"]
        assert widget.validation["declared"] is True and widget.validation["ok"] is False
        below = [i for i in issues if i["column"] == "amount" and i["rule"] == "below_min"]
        assert below and below[0]["count"] == 2 and [e["row"] for e in below[0]["examples"]] == [3, 10]

        widget.handle_request({"type": "profile"}).result(60)
        expected = profile_dataset(second.path).to_dict()
        got = {c["name"]: c for c in widget.profile["columns"]}
        for column in expected["columns"]:
            assert got[column["name"]]["nulls"] == column["nulls"]
            assert got[column["name"]]["distinct_approx"] == column["distinct_approx"]
            if column["histogram"]:
                assert got[column["name"]]["histogram"]["counts"] == column["histogram"]["counts"]
        assert sum(got["amount"]["histogram"]["counts"]) == 400

        widget.handle_request({"type": "open", "dataset": "wd-tx", "version": first.version}).result(5)
        assert widget.source["version"] == first.version
        assert widget.profile == {} and widget.validation == {}  # panels belong to the old version
        assert [h["current"] for h in widget.history] == [False, True]
        _, rows = page(widget, recorder, offset=0, limit=5, sort=[{"column": "amount", "desc": False}])
        assert min(r["amount"] for r in rows) > 0  # the first version has no negative amounts

        widget.handle_request({"type": "open", "dataset": "wd-nope"}).result(5)
        assert "no dataset named 'wd-nope'" in widget.error
    finally:
        widget.close()


def test_snapshot_for_html_export(browser: tuple[DataBrowser, Recorder], project: Path) -> None:
    widget, _ = browser
    bundle = widget._repr_mimebundle_()
    assert bundle is not None
    data, _ = bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]
    want, _ = duck(project, limit=20)
    assert f"{N:,} rows" in html and "<table" in html and "<script" not in html
    for row in want[:20]:
        assert f"<td>{row['transaction_id']}</td>" in html
    assert "DataBrowser(" in data["text/plain"] and f"{N:,} rows" in data["text/plain"]
    empty = DataBrowser(path="/etc/passwd", settings=widget.settings, background=False)
    assert "outside the folders" in empty._repr_mimebundle_()[0]["text/html"]  # type: ignore[index]
    empty.close()


def test_wide_rows_split_under_the_message_limit(settings: Settings, project: Path) -> None:
    big = project / "wide.parquet"
    n = 900
    text = [f"{i:04d}" + "x" * 1_900 for i in range(n)]
    pq.write_table(pa.table({"i": list(range(n)), "a": text, "b": text, "c": text}), big)
    widget = DataBrowser(path=big, settings=settings, background=False)
    recorder = Recorder()
    widget.send = recorder  # type: ignore[method-assign]
    limit = 1_000_000
    try:
        seen: list[int] = []
        offset = 0
        while offset < n:
            widget.handle_request({"type": "page", "id": offset, "offset": offset, "limit": n}).result(30)
            content, buffers = recorder.last
            assert buffers is not None and len(buffers[0]) <= _data_requests.MAX_MESSAGE_BYTES
            table = pa.ipc.open_stream(buffers[0]).read_all()
            assert 0 < content["n_rows"] == table.num_rows
            seen += table.column("i").to_pylist()
            assert table.column("a").to_pylist() == text[offset:offset + table.num_rows]
            offset += table.num_rows
        assert seen == list(range(n))
        assert len(recorder.sent) > 1  # ~5 MB of text in 900 rows cannot fit in one message
        data, n = _data_requests.encode_page(pd.DataFrame({"a": text[:600]}), max_bytes=limit)
        assert len(data) <= limit and n < 600
    finally:
        big.unlink()
        widget.close()


def test_background_requests_answer_from_a_worker(settings: Settings, project: Path) -> None:
    widget = DataBrowser(path="data/tx", settings=settings)
    recorder = Recorder()
    widget.send = recorder  # type: ignore[method-assign]
    try:
        for i in range(3):
            widget._on_custom_msg(widget, {"type": "page", "id": i, "offset": i * 100, "limit": 100}, [])
        widget.wait()
        assert [c["id"] for c, _ in recorder.sent] == [0, 1, 2]
        want, _ = duck(project, offset=200, limit=100)
        assert pa.ipc.open_stream(recorder.last[1][0]).read_all().to_pylist() == want  # type: ignore[index]
    finally:
        widget.close()


# ---- the browser's hand-written Arrow reader, run by Node on pyarrow's bytes -----------------------
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_arrow_reader_decodes_every_sent_type(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "i64": pd.array([1, None, -3, 2**60], "Int64"),
        "i32": pd.array([7, -8, None, 2**31 - 1], "Int32"),
        "i8": pd.array([-1, 2, None, 127], "Int8"),
        "u32": pd.array([4_000_000_000, 0, None, 1], "UInt32"),
        "f64": [1.5, None, -2.25, 1e300],
        "f32": pd.array([0.5, None, 2.0, -1.25], "Float32"),
        "s": ["a", None, "ü€ \"q\"", ""],
        "b": pd.array([True, None, False, True], "boolean"),
        "tz": pd.to_datetime(["2026-01-01 10:00:00", None, "2023-11-14 22:13:20.123456", "1969-12-31 23:59:59.999999"],
                             utc=True, format="ISO8601"),
        "naive_ns": pd.to_datetime(["1970-01-01", "1970-01-01 00:00:00.000000001", None, "2262-04-11"],
                                   format="ISO8601"),
        "cat": pd.Categorical(["x", "y", None, "x"]),
        "dec": [pd.NA, 1, 2, 3],  # object column: sent as strings
    })
    data, n = _data_requests.encode_page(frame)
    assert n == 4
    (tmp_path / "page.arrow").write_bytes(data)
    module = tmp_path / "data_browser.mjs"
    shutil.copy(STATIC / "data_browser.js", module)
    script = (f"import {{decodeArrowIPC}} from {json.dumps(str(module))}; import fs from 'fs';"
              f"const r = decodeArrowIPC(fs.readFileSync({json.dumps(str(tmp_path / 'page.arrow'))}));"
              "console.log(JSON.stringify({names: r.fields.map(f => f.name), n: r.numRows, columns: r.columns},"
              " (k, v) => typeof v === 'bigint' ? 'big:' + v.toString() : v));")
    out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "NODE_OPTIONS": ""})
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    table = pa.ipc.open_stream(data).read_all()
    assert got["names"] == table.column_names and got["n"] == 4

    def expected(column: pa.ChunkedArray) -> list[Any]:
        values = []
        for v in column.to_pylist():
            if v is None:
                values.append(None)
            elif pa.types.is_timestamp(column.type):
                ts = pd.Timestamp(v)
                digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}[column.type.unit]
                frac = ts.value % 10**9 // 10 ** (9 - digits) if digits else 0
                values.append(ts.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac:0{digits}d}" if frac else "")
                              + ("Z" if column.type.tz else ""))
            elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53 - 1:
                values.append(f"big:{v}")
            else:
                values.append(v)
        return values

    for name, column in zip(table.column_names, table.columns, strict=True):
        assert got["columns"][table.column_names.index(name)] == expected(column), name
    assert got["columns"][table.column_names.index("tz")][2] == "2023-11-14T22:13:20.123456000Z"  # pandas: ns
    assert got["columns"][table.column_names.index("naive_ns")][1] == "1970-01-01T00:00:00.000000001"
    assert got["columns"][table.column_names.index("i64")][3] == f"big:{2**60}"
