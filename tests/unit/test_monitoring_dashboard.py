"""The dashboard's figures: long series reach the browser downsampled with their extremes kept, and every
chart draws the numbers the domain computed (checked against values computed here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.monitoring import dashboard_figures as dfig
from workbench.monitoring.column_drift import ReferenceProfile
from workbench.monitoring.deployment import LogWindow
from workbench.monitoring.performance import latency_over_time


def _snapshot(n: int = 200_000) -> tuple[dfig.DashboardSnapshot, np.ndarray, ReferenceProfile, pd.DataFrame]:
    rng = np.random.default_rng(0)
    t0 = pd.Timestamp("2026-02-01", tz="UTC")
    stamps = t0 + pd.to_timedelta(np.sort(rng.uniform(0, 86400, n)), unit="s")
    latency = rng.gamma(2.0, 3.0, n)
    latency[[17, n // 2, n - 5]] = [900.0, 950.0, 990.0]
    frame = pd.DataFrame({"timestamp": stamps, "latency_ms": latency, "x": rng.normal(size=n),
                          "c": rng.choice(list("abc"), n)})
    frame.loc[n // 2:, "x"] += 1.0
    profile = ReferenceProfile.from_frame(frame.iloc[:5000], ["x", "c"])
    heat = profile.psi_over_time(frame, "2h")
    snap = dfig.DashboardSnapshot("d", pd.Timestamp.now(tz="UTC"), LogWindow(frame, n, n, 0, ("1",)), None,
                                  frame[["timestamp", "latency_ms"]], latency_over_time(frame, "1min"), float("nan"),
                                  None, profile.compare(frame.iloc[n // 2:]), heat, pd.DataFrame(), (), (), 0.0)
    return snap, latency, profile, frame


def test_long_series_are_downsampled_keeping_their_spikes() -> None:
    snap, latency, _, _ = _snapshot()
    fig = dfig.latency_figure(snap, max_points=1500)
    per_request = fig.data[0]
    assert len(per_request.y) <= 1500 and len(per_request.x) == len(per_request.y)
    assert {900.0, 950.0, 990.0} <= set(np.asarray(per_request.y))
    assert max(dfig.points_sent(fig)) <= 1500
    x = np.asarray(per_request.x)
    assert np.all(np.diff(x) >= 0)  # epoch ms, in time order
    first = pd.Timestamp(snap.requests["timestamp"].iloc[0]).value / 1e6
    assert x[0] == pytest.approx(first)


def test_heatmap_and_drill_down_draw_the_domain_values() -> None:
    snap, _, _, frame = _snapshot()
    heat = dfig.drift_heatmap_figure(snap).data[0]
    expected = snap.drift_over_time.pivot_table(index="feature", columns="window_start", values="psi")
    np.testing.assert_allclose(np.asarray(heat.z)[list(heat.y).index("x")], expected.loc["x"].to_numpy())
    assert snap.drift is not None
    bars = dfig.drift_histogram_figure(snap.drift["x"]).data
    assert list(bars[0].y) == list(snap.drift["x"].reference_fractions)
    assert list(bars[1].y) == list(snap.drift["x"].current_fractions)
    assert snap.drift["x"].status == "drift" and snap.drift["c"].status == "ok"


def test_drift_window_gives_enough_rows_per_window() -> None:
    t0 = pd.Timestamp("2026-02-01", tz="UTC")
    frame = pd.DataFrame({"timestamp": [t0 + pd.Timedelta(seconds=6 * i) for i in range(600)]})
    assert dfig.drift_window_for(frame) == "20min"  # 600 rows over an hour: 3 windows of 200
