"""``smsfold replay`` (rebuild projections into shadow storage and swap them in, or roll back) and
``smsfold renormalize`` (re-derive domain events from ``sms.webhooks.raw``)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from config.settings import Settings
from projections.projectors import PROJECTIONS
from projections.replay import Plan, Rebuild, ReplayError, fewer_gc_passes, plan, rollback, start_rebuilds
from projections.replay_check import TopicSummary, VerifyError, summarize
from streams.codec import AvroCodec

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction

__all__ = ["add_replay_commands", "replay"]


def _plan_table(p: Plan) -> Table:
    state = p.state
    table = Table(title=f"replay {p.name}: {'resume' if p.resume else 'build'} version {p.version}")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("live version", f"{state.active} (group {p.live_group})")
    kept = "none" if state.previous is None else f"{state.previous} in {state.previous_home}"
    table.add_row("kept for rollback", kept)
    table.add_row("build into", f"{p.home} with group {p.group}")
    table.add_row("already built", f"{sum(p.build_positions.values()):,} records" if p.resume else "nothing")
    table.add_row("topic records (high watermarks)", f"{sum(p.ends.values()):,}")
    table.add_row("live lag", f"{p.live_lag:,}")
    return table


def _progress(rebuilds: list[Rebuild], started: float) -> Group:
    tables = []
    for r in rebuilds:
        elapsed = max(time.monotonic() - started, 1e-3)
        rate = r.folded / elapsed
        positions, lag = r.positions(), r.lag()
        table = Table(title=f"{r.name} v{r.plan.version}: {r.folded:,} events, {rate:,.0f} events/s, "
                            f"lag {sum(lag.values()):,}")
        for column in ("partition", "position", "end", "lag"):
            table.add_column(column, justify="right")
        for p in sorted(positions):
            table.add_row(str(p), f"{positions[p]:,}", f"{r.ends[p]:,}", f"{lag[p]:,}")
        tables.append(table)
    return Group(*tables)


def _summaries(settings: Settings, rebuilds: list[Rebuild], codec: AvroCodec) -> dict[str, TopicSummary]:
    """One topic scan per distinct set of offsets (usually one for all projections)."""
    by_offsets: dict[tuple[tuple[int, int], ...], TopicSummary] = {}
    out = {}
    for r in rebuilds:
        key = tuple(sorted(r.offsets.items()))
        if key not in by_offsets:
            by_offsets[key] = summarize(settings, r.offsets, codec)
        out[r.name] = by_offsets[key]
    return out


def replay(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild, verify and swap in the chosen projections (or roll one back, or print the plan)."""
    try:
        with fewer_gc_passes():
            return _replay(settings, args)
    except ReplayError as exc:
        print(f"smsfold: error: {exc}", file=sys.stderr)
        return 2
    except VerifyError as exc:
        print(f"smsfold: verification failed, nothing swapped: {exc}", file=sys.stderr)
        return 1


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if args.rollback:
        state = rollback(args.rollback, settings)
        print(f"{args.rollback}: version {state.active} is live again (group {state.group}); "
              f"version {state.previous} kept in {state.previous_home}")
        return 0
    if not args.projection:
        raise ReplayError("say which projection: --projection NAME|all, or --rollback NAME")
    names = PROJECTIONS if args.projection == "all" else (args.projection,)
    codec = AvroCodec()
    if args.dry_run:
        for name in names:
            Console().print(_plan_table(plan(name, settings, from_beginning=args.from_beginning)))
        print("dry run: nothing written")
        return 0
    rebuilds = [Rebuild(n, settings, from_beginning=args.from_beginning, keep_old=args.keep_old, codec=codec)
                for n in names]
    for r in rebuilds:
        console.print(_plan_table(r.plan))
    started = time.monotonic()
    try:
        start_rebuilds(rebuilds)
        with Live(_progress(rebuilds, started), console=console, refresh_per_second=2) as live:
            while True:
                time.sleep(0.5)
                for r in rebuilds:
                    r.refresh_ends()
                live.update(_progress(rebuilds, started))
                if all(r.caught_up() for r in rebuilds):
                    break
        for r in rebuilds:
            r.stop()
        built_s = time.monotonic() - started
        folded = {r.name: r.folded for r in rebuilds}
        print(f"built {', '.join(f'{n} {c:,} events' for n, c in folded.items())} in {built_s:.1f}s",
              file=sys.stderr)
        summaries = _summaries(settings, rebuilds, codec)
        for r in rebuilds:
            r.verify(summaries[r.name])
            print(f"{r.name}: version {r.plan.version} verified against "
                  f"{summaries[r.name].records:,} records up to {r.offsets}", file=sys.stderr)
    except BaseException:
        for r in rebuilds:
            r.abandon()
        raise
    for r in rebuilds:
        state = r.swap()
        kept = "" if state.previous is None else f"; version {state.previous} kept in {state.previous_home}"
        print(f"{r.name}: version {state.active} is live (group {state.group}){kept}")
    return 0


def add_replay_commands(subparsers: Subparsers) -> None:
    """``smsfold replay`` and ``smsfold renormalize``."""
    from smsfold.renormalize import renormalize

    parser = subparsers.add_parser(
        "replay", help="rebuild projections from sms.events into shadow storage, verify, swap in")
    parser.add_argument("--projection", choices=(*PROJECTIONS, "all"), help="which projection to rebuild")
    parser.add_argument("--from-beginning", action="store_true",
                        help="discard an unfinished rebuild instead of resuming it (a new version always "
                             "reads sms.events from its start)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the lag; write nothing")
    parser.add_argument("--keep-old", action="store_true", help="keep the replaced version for --rollback")
    parser.add_argument("--rollback", choices=PROJECTIONS, metavar="NAME",
                        help="swap the kept previous version of NAME back in")
    parser.set_defaults(handler=replay)
    renorm = subparsers.add_parser(
        "renormalize", help="re-derive domain events from sms.webhooks.raw (after a parser fix)")
    renorm.add_argument("--from-beginning", action="store_true", required=True,
                        help="read sms.webhooks.raw from its start (the only mode)")
    renorm.add_argument("--dry-run", action="store_true",
                        help="count what would be produced; produce nothing")
    renorm.add_argument("--include-unchanged", action="store_true",
                        help="also produce re-derived events identical to the logged ones (projections "
                             "ignore them; deciders see them again)")
    renorm.set_defaults(handler=renormalize)
