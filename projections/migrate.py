"""ClickHouse schema migrations: apply ``projections/migrations/NNN_*.sql`` once each, in order.

A file is split into statements on ``;`` at the end of a line; ``{db}`` is replaced by the database name.
Each applied file is recorded in ``{db}.schema_migrations`` with a checksum of its bytes, so re-running
applies nothing and an edited file that was already applied is reported instead of silently skipped.
Statements should be idempotent (``IF NOT EXISTS``): a file that fails halfway is retried as a whole.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError

from config.settings import ClickHouseSettings

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "MigrationError",
    "apply_migrations",
    "discover_migrations",
    "migration_statements",
    "render",
    "split_statements",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE_RE = re.compile(r"^(\d{3,})_[A-Za-z0-9_.-]+\.sql$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# ClickHouse 18.16 waits for data blocks after an inline INSERT ... VALUES sent over the native protocol,
# so such a statement hangs until the socket times out. INSERT ... SELECT works everywhere.
_INLINE_INSERT_RE = re.compile(r"^\s*INSERT\b.*\bVALUES\s*\(", re.IGNORECASE | re.DOTALL)


class MigrationError(RuntimeError):
    """A migration could not be applied, or an applied migration's file has changed."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version (the NNN prefix), file name, text and sha256 checksum."""

    version: str
    name: str
    sql: str
    checksum: str


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All ``NNN_*.sql`` files in ``directory``, ordered by version; duplicate versions are an error."""
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r} is not named NNN_name.sql")
        data = path.read_bytes()
        migration = Migration(match[1], path.name, data.decode("utf-8"), hashlib.sha256(data).hexdigest())
        if migration.version in found:
            other = found[migration.version].name
            raise MigrationError(f"migrations {other} and {path.name} share version {migration.version}")
        found[migration.version] = migration
    return sorted(found.values(), key=lambda m: int(m.version))


def split_statements(sql: str) -> list[str]:
    """Split SQL into statements at a ``;`` that ends a line; comment-only chunks are dropped."""
    statements: list[str] = []
    current: list[str] = []
    for line in [*sql.splitlines(), ";"]:
        stripped = line.strip()
        if stripped.startswith("--") or not stripped.endswith(";"):
            current.append(line)
            continue
        current.append(line.rstrip()[:-1])
        text = "\n".join(current).strip()
        current = []
        if any(part.strip() and not part.strip().startswith("--") for part in text.splitlines()):
            statements.append(text)
    return statements


def render(sql: str, database: str) -> str:
    """Replace ``{db}`` with ``database`` (which must be a plain identifier)."""
    if not _IDENT_RE.match(database):
        raise MigrationError(f"ClickHouse database name {database!r} must match {_IDENT_RE.pattern}")
    return sql.replace("{db}", database)


def migration_statements(migration: Migration, database: str) -> list[str]:
    """The statements of ``migration`` for ``database``; a statement 18.16 cannot run is an error."""
    statements = split_statements(render(migration.sql, database))
    for number, statement in enumerate(statements, 1):
        code = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--"))
        if _INLINE_INSERT_RE.match(code):
            raise MigrationError(
                f"migration {migration.name} statement {number}: INSERT ... VALUES hangs over the native "
                "protocol on ClickHouse 18.16; write INSERT ... SELECT instead"
            )
    return statements


def _server_message(exc: BaseException) -> str:
    """The first line of a ClickHouse error, without the server's stack trace."""
    text = str(getattr(exc, "message", "") or exc).strip()
    return " ".join(text.split("Stack trace:")[0].split())[:500]


def apply_migrations(ch: ClickHouseSettings, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not yet recorded in ``{db}.schema_migrations``; return the file names applied."""
    db = render("{db}", ch.database)
    migrations = discover_migrations(directory)
    client = Client(
        host=ch.host,
        port=ch.port,
        user=ch.user,
        password=ch.password.get_secret_value(),
        connect_timeout=5,
        send_receive_timeout=60,
    )
    try:
        try:
            client.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
            client.execute(
                f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
                "(version String, name String, applied_at DateTime, checksum String) "
                "ENGINE = MergeTree ORDER BY version"
            )
            rows = client.execute(f"SELECT version, name, checksum FROM {db}.schema_migrations")
        except ClickHouseError as exc:
            raise MigrationError(
                f"cannot prepare {db}.schema_migrations on {ch.host}:{ch.port}: {_server_message(exc)}"
            ) from exc
        applied = {str(version): (str(name), str(checksum)) for version, name, checksum in rows}
        done: list[str] = []
        for migration in migrations:
            if migration.version in applied:
                name, checksum = applied[migration.version]
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.name} changed after it was applied to {db} as {name} "
                        f"(checksum {checksum[:12]} -> {migration.checksum[:12]}); add a new NNN_*.sql "
                        f"instead of editing an applied one, or drop database {db} for a fresh start"
                    )
                continue
            statements = migration_statements(migration, db)
            for number, statement in enumerate(statements, 1):
                try:
                    client.execute(statement)
                except ClickHouseError as exc:
                    raise MigrationError(
                        f"migration {migration.name} statement {number}/{len(statements)} failed: "
                        f"{_server_message(exc)}"
                    ) from exc
            now = datetime.now().replace(microsecond=0)
            client.execute(
                f"INSERT INTO {db}.schema_migrations (version, name, applied_at, checksum) VALUES",
                [(migration.version, migration.name, now, migration.checksum)],
            )
            done.append(migration.name)
        return done
    finally:
        client.disconnect()
