"""The machine description every benchmark report starts with.

The same fields as ``benchmarks/_machine.py`` (CPU model from ``/proc/cpuinfo``, cores,
RAM, OS, Python, numpy and the named libraries' versions), importable from an installed
safeflow so that ``safeflow bench`` can describe the machine too. It reads /proc and
package metadata only, so it imports nothing heavy.

Examples
--------
>>> m = machine("numpy")
>>> sorted(m)[:3]
['CPU', 'OS', 'Python']
>>> m["libraries"].startswith("numpy ")
True
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(*libraries: str) -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python, numpy and the named libraries' versions."""
    cpu = platform.processor() or platform.machine()
    ram = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = {
        "CPU": cpu,
        "cores available": f"{cores} (os.cpu_count() = {os.cpu_count()})",
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "numpy": _version("numpy"),
    }
    if libraries:
        out["libraries"] = ", ".join(f"{p} {_version(p)}" for p in libraries)
    return out


__all__ = ["machine"]
