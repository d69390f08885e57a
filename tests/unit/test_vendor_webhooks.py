"""Telnyx, Bandwidth and the rest of Twilio (status, JSON bodies, default ports) through the real app with
an in-memory publisher: signature vectors, dedupe identity, routing key and every bad-input status."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from gateway import create_app
from gateway.signatures import basic_credentials, telnyx_sign, twilio_body_sha256, twilio_signature
from smsfold.webhooks import (
    SignedRequest,
    bandwidth_event,
    bandwidth_request,
    telnyx_event,
    telnyx_request,
    twilio_json,
    twilio_status,
)
from tests.unit.gateway_support import (
    ACME_BW,
    ACME_BW_NEXT,
    ACME_NEXT_SEED,
    ACME_NUMBER,
    ACME_SEED,
    GLOBEX_BW,
    GLOBEX_NUMBER,
    GLOBEX_SEED,
    PUBLIC_BASE,
    SENDER,
    STRANGER_SEED,
    TWILIO_TOKEN,
    Client,
    FakePublisher,
    MakeClient,
    companies,
    expect_error,
    settings,
)


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
async def client(aiohttp_client: MakeClient, publisher: FakePublisher) -> Client:
    return await aiohttp_client(create_app(settings(max_body_bytes=4096), companies(), publisher))


async def _post(client: Client, req: SignedRequest, **header_overrides: str | None) -> Any:
    headers = {**req.headers, **header_overrides}
    return await client.post(
        req.path, data=req.body, headers={k: v for k, v in headers.items() if v is not None}
    )


# -- Telnyx ------------------------------------------------------------------------------------------------


def _inbound(**kwargs: Any) -> dict[str, Any]:
    return telnyx_event("message.received", sender=SENDER, to=ACME_NUMBER, text="STOP", **kwargs)


async def test_telnyx_inbound_is_recorded_exactly_with_its_event_id(
    client: Client, publisher: FakePublisher
) -> None:
    event = _inbound(event_id="ev-1")
    req = telnyx_request(ACME_SEED, event)
    response = await _post(client, req)
    assert response.status == 200
    assert (await response.json())["status"] == "accepted"
    [(record, key)] = publisher.published
    assert (record.vendor, record.endpoint, key) == ("telnyx", "inbound", SENDER)
    assert record.body == req.body
    assert record.dedupe_key == "telnyx:ev-1"
    assert record.url == PUBLIC_BASE + "/webhooks/telnyx"
    assert set(record.headers) == {"telnyx-signature-ed25519", "telnyx-timestamp", "User-Agent"}


@pytest.mark.parametrize("event_type", ["message.sent", "message.finalized"])
@pytest.mark.parametrize("path", ["/webhooks/telnyx", "/webhooks/telnyx/status", "/webhooks/telnyx/inbound"])
async def test_telnyx_status_events_are_keyed_by_message_id(
    client: Client, publisher: FakePublisher, event_type: str, path: str
) -> None:
    # Our number sends; the event type decides the endpoint whatever the path says.
    event = telnyx_event(event_type, sender=ACME_NUMBER, to=SENDER, message_id="msg-9", event_id="ev-9")
    response = await _post(client, telnyx_request(ACME_SEED, event, path=path))
    assert response.status == 200
    [(record, key)] = publisher.published
    assert (record.endpoint, key, record.dedupe_key) == ("status", "msg-9", "telnyx:ev-9")


async def test_telnyx_rotated_key_is_accepted(client: Client, publisher: FakePublisher) -> None:
    assert (await _post(client, telnyx_request(ACME_NEXT_SEED, _inbound()))).status == 200
    assert len(publisher.published) == 1


@pytest.mark.parametrize("skew", [-299, 299])
async def test_telnyx_timestamp_within_tolerance(client: Client, skew: int) -> None:
    req = telnyx_request(ACME_SEED, _inbound(), timestamp=int(time.time()) + skew)
    assert (await _post(client, req)).status == 200


@pytest.mark.parametrize("skew", [-301, 301])
async def test_telnyx_timestamp_beyond_300_s_is_403(
    client: Client, publisher: FakePublisher, skew: int
) -> None:
    req = telnyx_request(ACME_SEED, _inbound(), timestamp=int(time.time()) + skew)
    await expect_error(await _post(client, req), 403, "stale_timestamp")
    assert publisher.published == []


async def test_telnyx_tampered_body_is_403(client: Client, publisher: FakePublisher) -> None:
    req = telnyx_request(ACME_SEED, _inbound())
    tampered = SignedRequest(req.path, req.headers, req.body.replace(b"STOP", b"STAR"))
    await expect_error(await _post(client, tampered), 403, "bad_signature")
    # The timestamp is signed too.
    ts = str(int(req.headers["telnyx-timestamp"]) + 1)
    await expect_error(await _post(client, req, **{"telnyx-timestamp": ts}), 403, "bad_signature")
    assert publisher.published == []


@pytest.mark.parametrize("seed", [STRANGER_SEED, GLOBEX_SEED])
async def test_telnyx_wrong_key_is_403(client: Client, publisher: FakePublisher, seed: str) -> None:
    # An unknown key, and globex's valid key used for acme's number.
    await expect_error(await _post(client, telnyx_request(seed, _inbound())), 403, "bad_signature")
    assert publisher.published == []


@pytest.mark.parametrize("header", ["telnyx-signature-ed25519", "telnyx-timestamp"])
async def test_telnyx_missing_header_is_401(client: Client, header: str) -> None:
    response = await _post(client, telnyx_request(ACME_SEED, _inbound()), **{header: None})
    payload = await expect_error(response, 401, "missing_signature")
    assert header in payload["error"]["message"]


async def test_telnyx_garbage_signature_and_timestamp_are_403(client: Client) -> None:
    req = telnyx_request(ACME_SEED, _inbound())
    await expect_error(
        await _post(client, req, **{"telnyx-signature-ed25519": "not base64!"}), 403, "bad_signature"
    )
    await expect_error(await _post(client, req, **{"telnyx-timestamp": "yesterday"}), 403, "bad_timestamp")


@pytest.mark.parametrize(
    ("mutate", "code", "field"),
    [
        (lambda e: e["data"].pop("id"), "missing_field", "data.id"),
        (lambda e: e["data"].pop("event_type"), "missing_field", "data.event_type"),
        (lambda e: e["data"]["payload"].update(to=[]), "invalid_field", "data.payload.to"),
        (
            lambda e: e["data"]["payload"]["from"].update(phone_number=42),
            "invalid_field",
            "data.payload.from.phone_number",
        ),
        (lambda e: e.update(data="x"), "invalid_field", "data"),
    ],
)
async def test_telnyx_malformed_envelope_is_400_naming_the_field(
    client: Client, publisher: FakePublisher, mutate: Any, code: str, field: str
) -> None:
    event = _inbound()
    mutate(event)
    response = await _post(client, telnyx_request(ACME_SEED, event))
    payload = await expect_error(response, 400, code, field=field)
    assert field in payload["error"]["message"]
    assert publisher.published == []


async def test_telnyx_invalid_json_is_400(client: Client) -> None:
    req = telnyx_request(ACME_SEED, _inbound())
    body = b'{"data": '
    ts = req.headers["telnyx-timestamp"]
    headers = {**req.headers, "telnyx-signature-ed25519": telnyx_sign(ACME_SEED, ts, body)}
    payload = await expect_error(
        await client.post(req.path, data=body, headers=headers), 400, "malformed_body"
    )
    assert "line 1" in payload["error"]["message"]


async def test_telnyx_unknown_event_type_is_acknowledged_and_ignored(
    client: Client, publisher: FakePublisher
) -> None:
    event = _inbound()
    event["data"]["event_type"] = "number_order.complete"
    response = await _post(client, telnyx_request(ACME_SEED, event))
    assert response.status == 200
    assert (await response.json())["status"] == "ignored"
    assert publisher.published == []


async def test_telnyx_unknown_extra_fields_are_accepted(client: Client, publisher: FakePublisher) -> None:
    event = _inbound()
    event["data"]["payload"]["brand_new_field"] = {"nested": [1, 2]}
    event["extra_top_level"] = True
    assert (await _post(client, telnyx_request(ACME_SEED, event))).status == 200
    assert len(publisher.published) == 1


async def test_telnyx_wrong_content_type_is_415(client: Client) -> None:
    req = telnyx_request(ACME_SEED, _inbound())
    await expect_error(
        await _post(client, req, **{"Content-Type": "text/plain"}), 415, "unsupported_media_type"
    )


# -- Bandwidth ---------------------------------------------------------------------------------------------


def _batch() -> list[dict[str, Any]]:
    return [
        bandwidth_event(
            "message-received", sender=SENDER, to=ACME_NUMBER, application_id="app-acme", text="Hi"
        ),
        bandwidth_event(
            "message-delivered", sender=ACME_NUMBER, to=SENDER, application_id="app-acme", message_id="bw-1"
        ),
        bandwidth_event(
            "message-failed",
            sender=ACME_NUMBER,
            to=SENDER,
            application_id="app-acme",
            message_id="bw-2",
            error_code=4470,
        ),
    ]


async def test_bandwidth_batch_becomes_one_record_per_event(client: Client, publisher: FakePublisher) -> None:
    events = _batch()
    response = await _post(client, bandwidth_request(*ACME_BW, events))
    assert response.status == 200
    assert (await response.json())["accepted"] == 3
    records = publisher.published
    assert [(r.endpoint, key) for r, key in records] == [
        ("inbound", SENDER),
        ("status", "bw-1"),
        ("status", "bw-2"),
    ]
    for (record, _), event in zip(records, events, strict=True):
        # Each element is re-serialized compactly and carries its own dedupe identity.
        assert record.body == json.dumps(event, separators=(",", ":")).encode()
        assert json.loads(record.body) == event
        message = event["message"]
        assert record.dedupe_key == f"bandwidth:{event['type']}:{message['id']}:{event['time']}:{event['to']}"
        # Credentials never reach the topic.
        assert "Authorization" not in record.headers
    assert len({r.dedupe_key for r, _ in records}) == 3


async def test_bandwidth_rotated_password_is_accepted(client: Client) -> None:
    assert (await _post(client, bandwidth_request(*ACME_BW_NEXT, _batch()))).status == 200


async def test_bandwidth_missing_or_malformed_credentials_are_401(
    client: Client, publisher: FakePublisher
) -> None:
    req = bandwidth_request(*ACME_BW, _batch())
    response = await _post(client, req, Authorization=None)
    await expect_error(response, 401, "missing_credentials")
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    await expect_error(await _post(client, req, Authorization="Bearer abc"), 401, "malformed_credentials")
    assert publisher.published == []


@pytest.mark.parametrize("credentials", [("acme-bw", "wrong"), ("nobody", "acme-pass"), GLOBEX_BW])
async def test_bandwidth_wrong_credentials_are_403(
    client: Client, publisher: FakePublisher, credentials: tuple[str, str]
) -> None:
    # A wrong password, an unknown user, and globex's valid credentials for acme's numbers.
    response = await _post(
        client, bandwidth_request(*ACME_BW, _batch()), Authorization=basic_credentials(*credentials)
    )
    await expect_error(response, 403, "bad_credentials")
    assert publisher.published == []


async def test_bandwidth_globex_credentials_work_for_globex(client: Client, publisher: FakePublisher) -> None:
    event = bandwidth_event("message-received", sender=SENDER, to=GLOBEX_NUMBER, application_id="app-globex")
    assert (await _post(client, bandwidth_request(*GLOBEX_BW, [event]))).status == 200
    assert len(publisher.published) == 1


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"type": "message-received"}, "malformed_body", "body"),
        ([], "malformed_body", "body"),
        (["x"], "invalid_field", "[0]"),
        (
            [{"time": "t", "to": ACME_NUMBER, "message": {"id": "1", "from": SENDER}}],
            "missing_field",
            "[0].type",
        ),
    ],
)
async def test_bandwidth_malformed_body_is_400_naming_the_field(
    client: Client, publisher: FakePublisher, body: Any, code: str, field: str
) -> None:
    req = bandwidth_request(*ACME_BW, [])
    response = await client.post(req.path, data=json.dumps(body), headers=req.headers)
    await expect_error(response, 400, code, field=field)
    assert publisher.published == []


async def test_bandwidth_bad_element_refuses_the_whole_batch(
    client: Client, publisher: FakePublisher
) -> None:
    events = _batch()
    del events[1]["message"]["id"]
    response = await _post(client, bandwidth_request(*ACME_BW, events))
    await expect_error(response, 400, "missing_field", field="[1].message.id")
    assert publisher.published == []


async def test_bandwidth_unknown_type_and_fields_are_accepted(
    client: Client, publisher: FakePublisher
) -> None:
    events = _batch()
    events[0]["newVendorField"] = {"x": 1}
    events.append({"type": "message-read", "time": "t", "to": SENDER, "message": {}})
    response = await _post(client, bandwidth_request(*ACME_BW, events))
    assert response.status == 200
    assert await response.json() == {
        "status": "accepted",
        "accepted": 3,
        "ignored": 1,
        "request_id": response.headers["X-Request-Id"],
    }


# -- Twilio: status callbacks, JSON bodies, default ports ---------------------------------------------------


def _status(status: str = "delivered", sid: str = "SM" + "2" * 32) -> SignedRequest:
    return twilio_status(
        PUBLIC_BASE,
        TWILIO_TOKEN,
        sender=ACME_NUMBER,
        to=SENDER,
        status=status,
        account_sid="AC" + "a" * 32,
        message_sid=sid,
    )


async def test_twilio_status_is_keyed_by_message_sid(client: Client, publisher: FakePublisher) -> None:
    req = _status()
    response = await _post(client, req, **{"I-Twilio-Idempotency-Token": None})
    assert response.status == 200
    [(record, key)] = publisher.published
    assert (record.vendor, record.endpoint, key) == ("twilio", "status", "SM" + "2" * 32)
    assert record.dedupe_key == f"twilio:{'SM' + '2' * 32}:delivered"


async def test_twilio_idempotency_token_is_the_dedupe_key(client: Client, publisher: FakePublisher) -> None:
    req = _status()
    assert (await _post(client, req)).status == 200
    assert publisher.published[0][0].dedupe_key == req.headers["I-Twilio-Idempotency-Token"]


async def test_twilio_status_missing_status_is_400(client: Client) -> None:
    fields = {"MessageSid": "SM1", "From": ACME_NUMBER, "To": SENDER}
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + "/webhooks/twilio/status", fields),
    }
    response = await client.post("/webhooks/twilio/status", data=urlencode(fields), headers=headers)
    await expect_error(response, 400, "missing_field", field="MessageStatus")


async def test_twilio_signed_with_default_port_is_accepted(client: Client, publisher: FakePublisher) -> None:
    fields = dict(urlencode_pairs(_status().body))
    url = "https://sms.example.com:443/webhooks/twilio/status"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, fields),
    }
    assert (
        await client.post("/webhooks/twilio/status", data=urlencode(fields), headers=headers)
    ).status == 200


def urlencode_pairs(body: bytes) -> list[tuple[str, str]]:
    return parse_qsl(body.decode())


async def test_twilio_tampered_url_is_403(client: Client) -> None:
    # Signed for the inbound URL, posted to the status URL.
    fields = dict(urlencode_pairs(_status().body))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(
            TWILIO_TOKEN, PUBLIC_BASE + "/webhooks/twilio/inbound", fields
        ),
    }
    response = await client.post("/webhooks/twilio/status", data=urlencode(fields), headers=headers)
    await expect_error(response, 403, "bad_signature")


def _json_status() -> SignedRequest:
    payload = {
        "MessageSid": "SM" + "3" * 32,
        "MessageStatus": "sent",
        "From": ACME_NUMBER,
        "To": SENDER,
        "Extra": {"nested": True},
    }
    return twilio_json(PUBLIC_BASE, TWILIO_TOKEN, "/webhooks/twilio/status", payload)


async def test_twilio_json_body_signed_through_body_sha256(client: Client, publisher: FakePublisher) -> None:
    req = _json_status()
    assert (await _post(client, req)).status == 200
    [(record, key)] = publisher.published
    assert record.body == req.body
    assert record.content_type == "application/json"
    assert key == "SM" + "3" * 32


async def test_twilio_json_tampered_body_or_hash_is_403(client: Client, publisher: FakePublisher) -> None:
    req = _json_status()
    tampered_body = req.body.replace(b'"sent"', b'"delivered"')
    response = await client.post(req.path, data=tampered_body, headers=req.headers)
    await expect_error(response, 403, "bad_signature")
    # A hash that matches the tampered body, with the original signature: the URL is signed.
    path = "/webhooks/twilio/status?bodySHA256=" + twilio_body_sha256(tampered_body)
    await expect_error(await client.post(path, data=tampered_body, headers=req.headers), 403, "bad_signature")
    assert publisher.published == []


async def test_twilio_json_without_body_sha256_is_401(client: Client) -> None:
    req = _json_status()
    response = await client.post("/webhooks/twilio/status", data=req.body, headers=req.headers)
    await expect_error(response, 401, "missing_body_hash")


async def test_twilio_json_that_is_not_an_object_is_400(client: Client) -> None:
    req = twilio_json(PUBLIC_BASE, TWILIO_TOKEN, "/webhooks/twilio/status", {})
    await expect_error(await client.post(req.path, data=b"[1]", headers=req.headers), 400, "malformed_body")


# -- every vendor route: 405, 413, 415 as JSON ---------------------------------------------------------

ROUTES = [
    "/webhooks/twilio/inbound",
    "/webhooks/twilio/status",
    "/webhooks/telnyx",
    "/webhooks/telnyx/inbound",
    "/webhooks/telnyx/status",
    "/webhooks/bandwidth/inbound",
    "/webhooks/bandwidth/status",
]


@pytest.mark.parametrize("path", ROUTES)
async def test_every_vendor_route_answers_bad_requests_in_json(client: Client, path: str) -> None:
    await expect_error(await client.get(path), 405, "method_not_allowed")
    await expect_error(await client.put(path, data=b"{}"), 405, "method_not_allowed")
    response = await client.post(path, data=b"x", headers={"Content-Type": "application/xml"})
    await expect_error(response, 415, "unsupported_media_type")
    ctype = "application/x-www-form-urlencoded" if "twilio" in path else "application/json"
    # An unsigned Twilio request is refused before its body is read: a signature reaches the size check.
    signed = {"X-Twilio-Signature": "x"} if "twilio" in path else {}
    response = await client.post(path, data=b"x" * 5000, headers={"Content-Type": ctype, **signed})
    await expect_error(response, 413, "body_too_large")



async def test_deeply_nested_json_is_400_not_a_crash(client: Client) -> None:
    # Within the size limit, but deeper than the JSON parser's recursion limit.
    req = bandwidth_request(*ACME_BW, [])
    response = await client.post(req.path, data=b"[" * 2000 + b"]" * 2000, headers=req.headers)
    payload = await expect_error(response, 400, "malformed_body")
    assert "nested" in payload["error"]["message"]
