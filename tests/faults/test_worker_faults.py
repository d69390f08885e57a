"""Workers killed with -9 in the middle of a batch, and a second worker joining and leaving: with load
running, nothing acknowledged is lost, nothing is doubled, every projection equals the fold."""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.harness import SOAK, FaultStack, record, running_load, settle

pytestmark = [pytest.mark.stack, pytest.mark.timeout(3600 if SOAK else 300)]

RATE = 25.0


def test_worker_killed_mid_batch_loses_and_doubles_nothing(faults: FaultStack) -> None:
    cycles = 50 if SOAK else 5
    rng = random.Random(9)
    with running_load(faults, RATE, seed=91) as load:
        for _ in range(cycles):
            # Let it fold for a moment (batches in flight: the gateway never stops sending), then kill -9.
            time.sleep(rng.uniform(1.0, 3.0))
            assert faults.worker is not None
            faults.worker.kill()
            faults.start_worker()
        fault_ended = time.monotonic()
    outcome = settle(faults, load, fault_ended)
    assert faults.worker is not None and faults.worker.alive(), "the worker died on its own (crash loop)"
    assert outcome.lost == 0 and outcome.doubled == 0
    assert load.statuses().keys() == {200}, load.statuses()
    record("worker kill -9 mid-batch", outcome, load, faults=cycles, rate=RATE)


def test_a_second_worker_joining_and_leaving_loses_and_doubles_nothing(faults: FaultStack) -> None:
    """Forced rebalances: a second worker joins the group (and the projectors' groups) and leaves it
    again, cycle after cycle, while load runs; every rebalance moves partitions mid-stream both ways."""
    cycles = 20 if SOAK else 3
    own_port = str(faults.settings.worker.web_port + 1)  # the second worker's metrics endpoint
    with running_load(faults, RATE, seed=92) as load:
        for _ in range(cycles):
            # Returns once it joined: partitions moved to it.
            second = faults.start_worker("worker-2", SMSFOLD_WORKER__WEB_PORT=own_port)
            time.sleep(2.0)
            second.stop()  # a graceful leave: its partitions move back
        fault_ended = time.monotonic()
    outcome = settle(faults, load, fault_ended)
    assert faults.worker is not None and faults.worker.alive(), "the first worker died during the rebalances"
    assert outcome.lost == 0 and outcome.doubled == 0
    assert load.statuses().keys() == {200}, load.statuses()
    record("second worker joining and leaving (forced rebalance)", outcome, load, faults=cycles, rate=RATE)
