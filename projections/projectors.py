"""The projections by name, and a runner for each: what the worker and `smsfold projector` start."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from config.settings import Settings
from projections.clickhouse import ClickHouseSink
from projections.redis_store import RedisSink
from projections.runner import ProjectorRunner, Sink
from streams.codec import AvroCodec

__all__ = ["PROJECTIONS", "ProjectorError", "ProjectorThreads", "build_runner"]

PROJECTIONS: dict[str, Callable[[Settings], Sink]] = {
    "clickhouse": lambda s: ClickHouseSink(s.clickhouse),
    "redis": lambda s: RedisSink(s.redis, s.projector.timeline_entries),
}
"""Every projection of ``sms.events``; each has its own consumer group and replays independently."""

# Poison records go to the dead letters once, from this projection; the others skip them.
_DEAD_LETTERS_FROM = "clickhouse"


class ProjectorError(ValueError):
    """An unknown projection name."""


def build_runner(
    name: str, settings: Settings, codec: AvroCodec | None = None,
    on_written: Callable[[list[dict[str, Any]]], None] | None = None,
) -> ProjectorRunner:
    """A runner for the projection called ``name``."""
    try:
        make_sink = PROJECTIONS[name]
    except KeyError:
        raise ProjectorError(
            f"unknown projection {name!r}; choose from {', '.join(sorted(PROJECTIONS))}"
        ) from None
    return ProjectorRunner(name, make_sink(settings), settings, dead_letter=name == _DEAD_LETTERS_FROM,
                           codec=codec, on_written=on_written)


def _bind(
    on_written: Callable[[str, list[dict[str, Any]]], None], name: str
) -> Callable[[list[dict[str, Any]]], None]:
    return lambda events: on_written(name, events)


class ProjectorThreads:
    """Runs several projector runners, one thread each (the consume and write calls release the GIL)."""

    def __init__(
        self, names: tuple[str, ...], settings: Settings,
        on_written: Callable[[str, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        codec = AvroCodec()
        self.runners = [
            build_runner(name, settings, codec, _bind(on_written, name) if on_written else None)
            for name in names
        ]
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for runner in self.runners:
            thread = threading.Thread(target=runner.run, name=f"projector-{runner.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 30.0) -> None:
        for runner in self.runners:
            runner.stop()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads)
