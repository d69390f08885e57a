"""Decoding sms.events: the projectors' (events as dicts, poison with a reason) and the deciders'."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from confluent_kafka import Message

from agents.base import WorkerContext
from agents.consumer import WorkerApp
from config import load_companies, load_settings
from projections.runner import decode_batch
from streams.codec import AvroCodec
from streams.events import MessageDelivered, MessageFailed, RawWebhook

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


def test_a_decider_decodes_only_its_event_types_and_never_poison() -> None:
    ctx = WorkerContext(
        app=WorkerApp("unit-decode", broker="kafka://127.0.0.1:1", web_enabled=False),
        settings=load_settings(), companies=load_companies(load_settings().companies_file), codec=CODEC,
        raw_topic=cast(Any, None), events_topic=cast(Any, None), producer=cast(Any, None),
    )
    good = _delivered()
    assert ctx.decode_event(CODEC.encode(good), (MessageDelivered, MessageFailed)) == good
    assert ctx.decode_event(CODEC.encode(good), (MessageFailed,)) is None  # skipped by its header
    assert ctx.decode_event(CODEC.encode(_delivered(event_id="")), (MessageDelivered,)) is None
    assert ctx.decode_event(b"garbage", (MessageDelivered,)) is None
    records = [SimpleNamespace(value=CODEC.encode(e)) for e in (good, _delivered(event_id="e2"))]
    batch = cast(list[Any], records)
    assert [e.event_id for e in ctx.decode_events(batch, (MessageDelivered,))] == ["e1", "e2"]
