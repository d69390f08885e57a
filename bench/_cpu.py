"""CPU time of benchmark processes and their threads, read from /proc (user + system)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["CpuSampler", "cpu_seconds"]

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(path: Path) -> tuple[str, float] | None:
    """(thread or process name, CPU seconds) from a /proc stat file, or None if it is gone."""
    try:
        text = path.read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return name, (int(fields[11]) + int(fields[12])) / _TICK


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds the processes used so far."""
    return sum(s[1] for pid in pids if (s := _stat(Path(f"/proc/{pid}/stat"))) is not None)


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds so far of each thread of ``pid``, summed by thread name."""
    by_name: dict[str, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return by_name
    for task in tasks:
        stat = _stat(task / "stat")
        if stat is not None:
            by_name[stat[0]] = by_name.get(stat[0], 0.0) + stat[1]
    return by_name


class CpuSampler:
    """CPU used by named processes between :meth:`start` and :meth:`stop`, per process and per thread
    name (threads that ended meanwhile are not counted)."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._before: dict[str, dict[str, float]] = {}

    def _sample(self) -> dict[str, dict[str, float]]:
        return {name: _threads(pid) for name, pid in self._pids.items()}

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, dict[str, float]]:
        """Per process: thread name → CPU seconds used since :meth:`start`."""
        after = self._sample()
        return {
            name: {t: s - self._before.get(name, {}).get(t, 0.0) for t, s in threads.items()}
            for name, threads in after.items()
        }
