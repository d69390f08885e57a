"""Vendor webhooks through a real gateway process and the worker: duplicates fold to one event, every
vendor's records reach the raw topic with their dedupe identity, and the ops endpoints answer."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request

import pytest

from config import Settings, load_companies
from projections.clickhouse import clickhouse_client
from smsfold.webhooks import (
    SignedRequest,
    bandwidth_event,
    bandwidth_request,
    dev_telnyx_seed,
    new_twilio_sid,
    telnyx_event,
    telnyx_request,
    twilio_inbound,
)
from tests.conftest import wait_until
from tests.raw_topic import raw_records

pytestmark = pytest.mark.stack


def _post(base: str, req: SignedRequest) -> int:
    request = urllib.request.Request(base + req.path, data=req.body, headers=req.headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _get(base: str, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def test_same_twilio_webhook_five_times_is_one_event_downstream(
    stack_settings: Settings, pipeline: str
) -> None:
    # Twilio retries the very same request (same idempotency token) five times.
    acme = load_companies(stack_settings.companies_file).get("acme")
    assert acme is not None and acme.twilio is not None
    sender = f"+1415557{random.randrange(10000):04d}"
    sid = new_twilio_sid()
    req = twilio_inbound(
        stack_settings.gateway.public_base_url,
        acme.twilio.auth_tokens[0].get_secret_value(),
        sender=sender,
        to=acme.numbers[0],
        body="hello there",
        account_sid=acme.twilio.account_sid,
        message_sid=sid,
    )
    assert [_post(pipeline, req) for _ in range(5)] == [200] * 5

    # Five raw records, one dedupe identity.
    raw = [
        r for _, r in raw_records(stack_settings) if r.dedupe_key == req.headers["I-Twilio-Idempotency-Token"]
    ]
    assert len(raw) == 5
    # One event in ClickHouse, however many rows were inserted before merges.
    ch = clickhouse_client(stack_settings.clickhouse)
    query = (
        "SELECT count(), uniqExact(event_id) FROM events FINAL WHERE profile_key = %(p)s "
        "AND visitParamExtractString(payload, 'vendor_message_id') = %(sid)s"
    )
    rows = wait_until(
        lambda: (got := ch.execute(query, {"p": f"acme:{sender}", "sid": sid})) and got[0][0] and got,
        60,
        "the inbound event in ClickHouse",
    )
    assert rows == [(1, 1)]


def test_every_vendor_reaches_the_raw_topic_with_its_dedupe_identity(
    stack_settings: Settings, pipeline: str
) -> None:
    acme = load_companies(stack_settings.companies_file).get("acme")
    assert acme is not None and acme.bandwidth is not None
    tag = f"v{random.randrange(10**9)}"
    telnyx = telnyx_event(
        "message.finalized",
        sender=acme.numbers[0],
        to="+14155550111",
        message_id=f"{tag}-tx",
        event_id=f"{tag}-ev",
    )
    bw_events = [
        bandwidth_event(
            kind,
            sender=acme.numbers[0],
            to="+14155550112",
            application_id=acme.bandwidth.application_id,
            message_id=f"{tag}-bw",
        )
        for kind in ("message-sending", "message-delivered")
    ]
    cred = acme.bandwidth.credentials[0]
    assert _post(pipeline, telnyx_request(dev_telnyx_seed("acme"), telnyx)) == 200
    assert (
        _post(
            pipeline,
            bandwidth_request(
                cred.username, cred.password.get_secret_value(), bw_events, path="/webhooks/bandwidth/status"
            ),
        )
        == 200
    )

    mine = {
        record.dedupe_key: (key, record)
        for key, record in raw_records(stack_settings)
        if tag in record.dedupe_key
    }
    assert set(mine) == {f"telnyx:{tag}-ev"} | {
        f"bandwidth:{e['type']}:{tag}-bw:{e['time']}:+14155550112" for e in bw_events
    }
    key, record = mine[f"telnyx:{tag}-ev"]
    assert (key, record.vendor, record.endpoint) == (f"{tag}-tx".encode(), "telnyx", "status")
    assert json.loads(record.body) == telnyx
    for event in bw_events:
        key, record = mine[f"bandwidth:{event['type']}:{tag}-bw:{event['time']}:+14155550112"]
        assert (key, record.vendor, json.loads(record.body)) == (f"{tag}-bw".encode(), "bandwidth", event)


def test_ops_endpoints_of_a_running_gateway(pipeline: str) -> None:
    status, body = _get(pipeline, "/readyz")
    assert (status, json.loads(body)["checks"]) == (200, {"broker": "ok", "spool": "ok"})
    status, body = _get(pipeline, "/metrics")
    assert status == 200 and b"smsfold_gateway_kafka_ack_seconds_bucket" in body
    status, body = _get(pipeline, "/openapi.json")
    assert status == 200 and "/webhooks/bandwidth/{endpoint}" in json.loads(body)["paths"]
