"""Outages of what the pipeline stands on, with load running through the gateway: ClickHouse or Redis
stopped for 30 s and restarted, the broker paused for 30 s (SIGSTOP, then SIGCONT, which keeps the
embedded broker's in-memory log), the gateway killed with -9 holding a non-empty spool. Each ends with
every acknowledged webhook in the topics, folded exactly once, and every projection equal to the fold
within 30 s of the fault ending."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.harness import ACK_BUDGET_S, SOAK, FaultStack, record, running_load, settle

pytestmark = [pytest.mark.stack, pytest.mark.timeout(3600 if SOAK else 300)]

RATE = 25.0
OUTAGE_S = 30.0


def _assert_clean(faults: FaultStack, outcome_lost: int, outcome_doubled: int) -> None:
    assert faults.worker is not None and faults.worker.alive(), "the worker died during the outage"
    assert outcome_lost == 0 and outcome_doubled == 0


@pytest.mark.parametrize("store", ["clickhouse", "redis"])
def test_a_store_stopped_for_30s_loses_and_doubles_nothing(faults: FaultStack, store: str) -> None:
    with running_load(faults, RATE, seed=93 if store == "clickhouse" else 94) as load:
        time.sleep(2.0)
        faults.stack.stop(store)
        time.sleep(OUTAGE_S)  # the projector retries its batch meanwhile, committing nothing
        faults.stack.start(store)
        fault_ended = time.monotonic()
        time.sleep(2.0)
    outcome = settle(faults, load, fault_ended)
    _assert_clean(faults, outcome.lost, outcome.doubled)
    # The gateway does not depend on the stores: every webhook was acknowledged during the outage too.
    assert load.statuses().keys() == {200}, load.statuses()
    record(f"{store} stopped {OUTAGE_S:g}s", outcome, load, faults=1, rate=RATE, outage_s=OUTAGE_S)


def test_the_broker_paused_for_30s_loses_and_doubles_nothing(faults: FaultStack) -> None:
    broker = faults.stack.pid("broker")
    assert broker is not None
    # Acks take the whole budget while the broker is paused: enough connections to keep the rate.
    with running_load(faults, RATE, seed=95, workers=64) as load:
        time.sleep(2.0)
        paused_at = time.time()
        os.kill(broker, signal.SIGSTOP)
        try:
            time.sleep(OUTAGE_S)
        finally:
            os.kill(broker, signal.SIGCONT)
        fault_ended, resumed_at = time.monotonic(), time.time()
        time.sleep(2.0)
    during = [r for r in load.results if paused_at <= r.sent_at < resumed_at]
    # While the broker was paused the gateway acknowledged through its spool, within every vendor's budget
    # (plus the fsync and the HTTP round trip).
    assert len(during) >= RATE * OUTAGE_S * 0.8, f"only {len(during)} webhooks sent during the pause"
    assert all(r.acknowledged for r in during), {r.status for r in during}
    slowest = max(r.ack_ms for r in during) / 1000
    assert slowest < ACK_BUDGET_S + 1.5, slowest
    outcome = settle(faults, load, fault_ended)
    _assert_clean(faults, outcome.lost, outcome.doubled)
    record(f"broker paused {OUTAGE_S:g}s (SIGSTOP)", outcome, load, faults=1, rate=RATE, outage_s=OUTAGE_S,
           acknowledged_during_pause=len(during), slowest_ack_during_pause_s=round(slowest, 2))


def test_the_gateway_killed_with_a_non_empty_spool_loses_and_doubles_nothing(faults: FaultStack) -> None:
    broker = faults.stack.pid("broker")
    assert broker is not None and faults.gateway is not None
    spool = faults.settings.gateway.spool_dir
    with running_load(faults, RATE, seed=96) as load:
        time.sleep(2.0)
        os.kill(broker, signal.SIGSTOP)  # the gateway spools what it acknowledges from now on
        try:
            time.sleep(5.0)
            spooled = sorted(spool.glob("*.seg"))
            assert spooled, "nothing was spooled while the broker was paused"
            faults.gateway.kill()  # kill -9 with records that exist only in the spool
        finally:
            os.kill(broker, signal.SIGCONT)
        faults.start_gateway()  # drains the spool before it serves
        fault_ended = time.monotonic()
        time.sleep(3.0)
    outcome = settle(faults, load, fault_ended)
    _assert_clean(faults, outcome.lost, outcome.doubled)
    # Requests in flight at the kill got no answer (the client sees a connection error and retries, as
    # vendors do); every request answered 2xx is in the topics: settle() checked.
    assert set(load.statuses()) <= {200, 0}, load.statuses()
    record("gateway kill -9 with a non-empty spool", outcome, load, faults=1, rate=RATE,
           spooled_segments=len(spooled))
