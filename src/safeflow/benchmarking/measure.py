"""Wall time and peak memory of one call, measured side by side for every row.

**Peak memory** is the growth of the process's resident set during the call: Linux's
high-water mark ``VmHWM`` is reset to the current RSS (``/proc/self/clear_refs``, value 5)
just before the call and read just after it; the figure is ``VmHWM - VmRSS`` at the start.
Unlike :mod:`tracemalloc` this counts the C and C++ heaps (TenSEAL ciphertexts, OpenSSL,
numpy) and costs nothing while the call runs; unlike ``ru_maxrss`` of a fresh subprocess it
needs no second process per row. Before each call the garbage collector runs and glibc's
``malloc_trim(0)`` hands freed heap pages back to the OS, so that memory freed by earlier
rows is counted again when re-used; memory the interpreter still holds (caches, pools) is
not, so small figures are lower bounds. Where ``/proc/self/clear_refs`` cannot be
written (not Linux) the peak of :mod:`tracemalloc` is used instead, and :func:`method` says
which.

Examples
--------
>>> m = measure(lambda: sum(range(1000)))
>>> m.value, m.seconds >= 0, m.peak_mib >= 0
(499500, True, True)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class Measured(Generic[T]):
    """A call's return value, wall time (s) and peak memory growth (MiB)."""

    value: T
    seconds: float
    peak_mib: float


def _status_kib(*keys: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in _STATUS.read_text().splitlines():
        k, _, v = line.partition(":")
        if k in keys:
            out[k] = int(v.split()[0])
    return out


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


def _trim() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``)."""
    gc.collect()
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)


@cache
def _hwm_resettable() -> bool:
    try:
        _CLEAR.write_text("5")
        return "VmHWM" in _status_kib("VmHWM")
    except OSError:
        return False


def method() -> str:
    """How peak memory is measured on this machine (for the report).

    Examples
    --------
    >>> method() in (HWM_METHOD, TRACEMALLOC_METHOD)
    True
    """
    return HWM_METHOD if _hwm_resettable() else TRACEMALLOC_METHOD


HWM_METHOD = ("peak RSS growth during the call: Linux VmHWM reset through "
              "/proc/self/clear_refs before the call, minus VmRSS at the start (counts C/C++ "
              "heaps such as TenSEAL's; memory re-used from earlier calls is not counted)")
TRACEMALLOC_METHOD = ("tracemalloc peak during the call (Python and numpy allocations only; "
                      "TenSEAL's C++ heap is not seen)")


def measure(fn: Callable[[], T]) -> Measured[T]:
    """Run ``fn()`` once; return its value, wall time and peak memory growth.

    Exceptions from ``fn`` propagate (nothing is swallowed).
    """
    _trim()
    if _hwm_resettable():
        _CLEAR.write_text("5")
        start = _status_kib("VmRSS")["VmRSS"]
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
        peak = _status_kib("VmHWM")["VmHWM"]
        return Measured(value, seconds, max(peak - start, 0) / 1024)
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
        _, peak_b = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Measured(value, seconds, peak_b / 2**20)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``: wall time only.

    Examples
    --------
    >>> timed(lambda: 3)[0]
    3
    """
    t0 = time.perf_counter()
    v = fn()
    return v, time.perf_counter() - t0


__all__ = ["HWM_METHOD", "TRACEMALLOC_METHOD", "Measured", "measure", "method", "timed"]
