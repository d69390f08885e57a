"""The ``smsfold`` command line.

Each command is a function ``(settings, args) -> exit code``. A command group registers its argparse
sub-parsers in :data:`COMMANDS` and binds each leaf to its function with ``set_defaults(handler=...)``;
:func:`main` builds the settings once and calls the handler. Errors the user can fix (a missing binary,
a taken port, a bad setting) print one line, ``smsfold: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from config.companies import ConfigError
from config.settings import Settings, load_settings
from projections.migrate import MigrationError
from smsfold.loadtest.cli import add_loadtest_commands
from smsfold.loadtest.options import OptionError
from smsfold.stack import EmbeddedStack, StackError

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction

__all__ = ["COMMANDS", "EXIT_USAGE", "Handler", "build_parser", "main"]

Handler = Callable[[Settings, argparse.Namespace], int]
"""A command: gets the settings and the parsed arguments, returns the process exit code."""

EXIT_USAGE = 2
_USER_ERRORS = (StackError, ConfigError, MigrationError, OptionError)


def stack_up(settings: Settings, args: argparse.Namespace) -> int:
    """Start the embedded components, check external ones, create topics and apply migrations."""
    started = time.monotonic()
    stack = EmbeddedStack(settings)
    stack.up()
    healthy = _print_status(stack)
    print(f"stack up in {time.monotonic() - started:.1f}s (state in {stack.state_dir})")
    return 0 if healthy else 1


def stack_down(settings: Settings, args: argparse.Namespace) -> int:
    """Stop the processes ``stack up`` started; ``--purge`` also deletes their data and logs."""
    stack = EmbeddedStack(settings)
    stack.down(purge=args.purge)
    print(f"stack down{' and purged' if args.purge else ''} ({stack.state_dir})")
    return 0


def stack_status(settings: Settings, args: argparse.Namespace) -> int:
    """Print each component's mode, endpoint, pid and health; exit 1 when one is unhealthy."""
    return 0 if _print_status(EmbeddedStack(settings)) else 1


def _print_status(stack: EmbeddedStack) -> bool:
    table = Table(title="smsfold stack")
    for column in ("component", "mode", "endpoint", "pid", "healthy", "detail"):
        table.add_column(column, overflow="fold")
    statuses = stack.status()
    for s in statuses:
        mode = "embedded" if s.embedded else "external"
        health = "[green]yes[/green]" if s.healthy else "[red]no[/red]"
        table.add_row(s.name, mode, s.endpoint, str(s.pid or "-"), health, s.detail)
    Console().print(table)
    return all(s.healthy for s in statuses)


def add_stack_commands(subparsers: Subparsers) -> None:
    """``smsfold stack up|down|status``."""
    stack = subparsers.add_parser("stack", help="run the embedded broker, ClickHouse and Redis")
    actions = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start embedded components, create topics, apply migrations")
    up.set_defaults(handler=stack_up)
    down = actions.add_parser("down", help="stop what `stack up` started (ClickHouse data is kept)")
    down.add_argument("--purge", action="store_true", help="also delete ClickHouse data, logs and pid files")
    down.set_defaults(handler=stack_down)
    status = actions.add_parser("status", help="show each component; exit 1 if one is unhealthy")
    status.set_defaults(handler=stack_status)


def gateway(settings: Settings, args: argparse.Namespace) -> int:
    """Serve vendor webhooks and the API until interrupted."""
    from smsfold.runtime import run_gateway

    run_gateway(settings)
    return 0


def worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run the Faust worker (deciders and projectors) until interrupted."""
    from smsfold.runtime import run_worker

    run_worker(settings)
    return 0


def demo(settings: Settings, args: argparse.Namespace) -> int:
    """Stack up, gateway and worker, signed webhooks in, projections checked and printed, all down."""
    from smsfold.demo import run_demo

    return run_demo(settings)


def add_process_commands(subparsers: Subparsers) -> None:
    """``smsfold gateway``, ``smsfold worker`` and ``smsfold demo``."""
    subparsers.add_parser("gateway", help="serve vendor webhooks and the JSON API").set_defaults(
        handler=gateway
    )
    subparsers.add_parser("worker", help="run the Faust worker: deciders and projectors").set_defaults(
        handler=worker
    )
    subparsers.add_parser(
        "demo", help="end to end on the embedded stack: webhooks in, projections checked"
    ).set_defaults(handler=demo)


def add_readmodel_commands(subparsers: Subparsers) -> None:
    """``smsfold stats`` and ``smsfold projector`` (imported on use: they pull in the read models)."""
    from smsfold.readmodel_commands import add_readmodel_commands as add

    add(subparsers)


def add_replay_commands(subparsers: Subparsers) -> None:
    """``smsfold replay`` and ``smsfold renormalize`` (imported on use, like the read-model commands)."""
    from smsfold.replay_commands import add_replay_commands as add

    add(subparsers)


COMMANDS: list[Callable[[Subparsers], None]] = [
    add_stack_commands,
    add_process_commands,
    add_loadtest_commands,
    add_readmodel_commands,
    add_replay_commands,
]
"""Command groups, in ``--help`` order; each adds its sub-parsers and binds them to handlers."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="smsfold",
        description="Event-sourced SMS pipeline. Settings come from SMSFOLD_* environment variables.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_commands in COMMANDS:
        add_commands(subparsers)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = "SMSFOLD_" + "__".join(str(part) for part in first["loc"]).upper()
        return f"invalid setting {where}: {first['msg']}"
    return " ".join(str(exc).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, build the settings from the environment and run the chosen command."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = load_settings()
        level = logging.getLevelName(settings.log_level.upper())
        logging.basicConfig(
            level=level if isinstance(level, int) else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return handler(settings, args)
    except (*_USER_ERRORS, ValidationError) as exc:
        print(f"smsfold: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
