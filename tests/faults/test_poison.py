"""Poison on ``sms.events`` with the whole pipeline running under load: undecodable bytes, an unknown schema
fingerprint and an event that fails validation each go to ``sms.deadletter`` once, with their reason;
no decider acts on them, the consumer groups' lag returns to zero, and every projection equals the fold."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from config import Settings
from projections.offsets import committed_offsets
from projections.versions import live_group, state_store
from smsfold.workload import generate_events
from streams.codec import AvroCodec
from streams.readback import read_topic
from tests.faults.harness import FaultStack, record, running_load, settle

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

RATE = 25.0


def _poison() -> list[tuple[bytes, bytes, bytes]]:
    """(key, value, the reason the dead letter must give)."""
    event = next(generate_events(1, companies=("loadtest",), seed=5))
    foreign = event.model_copy(update={"profile_key": "acme:" + event.profile_key.split(":", 1)[1]})
    return [(b"poison-1", b"not avro at all", b"not single-object Avro"),
            (b"poison-2", b"\xc3\x01" + b"\x07" * 8 + b"body", b"unknown schema fingerprint"),
            (b"poison-3", AvroCodec().encode(foreign), b"is not of company")]


def _produce(settings: Settings, records: list[tuple[bytes, bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for partition, (key, value, _) in enumerate(records):
        producer.produce(settings.topics.events, key=key, value=value, partition=partition)
    assert producer.flush(10) == 0


def _lag(settings: Settings, group: str) -> int:
    """How far ``group`` is behind the end of sms.events (ends read from the records)."""
    ends: dict[int, int] = {}
    for msg in read_topic(settings.kafka, settings.topics.events):
        ends[msg.partition() or 0] = (msg.offset() or 0) + 1
    committed = committed_offsets(settings, group, sorted(ends))
    return sum(end - committed[p] for p, end in ends.items())


def _live_group(settings: Settings, name: str) -> str:
    store = state_store(name, settings)
    try:
        return live_group(settings, name, store.load())
    finally:
        store.close()


def test_poison_is_dead_lettered_once_and_every_group_catches_up(faults: FaultStack) -> None:
    settings = faults.settings
    poison = _poison()
    with running_load(faults, RATE, seed=97) as load:
        time.sleep(2.0)
        _produce(settings, poison)
        fault_ended = time.monotonic()
        time.sleep(3.0)
    outcome = settle(faults, load, fault_ended)
    assert faults.worker is not None and faults.worker.alive(), "the worker died on poison (crash loop)"
    assert outcome.lost == 0 and outcome.doubled == 0
    assert outcome.report.poison >= len(poison)

    letters = [m for m in read_topic(settings.kafka, settings.topics.deadletter)
               if (m.key() or b"").startswith(b"poison-")]
    reasons = {m.key(): dict(m.headers() or [])["reason"] for m in letters}
    assert sorted(m.key() or b"" for m in letters) == [key for key, _, _ in poison], "one dead letter each"
    for key, _, why in poison:
        assert why in reasons[key], (key, reasons[key])

    # Lag back to zero: the projectors' groups and the deciders' group committed past the poison.
    groups = [_live_group(settings, name) for name in ("clickhouse", "redis")] + [settings.worker.app_id]
    deadline = time.monotonic() + 30
    while (lags := {g: _lag(settings, g) for g in groups}) and any(lags.values()):
        assert time.monotonic() < deadline, f"lag did not return to zero: {lags}"
        time.sleep(1.0)
    record("poison records on sms.events", outcome, load, faults=len(poison), rate=RATE,
           dead_letters=len(letters))
