"""DuckDB's threads share one Python file object per file and read it as seek + read: the object-store file
wrapper keeps a position per thread, so interleaved readers each get their own bytes (on a real bucket,
sorted pages of a 10M-row dataset failed with "TProtocolException: Invalid data" before it)."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa

from workbench.data._source import PositionalFile


def test_threads_reading_one_file_get_their_own_bytes(tmp_path: Path) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB whose every offset is known
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    shared = PositionalFile(pa.OSFile(str(path), "rb"))
    assert shared.size == len(blob)
    errors: list[str] = []
    start = threading.Barrier(4)

    def reader(k: int) -> None:
        start.wait()
        for i in range(400):
            offset = (k * 7919 + i * 104_729) % (len(blob) - 512)
            shared.seek(offset)
            got = shared.read(512)
            if got != blob[offset:offset + 512]:
                errors.append(f"thread {k} read {i} at {offset}")
            if shared.tell() != offset + 512:
                errors.append(f"thread {k} position after read {i}")

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    shared.seek(-10, 2)
    assert shared.read() == blob[-10:] and shared.read(5) == b""  # from the end; nothing past it
    shared.close()
    assert shared.closed
