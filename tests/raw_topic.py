"""Read back ``sms.webhooks.raw`` in tests: every record from the beginning to the current end."""

from __future__ import annotations

from config import Settings
from streams.codec import AvroCodec
from streams.events import RawWebhook
from streams.readback import read_topic


def raw_records(
    settings: Settings, timeout_s: float = 20.0, quiet_s: float = 1.0
) -> list[tuple[bytes | None, RawWebhook]]:
    """``(key, record)`` for every record on the raw topic (all partitions)."""
    codec = AvroCodec()
    out: list[tuple[bytes | None, RawWebhook]] = []
    for msg in read_topic(settings.kafka, settings.topics.raw, timeout_s, quiet_s):
        record = codec.decode(msg.value() or b"")
        assert isinstance(record, RawWebhook)
        out.append((msg.key(), record))
    return out
