"""Replay: a rebuilt projection equals the live one byte for byte, swaps in without a gap or a double
count, rolls back, survives kill -9 and produces nothing; renormalize leaves the projections as they are."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from config import Settings
from projections.dump import dump_projection
from projections.offsets import committed_offsets, partitions, scan_all
from projections.projectors import PROJECTIONS
from projections.replay import plan
from projections.runner import Lane, ProjectorRunner
from projections.versions import build_group, state_store
from smsfold.cli import build_parser
from smsfold.renormalize import run_renormalize
from smsfold.replay_commands import replay
from smsfold.workload import generate_events
from streams.codec import AvroCodec
from streams.events import Event
from streams.producer import producer_config
from tests.conftest import wait_until
from tests.integration.projection_helpers import private_settings, produce, running, wait_folded
from tests.integration.test_projections import _assert_projections_equal_fold
from tests.payloads import raw, twilio_inbound_form

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]


def _events(profiles: int, seed: int) -> list[Event]:
    start = int(time.time() * 1000) - 2 * 86_400_000
    return list(generate_events(profiles, messages_per_profile=6, seed=seed, start_ms=start))


def _replay(settings: Settings, *argv: str) -> int:
    return replay(settings, build_parser().parse_args(["replay", *argv]))


def _live_home(settings: Settings, name: str) -> str:
    state = state_store(name, settings).load()
    if name == "clickhouse":
        return settings.clickhouse.database
    base = settings.redis.key_prefix
    return base if state.active == 0 else f"{base}:v{state.active}"


def _dumps(settings: Settings) -> dict[str, bytes]:
    return {name: dump_projection(name, settings, _live_home(settings, name)) for name in PROJECTIONS}


def _records(settings: Settings, topic: str) -> int:
    return sum(len(batch) for batch in scan_all(settings, topic, idle_s=0.5))


def _equal_eventually(settings: Settings, want: dict[str, bytes], what: str) -> None:
    wait_until(lambda: _dumps(settings) == want, 30, what, interval_s=0.5)


def test_rebuild_equals_live_swaps_in_and_rolls_back(stack_settings: Settings) -> None:
    settings = private_settings(stack_settings)
    events = _events(70, seed=3)
    # Two parts of one workload (two seeds would reuse ids for different content).
    first, second = events[: 3 * len(events) // 4], events[3 * len(events) // 4:]
    total = produce(settings, [*first, (b"k", b"poison")])
    with running(settings, "clickhouse", "redis") as runners:
        wait_folded(runners, total)
        live = _dumps(settings)
        topics = {t: _records(settings, t)
                  for t in (settings.topics.events, settings.topics.deadletter, settings.topics.raw)}
        # The rebuild (version 1) runs while the live runners keep serving; --keep-old keeps version 0.
        assert _replay(settings, "--projection", "all", "--keep-old") == 0
        # The live runners adopt the rebuild's group; both versions hold the same bytes.
        wait_until(lambda: all(r.target and r.target.version == 1 for r in runners), 10, "the runners follow")
        assert _dumps(settings) == live
        old = f"{settings.clickhouse.database}_v1"
        assert dump_projection("clickhouse", settings, old) == live["clickhouse"]
        assert dump_projection("redis", settings, settings.redis.key_prefix) == live["redis"]
        # Replay produced nothing: not an event, not a dead letter (the poison record was skipped).
        assert {t: _records(settings, t) for t in topics} == topics
        # New events after the swap are folded by version 1 from where the rebuild ended.
        produce(settings, second)
        _wait_equal_to_fold(settings, [*first, *second], "version 1 folds the new events")
        after = _dumps(settings)
        # Rollback: version 0 is live again and catches up on what arrived since the swap.
        assert _replay(settings, "--rollback", "clickhouse") == 0
        assert _replay(settings, "--rollback", "redis") == 0
        wait_until(lambda: all(r.target and r.target.version == 0 for r in runners), 10, "runners roll back")
        _equal_eventually(settings, after, "version 0 equal to version 1 after catching up")


def _live_settings(settings: Settings) -> Settings:
    """``settings`` whose Redis prefix is the live version's, for the fold check."""
    return settings.model_copy(update={"redis": settings.redis.model_copy(
        update={"key_prefix": _live_home(settings, "redis")})})


