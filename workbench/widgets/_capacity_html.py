"""The cluster's free and total resources as the small table the Jobs and Deploy forms show beside them."""

from __future__ import annotations

from workbench.training.capacity import ClusterCapacity


def capacity_table(c: ClusterCapacity, css_class: str, with_memory: bool = False) -> str:
    """CPUs and GPUs (and memory in GiB) free of total; each free cell carries ``data-free`` for tests."""
    rows = [("CPUs", c.cpus_free, c.cpus_total, "g"), ("GPUs", c.gpus_free, c.gpus_total, "g")]
    if with_memory:
        rows.append(("memory GiB", c.memory_free / 1024**3, c.memory_total / 1024**3, ".1f"))
    cells = "".join(f"<tr><td>{name}</td><td data-free='{free:g}'><b>{free:{f}}</b> free</td>"
                    f"<td>of {total:{f}}</td></tr>" for name, free, total, f in rows)
    return f"<table class='{css_class}'>{cells}</table>"
