"""Run comparer without a server: the cache's frame, filter language, sort, paging, selection, figures, diff.

The cache is filled with MLflow's own entity objects (as ``search_runs`` returns them); nothing here talks
to a server, so the table logic is tested on exact, known values. The real-server path is in
tests/integration/test_widgets_runs.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunTag

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.registry.run_cache import RunCache, _write_index, cache_dir, open_run_cache
from workbench.widgets._runs_downsample import _minmax_lttb, downsample
from workbench.widgets._runs_model import RunComparerModel, parse_filter

T0 = 1_770_000_000_000
N = 120


def _run(i: int) -> Run:
    status = "RUNNING" if i % 40 == 7 else ("FAILED" if i % 10 == 3 else "FINISHED")
    info = RunInfo(f"{i:032x}", "7", "me", status, T0 + i * 1000, None if status == "RUNNING" else T0 + i * 1000 + 500,
                   "active", run_name=f"run-{i:03d}" if i % 2 else f"sweep-{i:03d}")
    metrics = [Metric("roc_auc", (i * 37 % 101) / 100, T0, 0), Metric("loss", 1 - (i * 37 % 101) / 100, T0, 0)]
    if i % 15 == 0:
        metrics = metrics[1:]  # no roc_auc: sorts last
    params = [Param("lr", str([0.1, 0.01, 0.001][i % 3])), Param("opt", ["adam", "sgd"][i % 2]),
              Param("depth", str(i % 5)), Param("fixed", "1")]
    return Run(info, RunData(metrics=metrics, params=params, tags=[RunTag("workbench.dataset_version", f"ds-{i % 4}")]))


@pytest.fixture()
def cache(settings: Settings) -> RunCache:
    cache = RunCache(settings, "7", "wr-unit")
    cache._upsert([_run(i) for i in range(N)])
    _write_index(cache_dir(settings), "wr-unit", "7")
    return cache


def test_cache_frame_has_compare_runs_columns_and_values(cache: RunCache, settings: Settings) -> None:
    frame = cache.frame()
    assert len(frame) == N and frame["start_time"].is_monotonic_decreasing
    assert {"run_id", "run_name", "status", "duration_s", "dataset_version", "params.lr", "metrics.roc_auc"} <= set(
        frame.columns)
    row = frame.set_index("run_id").loc[f"{8:032x}"]
    assert row["metrics.roc_auc"] == pytest.approx(8 * 37 % 101 / 100) and row["params.lr"] == pytest.approx(0.001)
    assert row["params.opt"] == "adam" and row["dataset_version"] == "ds-0" and row["duration_s"] == 0.5
    assert np.isnan(frame.set_index("run_id").loc[f"{15:032x}", "metrics.roc_auc"])
    assert open_run_cache(settings, "wr-unit", offline=True).run_ids() == cache.run_ids()  # no server asked


def test_filter_language_parses_without_eval(cache: RunCache) -> None:
    columns = list(cache.frame().columns)
    assert [(c.column, c.op, c.value) for c in parse_filter("roc_auc > 0.5 and p.opt = 'sgd'", columns)] == [
        ("metrics.roc_auc", ">", 0.5), ("params.opt", "=", "sgd")]
    assert parse_filter("sweep", columns)[0].column == "*"
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        parse_filter("nope > 1", columns)
    with pytest.raises(InvalidInput, match="cannot read"):
        parse_filter("__import__('os').system('x')", columns)


def test_sort_filter_page_and_select(cache: RunCache, settings: Settings) -> None:
    model = RunComparerModel(settings, cache=cache, page_size=10)
    frame = cache.frame()
    assert model.metric == "roc_auc" and model.sort_by == "metrics.roc_auc" and not model.ascending
    expected = frame.sort_values("metrics.roc_auc", ascending=False, na_position="last", kind="stable")
    assert model.view_run_ids() == list(expected["run_id"])
    assert model.n_pages == 12 and len(model.page_frame()) == 10
    model.set_page(99)
    assert model.page == 11
    assert model.page_frame()["run_id"].iloc[-1] == expected["run_id"].iloc[-1]  # runs without roc_auc last

    count = model.set_filter("metrics.roc_auc >= 0.5 and opt = sgd and status != FAILED")
    mask = (frame["metrics.roc_auc"] >= 0.5) & (frame["params.opt"] == "sgd") & (frame["status"] != "FAILED")
    assert count == int(mask.sum()) and set(model.view_run_ids()) == set(frame.loc[mask, "run_id"])
    assert model.page == 0
    model.set_filter("sweep")
    assert set(model.view_run_ids()) == set(frame.loc[frame["run_name"].str.contains("sweep"), "run_id"])
    model.set_filter("")
    model.set_sort("params.depth", ascending=True)
    depths = frame.set_index("run_id").loc[model.view_run_ids(), "params.depth"].to_numpy()
    assert (np.diff(depths) >= 0).all()

    model.set_sort("metrics.roc_auc", ascending=False)
    top = model.select_top(3)
    assert top == list(expected["run_id"][:3])
    model.toggle(top[0])
    assert model.selected == top[1:]
    with pytest.raises(NotFound):
        model.select(["f" * 32])
    header, lines = model.page_lines()
    assert "roc_auc" in header and sum(label.startswith("●") for label, _ in lines) == 2
    with pytest.raises(InvalidInput, match="exactly one"):
        model.register()


def test_parcoords_diff_and_bytes(cache: RunCache, settings: Settings) -> None:
    model = RunComparerModel(settings, cache=cache, max_lines=50)
    fig = model.parcoords_figure()
    trace = fig.data[0]
    labels = [d["label"] for d in trace.dimensions]
    assert labels == ["depth", "lr", "opt", "roc_auc"]  # 'fixed' does not vary: no axis
    assert len(trace.dimensions[-1]["values"]) == 50
    opt = trace.dimensions[2]
    assert list(opt["ticktext"]) == ["adam", "sgd"]
    assert len(fig.to_json()) < 60_000  # 50 lines, binary-encoded arrays

    a, b = f"{1:032x}", f"{4:032x}"
    model.select([a, b])
    assert model.parcoords_figure().data[0].dimensions[-1]["values"].tolist() == pytest.approx(
        [1 * 37 % 101 / 100, 4 * 37 % 101 / 100])
    diff = model.diff()
    assert list(diff.columns) == ["run-001", "sweep-004"]
    assert list(diff.index) == ["params.depth", "params.opt", "metrics.loss", "metrics.roc_auc"]  # same lr: no row
    assert json.dumps(model.summary())


def test_downsample_keeps_extremes_and_bounds_points() -> None:
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 1000)
    y[54_321] = 50.0  # a spike the browser must still see
    dx, dy = downsample(x, y, 500)
    assert len(dx) <= 500 and dx[0] == 0 and dx[-1] == 99_999 and 50.0 in dy
    assert (np.diff(dx) > 0).all()
    idx = _minmax_lttb(x, y, 500)  # the NumPy fallback keeps the spike too
    assert len(idx) == 500 and 54_321 in idx
    sx, sy = downsample(np.array([3.0, 1.0, 2.0]), np.array([np.nan, 1.0, 2.0]), 500)
    assert sx.tolist() == [1.0, 2.0] and sy.tolist() == [1.0, 2.0]


def test_widget_shows_errors_and_a_static_snapshot(cache: RunCache, settings: Settings) -> None:
    from workbench.widgets.run_comparer import RunComparer

    offline = settings.replace(mlflow_port=1)  # no MLflow there: actions must fail readably
    widget = RunComparer(settings=offline, model=RunComparerModel(offline, cache=cache), sync="never")
    assert widget.error == "" and len(widget.rows.options) == 25
    widget.filter.value = "roc_auc >> 2"
    assert "holds numbers: compare it with a number" in widget.error  # a message, not a traceback
    assert widget.model is not None and widget.model.filter_text == "" and widget.model.view_size == N
    widget.filter.value = "status = RUNNING"
    assert len(widget.rows.options) == len([i for i in range(N) if i % 40 == 7])
    widget.sort_by.value = "params.depth"
    assert widget.model is not None and widget.model.sort_by == "params.depth"
    widget.rows.value = (widget.rows.options[0][1],)
    assert widget.model.selected == [widget.rows.options[0][1]]
    widget.register_button.click()  # no MLflow on this port: the widget says so
    assert "is not answering: run `workbench up`" in widget.error
    data, _ = widget._repr_mimebundle_()
    snapshot = data["text/html"]
    assert "Runs of wr-unit" in snapshot and "Plotly.newPlot" in snapshot and "run-" in snapshot
    assert "application/vnd.jupyter.widget-view+json" in data
    broken = RunComparer("wr-no-such", settings=offline, sync="never")
    assert broken.model is None and "not answering" in broken.error
    assert "not answering" in broken._repr_mimebundle_()[0]["text/html"]


def test_app_shell_has_the_tabs_that_exist(cache: RunCache, settings: Settings) -> None:
    from workbench.widgets.app import TABS, Workbench, available_tabs

    titles = [t for t, _ in available_tabs()]
    assert "Runs" in titles and all(t in [x[0] for x in TABS] for t in titles)
    missing = available_tabs((("Ghost", "workbench.widgets.no_such_widget", "Ghost"),))
    assert missing == []
    app = Workbench(settings, tabs=["Runs"], options={"Runs": {"experiment": "wr-unit", "sync": "never"}})
    assert app.tab_titles == ["Runs"]
    runs = app.widget("Runs")
    assert runs.model is not None and len(runs.model.frame) == N
    assert "Runs of wr-unit" in app._repr_mimebundle_()[0]["text/html"]


def test_history_frames_are_empty_for_unknown_metric(tmp_path: Path, cache: RunCache) -> None:
    assert isinstance(cache.frame(numeric_params=False)["params.lr"].iloc[0], str)
    assert pd.api.types.is_float_dtype(cache.frame()["params.lr"])


def test_frame_snapshot_follows_every_change(cache: RunCache) -> None:
    first = cache.frame()
    revision = cache.revision
    assert len(list(cache.path.parent.glob("7.frame-*.parquet"))) == 1
    pd.testing.assert_frame_equal(cache.frame(), first)  # read back from the Parquet copy: same table
    old = _run(8)
    changed = Run(old.info, RunData(metrics=[Metric("roc_auc", 0.123, T0, 1)], params=[Param("lr", "0.5")]))
    cache._upsert([changed])
    cache._delete([f"{9:032x}"])
    assert cache.revision == revision + 2
    after = cache.frame().set_index("run_id")
    assert after.loc[f"{8:032x}", "metrics.roc_auc"] == 0.123 and f"{9:032x}" not in after.index
    assert len(list(cache.path.parent.glob("7.frame-*.parquet"))) == 1
