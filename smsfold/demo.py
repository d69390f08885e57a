"""``smsfold demo``: the walking skeleton end to end on the embedded stack.

Brings the stack up, starts a gateway and a worker, posts signed Twilio inbound messages over HTTP,
waits until Redis and ClickHouse show what the in-process fold of the same messages predicts, and until
every auto reply went out through the simulated vendor and its delivery came back (by our message id);
prints it all and shuts everything down. Exits 0 only if the projections match and every reply ended.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from agents.classify import classify
from agents.profile import ProfileState, decide
from agents.send.fold import message_id_of
from config import Company, Settings, load_companies
from gateway.masking import mask_phone
from projections.clickhouse import clickhouse_client
from smsfold.processes import ManagedProcess
from smsfold.stack import EmbeddedStack
from smsfold.webhooks import new_twilio_sid, twilio_inbound
from streams.events import InboundReceived, SendRequested, event_id_for, profile_key

__all__ = ["DemoMessage", "expected_fold", "run_demo"]


@dataclass(frozen=True, slots=True)
class DemoMessage:
    company: Company
    sender: str
    body: str
    sid: str


def _script(companies: list[Company], rng: random.Random) -> list[DemoMessage]:
    """START, STOP, HELP and free text from a few numbers, fresh for every run."""
    acme, globex = companies[0], companies[1]
    a, b, c = (f"+1415555{rng.randrange(10000):04d}" for _ in range(3))
    plan = [
        (acme, a, "START"), (acme, b, "Yes"), (globex, c, "hello, do you ship to Canada?"),
        (acme, a, "HELP"), (acme, b, "stop"), (globex, c, "START"), (acme, a, "STOP"),
        (acme, b, "UNSTOP"), (globex, c, "Loved “see you soon”"), (acme, a, "start"),
    ]
    return [DemoMessage(co, sender, body, new_twilio_sid()) for co, sender, body in plan]


# The inbound side's events; the send side's (approvals, sends, statuses) are checked per reply.
INBOUND_SIDE = ("InboundReceived", "ConsentChanged", "SendRequested")


def expected_fold(messages: list[DemoMessage]) -> tuple[dict[str, str], int, list[str]]:
    """What the projections must show: consent per profile, the number of inbound-side events, and the
    message ids of the auto replies."""
    states: dict[str, ProfileState] = {}
    events = 0
    replies: list[str] = []
    for i, m in enumerate(messages):
        key = profile_key(m.company.id, m.sender)
        c = classify(m.body, custom_keywords=m.company.keywords.custom)
        inbound = InboundReceived(
            event_id=event_id_for("InboundReceived", "twilio", m.sid), company_id=m.company.id,
            profile_key=key, occurred_at=i, received_at=i, vendor="twilio", vendor_message_id=m.sid,
            to_number=m.company.numbers[0], body=m.body, message_type=c.message_type.value, keyword=c.keyword,
        )
        states[key], outputs = decide(states.get(key), inbound, m.company)
        # The inbound message, its consent change and its auto reply, if any.
        events += 1 + len(outputs)
        replies += [message_id_of(o) for o in outputs if isinstance(o, SendRequested)]
    return {k: s.consent.status for k, s in states.items()}, events, replies


def _post(base_url: str, path: str, headers: dict[str, str], body: bytes) -> int:
    req = urllib.request.Request(base_url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)



def run_demo(settings: Settings, console: Console | None = None, timeout_s: float = 120.0) -> int:
    console = console or Console()
    companies = [c for c in load_companies(settings.companies_file) if c.twilio and not c.load_test]
    if len(companies) < 2:
        console.print("[red]the demo needs two companies with Twilio accounts in the companies file[/]")
        return 2
    stack = EmbeddedStack(settings)
    console.print("[bold]1. embedded stack up[/] (broker, ClickHouse, Redis)")
    stack.up()
    log_dir = Path(tempfile.mkdtemp(prefix="smsfold-demo-"))
    gateway = ManagedProcess("gateway", ["gateway"], log_dir)
    worker = ManagedProcess("worker", ["worker"], log_dir)
    try:
        gateway.start()
        worker.start()
        base = f"http://{settings.gateway.host}:{settings.gateway.port}"
        gateway.wait_healthy(base)
        messages = _script(companies, random.Random())
        console.print(f"[bold]2. posting {len(messages)} signed Twilio webhooks[/] to {base}")
        for m in messages:
            assert m.company.twilio is not None
            req = twilio_inbound(
                settings.gateway.public_base_url, m.company.twilio.auth_tokens[0].get_secret_value(),
                sender=m.sender, to=m.company.numbers[0], body=m.body,
                account_sid=m.company.twilio.account_sid, message_sid=m.sid,
            )
            status = _post(base, req.path, req.headers, req.body)
            console.print(f"   {mask_phone(m.sender)} → {m.company.id}: {m.body!r} … HTTP {status}")
            if status != 200:
                console.print(f"[red]gateway refused a valid webhook:[/]\n{gateway.log_tail()}")
                return 1
        expected_consent, expected_events, replies = expected_fold(messages)
        delivery: dict[str, str] = {}
        console.print("[bold]3. waiting for the worker to fold them[/] into Redis and ClickHouse")
        deadline = time.monotonic() + timeout_s
        consent: dict[str, str] = {}
        rows: list[tuple[Any, ...]] = []
        r = redis.Redis.from_url(settings.redis.url, decode_responses=True)
        ch = clickhouse_client(settings.clickhouse)
        while time.monotonic() < deadline:
            if not worker.alive():
                console.print(f"[red]the worker died:[/]\n{worker.log_tail()}")
                return 1
            consent = {
                k: str(r.hget(f"{settings.redis.key_prefix}:consent:{k}", "status") or "never_subscribed")
                for k in expected_consent
            }
            rows = ch.execute(
                "SELECT event_type, profile_key, payload, received_at, projected_at FROM events FINAL "
                "WHERE profile_key IN %(keys)s AND event_type IN %(types)s "
                "ORDER BY received_at, event_type DESC",
                {"keys": tuple(expected_consent), "types": INBOUND_SIDE},
            )
            status_key = f"{settings.redis.key_prefix}:message-status-by-id:"
            delivery = {m: str(r.hget(status_key + m, "status") or "") for m in replies}
            if consent == expected_consent and len(rows) == expected_events and _all_final(delivery):
                break
            time.sleep(0.5)
        r.close()
        ch.disconnect()
        _print_results(console, expected_consent, consent, rows)
        finals = sum(s in ("delivered", "failed") for s in delivery.values())
        console.print(f"auto replies through the simulated vendor: {finals}/{len(replies)} ended "
                      f"({', '.join(sorted(set(delivery.values()))) or 'none'})")
        ok = consent == expected_consent and len(rows) == expected_events and _all_final(delivery)
        if ok:
            console.print(f"[green bold]OK[/]: {len(rows)} events, {len(consent)} consent states, as folded; "
                          f"{finals} replies sent and their delivery folded")
            return 0
        console.print(f"[red bold]MISMATCH[/]: expected {expected_events} events, got {len(rows)}; "
                      f"{finals}/{len(replies)} replies ended")
        console.print(f"worker log tail:\n{worker.log_tail()}")
        return 1
    finally:
        console.print("[bold]4. shutting down[/] gateway, worker and stack")
        gateway.stop()
        worker.stop()
        stack.down()


def _all_final(delivery: dict[str, str]) -> bool:
    return all(s in ("delivered", "failed") for s in delivery.values())


def _print_results(
    console: Console, expected: dict[str, str], actual: dict[str, str], rows: list[tuple[Any, ...]]
) -> None:
    table = Table(title="Consent (Redis)")
    for col in ("profile", "expected", "in Redis", ""):
        table.add_column(col)
    for key, status in expected.items():
        company, phone = key.split(":", 1)
        got = actual.get(key, "?")
        table.add_row(f"{company}:{mask_phone(phone)}", status, got, "✓" if got == status else "✗")
    console.print(table)
    events = Table(title="Events (ClickHouse, FINAL)")
    for col in ("event", "profile", "detail", "latency ms"):
        events.add_column(col)
    for event_type, pkey, payload, received_at, projected_at in rows:
        company, phone = str(pkey).split(":", 1)
        data = json.loads(str(payload))
        if event_type == "InboundReceived":
            detail = f"{data['message_type']}: {data['body']!r}"
        elif event_type == "SendRequested":
            detail = f"{data['kind']}: {data['body'][:40]!r}…"
        else:
            detail = f"{data.get('previous_status')} → {data.get('status')} ({data.get('method')})"
        latency = int(projected_at) - int(received_at)
        events.add_row(str(event_type), f"{company}:{mask_phone(phone)}", detail, str(latency))
    console.print(events)
