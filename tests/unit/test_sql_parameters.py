"""Every ClickHouse query passes values as parameters: an AST scan of every ``execute()`` call in the code.

The SQL argument must be a constant string (or a name bound to one). An f-string may interpolate only
identifiers on the reviewed list below (names that are validated or constant, never request data);
anything else (``%`` or ``.format`` on SQL, concatenation, an f-string with another value) fails and
names the file and line, so a new query with an interpolated value cannot land unreviewed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "projections", "gateway", "config", "smsfold", "agents", "bench")
EXECUTE = {"execute", "execute_iter", "execute_with_progress", "query_dataframe", "insert_dataframe"}

# (file, the expression interpolated into SQL) → why it is safe. Reviewed by hand.
REVIEWED_IDENTIFIERS = {
    ("projections/migrate.py", "db"): "the database name, checked against ^[A-Za-z_][A-Za-z0-9_]*$",
    ("projections/latency.py", "done_at"): "a column expression from the module's constant _STAGE_SQL",
    ("projections/dump.py", "database"): "a projection database name: the setting or its shadow `{db}_v{N}`",
    ("projections/dump.py", "table"): "table names listed by system.tables for that database",
    ("projections/dump.py", "listed"): "backquoted column names listed by DESCRIBE TABLE",
    ("projections/replay_check.py", "database"): "the shadow database `{db}_v{N}` (setting + integer)",
    ("projections/replay_check.py", "table"): "keys of the function's constant fact_counts dict",
    ("projections/shadow.py", "home"): "the shadow database `{db}_v{N}` (setting + integer)",
}
# (file, a non-literal SQL argument) → where its text comes from. Reviewed by hand.
REVIEWED_SQL = {
    ("projections/clickhouse.py", "self._query"): "constant INSERT over the constant column list",
    ("projections/analytics.py", "query.sql"): "constant SQL of the analytics QUERIES registry",
    ("projections/migrate.py", "statement"): "statements of the repository's migration files",
    ("bench/fold.py", "query"): "constant INSERT of the benchmark",
    ("projections/shadow.py", "statement"): "one RENAME TABLE of table names listed from system.tables",
    ("projections/verify.py", "query"): "_rows callers: constant columns, tables from the constant list",
    ("projections/versions.py", "query"): "_execute callers pass constant SQL with %(name)s parameters",
}


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (PROJECT / pkg).rglob("*.py"))


def _constants(tree: ast.Module) -> set[str]:
    """Module-level names bound once to a constant string (or a concatenation of constants)."""
    names: dict[str, int] = {}
    constant: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    names[target.id] = names.get(target.id, 0) + 1
                    if node.value is not None and _is_constant(node.value, constant):
                        constant.add(target.id)
    return {name for name in constant if names[name] == 1}


def _is_constant(node: ast.expr, constants: set[str]) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Name):
        return node.id in constants
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_constant(node.left, constants) and _is_constant(node.right, constants)
    return False


def problems_in(path: Path, source: str) -> list[str]:
    """Each execute() call whose SQL is not constant, parameterised or reviewed, as ``file:line: why``."""
    rel = path.relative_to(PROJECT).as_posix()
    tree = ast.parse(source)
    constants = _constants(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in EXECUTE and node.args):
            continue
        sql = node.args[0]
        where = f"{rel}:{node.lineno}"
        if _is_constant(sql, constants) or (rel, ast.unparse(sql)) in REVIEWED_SQL:
            continue
        if isinstance(sql, ast.JoinedStr):
            for part in sql.values:
                if isinstance(part, ast.FormattedValue):
                    expr = ast.unparse(part.value)
                    if (rel, expr) not in REVIEWED_IDENTIFIERS:
                        found.append(f"{where}: f-string SQL interpolates {expr!r}; pass it as a parameter")
            continue
        found.append(f"{where}: SQL built from {ast.unparse(sql)!r}; use a constant with %(name)s parameters")
    return found


def test_every_clickhouse_query_passes_values_as_parameters() -> None:
    sources = _sources()
    assert len(sources) > 50
    problems = [p for path in sources for p in problems_in(path, path.read_text(encoding="utf-8"))]
    assert problems == []


def test_every_reviewed_exception_still_exists() -> None:
    # A stale entry would silently allow a future query with the same text.
    text = {path.relative_to(PROJECT).as_posix(): path.read_text(encoding="utf-8") for path in _sources()}
    for rel, expr in (*REVIEWED_SQL, *REVIEWED_IDENTIFIERS):
        assert expr in text[rel], (rel, expr)


@pytest.mark.parametrize(
    "snippet",
    [
        "client.execute(f\"SELECT * FROM events WHERE profile_key = '{profile}'\")",
        "client.execute(\"SELECT * FROM events WHERE company_id = '%s'\" % company)",
        "client.execute(\"SELECT * FROM events WHERE company_id = '{}'\".format(company))",
        "client.execute(\"SELECT * FROM events WHERE company_id = '\" + company + \"'\")",
        "sql = f\"SELECT {x}\"\nclient.execute(sql)",
    ],
)
def test_the_scan_catches_interpolated_values(snippet: str) -> None:
    assert problems_in(PROJECT / "projections" / "example.py", snippet)


def test_the_scan_passes_parameterised_queries() -> None:
    snippet = ('_SQL = "SELECT * FROM events WHERE company_id = %(company)s"\n'
               "client.execute(_SQL, {'company': company})\n"
               "client.execute('SELECT 1')")
    assert problems_in(PROJECT / "projections" / "example.py", snippet) == []
