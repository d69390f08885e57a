"""``smsfold loadtest`` arguments."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from config import Settings
from smsfold.loadtest.options import LoadTestOptions, parse_mix, parse_steps

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction

__all__ = ["add_loadtest_commands", "options_from_args"]


def options_from_args(args: argparse.Namespace) -> LoadTestOptions:
    return LoadTestOptions(
        company_ids=tuple(c.strip() for c in args.company_ids.split(",") if c.strip()),
        message_count=args.message_count,
        duration_s=args.duration,
        senders=args.senders,
        group_id=args.group_id,
        workers=args.workers,
        rate=args.rate,
        steps=parse_steps(args.steps) if args.steps else (),
        step_seconds=args.step_seconds,
        randomize=args.randomize,
        skip_types=frozenset(t.strip() for t in (args.skip_types or "").split(",") if t.strip()),
        mix=parse_mix(args.mix) if args.mix else {},
        vendor=args.vendor,
        out_dir=Path(args.out_dir),
        verify=args.verify,
        settle_timeout_s=args.settle_timeout,
        seed=args.seed,
    )


def loadtest(settings: Settings, args: argparse.Namespace) -> int:
    """Send signed inbound webhooks through the gateway, then measure and verify the pipeline."""
    from smsfold.loadtest.run import run_loadtest

    return run_loadtest(settings, options_from_args(args), gateway_url=args.gateway_url)


def add_loadtest_commands(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "loadtest",
        help="simulate inbound peak traffic through the vendors' webhook endpoints",
        description="Sends signed vendor inbound webhooks to the gateway, then reads end-to-end latency per "
        "message type from the projections and verifies every acknowledged message was projected once.",
    )
    p.add_argument(
        "--company-ids", required=True, help="comma-separated load-test companies (load_test = true)"
    )
    p.add_argument("--message-count", type=int, help="messages to send")
    p.add_argument(
        "--duration", type=float, help="seconds to send for (with --message-count: first limit wins)"
    )
    p.add_argument("--senders", type=int, default=500, help="distinct sender numbers (default 500)")
    p.add_argument("--group-id", help="named sender group: the same name reuses the same sender numbers")
    p.add_argument("--workers", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument("--rate", type=float, help="messages/s (default: as fast as the workers go)")
    p.add_argument("--steps", help="step pattern of rates, e.g. 200,500,1000")
    p.add_argument("--step-seconds", type=float, default=60.0, help="length of each step (default 60)")
    p.add_argument(
        "--randomize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="shuffle the order of message types (default on)",
    )
    p.add_argument("--skip-types", help="message types not to send, e.g. custom_keyword,reaction")
    p.add_argument("--mix", help="shares per type, e.g. subscribe=0.1,unsubscribe=0.05 (rest split evenly)")
    p.add_argument("--vendor", default="twilio", help="twilio | telnyx | bandwidth (default twilio)")
    p.add_argument("--out-dir", default="reports/loadtest", help="where the JSON and HTML reports go")
    p.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check every acknowledged message was projected exactly once (default on)",
    )
    p.add_argument(
        "--settle-timeout",
        type=float,
        default=120.0,
        help="give up waiting for the pipeline after this many seconds without progress",
    )
    p.add_argument("--seed", type=int, help="random seed for a repeatable plan")
    p.add_argument("--gateway-url", help="gateway base URL (default: the gateway settings)")
    p.set_defaults(handler=loadtest)
