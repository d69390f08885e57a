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
