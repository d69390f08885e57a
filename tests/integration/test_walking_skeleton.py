"""One signed Twilio webhook folded end to end: gateway → Kafka → worker → Redis and ClickHouse."""

from __future__ import annotations

import random
import urllib.error
import urllib.request

import pytest
import redis

from config import Settings, load_companies
from projections.clickhouse import clickhouse_client
from smsfold.webhooks import SignedRequest, new_twilio_sid, twilio_inbound
from tests.conftest import wait_until
from tests.raw_topic import raw_records

pytestmark = pytest.mark.stack


def _post(base: str, req: SignedRequest) -> tuple[int, bytes]:
    request = urllib.request.Request(base + req.path, data=req.body, headers=req.headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _signed(settings: Settings, sender: str, body: str, sid: str | None = None) -> SignedRequest:
    acme = load_companies(settings.companies_file).get("acme")
    assert acme is not None and acme.twilio is not None
    return twilio_inbound(
        settings.gateway.public_base_url, acme.twilio.auth_tokens[0].get_secret_value(), sender=sender,
        to=acme.numbers[0], body=body, account_sid=acme.twilio.account_sid, message_sid=sid,
    )


def test_signed_stop_ends_unsubscribed_in_redis_and_as_rows_in_clickhouse(
    stack_settings: Settings, pipeline: str
) -> None:
    # A fresh number subscribes, then texts STOP, through the gateway like Twilio would.
    sender = f"+1415555{random.randrange(10000):04d}"
    start_sid, stop_sid = new_twilio_sid(), new_twilio_sid()
    for body, sid in (("START", start_sid), ("Stop", stop_sid)):
        status, reply = _post(pipeline, _signed(stack_settings, sender, body, sid))
        assert status == 200
        assert b"<Response/>" in reply

    # Redis ends with the profile unsubscribed, at version 2 (START, then STOP).
    r = redis.Redis.from_url(stack_settings.redis.url)
    key = f"{stack_settings.redis.key_prefix}:consent:acme:{sender}"
    state = wait_until(lambda: (h := r.hgetall(key)) and h.get(b"status") == b"unsubscribed" and h, 60,
                       "consent unsubscribed in Redis")
    assert state[b"version"] == b"2"
    assert state[b"method"] == b"sms_keyword:STOP"

    # ClickHouse holds both inbound messages, both consent changes and both auto replies, once each (the
    # replies' sending, SendApproved onwards, is the send pipeline's and its tests').
    ch = clickhouse_client(stack_settings.clickhouse)
    rows = wait_until(
        lambda: (got := ch.execute(
            "SELECT event_type, count() FROM events FINAL WHERE profile_key = %(p)s "
            "AND event_type IN ('ConsentChanged', 'InboundReceived', 'SendRequested') GROUP BY event_type "
            "ORDER BY event_type", {"p": f"acme:{sender}"})) and sum(n for _, n in got) >= 6 and got,
        30, "six rows in ClickHouse")
    assert rows == [("ConsentChanged", 2), ("InboundReceived", 2), ("SendRequested", 2)]
    vendor_ids = {p for (p,) in ch.execute(
        "SELECT visitParamExtractString(payload, 'vendor_message_id') FROM events FINAL "
        "WHERE profile_key = %(p)s AND event_type = 'InboundReceived'", {"p": f"acme:{sender}"})}
    assert vendor_ids == {start_sid, stop_sid}


def test_bad_signature_is_refused_and_nothing_reaches_kafka(stack_settings: Settings, pipeline: str) -> None:
    good = _signed(stack_settings, "+14155550123", "STOP")
    forged = SignedRequest(good.path, {**good.headers, "X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
                           good.body)
    status, body = _post(pipeline, forged)
    assert status == 403
    assert b'"error"' in body
    # A valid request afterwards is recorded, which shows the topic reader sees new records.
    valid = _signed(stack_settings, "+14155550124", "hi")
    assert _post(pipeline, valid)[0] == 200
    # (Tansu's high watermarks under-count after multi-record batches, so records are read, not counted.)
    keys = [record.dedupe_key for _, record in raw_records(stack_settings)]
    assert keys.count(valid.headers["I-Twilio-Idempotency-Token"]) == 1
    assert good.headers["I-Twilio-Idempotency-Token"] not in keys
