"""Read back ``sms.webhooks.raw`` in tests: every record from the beginning to the current end.

Tansu reports a partition's high watermark as the base offset of its last batch + 1, so it under-counts
whenever the last produce batch held several records (a Bandwidth batch, a spool segment forwarded at
once). The reader therefore reads until the topic stays quiet instead of stopping at the watermarks.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from config import Settings
from streams.codec import AvroCodec
from streams.events import RawWebhook


def raw_records(
    settings: Settings, timeout_s: float = 20.0, quiet_s: float = 1.0
) -> list[tuple[bytes | None, RawWebhook]]:
    """``(key, record)`` for every record on the raw topic (all partitions)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"raw-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    codec = AvroCodec()
    try:
        partitions = [
            TopicPartition(settings.topics.raw, p, OFFSET_BEGINNING)
            for p in range(settings.topics.raw_partitions)
        ]
        # The watermarks are a lower bound of what must be read at least.
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in partitions}
        remaining = {p: end for p, end in ends.items() if end > 0}
        consumer.assign(partitions)
        out: list[tuple[bytes | None, RawWebhook]] = []
        deadline = time.monotonic() + timeout_s
        last_seen = time.monotonic()
        while time.monotonic() < deadline and (remaining or time.monotonic() - last_seen < quiet_s):
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            last_seen = time.monotonic()
            record = codec.decode(msg.value())
            assert isinstance(record, RawWebhook)
            out.append((msg.key(), record))
            if msg.offset() + 1 >= remaining.get(msg.partition(), 0):
                remaining.pop(msg.partition(), None)
        assert not remaining, f"raw topic not read to its end: {remaining}"
        return out
    finally:
        consumer.close()
