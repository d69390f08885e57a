"""Where each version of a projection lives, and how a built version is swapped in for readers.

ClickHouse: version N is built in its own database ``{db}_v{N}``, migrated from scratch with the same
migration files, so it has its own tables, materialized views and views (materialized views do not
backfill, so a copy of the tables alone would not do). The swap is one ``RENAME TABLE`` statement that
exchanges every storage table between ``{db}`` and ``{db}_v{N}`` (through a temporary name); views and
materialized views stay where they are. That is exact on ClickHouse 18.16 because a materialized view's
source and ``TO`` target are resolved by name: after the exchange, inserts into ``{db}.events`` (the
rebuilt table now) feed ``{db}``'s views into ``{db}``'s fact tables (rebuilt too), and the old tables
in ``{db}_v{N}`` are fed by that database's views, so each database stays self-consistent (checked by
tests/integration/test_replay.py). On current releases with Atomic databases views follow their tables
by UUID instead; as every table moves together, the result is the same. Readers query ``{db}`` by name,
so they switch in that one statement; the old version stays in ``{db}_v{N}`` for a rollback (the same
exchange again) or is dropped.

Redis: version N lives under ``{prefix}:v{N}`` (version 0 is the bare prefix); the swap is the
active-version pointer that readers resolve (projections/keys.py), saved with the projection's state.
"""

from __future__ import annotations

from typing import Protocol

import redis

from config.settings import Settings
from projections.clickhouse import ClickHouseSink, clickhouse_client
from projections.keys import KINDS, versioned_prefix
from projections.migrate import apply_migrations
from projections.redis_store import RedisSink
from projections.runner import Sink
from projections.versions import shadow_database

__all__ = ["ClickHouseStorage", "RedisStorage", "Storage", "storage_for"]

# Tables of a database that are not part of the projection's data.
_CONTROL_TABLES = frozenset(("schema_migrations", "projection_state"))


class Storage(Protocol):
    """Where a projection's versions live; ``home`` names the place (a database or a key prefix)."""

    def live_sink(self, version: int) -> Sink: ...

    def build_sink(self, version: int) -> Sink: ...

    def build_home(self, version: int) -> str: ...

    def prepare(self, version: int, fresh: bool) -> None: ...

    def swap(self, version_in: int, home_in: str, version_out: int) -> str: ...

    def drop(self, home: str) -> None: ...


class ClickHouseStorage:
    """Shadow databases and the RENAME exchange."""

    def __init__(self, settings: Settings) -> None:
        self._ch = settings.clickhouse
        self._db = settings.clickhouse.database

    def live_sink(self, version: int) -> Sink:
        # Whatever the version, the live data is in {db}: the swap moved it there.
        return ClickHouseSink(self._ch)

    def build_home(self, version: int) -> str:
        return shadow_database(self._db, version)

    def build_sink(self, version: int) -> Sink:
        return ClickHouseSink(self._ch.model_copy(update={"database": self.build_home(version)}))

    def prepare(self, version: int, fresh: bool) -> None:
        """Create (or, when ``fresh``, re-create) the shadow database with every migration applied."""
        if fresh:
            self.drop(self.build_home(version))
        apply_migrations(self._ch.model_copy(update={"database": self.build_home(version)}))

    def tables(self, database: str) -> list[str]:
        """The storage tables of ``database`` (no views, no control tables), sorted."""
        client = clickhouse_client(self._ch)
        try:
            rows = client.execute("SELECT name, engine FROM system.tables WHERE database = %(db)s",
                                  {"db": database})
        finally:
            client.disconnect()
        return sorted(str(name) for name, engine in rows
                      if "View" not in str(engine) and name not in _CONTROL_TABLES)

    def swap(self, version_in: int, home_in: str, version_out: int) -> str:
        """Exchange every storage table of ``{db}`` and ``home_in`` in one statement; returns
        ``home_in``, which now holds what was live."""
        home = home_in
        # The live database gets any migration the shadow has (a new projection's tables and views),
        # so both hold the same tables and each keeps feeding its own.
        apply_migrations(self._ch)
        live, other = self.tables(self._db), self.tables(home)
        if live != other:
            raise RuntimeError(f"cannot swap: {self._db} has tables {live}, {home} has {other}")
        pairs = []
        for t in live:
            pairs += [f"{self._db}.{t} TO {home}.{t}__swap", f"{home}.{t} TO {self._db}.{t}",
                      f"{home}.{t}__swap TO {home}.{t}"]
        client = clickhouse_client(self._ch)
        try:
            # One statement, so readers see either every old table or every new one.
            statement = "RENAME TABLE " + ", ".join(pairs)
            client.execute(statement)
        finally:
            client.disconnect()
        return home

    def drop(self, home: str) -> None:
        if home == self._db:
            raise ValueError(f"refusing to drop the live database {home}")
        client = clickhouse_client(self._ch)
        try:
            client.execute(f"DROP DATABASE IF EXISTS {home}")
        finally:
            client.disconnect()


class RedisStorage:
    """Key prefixes per version; the swap itself is the pointer the state store saves."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._base = settings.redis.key_prefix

    def _sink(self, version: int) -> Sink:
        redis_settings = self._settings.redis.model_copy(
            update={"key_prefix": versioned_prefix(self._base, version)})
        return RedisSink(redis_settings, self._settings.projector.timeline_entries)

    def live_sink(self, version: int) -> Sink:
        return self._sink(version)

    def build_sink(self, version: int) -> Sink:
        return self._sink(version)

    def build_home(self, version: int) -> str:
        return versioned_prefix(self._base, version)

    def prepare(self, version: int, fresh: bool) -> None:
        if fresh:
            self.drop(self.build_home(version))

    def swap(self, version_in: int, home_in: str, version_out: int) -> str:
        # Readers follow the pointer saved with the state; what was live stays under its own prefix.
        return versioned_prefix(self._base, version_out)

    def drop(self, home: str) -> None:
        """Delete every projection key under ``home`` (only the kinds a projection writes)."""
        client = redis.Redis.from_url(self._settings.redis.url)
        try:
            for kind in KINDS:
                batch: list[bytes] = []
                for key in client.scan_iter(f"{home}:{kind}:*", count=1000):
                    batch.append(key)
                    if len(batch) >= 1000:
                        client.unlink(*batch)
                        batch = []
                if batch:
                    client.unlink(*batch)
        finally:
            client.close()


def storage_for(name: str, settings: Settings) -> Storage:
    """The storage of the projection called ``name``."""
    if name == "clickhouse":
        return ClickHouseStorage(settings)
    if name == "redis":
        return RedisStorage(settings)
    raise ValueError(f"no storage for projection {name!r}")
