"""Read a whole topic back, from the beginning of every partition to its current end.

Tansu reports a partition's high watermark as the base offset of its last batch + 1, so it under-counts
whenever the last produce batch held several records (a Bandwidth batch, a spool segment forwarded at
once). The reader therefore treats the watermarks as a lower bound and reads until the topic stays quiet.
Used by the verifier (``sms.events``), the acknowledged-in-topic check (``sms.webhooks.raw``) and tests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from config.settings import KafkaSettings

__all__ = ["ReadbackError", "read_topic", "true_ends"]


class ReadbackError(RuntimeError):
    """The topic could not be read to its end in time."""


def _reader(bootstrap_servers: str) -> Consumer:
    """A consumer that reads by assignment and never commits."""
    return Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": f"readback-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })


def _read_until_quiet(consumer: Consumer, remaining: dict[tuple[str, int], int], timeout_s: float,
                      quiet_s: float) -> Iterator[Message]:
    """The assigned records, until every (topic, partition) in ``remaining`` reached its end (a lower
    bound, removed from ``remaining`` once reached) and nothing came for ``quiet_s``, or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_seen = time.monotonic()
    while time.monotonic() < deadline and (remaining or time.monotonic() - last_seen < quiet_s):
        for msg in consumer.consume(num_messages=10_000, timeout=0.1):
            if msg.error() is not None:
                continue
            last_seen = time.monotonic()
            tp = (msg.topic() or "", msg.partition() or 0)
            if (msg.offset() or 0) + 1 >= remaining.get(tp, 0):
                remaining.pop(tp, None)
            yield msg


def read_topic(
    kafka: KafkaSettings, topic: str, timeout_s: float = 60.0, quiet_s: float = 1.0
) -> list[Message]:
    """Every record of ``topic`` (all partitions, no consumer group commits), in per-partition order."""
    consumer = _reader(kafka.bootstrap_servers)
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            raise ReadbackError(f"topic {topic} not found ({meta.error if meta else 'no metadata'})")
        partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
        # The watermarks are a lower bound of what must be read at least.
        ends = {(topic, p.partition): consumer.get_watermark_offsets(p, timeout=10)[1] for p in partitions}
        remaining = {tp: end for tp, end in ends.items() if end > 0}
        consumer.assign(partitions)
        out = list(_read_until_quiet(consumer, remaining, timeout_s, quiet_s))
        if remaining:
            late = sorted(p for _, p in remaining)
            raise ReadbackError(f"{topic} not read to its end in {timeout_s:g}s: partitions {late}")
        return out
    finally:
        consumer.close()


def true_ends(bootstrap_servers: str, watermarks: dict[tuple[str, int], int],
              quiet_s: float = 0.3, timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
    """The real end (last offset + 1) of each (topic, partition) whose reported high watermark is given:
    reads from the watermark's record on, which on Tansu returns the whole last batch. A partition whose
    watermark is 0 is empty. Correct on any broker (on Kafka it just reads the last record)."""
    ends = dict(watermarks)
    wanted = {tp: end for tp, end in watermarks.items() if end > 0}
    if not wanted:
        return ends
    consumer = _reader(bootstrap_servers)
    try:
        consumer.assign([TopicPartition(t, p, end - 1) for (t, p), end in wanted.items()])
        for msg in _read_until_quiet(consumer, wanted, timeout_s, quiet_s):
            tp = (msg.topic() or "", msg.partition() or 0)
            ends[tp] = max(ends[tp], (msg.offset() or 0) + 1)
        return ends
    finally:
        consumer.close()
