"""Which version of a projection is live, which is being rebuilt, and which is kept for rollback.

Each projection keeps this record in its own store, so a projection never needs another store to start:
ClickHouse in ``{db}.projection_state`` (a ReplacingMergeTree, newest row wins), Redis under
``{prefix}:projection-state:redis`` next to the readers' pointer ``{prefix}:active-version``, both written
in one MULTI. Version 0 is what existed before any rebuild: the ClickHouse database ``{db}``, the bare
Redis prefix and the consumer group ``{group_prefix}-{name}``. A rebuild of version N writes into the
shadow database ``{db}_v{N}`` or the prefix ``{prefix}:v{N}`` with the group ``{group_prefix}-{name}-v{N}``.
The record names the live group explicitly: after a swap the live runners adopt the rebuild's group (and
so its committed offsets), after a rollback a fresh group seeded with the old version's offsets.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Protocol

import orjson
import redis
from clickhouse_driver import Client

from config.settings import ClickHouseSettings, Settings
from projections.clickhouse import clickhouse_client
from projections.keys import pointer_key

__all__ = [
    "ClickHouseStateStore",
    "ProjectionState",
    "RedisStateStore",
    "StateStore",
    "build_group",
    "live_group",
    "shadow_database",
    "state_store",
]


@dataclass(frozen=True)
class ProjectionState:
    """The versions of one projection; ``group`` is the consumer group the live runners use."""

    active: int = 0
    group: str = ""
    building: int | None = None
    previous: int | None = None
    # Where the previous version's data is now (a database or a key prefix).
    previous_home: str = ""
    # The old live group's committed offsets at the swap: where a rollback resumes that version.
    previous_offsets: dict[int, int] = field(default_factory=dict)
    next_version: int = 1
    rollbacks: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, raw: bytes | str) -> ProjectionState:
        data = orjson.loads(raw)
        data["previous_offsets"] = {int(p): int(o) for p, o in data.get("previous_offsets", {}).items()}
        return cls(**data)


def live_group(settings: Settings, name: str, state: ProjectionState) -> str:
    """The group the live runners of ``name`` consume with."""
    return state.group or f"{settings.projector.group_prefix}-{name}"


def build_group(settings: Settings, name: str, version: int) -> str:
    """The fresh group a rebuild of ``version`` consumes with (and the live runners adopt at the swap)."""
    return f"{settings.projector.group_prefix}-{name}-v{version}"


def shadow_database(database: str, version: int) -> str:
    """The ClickHouse database a rebuild of ``version`` is built in (and where the old tables go)."""
    return f"{database}_v{version}"


class StateStore(Protocol):
    """Loads and saves one projection's :class:`ProjectionState`."""

    def load(self) -> ProjectionState: ...

    def save(self, state: ProjectionState) -> None: ...

    def close(self) -> None: ...


class ClickHouseStateStore:
    """The clickhouse projection's record, in ``{db}.projection_state`` (never part of a swap)."""

    def __init__(self, ch: ClickHouseSettings, name: str = "clickhouse") -> None:
        self._ch = ch
        self._name = name
        self._client: Client | None = None
        self._saved_at = 0

    def _execute(self, query: str, params: object = None) -> list[tuple[object, ...]]:
        if self._client is None:
            self._client = clickhouse_client(self._ch)
        try:
            result = self._client.execute(query, params)
            return list(result) if isinstance(result, list) else []
        except Exception:
            self.close()
            raise

    def load(self) -> ProjectionState:
        # Reading creates nothing (a dry run writes nothing): no table yet means version 0.
        if not self._execute("SELECT count() FROM system.tables WHERE database = currentDatabase() "
                             "AND name = 'projection_state'")[0][0]:
            return ProjectionState()
        rows = self._execute("SELECT argMax(state, saved_at), max(saved_at) FROM projection_state "
                             "WHERE name = %(name)s", {"name": self._name})
        state, saved_at = rows[0] if rows else ("", 0)
        self._saved_at = max(self._saved_at, int(str(saved_at or 0)))
        return ProjectionState.from_json(str(state)) if state else ProjectionState()

    def save(self, state: ProjectionState) -> None:
        self._execute("CREATE TABLE IF NOT EXISTS projection_state (name String, state String, "
                      "saved_at UInt64) ENGINE = ReplacingMergeTree(saved_at) ORDER BY name")
        # Newest row wins: saved_at only ever grows, even if the clock steps back.
        self._saved_at = max(self._saved_at + 1, time.time_ns())
        self._execute("INSERT INTO projection_state (name, state, saved_at) VALUES",
                      [(self._name, state.to_json().decode(), self._saved_at)])

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client = None


class RedisStateStore:
    """The redis projection's record and the readers' active-version pointer, saved together."""

    def __init__(self, url: str, base_prefix: str, name: str = "redis") -> None:
        self._client = redis.Redis.from_url(url)
        self._key = f"{base_prefix}:projection-state:{name}"
        self._pointer = pointer_key(base_prefix)

    def load(self) -> ProjectionState:
        raw = self._client.get(self._key)
        return ProjectionState.from_json(raw) if raw else ProjectionState()

    def save(self, state: ProjectionState) -> None:
        with self._client.pipeline(transaction=True) as pipe:
            pipe.set(self._key, state.to_json())
            pipe.set(self._pointer, str(state.active))
            pipe.execute()

    def close(self) -> None:
        self._client.close()


def state_store(name: str, settings: Settings) -> StateStore:
    """The state store of the projection called ``name`` (``clickhouse`` or ``redis``)."""
    if name == "clickhouse":
        return ClickHouseStateStore(settings.clickhouse)
    if name == "redis":
        return RedisStateStore(settings.redis.url, settings.redis.key_prefix)
    raise ValueError(f"no state store for projection {name!r}")
