"""The fault tests' harness: a private embedded stack with a gateway and workers, load running in the
background, and the end of every test: nothing acknowledged lost, nothing doubled, projections equal
the fold, all within the recovery budget after the fault ended."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from config import Settings, load_companies, load_settings
from projections.verify import KINDS, VerifyReport, missing_from_raw, raw_positions, read_event_log, verify
from smsfold.loadtest.generate import PlannedMessage, plan_messages
from smsfold.loadtest.options import LoadTestOptions
from smsfold.loadtest.run import signer
from smsfold.loadtest.runner import SendResult, SendStats, send_all
from smsfold.processes import ManagedProcess
from smsfold.stack import EmbeddedStack, private_stack_env
from smsfold.webhooks import SignedRequest

SOAK = os.environ.get("SMSFOLD_SOAK") == "1"
RECOVERY_S = 30.0
# Each vendor's ack budget in the fault stack's gateway: well inside every vendor's timeout (Telnyx 2 s).
ACK_BUDGET_S = 1.0
_FIGURES = Path(os.environ.get("SMSFOLD_FAULT_FIGURES", "reports/faults.jsonl"))


def settings_from(env: dict[str, str]) -> Settings:
    """Settings as a child process with ``env`` over this process's environment would build them."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return load_settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v



@dataclass
class FaultStack:
    """A private stack and the processes a test starts on it (stopped at the end of the module)."""

    settings: Settings
    stack: EmbeddedStack
    env: dict[str, str]
    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)
    gateway: ManagedProcess | None = None
    worker: ManagedProcess | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://{self.settings.gateway.host}:{self.settings.gateway.port}"

    def start(self, name: str, args: list[str], **env: str) -> ManagedProcess:
        process = ManagedProcess(name, args, self.log_dir, {**self.env, **env})
        process.start()
        self.processes.append(process)
        return process

    def start_gateway(self, **env: str) -> ManagedProcess:
        gateway = self.start("gateway", ["gateway"], **env)
        gateway.wait_healthy(self.gateway_url)
        self.gateway = gateway
        return gateway

    def start_worker(self, name: str = "worker", **env: str) -> ManagedProcess:
        """A worker; returns once Faust reports it ready (its consumer groups joined)."""
        log = self.log_dir / f"{name}.log"
        seen = log.read_text(errors="replace").count("Ready") if log.exists() else 0
        worker = self.start(name, ["worker"], **env)
        worker.wait_for(lambda: log.read_text(errors="replace").count("Ready") > seen, 60, "worker ready")
        if name == "worker":
            self.worker = worker
        return worker

    def ensure_pipeline(self) -> None:
        """A gateway and a worker running (a failed earlier test may have left one stopped)."""
        if self.gateway is None or not self.gateway.alive():
            self.start_gateway()
        if self.worker is None or not self.worker.alive():
            self.start_worker()

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


@contextmanager
def fault_stack(port_base: int, state_dir: Path) -> Iterator[FaultStack]:
    """A whole embedded stack of its own, so stopping its parts never disturbs the session's tests."""
    env = private_stack_env(port_base, state_dir / "stack", database="smsfold_faults")
    for vendor in ("TWILIO", "TELNYX", "BANDWIDTH"):
        env[f"SMSFOLD_GATEWAY__ACK_BUDGETS__{vendor}"] = str(ACK_BUDGET_S)
    env["SMSFOLD_GATEWAY__SPOOL_DIR"] = str(state_dir / "spool")
    env["SMSFOLD_PROJECTOR__BATCH_SECONDS"] = "0.5"
    settings = settings_from(env)
    stack = EmbeddedStack(settings)
    faults = FaultStack(settings, stack, env, state_dir / "logs")
    try:
        stack.up()
        yield faults
    finally:
        faults.stop_all()
        stack.down(purge=True)


@dataclass
class Load:
    """Signed Twilio inbound webhooks sent at a steady rate until stopped; what the gateway answered."""

    results: list[SendResult] = field(default_factory=list)
    dedupe_keys: dict[str, str] = field(default_factory=dict)  # our message sid -> idempotency token

    @property
    def acknowledged(self) -> list[SendResult]:
        return [r for r in self.results if r.acknowledged]

    @property
    def acked_sids(self) -> set[str]:
        return {r.message.message_id for r in self.acknowledged}

    def statuses(self) -> Counter[int]:
        return Counter(r.status for r in self.results)


