"""The prediction log rotates by size and age and compacts closed segments to Parquet, while it is read."""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import stat
import threading
from pathlib import Path

import pandas as pd
import pytest

from workbench.monitoring import read_log
from workbench.monitoring.prediction_log import log_row_counts
from workbench.serving.prediction_log import PredictionLogWriter, compact_log, compact_segment

WRITER_PATIENCE_S = 300  # a bound on a hang, not a speed limit: alone a writer needs ~10 s


def _row(writer: str, i: int) -> dict[str, object]:
    return {"request_id": f"{writer}-{i}", "timestamp": "2026-01-01T00:00:00+00:00", "deployment": "d",
            "model_version": "1", "score": i / 1000, "latency_ms": 1.0, "amount": float(i)}


def _write(folder: str, writer: str, n: int, segment_bytes: int) -> None:
    # a writer still running near the parent's patience prints where it is (a full-suite run once saw a
    # writer outlive 120 s that takes ~10 s alone)
    faulthandler.dump_traceback_later(WRITER_PATIENCE_S - 20, exit=False)
    log = PredictionLogWriter(Path(folder), writer, segment_bytes=segment_bytes)
    for i in range(n):
        log.append([_row(writer, i)])
    log.wait_for_compaction()
    log.close()


def test_size_rotation_compacts_to_parquet_and_readers_never_see_a_row_twice(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write, args=(str(tmp_path), f"w{k}", 600, 4000)) for k in range(3)]
    for p in writers:
        p.start()
    seen: list[int] = []
    problems: list[str] = []

    def read_while_written() -> None:
        while any(p.is_alive() for p in writers) or not seen:
            if not any(tmp_path.glob("*.jsonl")):  # the writers have not started yet
                continue
            try:
                ids = read_log(tmp_path, ["request_id"]).request_id
            except Exception as exc:  # noqa: BLE001 - collected and failed on below
                problems.append(repr(exc))
                return
            if not ids.is_unique:
                problems.append(f"{int(ids.duplicated().sum())} duplicated ids in one read")
                return
            seen.append(len(ids))

    reader = threading.Thread(target=read_while_written)
    reader.start()
    for p in writers:
        p.join(WRITER_PATIENCE_S)
        assert p.exitcode == 0
    reader.join(120)
    assert problems == []
    assert seen == sorted(seen)  # a row once readable stays readable

    parquet = sorted(tmp_path.glob("*.parquet"))
    assert len(parquet) >= 3 * 5  # 600 rows of ~150 bytes in 4 kB segments: dozens of segments per writer
    compact_log(tmp_path, closed_only=False, grace_s=0)  # the deployment is stopped: everything compacts
    assert sorted(tmp_path.glob("*.jsonl")) == []
    log = read_log(tmp_path)
    expected = {f"w{k}-{i}" for k in range(3) for i in range(600)}
    assert set(log.request_id) == expected and len(log) == len(expected)
    by_id = log.set_index("request_id")
    assert by_id.loc["w2-599", "amount"] == 599.0 and by_id.loc["w0-7", "score"] == pytest.approx(0.007)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in tmp_path.glob("*.parquet"))
    assert list(tmp_path.glob(".*.tmp")) == []


def test_a_line_that_does_not_parse_is_set_aside_and_counted_not_dropped(tmp_path: Path) -> None:
    segment = tmp_path / "w-1-000000.jsonl"
    good = [json.dumps(_row("w", i)) for i in range(5)]
    segment.write_text("\n".join([*good[:3], '{"request_id": "cut", "timest', "not json at all", *good[3:]]) + "\n")
    assert log_row_counts(tmp_path) == (5, 2)
    parquet = compact_segment(segment)
    assert parquet == tmp_path / "w-1-000000.parquet"
    assert (tmp_path / "w-1-000000.rejected").read_text().splitlines() == ['{"request_id": "cut", "timest',
                                                                           "not json at all"]
    # the JSON lines are still there (grace period) but superseded: read once, from Parquet
    assert segment.exists()
    assert log_row_counts(tmp_path) == (5, 2)
    assert sorted(read_log(tmp_path).request_id) == [f"w-{i}" for i in range(5)]
    compact_log(tmp_path, grace_s=0)
    assert not segment.exists() and log_row_counts(tmp_path) == (5, 2)


def test_age_rotation_closes_a_quiet_segment_and_the_open_one_stays_json(tmp_path: Path) -> None:
    log = PredictionLogWriter(tmp_path, "w", segment_age_s=1e-9)  # every later batch finds its segment old
    for i in range(4):
        log.append([_row("w", i)])
    log.wait_for_compaction()
    assert log.segment == 3
    assert len(list(tmp_path.glob("*.parquet"))) == 3
    assert [p.name for p in tmp_path.glob("*.jsonl") if not p.with_suffix(".parquet").exists()] == [log.path.name]
    frame = read_log(tmp_path)
    assert sorted(frame.request_id) == [f"w-{i}" for i in range(4)]
    assert pd.api.types.is_datetime64_any_dtype(frame.timestamp)
    log.close()


def test_segment_limits_must_be_positive(tmp_path: Path) -> None:
    from workbench.errors import InvalidInput

    with pytest.raises(InvalidInput, match="must be positive"):
        PredictionLogWriter(tmp_path, "w", segment_bytes=0)
