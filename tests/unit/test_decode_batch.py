"""The projectors' decoding: events as dicts, everything else classified as poison with a reason."""

from __future__ import annotations

from typing import Any, cast

from confluent_kafka import Message

from projections.runner import decode_batch
from streams.codec import AvroCodec
from streams.events import MessageDelivered, RawWebhook

CODEC = AvroCodec()


class _Msg:
    """Just what decode_batch reads from a confluent-kafka Message."""

    def __init__(self, value: bytes | None) -> None:
        self._value = value

    def value(self) -> bytes | None:
        return self._value


def _delivered(**changes: Any) -> MessageDelivered:
    fields: dict[str, Any] = {
        "event_id": "e1", "company_id": "acme", "profile_key": "acme:+14155550100", "occurred_at": 1,
        "received_at": 2, "vendor": "twilio", "vendor_message_id": "SM1"}
    return MessageDelivered.model_construct(**{**fields, **changes})


def test_events_decode_to_dicts_and_poison_gets_a_reason() -> None:
    good = _delivered()
    raw = RawWebhook(request_id="r", vendor="twilio", endpoint="inbound", url="u", method="POST",
                     content_type="x", headers={}, body=b"", received_at=1, dedupe_key="d")
    messages = [
        good,
        b"garbage",
        None,
        raw,
        _delivered(profile_key="globex:+14155550100"),
        _delivered(event_type="MessageFailed"),
        _delivered(event_id=""),
    ]
    values = [CODEC.encode(m) if hasattr(m, "model_dump") else m for m in messages]
    batch = decode_batch(CODEC, cast(list[Message], [_Msg(v) for v in values]))
    assert batch.events == [good.model_dump()]
    assert [reason for _, reason in batch.poison] == [
        "not single-object Avro",
        "empty record",
        "not a domain event: smsfold.events.RawWebhook",
        "invalid event: MessageDelivered.profile_key 'globex:+14155550100' is not of company 'acme'",
        "invalid event: MessageDelivered.event_type is 'MessageFailed'",
        "invalid event: MessageDelivered.event_id is empty",
    ]
