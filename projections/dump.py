"""A canonical dump of a projection: the same data gives the same bytes, whatever the order of arrival.

Used to compare a rebuilt projection with the live one byte for byte. ClickHouse: every storage table
read with ``FINAL`` (so unmerged duplicates collapse), rows sorted, one JSON line each, without the
columns that record *when* a row was projected (``projected_at`` and what derives from it), which a
rebuild cannot share with the original. Redis: every key a projection writes, sorted, with its value in
a canonical form (hash fields sorted, sorted sets as member/score pairs in order), without TTLs.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
import redis

from config.settings import Settings
from projections.clickhouse import clickhouse_client
from projections.keys import KINDS
from projections.shadow import ClickHouseStorage

__all__ = ["VOLATILE_COLUMNS", "dump_clickhouse", "dump_projection", "dump_redis"]

VOLATILE_COLUMNS = frozenset(("projected_at", "first_seen", "latency_ms"))
"""When a row was projected, and latency measured to that moment: differ between any two projections."""


def _line(obj: Any) -> bytes:
    return orjson.dumps(obj, default=str, option=orjson.OPT_SORT_KEYS) + b"\n"


def dump_clickhouse(settings: Settings, database: str) -> bytes:
    """Every storage table of ``database``, canonically."""
    out: list[bytes] = []
    client = clickhouse_client(settings.clickhouse)
    try:
        for table in ClickHouseStorage(settings).tables(database):
            # DESCRIBE lists columns in table order (18.16's system.columns has no position).
            columns = [str(row[0]) for row in client.execute(f"DESCRIBE TABLE {database}.{table}")
                       if row[0] not in VOLATILE_COLUMNS]
            listed = ", ".join(f"`{c}`" for c in columns)
            rows = client.execute(f"SELECT {listed} FROM {database}.{table} FINAL ORDER BY {listed}")
            out.append(_line({"table": table, "columns": columns, "rows": len(rows)}))
            out.extend(_line(list(row)) for row in rows)
    finally:
        client.disconnect()
    return b"".join(out)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def dump_redis(settings: Settings, prefix: str) -> bytes:
    """Every projection key under ``prefix`` (named without the prefix), canonically."""
    client = redis.Redis.from_url(settings.redis.url)
    try:
        keys: set[bytes] = set()
        for kind in KINDS:
            keys.update(client.scan_iter(f"{prefix}:{kind}:*", count=1000))
        out: list[bytes] = []
        for key in sorted(keys):
            kind = _text(client.type(key))
            value: Any
            if kind == "hash":
                value = sorted((_text(k), _text(v)) for k, v in client.hgetall(key).items())
            elif kind == "zset":
                scored = cast(list[tuple[bytes, float]], client.zrange(key, 0, -1, withscores=True))
                value = [(_text(m), s) for m, s in scored]
            elif kind == "string":
                value = _text(client.get(key) or b"")
            else:
                value = f"unexpected type {kind}"
            out.append(_line([_text(key)[len(prefix) + 1:], kind, value]))
        return b"".join(out)
    finally:
        client.close()


def dump_projection(name: str, settings: Settings, home: str) -> bytes:
    """The dump of projection ``name`` stored at ``home`` (a ClickHouse database or a Redis prefix)."""
    if name == "clickhouse":
        return dump_clickhouse(settings, home)
    if name == "redis":
        return dump_redis(settings, home)
    raise ValueError(f"no dump for projection {name!r}")
