"""Downsample a long series for the browser while keeping its shape (MinMaxLTTB).

``tsdownsample``'s MinMaxLTTB (Rust) when it is installed; otherwise a NumPy version of the same idea:
keep each bucket's min and max as candidates, then pick one point per bucket by largest triangle
(LTTB). First and last points are always kept, and the result is sorted by x.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_Rust: Any
try:  # optional accelerator
    from tsdownsample import MinMaxLTTBDownsampler as _Rust
except ImportError:  # pragma: no cover - exercised where tsdownsample is absent
    _Rust = None


def downsample(x: np.ndarray, y: np.ndarray, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n_out`` points of (x, y), x ascending; NaNs of y dropped first."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if n_out < 3 or len(x) <= n_out:
        return x, y
    if _Rust is not None:
        idx = np.asarray(_Rust().downsample(x, y, n_out=n_out), dtype=np.int64)
    else:
        idx = _minmax_lttb(x, y, n_out)
    return x[idx], y[idx]


def _minmax_lttb(x: np.ndarray, y: np.ndarray, n_out: int, ratio: int = 4) -> np.ndarray:
    """Indices: min/max preselection into ``n_out * ratio / 2`` buckets, then LTTB on the candidates."""
    n = len(x)
    buckets = max(1, min((n - 2) // 2, n_out * ratio // 2))
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    cand = [0]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi <= lo:
            continue
        seg = y[lo:hi]
        a, b = lo + int(np.argmin(seg)), lo + int(np.argmax(seg))
        cand += sorted({a, b})
    cand.append(n - 1)
    c = np.asarray(sorted(set(cand)), dtype=np.int64)
    return c[_lttb(x[c], y[c], n_out)]


def _lttb(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    n = len(x)
    if n <= n_out:
        return np.arange(n)
    out = np.empty(n_out, dtype=np.int64)
    out[0], out[-1] = 0, n - 1
    edges = np.linspace(1, n - 1, n_out - 1).astype(np.int64)
    a = 0
    for i in range(n_out - 2):
        lo, hi = edges[i], max(edges[i] + 1, edges[i + 1])
        nlo, nhi = edges[i + 1], (edges[i + 2] if i + 2 < len(edges) else n)
        nhi = max(nlo + 1, nhi)
        cx, cy = x[nlo:nhi].mean(), y[nlo:nhi].mean()
        area = np.abs((x[a] - cx) * (y[lo:hi] - y[a]) - (x[a] - x[lo:hi]) * (cy - y[a]))
        a = lo + int(np.argmax(area))
        out[i + 1] = a
    return out
