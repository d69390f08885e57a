"""Migration files: naming, statement splitting, ``{db}`` substitution; no ClickHouse needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections.migrate import (
    MIGRATIONS_DIR,
    Migration,
    MigrationError,
    discover_migrations,
    migration_statements,
    render,
    split_statements,
)


def test_split_on_semicolon_at_line_end_only() -> None:
    sql = (
        "-- header comment;\n"
        "CREATE TABLE {db}.a (s String DEFAULT 'x;y') ENGINE = Memory;\n"
        "\n"
        "-- only a comment between statements\n"
        "CREATE TABLE {db}.b\n(x UInt8)\nENGINE = Memory ;  \n"
        "SELECT 1"
    )
    assert split_statements(sql) == [
        "-- header comment;\nCREATE TABLE {db}.a (s String DEFAULT 'x;y') ENGINE = Memory",
        "-- only a comment between statements\nCREATE TABLE {db}.b\n(x UInt8)\nENGINE = Memory",
        "SELECT 1",
    ]


def test_comment_only_and_empty_chunks_are_dropped() -> None:
    assert split_statements("-- nothing here;\n\n;\n") == []


def test_render_substitutes_and_rejects_bad_names() -> None:
    assert render("CREATE DATABASE {db}; SELECT * FROM {db}.t", "smsfold") == (
        "CREATE DATABASE smsfold; SELECT * FROM smsfold.t"
    )
    with pytest.raises(MigrationError, match="must match"):
        render("{db}", "x; DROP DATABASE y")


def test_discover_orders_by_version_and_checks_names(tmp_path: Path) -> None:
    (tmp_path / "010_b.sql").write_text("SELECT 2;\n")
    (tmp_path / "002_a.sql").write_text("SELECT 1;\n")
    found = discover_migrations(tmp_path)
    assert [m.name for m in found] == ["002_a.sql", "010_b.sql"]
    assert found[0].version == "002" and len(found[0].checksum) == 64

    (tmp_path / "10_c.sql").write_text("SELECT 3;\n")
    with pytest.raises(MigrationError, match="not named NNN_name.sql"):
        discover_migrations(tmp_path)
    (tmp_path / "10_c.sql").unlink()
    (tmp_path / "002_dup.sql").write_text("SELECT 4;\n")
    with pytest.raises(MigrationError, match="share version 002"):
        discover_migrations(tmp_path)


def test_inline_insert_values_is_refused() -> None:
    migration = Migration("003", "003_seed.sql", "INSERT INTO {db}.t (x)\nVALUES (1);\n", "0" * 64)
    with pytest.raises(MigrationError, match="003_seed.sql statement 1: INSERT ... VALUES"):
        migration_statements(migration, "smsfold")
    select = Migration("004", "004_seed.sql", "-- VALUES (1)\nINSERT INTO {db}.t SELECT 1;\n", "0" * 64)
    assert migration_statements(select, "db1") == ["-- VALUES (1)\nINSERT INTO db1.t SELECT 1"]


def test_shipped_migrations_parse() -> None:
    migrations = discover_migrations(MIGRATIONS_DIR)
    assert migrations and migrations[0].version == "001"
    for migration in migrations:
        statements = migration_statements(migration, "smsfold")
        assert statements and all("{db}" not in s for s in statements)
