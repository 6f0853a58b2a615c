"""Latency windows on a crafted log, Prometheus parsing and histogram quantiles, scraping."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest

from workbench.errors import InvalidInput, NotFound, ServiceUnavailable
from workbench.monitoring import (
    histogram_quantile,
    latency_over_time,
    metric_total,
    parse_prometheus,
    performance_summary,
    scrape_metrics,
    subtract_samples,
)

T0 = pd.Timestamp("2026-03-02 10:00:00", tz="UTC")


def crafted_log() -> pd.DataFrame:
    """Minute 0: 100 requests with latencies 1..100 ms; minute 1: none; minute 2: 10 requests at 10 ms."""
    stamps = [T0 + pd.Timedelta(seconds=0.5 * i) for i in range(100)]
    stamps += [T0 + pd.Timedelta(minutes=2, seconds=i) for i in range(10)]
    log = pd.DataFrame({
        "request_id": [f"r{i}" for i in range(110)], "timestamp": pd.DatetimeIndex(stamps),
        "deployment": ["fraud"] * 50 + ["fraud-canary"] * 50 + ["fraud"] * 10, "model_version": "1",
        "score": 0.5, "latency_ms": list(np.arange(1.0, 101.0)) + [10.0] * 10, "amount": 1.0,
    })
    return log.sample(frac=1.0, random_state=0).reset_index(drop=True)  # the log need not be sorted


def test_latency_windows_have_known_percentiles_and_gaps() -> None:
    frame = latency_over_time(crafted_log(), window="1min")
    assert frame["window_start"].tolist() == [T0, T0 + pd.Timedelta(minutes=1), T0 + pd.Timedelta(minutes=2)]
    assert frame["window_end"].iloc[0] == T0 + pd.Timedelta(minutes=1)
    assert frame["requests"].tolist() == [100, 0, 10]
    assert frame["throughput_rps"].tolist() == pytest.approx([100 / 60, 0.0, 10 / 60])
    first = frame.iloc[0]
    assert first["latency_p50_ms"] == pytest.approx(50.5)  # linear interpolation, as numpy's default
    assert first["latency_p90_ms"] == pytest.approx(90.1)
    assert first["latency_p99_ms"] == pytest.approx(99.01)
    assert first["latency_mean_ms"] == pytest.approx(50.5) and first["latency_max_ms"] == 100.0
    assert math.isnan(frame.iloc[1]["latency_p99_ms"])
    assert frame.iloc[2]["latency_p99_ms"] == pytest.approx(10.0)


def test_latency_windows_split_by_deployment_and_filter() -> None:
    frame = latency_over_time(crafted_log(), window="1min", by="deployment")
    counts = frame.set_index(["window_start", "deployment"])["requests"]
    assert counts[(T0, "fraud")] + counts[(T0, "fraud-canary")] == 100
    assert counts[(T0 + pd.Timedelta(minutes=2), "fraud-canary")] == 0
    only = latency_over_time(crafted_log(), window="30s", deployment="fraud")
    assert only["requests"].sum() == 60


def test_parquet_log_gives_the_same_windows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = crafted_log()
    log.iloc[:60].to_parquet(tmp_path / "a.parquet")
    log.iloc[60:].to_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(latency_over_time(tmp_path, "1min"), latency_over_time(log, "1min"))


def test_summary_over_the_whole_log() -> None:
    summary = performance_summary(crafted_log())
    assert summary.requests == 110
    assert summary.throughput_rps == pytest.approx(110 / 129.0)  # first at 0 s, last at 2 min 9 s
    assert summary.latency_p50_ms == pytest.approx(float(np.percentile(crafted_log()["latency_ms"], 50)))
    assert summary.metrics()["latency_p99_ms"] == summary.latency_p99_ms
    with pytest.raises(InvalidInput, match="no requests"):
        performance_summary(crafted_log(), deployment="nope")


def test_bad_windows_and_columns_are_explained() -> None:
    with pytest.raises(InvalidInput, match="window"):
        latency_over_time(crafted_log(), window="soon")
    with pytest.raises(InvalidInput, match="latency_ms"):
        latency_over_time(crafted_log().drop(columns=["latency_ms"]))


LABELS = ('application="fraud",deployment="FraudModel",route="/fraud",SessionName="session_2026_03_02",'
          'Version="2.60.0"')
RAY_SERVE_METRICS = f"""\
# HELP ray_serve_deployment_processing_latency_ms The latency for queries to be processed.
# TYPE ray_serve_deployment_processing_latency_ms histogram
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#a1",le="1.0"}} 10.0
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#a1",le="5.0"}} 50.0
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#a1",le="10.0"}} 80.0
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#a1",le="50.0"}} 95.0
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#a1",le="100.0"}} 100.0
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#a1",le="+Inf"}} 100.0
ray_serve_deployment_processing_latency_ms_count{{{LABELS},replica="fraud#FraudModel#a1"}} 100.0
ray_serve_deployment_processing_latency_ms_sum{{{LABELS},replica="fraud#FraudModel#a1"}} 1234.5
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#b2",le="1.0"}} 0.0
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#b2",le="5.0"}} 20.0
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#b2",le="10.0"}} 60.0
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#b2",le="50.0"}} 90.0
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#b2",le="100.0"}} 100.0
ray_serve_deployment_processing_latency_ms_bucket{{{LABELS},replica="fraud#FraudModel#b2",le="+Inf"}} 100.0
ray_serve_deployment_processing_latency_ms_count{{{LABELS},replica="fraud#FraudModel#b2"}} 100.0
ray_serve_deployment_processing_latency_ms_sum{{{LABELS},replica="fraud#FraudModel#b2"}} 2345.5
# HELP ray_serve_num_http_requests_total The number of HTTP requests processed.
# TYPE ray_serve_num_http_requests_total counter
ray_serve_num_http_requests_total{{application="fraud",method="POST",route="/fraud",status_code="200"}} 195.0
ray_serve_num_http_requests_total{{application="fraud",method="POST",route="/fraud",status_code="500"}} 5.0
# HELP ray_serve_deployment_request_counter_total The number of queries that have been processed in this replica.
# TYPE ray_serve_deployment_request_counter_total counter
ray_serve_deployment_request_counter_total{{{LABELS},replica="fraud#FraudModel#a1"}} 100.0
ray_serve_deployment_request_counter_total{{{LABELS},replica="fraud#FraudModel#b2"}} 100.0
"""

VLLM_METRICS = """\
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="SmolLM2-135M-Instruct"} 5.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="SmolLM2-135M-Instruct"} 8.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="SmolLM2-135M-Instruct"} 10.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="SmolLM2-135M-Instruct"} 10.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="SmolLM2-135M-Instruct"} 3.2
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="SmolLM2-135M-Instruct"} 4096.0
"""


def test_parse_ray_serve_metrics() -> None:
    samples = parse_prometheus(RAY_SERVE_METRICS)
    buckets = [s for s in samples if s.name == "ray_serve_deployment_processing_latency_ms_bucket"]
    assert len(buckets) == 12
    first = buckets[0]
    assert first.labels["le"] == "1.0" and first.labels["replica"] == "fraud#FraudModel#a1" and first.value == 10.0
    assert first.family == "ray_serve_deployment_processing_latency_ms" and first.type == "histogram"
    assert metric_total(samples, "ray_serve_num_http_requests_total") == 200.0
    assert metric_total(samples, "ray_serve_num_http_requests_total", {"status_code": "500"}) == 5.0


def test_histogram_quantile_like_promql() -> None:
    samples = parse_prometheus(RAY_SERVE_METRICS)
    name = "ray_serve_deployment_processing_latency_ms"
    # Summed over both replicas: cumulative 10, 70, 140, 185, 200, 200.
    assert histogram_quantile(samples, 0.5, name) == pytest.approx(5 + 5 * 30 / 70)  # rank 100 in (5, 10]
    assert histogram_quantile(samples, 0.99, name) == pytest.approx(50 + 50 * 13 / 15)  # rank 198 in (50, 100]
    assert histogram_quantile(samples, 0.02, name + "_bucket") == pytest.approx(0 + 1 * 4 / 10)  # lowest from 0
    assert histogram_quantile(samples, 0.5, name, {"replica": "fraud#FraudModel#a1"}) == pytest.approx(5.0)


def test_histogram_quantile_in_the_inf_bucket_returns_the_highest_bound() -> None:
    samples = parse_prometheus(VLLM_METRICS)
    assert histogram_quantile(samples, 0.99, "vllm:time_to_first_token_seconds") == 0.5
    assert histogram_quantile(samples, 0.5, "vllm:time_to_first_token_seconds") == pytest.approx(0.1)
    assert metric_total(samples, "vllm:generation_tokens_total") == 4096.0


def test_histogram_quantile_errors_name_what_is_there() -> None:
    samples = parse_prometheus(RAY_SERVE_METRICS)
    with pytest.raises(NotFound, match="ray_serve_deployment_processing_latency_ms"):
        histogram_quantile(samples, 0.5, "ray_serve_http_request_latency_ms")
    with pytest.raises(NotFound, match="no series"):
        histogram_quantile(samples, 0.5, "ray_serve_deployment_processing_latency_ms", {"replica": "zzz"})
    with pytest.raises(InvalidInput, match="q must be"):
        histogram_quantile(samples, 1.5, "ray_serve_deployment_processing_latency_ms")
    with pytest.raises(InvalidInput, match="Prometheus"):
        parse_prometheus("this is { not metrics")


def test_subtract_samples_gives_the_interval() -> None:
    earlier = parse_prometheus(RAY_SERVE_METRICS)
    later = parse_prometheus(RAY_SERVE_METRICS.replace("} 195.0", "} 295.0"))
    delta = subtract_samples(later, earlier)
    assert metric_total(delta, "ray_serve_num_http_requests_total") == 100.0
    assert math.isnan(histogram_quantile(delta, 0.5, "ray_serve_deployment_processing_latency_ms"))


@pytest.fixture()
def metrics_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            status = 200 if self.path == "/metrics" else 500
            body = (VLLM_METRICS if status == 200 else "boom").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_scrape_metrics_from_a_live_endpoint(metrics_server: str) -> None:
    samples = scrape_metrics(metrics_server + "/metrics", timeout_s=5)
    assert metric_total(samples, "vllm:generation_tokens_total") == 4096.0
    with pytest.raises(ServiceUnavailable, match="HTTP 500"):
        scrape_metrics(metrics_server + "/broken", timeout_s=5)


def test_scrape_metrics_says_when_nothing_answers() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(ServiceUnavailable, match="not answering"):
        scrape_metrics(f"http://127.0.0.1:{port}/metrics", timeout_s=2)