@contextmanager
def running_load(faults: FaultStack, rate: float, seed: int, workers: int = 16) -> Iterator[Load]:
    """Load for the duration of the block (the load-test company: its auto replies are never sent)."""
    options = LoadTestOptions(company_ids=("loadtest",), duration_s=3600, rate=rate, workers=workers,
                              senders=300, seed=seed, group_id=f"faults-{seed}")
    company = load_companies(faults.settings.companies_file).get("loadtest")
    assert company is not None
    sign_twilio = signer(faults.settings, "twilio")
    load = Load()

    def sign(message: PlannedMessage) -> SignedRequest:
        request = sign_twilio(message)
        load.dedupe_keys[message.message_id] = request.headers["I-Twilio-Idempotency-Token"]
        return request

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def send() -> list[SendResult]:
        return await send_all(options, faults.gateway_url, plan_messages(options, [company]), sign,
                              SendStats(), stop)

    def run() -> None:
        load.results = loop.run_until_complete(send())

    thread = threading.Thread(target=run, name="load", daemon=True)
    thread.start()
    try:
        yield load
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()
    assert not thread.is_alive(), "the load generator did not stop"


@dataclass
class Outcome:
    """What the end of a fault test measured."""

    acknowledged: int
    lost: int
    doubled: int
    recovery_s: float
    report: VerifyReport


def settle(faults: FaultStack, load: Load, fault_ended_at: float, budget_s: float = RECOVERY_S) -> Outcome:
    """Wait until every acknowledged webhook is in the raw topic and folded into sms.events exactly once,
    and every projection equals the fold; fails past ``budget_s`` after the fault ended."""
    settings = faults.settings
    acked = load.acked_sids
    deadline = fault_ended_at + budget_s
    while True:
        log = read_event_log(settings)
        inbound = Counter(e["vendor_message_id"] for e in log.unique.values()
                          if e["event_type"] == "InboundReceived" and e["company_id"] == "loadtest")
        lost = acked - set(inbound)
        doubled = sum(1 for sid in acked if inbound[sid] > 1)
        report = verify(settings, log=log) if not lost else None
        if report is not None and report.ok:
            recovery = time.monotonic() - fault_ended_at
            break
        if time.monotonic() > deadline:
            what = report.summary() if report else _describe_lost(settings, load, lost)
            raise AssertionError(f"not recovered {budget_s:g}s after the fault ended: {what}")
        time.sleep(1.0)
    # The audit log too: every acknowledged request is on sms.webhooks.raw.
    not_raw = missing_from_raw(settings, (load.dedupe_keys[sid] for sid in acked))
    return Outcome(len(acked), len(lost) + len(not_raw), doubled, recovery, report)


def _describe_lost(settings: Settings, load: Load, lost: set[str]) -> str:
    """The lost webhooks with where each is on the raw topic (partition@offset), for the failure message."""
    keys = {load.dedupe_keys[sid]: sid for sid in lost}
    where = raw_positions(settings, keys)
    ordered = sorted(keys, key=lambda k: where.get(k, (-1, -1)))
    listed = ", ".join(f"{keys[k]} at raw {where[k][0]}@{where[k][1]}" if k in where
                       else f"{keys[k]} not on raw" for k in ordered)
    return f"{len(lost)} acknowledged webhooks not in sms.events: {listed}"


def record(test: str, outcome: Outcome, load: Load, **figures: object) -> None:
    """Append the test's figures to reports/faults.jsonl (docs/reliability.md is written from them)."""
    _FIGURES.parent.mkdir(parents=True, exist_ok=True)
    row = {"test": test, "soak": SOAK, "sent": len(load.results), "acknowledged": outcome.acknowledged,
           "statuses": {str(k): v for k, v in load.statuses().items()}, "lost": outcome.lost,
           "doubled": outcome.doubled, "recovery_s": round(outcome.recovery_s, 1),
           "events": outcome.report.unique_events,
           "verify": {k: outcome.report.total(k) for k in KINDS}, **figures}
    with _FIGURES.open("a") as out:
        out.write(json.dumps(row) + "\n")
