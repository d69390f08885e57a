"""Run a load test: plan, send with a live progress bar, wait for the pipeline, verify, report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, TextColumn, TimeElapsedColumn

from config import Company, Settings, load_companies
from projections.clickhouse import clickhouse_client
from smsfold.loadtest.gateway_metrics import gateway_delta, scrape_gateway
from smsfold.loadtest.generate import PlannedMessage, plan_messages
from smsfold.loadtest.measure import fetch_projected, verify, wait_for_projection
from smsfold.loadtest.options import LoadTestOptions, OptionError
from smsfold.loadtest.report import build_summary, print_summary, write_html, write_json
from smsfold.loadtest.runner import SendResult, SendStats, send_all
from smsfold.webhooks import (
    SignedRequest,
    bandwidth_event,
    bandwidth_request,
    dev_telnyx_seed,
    telnyx_event,
    telnyx_request,
    twilio_inbound,
)

__all__ = ["run_loadtest", "signer"]


def _companies(settings: Settings, options: LoadTestOptions) -> list[Company]:
    directory = load_companies(settings.companies_file)
    chosen = []
    for company_id in options.company_ids:
        company = directory.get(company_id)
        if company is None:
            raise OptionError(f"--company-ids: unknown company {company_id!r}")
        if not company.load_test:
            raise OptionError(
                f"--company-ids: company {company_id!r} is not flagged load_test = true in "
                f"{settings.companies_file}; its auto-replies would reach real phones"
            )
        chosen.append(company)
    return chosen


def signer(settings: Settings, vendor: str) -> Callable[[PlannedMessage], SignedRequest]:
    """Signs a planned message exactly as the vendor would sign its inbound webhook."""
    base = settings.gateway.public_base_url
    if vendor == "twilio":

        def sign_twilio(m: PlannedMessage) -> SignedRequest:
            account = m.company.twilio
            if account is None:
                raise OptionError(f"company {m.company.id!r} has no Twilio account configured")
            return twilio_inbound(base, account.auth_tokens[0].get_secret_value(), sender=m.sender,
                                  to=m.company.numbers[0], body=m.body, account_sid=account.account_sid,
                                  message_sid=m.message_id)

        return sign_twilio
    if vendor == "telnyx":
        seeds: dict[str, str] = {}

        def sign_telnyx(m: PlannedMessage) -> SignedRequest:
            if m.company.id not in seeds:
                try:
                    seeds[m.company.id] = dev_telnyx_seed(m.company.id)
                except KeyError:
                    raise OptionError(
                        f"no Telnyx signing key for company {m.company.id!r} in the dev vendor keys file"
                    ) from None
            event = telnyx_event("message.received", sender=m.sender, to=m.company.numbers[0], text=m.body,
                                 message_id=m.message_id)
            return telnyx_request(seeds[m.company.id], event)

        return sign_telnyx
    if vendor == "bandwidth":

        def sign_bandwidth(m: PlannedMessage) -> SignedRequest:
            account = m.company.bandwidth
            if account is None:
                raise OptionError(f"company {m.company.id!r} has no Bandwidth application configured")
            event = bandwidth_event("message-received", sender=m.sender, to=m.company.numbers[0],
                                    application_id=account.application_id, text=m.body,
                                    message_id=m.message_id)
            credential = account.credentials[0]
            return bandwidth_request(credential.username, credential.password.get_secret_value(), [event])

        return sign_bandwidth
    raise OptionError(f"--vendor {vendor}: not supported")


def _options_dict(options: LoadTestOptions) -> dict[str, Any]:
    data = dataclasses.asdict(options)
    data["skip_types"] = sorted(options.skip_types)
    data["out_dir"] = str(options.out_dir)
    return data


def run_loadtest(
    settings: Settings,
    options: LoadTestOptions,
    console: Console | None = None,
    gateway_url: str | None = None,
) -> int:
    """Run one load test; exit code 0 only if the verifier passed (or was not asked for)."""
    console = console or Console()
    companies = _companies(settings, options)
    sign = signer(settings, options.vendor)
    url = gateway_url or f"http://{settings.gateway.host}:{settings.gateway.port}"
    stats = SendStats()
    gateway_before = scrape_gateway(url)
    started = time.time()
    results, interrupted = asyncio.run(_send(options, url, companies, sign, stats, console))
    if not results:
        console.print("[red]nothing was sent[/]")
        return 1
    gateway = gateway_delta(gateway_before, scrape_gateway(url))
    acked = {r.message.message_id for r in results if r.acknowledged}
    client = clickhouse_client(settings.clickhouse)
    since_ms = int(started * 1000) - 60_000
    ids = [c.id for c in companies]
    with Progress(
        TextColumn("waiting for the pipeline: {task.completed}/{task.total} projected"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("settle", total=len(acked))
        projected = wait_for_projection(
            lambda: fetch_projected(client, ids, since_ms),
            acked,
            timeout_s=5.0 if interrupted else options.settle_timeout_s,
            on_progress=lambda done, _total: progress.update(task, completed=done),
        )
    client.disconnect()
    verdict = verify(results, projected) if options.verify else None
    summary = build_summary(
        _options_dict(options),
        results,
        projected,
        verdict,
        started_at=started,
        ended_at=time.time(),
        interrupted=interrupted,
    )
    summary["gateway"] = gateway
    print_summary(summary, console)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    out: Path = options.out_dir
    json_path = write_json(summary, out / f"loadtest-{stamp}.json")
    html_path = write_html(summary, out / f"loadtest-{stamp}.html")
    console.print(f"report: {json_path} and {html_path}")
    if interrupted:
        return 130
    return 0 if verdict is None or verdict.passed else 1


async def _send(
    options: LoadTestOptions,
    url: str,
    companies: list[Company],
    sign: Callable[[PlannedMessage], SignedRequest],
    stats: SendStats,
    console: Console,
) -> tuple[list[SendResult], bool]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    columns = (
        TextColumn(
            "sent {task.fields[sent]}  acked {task.fields[acked]}  errors {task.fields[errors]}"
            "  rate {task.fields[rate]:.0f}/s"
        ),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("load", total=options.message_count, sent=0, acked=0, errors=0, rate=0.0)

        async def refresh() -> None:
            while True:
                progress.update(
                    task,
                    completed=stats.sent,
                    sent=stats.sent,
                    acked=stats.acked,
                    errors=stats.errors,
                    rate=stats.current_rate(),
                )
                await asyncio.sleep(0.25)

        ticker = asyncio.create_task(refresh())
        try:
            results = await send_all(options, url, plan_messages(options, companies), sign, stats, stop)
        finally:
            ticker.cancel()
            progress.update(
                task,
                completed=stats.sent,
                sent=stats.sent,
                acked=stats.acked,
                errors=stats.errors,
                rate=stats.current_rate(),
            )
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(sig)
    return results, stop.is_set()