def _wait_equal_to_fold(settings: Settings, events: list[Event], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _assert_projections_equal_fold(_live_settings(settings), events)
            return
        except AssertionError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: {exc}") from exc
        time.sleep(0.5)


def test_rebuild_while_events_keep_arriving_ends_equal_to_the_fold(stack_settings: Settings) -> None:
    settings = private_settings(stack_settings)
    events = _events(80, seed=5)
    head, tail = events[: len(events) // 2], events[len(events) // 2:]
    produce(settings, head)
    stop = threading.Event()

    def trickle() -> None:
        for i in range(0, len(tail), 40):
            if stop.is_set():
                return
            produce(settings, tail[i:i + 40])
            time.sleep(0.1)

    with running(settings, "clickhouse", "redis"):
        producer = threading.Thread(target=trickle)
        producer.start()
        try:
            assert _replay(settings, "--projection", "all") == 0
        finally:
            producer.join()
        _wait_equal_to_fold(settings, events, "the live projections equal the fold", 45)
    assert state_store("redis", settings).load().active == 1


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "SMSFOLD_TOPICS__EVENTS": settings.topics.events,
            "SMSFOLD_TOPICS__EVENTS_PARTITIONS": "3",
            "SMSFOLD_CLICKHOUSE__DATABASE": settings.clickhouse.database,
            "SMSFOLD_REDIS__KEY_PREFIX": settings.redis.key_prefix,
            "SMSFOLD_PROJECTOR__GROUP_PREFIX": settings.projector.group_prefix,
            # Small batches, so the rebuild is still running when it is killed.
            "SMSFOLD_PROJECTOR__BATCH_SIZE": "50", "SMSFOLD_PROJECTOR__REBUILD_BATCH_SIZE": "50",
            "SMSFOLD_PROJECTOR__BATCH_SECONDS": "0.05"}


class _Collect:
    """A sink that keeps the ids it is given (what a lane was fed, not how a store absorbs it)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        self.ids += [e["event_id"] for e in events]

    def refused_for_good(self, exc: Exception) -> bool:
        return False

    def close(self) -> None:
        pass


def _run_until(runner: ProjectorRunner, records: int) -> None:
    """Run ``runner`` until every lane committed ``records`` records, then stop it."""
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: all(lane.folded >= records for lane in runner.lanes), 30, "every lane folded")
    finally:
        runner.assigned.wait(10)  # Tansu wedges a group whose member leaves before its join completed
        runner.stop()
        thread.join(30)


def test_one_runner_feeds_each_lane_from_its_own_committed_offsets(stack_settings: Settings) -> None:
    settings = private_settings(stack_settings, migrate=False)
    events = _events(20, seed=8)
    ahead, behind = f"{settings.projector.group_prefix}-ahead", f"{settings.projector.group_prefix}-behind"
    # Group "ahead" has folded the first half; group "behind" nothing yet.
    first = produce(settings, events[: len(events) // 2])
    _run_until(ProjectorRunner("ahead", _Collect(), settings, group_id=ahead), first)
    total = first + produce(settings, events[len(events) // 2:])
    # One runner consuming with "ahead"'s group feeds both: it starts where "behind" committed, so that
    # lane gets every record, and the lane that is ahead gets its records again (idempotent sinks).
    ahead_sink, behind_sink = _Collect(), _Collect()
    runner = ProjectorRunner("ahead", ahead_sink, settings, group_id=ahead,
                             also=[Lane("behind", behind_sink, behind)])
    _run_until(runner, total)
    assert sorted(behind_sink.ids) == sorted(ahead_sink.ids) == sorted(e.event_id for e in events)
    # Each group committed exactly the end of what its lane wrote: all of it.
    parts = partitions(settings)
    assert committed_offsets(settings, ahead, parts) == committed_offsets(settings, behind, parts)
    assert sum(committed_offsets(settings, behind, parts).values()) == total


def test_kill_9_during_a_rebuild_then_resume_ends_equal(stack_settings: Settings) -> None:
    settings = private_settings(stack_settings)
    total = produce(settings, _events(150, seed=6))
    with running(settings, "clickhouse", "redis") as runners:
        wait_folded(runners, total)
        live = _dumps(settings)
        proc = subprocess.Popen([sys.executable, "-m", "smsfold", "replay", "--projection", "all"], cwd=ROOT,
                                env=_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        parts = partitions(settings)

        def committed() -> int:
            return min(sum(committed_offsets(settings, build_group(settings, n, 1), parts).values())
                       for n in PROJECTIONS)

        try:
            wait_until(lambda: committed() > 0, 60, "the rebuild committed a first batch", interval_s=0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        done = committed()
        assert 0 < done < total, f"killed after {done} of {total}: not mid-rebuild"
        resumed = plan("clickhouse", settings)
        assert resumed.resume and resumed.version == 1 and sum(resumed.build_positions.values()) > 0
        assert _replay(settings, "--projection", "all") == 0
        wait_until(lambda: all(r.target and r.target.version == 1 for r in runners), 10, "the runners follow")
        assert _dumps(settings) == live


def test_renormalize_leaves_the_projections_byte_for_byte(stack_settings: Settings) -> None:
    base = private_settings(stack_settings)
    settings = base.model_copy(update={"topics": base.topics.model_copy(
        update={"raw": base.topics.events.replace("events", "raw")})})
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    admin.create_topics([NewTopic(settings.topics.raw, 2, 1)])[settings.topics.raw].result(15)
    codec = AvroCodec()
    producer = Producer(producer_config(settings.kafka))
    bodies = ["STOP", "START", "HELP", "where is my order?", "JOIN", "Loved “hi”"] * 5
    for i, body in enumerate(bodies):
        record = raw("twilio", "inbound", twilio_inbound_form(f"+1415555{i:04d}", "+14155550100", body),
                     received_at=int(time.time() * 1000) - 60_000 + i)
        producer.produce(settings.topics.raw, key=record.request_id.encode(), value=codec.encode(record))
    assert producer.flush(15) == 0
    # The first normalization of the raw log (the same code the worker's normalizer runs).
    first = run_renormalize(settings)
    assert (first.new, first.produced) == (len(bodies), len(bodies))
    with running(settings, "clickhouse", "redis") as runners:
        wait_folded(runners, len(bodies))
        live = _dumps(settings)
        again = run_renormalize(settings)
        assert (again.unchanged, again.changed, again.new, again.produced) == (len(bodies), 0, 0, 0)
        # Produced anyway, the duplicates are byte for byte the logged events: nothing changes.
        forced = run_renormalize(settings, include_unchanged=True)
        assert forced.produced == len(bodies)
        wait_folded(runners, 2 * len(bodies))
        assert _dumps(settings) == live
