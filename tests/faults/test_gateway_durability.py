"""Durable acknowledgement against the real broker: the broker stopped with SIGSTOP (webhooks still
acknowledged within budget through the spool, all in Kafka once it answers again), and a gateway killed
with -9 holding a non-empty spool (drained at its next start). Nothing acknowledged is missing."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from config import Settings, load_companies
from smsfold.processes import ManagedProcess
from smsfold.stack import EmbeddedStack
from smsfold.webhooks import (
    SignedRequest,
    bandwidth_event,
    bandwidth_request,
    dev_telnyx_seed,
    telnyx_event,
    telnyx_request,
    twilio_inbound,
)
from tests.conftest import PORT_BASE
from tests.raw_topic import raw_records

pytestmark = pytest.mark.stack

BUDGET_S = 0.5


def _post(base: str, req: SignedRequest) -> tuple[int, float]:
    started = time.monotonic()
    request = urllib.request.Request(base + req.path, data=req.body, headers=req.headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.monotonic() - started


def _metric(base: str, name: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"metric {name} not exported")



def _requests(settings: Settings, base_url: str, n: int, tag: str) -> list[SignedRequest]:
    """``n`` signed webhooks, cycling through Twilio, Telnyx and Bandwidth (dev companies)."""
    acme = load_companies(settings.companies_file).get("acme")
    assert acme is not None and acme.twilio is not None and acme.bandwidth is not None
    token = acme.twilio.auth_tokens[0].get_secret_value()
    bw = acme.bandwidth.credentials[0]
    out: list[SignedRequest] = []
    for i in range(n):
        sender = f"+1415556{i:04d}"
        if i % 3 == 0:
            out.append(
                twilio_inbound(
                    base_url,
                    token,
                    sender=sender,
                    to=acme.numbers[0],
                    body=f"{tag} {i}",
                    account_sid=acme.twilio.account_sid,
                )
            )
        elif i % 3 == 1:
            event = telnyx_event(
                "message.received",
                sender=sender,
                to=acme.numbers[0],
                text=f"{tag} {i}",
                event_id=f"{tag}-{i}",
            )
            out.append(telnyx_request(dev_telnyx_seed("acme"), event))
        else:
            event = bandwidth_event(
                "message-received",
                sender=sender,
                to=acme.numbers[0],
                application_id=acme.bandwidth.application_id,
                text=f"{tag} {i}",
                message_id=f"{tag}-{i}",
            )
            out.append(bandwidth_request(bw.username, bw.password.get_secret_value(), [event]))
    return out


def _dedupe_keys(requests: list[SignedRequest]) -> set[str]:
    keys = set()
    for req in requests:
        if "I-Twilio-Idempotency-Token" in req.headers:
            keys.add(req.headers["I-Twilio-Idempotency-Token"])
        elif req.path.startswith("/webhooks/telnyx"):
            keys.add("telnyx:" + json.loads(req.body)["data"]["id"])
        else:
            [event] = json.loads(req.body)
            keys.add(f"bandwidth:{event['type']}:{event['message']['id']}:{event['time']}:{event['to']}")
    return keys


def _wait_in_topic(settings: Settings, wanted: set[str], timeout_s: float) -> set[str]:
    deadline = time.monotonic() + timeout_s
    missing = wanted
    while time.monotonic() < deadline:
        seen = {record.dedupe_key for _, record in raw_records(settings)}
        missing = wanted - seen
        if not missing:
            return missing
        time.sleep(0.5)
    return missing


def _wait_spool_empty(base: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while _metric(base, "smsfold_gateway_spool_records") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _metric(base, "smsfold_gateway_spool_records") == 0


class Gateway:
    """A gateway process of this test, on its own port and spool directory."""

    def __init__(self, log_dir: Path, spool_dir: Path, offset: int, **env: str) -> None:
        self.port = PORT_BASE + offset
        self.base = f"http://127.0.0.1:{self.port}"
        self.spool_dir = spool_dir
        self.env = {
            "SMSFOLD_GATEWAY__PORT": str(self.port),
            "SMSFOLD_GATEWAY__PUBLIC_BASE_URL": self.base,
            "SMSFOLD_GATEWAY__SPOOL_DIR": str(spool_dir),
            "SMSFOLD_GATEWAY__ACK_BUDGETS__TWILIO": str(BUDGET_S),
            "SMSFOLD_GATEWAY__ACK_BUDGETS__TELNYX": str(BUDGET_S),
            "SMSFOLD_GATEWAY__ACK_BUDGETS__BANDWIDTH": str(BUDGET_S),
            **env,
        }
        self.log_dir = log_dir
        self.process: ManagedProcess | None = None

    def start(self, **env: str) -> ManagedProcess:
        self.process = ManagedProcess(f"gateway-{self.port}", ["gateway"], self.log_dir, {**self.env, **env})
        self.process.start()
        self.process.wait_healthy(self.base)
        return self.process


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[list[Gateway]]:
    made: list[Gateway] = []
    yield made
    for gateway in made:
        if gateway.process is not None:
            gateway.process.stop()


def test_broker_stopped_webhooks_acknowledged_through_spool_and_all_reach_kafka(
    stack_settings: Settings, embedded_stack: EmbeddedStack, gateways: list[Gateway], tmp_path: Path
) -> None:
    gateway = Gateway(tmp_path, tmp_path / "spool", 85)
    gateways.append(gateway)
    gateway.start()
    # Warm up: the producer knows the cluster and the topic before the broker stops.
    [warm] = _requests(stack_settings, gateway.base, 1, "warm")
    assert _post(gateway.base, warm)[0] == 200
    # (A cold producer may miss the short budget: then the warm-up request goes through the spool.)
    _wait_spool_empty(gateway.base)

    requests = _requests(stack_settings, gateway.base, 12, f"stop-{time.time_ns()}")
    broker = embedded_stack.pid("broker")
    assert broker is not None
    os.kill(broker, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda r: _post(gateway.base, r), requests))
        spooled = _metric(gateway.base, "smsfold_gateway_spool_records")
    finally:
        os.kill(broker, signal.SIGCONT)

    # Every webhook was acknowledged, within the budget plus the fsync and HTTP overhead.
    assert [status for status, _ in results] == [200] * len(requests)
    assert max(elapsed for _, elapsed in results) < BUDGET_S + 1.5
    assert spooled == len(requests)
    # Once the broker answers again, every acknowledged request reaches the topic, and the spool empties.
    assert _wait_in_topic(stack_settings, _dedupe_keys(requests), 60) == set()
    _wait_spool_empty(gateway.base)


def test_gateway_killed_with_a_spool_drains_it_after_restart(
    stack_settings: Settings, gateways: list[Gateway], tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    gateway = Gateway(tmp_path, spool_dir, 86)
    gateways.append(gateway)
    # A broker address nobody answers on: every webhook goes to the spool after its budget.
    process = gateway.start(SMSFOLD_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{PORT_BASE + 99}")
    requests = _requests(stack_settings, gateway.base, 9, f"kill-{time.time_ns()}")
    with ThreadPoolExecutor(3) as pool:
        statuses = [status for status, _ in pool.map(lambda r: _post(gateway.base, r), requests)]
    assert statuses == [200] * len(requests)
    assert _metric(gateway.base, "smsfold_gateway_spool_records") == len(requests)
    assert _metric(gateway.base, "smsfold_gateway_spool_bytes") > 0

    # kill -9: no shutdown hook runs; the spool on disk is all that is left.
    process.kill()
    assert list(spool_dir.glob("*.seg"))
    # Restarted against the real broker, the gateway drains the spool before anything else.
    gateway.start()
    assert _wait_in_topic(stack_settings, _dedupe_keys(requests), 60) == set()
    deadline = time.monotonic() + 30
    while list(spool_dir.glob("*.seg")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(spool_dir.glob("*.seg")) == []
