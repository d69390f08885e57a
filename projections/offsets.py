"""Topic positions for replay: partitions, ends, a group's committed offsets, and a bounded scan.

On the embedded broker (Tansu) high watermarks can under-count after multi-record batches, so they are
used only for progress and the "caught up" hint; what a rebuild covers is the offsets it committed, and
verification reads records up to exactly those offsets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from config.settings import Settings

__all__ = ["committed_offsets", "partitions", "scan", "scan_all", "seed_group", "topic_ends"]


def _consumer(settings: Settings, group_id: str | None = None) -> Consumer:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        # A group id is required even to read; a throwaway one joins nothing (assign, never subscribe).
        "group.id": group_id or f"smsfold-replay-probe-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    return Consumer(config)


def partitions(settings: Settings, topic: str | None = None) -> list[int]:
    """The partition ids of ``topic`` (default ``sms.events``)."""
    topic = topic or settings.topics.events
    consumer = _consumer(settings)
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise KafkaException(f"topic {topic} does not exist")
        return sorted(meta.partitions)
    finally:
        consumer.close()


def topic_ends(settings: Settings, parts: list[int], topic: str | None = None) -> dict[int, int]:
    """High watermark per partition (a hint on Tansu, see the module docstring)."""
    topic = topic or settings.topics.events
    consumer = _consumer(settings)
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in parts}
    finally:
        consumer.close()


def committed_offsets(settings: Settings, group_id: str, parts: list[int]) -> dict[int, int]:
    """What ``group_id`` committed per partition (0 where it committed nothing)."""
    consumer = _consumer(settings, group_id)
    try:
        found = consumer.committed([TopicPartition(settings.topics.events, p) for p in parts], timeout=10)
        return {tp.partition: max(tp.offset, 0) for tp in found}
    finally:
        consumer.close()


def seed_group(settings: Settings, group_id: str, offsets: dict[int, int]) -> None:
    """Commit ``offsets`` for a group nobody consumes with yet, so its first member starts there."""
    consumer = _consumer(settings, group_id)
    try:
        consumer.commit(offsets=[TopicPartition(settings.topics.events, p, o) for p, o in offsets.items()],
                        asynchronous=False)
    finally:
        consumer.close()


def scan(settings: Settings, until: dict[int, int], batch: int = 10_000) -> Iterator[list[Message]]:
    """The records of ``sms.events`` from the start up to (not including) ``until`` per partition."""
    topic = settings.topics.events
    wanted = {p: o for p, o in until.items() if o > 0}
    if not wanted:
        return
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in wanted])
        remaining = set(wanted)
        idle = 0
        while remaining:
            msgs = consumer.consume(num_messages=batch, timeout=1.0)
            idle = 0 if msgs else idle + 1
            if idle > 30:
                raise KafkaException(f"{topic}: no records for 30 s before reaching {wanted}")
            out: list[Message] = []
            for msg in msgs:
                if msg.error() is not None:
                    continue
                p, o = msg.partition() or 0, msg.offset() or 0
                if p in remaining and o < wanted[p]:
                    out.append(msg)
                if o + 1 >= wanted[p]:
                    remaining.discard(p)
            if out:
                yield out
    finally:
        consumer.close()


def scan_all(settings: Settings, topic: str, idle_s: float = 1.5, batch: int = 10_000
             ) -> Iterator[list[Message]]:
    """Every record of ``topic`` from the start until none arrives for ``idle_s`` (records are read,
    not watermarks trusted, so nothing is missed on Tansu)."""
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions(settings, topic)])
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            msgs = [m for m in consumer.consume(num_messages=batch, timeout=0.25) if m.error() is None]
            if msgs:
                last = time.monotonic()
                yield msgs
    finally:
        consumer.close()
