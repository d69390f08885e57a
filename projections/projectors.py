"""The projections by name, and a runner for each: what the worker and `smsfold projector` start."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from config.settings import Settings
from projections.runner import ProjectorRunner, Sink, Target
from projections.shadow import Storage, storage_for
from projections.versions import StateStore, live_group, state_store
from streams.codec import AvroCodec

__all__ = ["PROJECTIONS", "LiveTarget", "ProjectorError", "ProjectorThreads", "build_runner",
           "check_projection"]

PROJECTIONS: tuple[str, ...] = ("clickhouse", "redis")
"""Every projection of ``sms.events``; each has its own consumer group and replays independently."""

# Poison records go to the dead letters once, from this projection; the others skip them.
_DEAD_LETTERS_FROM = "clickhouse"


class ProjectorError(ValueError):
    """An unknown projection name."""


def build_runner(
    name: str, settings: Settings, codec: AvroCodec | None = None,
    on_written: Callable[[list[dict[str, Any]]], None] | None = None,
) -> ProjectorRunner:
    """A live runner for the projection called ``name``: it follows the projection's live version."""
    check_projection(name)
    follow = LiveTarget(name, settings)
    return ProjectorRunner(name, follow.storage.live_sink(0), settings,
                           dead_letter=name == _DEAD_LETTERS_FROM, codec=codec, on_written=on_written,
                           follow=follow)


def check_projection(name: str) -> None:
    """Raise :class:`ProjectorError` naming the choices unless ``name`` is a projection."""
    if name not in PROJECTIONS:
        raise ProjectorError(f"unknown projection {name!r}; choose from {', '.join(PROJECTIONS)}")


class LiveTarget:
    """The live group and version of one projection, from its state store (what a swap changes)."""

    def __init__(self, name: str, settings: Settings) -> None:
        self._name = name
        self._settings = settings
        self.storage: Storage = storage_for(name, settings)
        self._store: StateStore = state_store(name, settings)

    def target(self) -> Target:
        state = self._store.load()
        return Target(live_group(self._settings, self._name, state), state.active)

    def sink(self, target: Target) -> Sink:
        return self.storage.live_sink(target.version)


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
