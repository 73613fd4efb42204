"""Helpers shared by the benchmark scripts (they run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import time
from pathlib import Path

from workbench._report import atomic_write_text

__all__ = ["_CpuWatch", "_median", "_peak_rss_gib", "_save"]


class _CpuWatch:
    """How many cores other processes kept busy between start and the call (Linux /proc/stat; None elsewhere)."""

    def __init__(self) -> None:
        self._t0, self._busy0, self._own0 = time.perf_counter(), self._busy(), self._own()

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as fh:
                f = [int(x) for x in fh.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = f
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def others_busy_cpus(self) -> float | None:
        busy = self._busy()
        if busy is None or self._busy0 is None:
            return None
        wall = time.perf_counter() - self._t0
        return round(max(busy - self._busy0 - (self._own() - self._own0), 0.0) / wall, 2)


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _save(path: Path, payload: dict) -> None:
    """Write the results JSON atomically (temporary file, then rename): a reader never sees half a file."""
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
