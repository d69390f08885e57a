"""``smsfold stats`` (the analysts' ready queries), ``smsfold projector`` (one projection alone) and
``smsfold verify`` (every projection compared with the fold of ``sms.events``)."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import signal
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from config.settings import Settings
from projections.analytics import QUERIES, QueryResult, run_query
from projections.clickhouse import clickhouse_client
from projections.projectors import PROJECTIONS, build_runner
from projections.verify import KINDS, verify

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction

__all__ = ["add_readmodel_commands", "render"]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-11-28") from None


def render(result: QueryResult, fmt: str, title: str = "") -> str:
    """The result as csv or json text; ``table`` is printed by :func:`stats` with rich."""
    if fmt == "json":
        return json.dumps([dict(zip(result.columns, row, strict=True)) for row in result.rows],
                          default=str, indent=2)
    out = _Lines()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    return "".join(out.parts).rstrip("\n")


class _Lines:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)


def stats(settings: Settings, args: argparse.Namespace) -> int:
    """Run one ready query and print it as a table, csv or json."""
    client = clickhouse_client(settings.clickhouse)
    try:
        result = run_query(client, args.query, company=args.company, since=args.since, until=args.until)
    finally:
        client.disconnect()
    if args.format == "table":
        table = Table(title=QUERIES[args.query].title)
        for column in result.columns:
            table.add_column(column, overflow="fold")
        for row in result.rows:
            table.add_row(*(_cell(v) for v in row))
        Console().print(table)
    else:
        print(render(result, args.format))
    return 0


def _cell(value: Any) -> str:
    return f"{value:,.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def projector(settings: Settings, args: argparse.Namespace) -> int:
    """Run one projection in the foreground until interrupted (SIGINT/SIGTERM finish the batch)."""
    runner = build_runner(args.name, settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: runner.stop())
    print(f"projector {args.name}: group {runner.group_id}, topic {settings.topics.events}", file=sys.stderr)
    runner.run()
    return 0


def verify_command(settings: Settings, args: argparse.Namespace) -> int:
    """Fold sms.events and compare every projection with it; exit 1 on any mismatch."""
    report = verify(settings, max_examples=args.examples)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
        return 0 if report.ok else 1
    table = Table(title=f"smsfold verify: {report.topic}, {report.unique_events:,} events "
                        f"({report.records:,} records, {report.poison} poison, {report.variants} redelivered "
                        f"with other timing metadata), {report.seconds:.1f}s")
    for column in ("read model", "checked", *KINDS, "first examples"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        counts = [f"[red]{check.counts[k]}[/red]" if check.counts[k] else "0" for k in KINDS]
        table.add_row(check.name, f"{check.checked:,}", *counts, "\n".join(check.examples))
    console = Console()
    console.print(table)
    console.print("[green]every projection equals the fold[/green]" if report.ok
                  else f"[red]mismatch: {', '.join(f'{report.total(k)} {k}' for k in KINDS)}[/red]")
    return 0 if report.ok else 1


def add_readmodel_commands(subparsers: Subparsers) -> None:
    """``smsfold stats QUERY``, ``smsfold projector --name NAME`` and ``smsfold verify``."""
    parser = subparsers.add_parser("stats", help="analysts' ready queries against ClickHouse")
    parser.add_argument("query", choices=sorted(QUERIES), help="which query (see docs/analytics.md)")
    parser.add_argument("--company", default="", help="one company id (default: every company)")
    parser.add_argument("--since", type=_date, help="first day, inclusive (YYYY-MM-DD)")
    parser.add_argument("--until", type=_date, help="last day, inclusive (YYYY-MM-DD)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.set_defaults(handler=stats)
    run = subparsers.add_parser("projector", help="run one projection of sms.events alone")
    run.add_argument("--name", required=True, choices=sorted(PROJECTIONS))
    run.set_defaults(handler=projector)
    check = subparsers.add_parser(
        "verify", help="compare every projection with the fold of sms.events; exit 1 on a mismatch")
    check.add_argument("--format", choices=("table", "json"), default="table")
    check.add_argument("--examples", type=int, default=5, help="examples shown per read model")
    check.set_defaults(handler=verify_command)
