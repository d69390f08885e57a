"""Helpers for projection tests: a private topic, database and key prefix per test, and a folding run."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from config import Settings
from projections.clickhouse import clickhouse_client
from projections.migrate import apply_migrations
from projections.projectors import build_runner
from projections.runner import ProjectorRunner
from streams.codec import AvroCodec
from streams.events import Event
from streams.producer import producer_config


def private_settings(base: Settings, *, migrate: bool = True) -> Settings:
    """``base`` with a fresh events topic (created), ClickHouse database (migrated) and Redis prefix."""
    tag = uuid.uuid4().hex[:10]
    topics = base.topics.model_copy(update={
        "events": f"test.events.{tag}", "events_partitions": 3,
        "deadletter": f"test.deadletter.{tag}", "deadletter_partitions": 1})
    settings = base.model_copy(update={
        "topics": topics,
        "clickhouse": base.clickhouse.model_copy(update={"database": f"t_{tag}"}),
        "redis": base.redis.model_copy(update={"key_prefix": f"t{tag}"}),
        "projector": base.projector.model_copy(update={"group_prefix": f"t-{tag}", "batch_seconds": 0.2}),
    })
    admin = AdminClient({"bootstrap.servers": base.kafka.bootstrap_servers})
    futures = admin.create_topics([NewTopic(topics.events, 3, 1), NewTopic(topics.deadletter, 1, 1)])
    for future in futures.values():
        future.result(15)
    if migrate:
        apply_migrations(settings.clickhouse)
    return settings


def produce(settings: Settings, events: Iterable[Event | tuple[bytes, bytes]]) -> int:
    """Produce events (or raw key/value pairs) to the private topic; returns how many."""
    codec = AvroCodec()
    producer = Producer(producer_config(settings.kafka))
    n = 0
    for item in events:
        if isinstance(item, Event):
            producer.produce(settings.topics.events, key=item.profile_key.encode(), value=codec.encode(item))
        else:
            producer.produce(settings.topics.events, key=item[0], value=item[1])
        producer.poll(0)
        n += 1
    assert producer.flush(30) == 0
    return n


@contextmanager
def running(settings: Settings, *names: str) -> Iterator[list[ProjectorRunner]]:
    """Projector runners in threads for the duration of the block."""
    runners = [build_runner(name, settings) for name in names]
    threads = [threading.Thread(target=r.run, daemon=True) for r in runners]
    for t in threads:
        t.start()
    try:
        yield runners
    finally:
        for r in runners:
            r.stop()
        for t in threads:
            t.join(30)


def wait_folded(runners: list[ProjectorRunner], total: int, timeout_s: float = 60) -> None:
    """Wait until every runner committed ``total`` records (events, poison and refused records)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(r.folded + r.poison_records + r.refused_records >= total for r in runners):
            return
        time.sleep(0.05)
    progress = [(r.name, r.folded, r.poison_records, r.refused_records) for r in runners]
    raise AssertionError(f"timed out: {progress} of {total}")


def ch_rows(settings: Settings, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    client = clickhouse_client(settings.clickhouse)
    try:
        return list(client.execute(query, params or {}))
    finally:
        client.disconnect()
