"""The gateway app with an in-memory publisher: Twilio inbound webhooks, errors as JSON, request ids."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from config.companies import Company, CompanyDirectory, TwilioAccount
from config.settings import GatewaySettings, Settings
from gateway import KafkaEventPublisher, KafkaRawPublisher, PublishError, create_app
from gateway.masking import mask_phone, redact_phones
from gateway.publisher import AckCallback
from gateway.signatures import twilio_signature
from streams.codec import AvroCodec
from streams.events import InboundReceived, RawWebhook
from tests.unit.gateway_support import decode_raw

PUBLIC_BASE = "https://sms.example.com"
PATH = "/webhooks/twilio/inbound"
TOKEN = "acme-token"
NEXT_TOKEN = "acme-token-next"
ACME_NUMBER = "+14155550100"
SENDER = "+14155551234"
MAX_BODY = 4096

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


class FakePublisher:
    """In-memory RawPublisher: records what was published, or fails like an unavailable broker."""

    def __init__(self) -> None:
        self.published: list[tuple[RawWebhook, str]] = []
        self.fail = False

    def start_raw(self, value: bytes, key: str, on_ack: AckCallback) -> None:
        if self.fail:
            on_ack(PublishError("broker unavailable"))
        else:
            self.published.append((decode_raw(value), key))
            on_ack(None)


class ExplodingPublisher:
    def start_raw(self, value: bytes, key: str, on_ack: AckCallback) -> None:
        raise RuntimeError(f"boom for {key}")


def _companies() -> CompanyDirectory:
    return CompanyDirectory(
        [
            Company(
                id="acme",
                name="Acme",
                program_name="Acme SMS",
                numbers=(ACME_NUMBER,),
                twilio=TwilioAccount(
                    account_sid="AC" + "a" * 32, auth_tokens=(SecretStr(TOKEN), SecretStr(NEXT_TOKEN))
                ),
            ),
            Company(id="nokeys", name="No Keys", program_name="NK", numbers=("+13125550199",)),
        ]
    )


def _settings() -> Settings:
    return Settings(gateway=GatewaySettings(public_base_url=PUBLIC_BASE, max_body_bytes=MAX_BODY))


def _inbound_fields(**overrides: str | None) -> dict[str, str]:
    fields: dict[str, str | None] = {
        "MessageSid": "SM" + "1" * 32,
        "SmsSid": "SM" + "1" * 32,
        "AccountSid": "AC" + "a" * 32,
        "From": SENDER,
        "To": ACME_NUMBER,
        "Body": "STOP",
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    fields.update(overrides)
    return {name: value for name, value in fields.items() if value is not None}


def _signed_headers(fields: dict[str, str], token: str = TOKEN, path: str = PATH) -> dict[str, str]:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(token, PUBLIC_BASE + path, fields),
        "User-Agent": "TwilioProxy/1.1",
    }


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
async def client(aiohttp_client: MakeClient, publisher: FakePublisher) -> Client:
    return await aiohttp_client(create_app(_settings(), _companies(), publisher))


async def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status
    assert response.content_type == "application/json"
    payload: dict[str, Any] = await response.json()
    assert payload["error"]["code"] == code
    assert payload["request_id"] == response.headers["X-Request-Id"]
    assert "Traceback" not in payload["error"]["message"]
    return payload


async def test_valid_signed_webhook_is_published_then_answered(
    client: Client, publisher: FakePublisher
) -> None:
    fields = _inbound_fields()
    headers = {**_signed_headers(fields), "I-Twilio-Idempotency-Token": "idem-1", "X-Other": "dropped"}
    body = urlencode(fields)
    before = time.time_ns() // 1_000_000

    response = await client.post(PATH, data=body, headers=headers)

    # Answered with empty TwiML.
    assert response.status == 200
    assert response.content_type == "text/xml"
    assert await response.text() == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    # Exactly one record, keyed by the sender, holding the request as received.
    assert len(publisher.published) == 1
    record, key = publisher.published[0]
    assert key == SENDER
    assert record.vendor == "twilio"
    assert record.endpoint == "inbound"
    assert record.url == PUBLIC_BASE + PATH
    assert record.method == "POST"
    assert record.content_type == "application/x-www-form-urlencoded"
    assert record.body == body.encode()
    assert record.headers == {
        "X-Twilio-Signature": headers["X-Twilio-Signature"],
        "I-Twilio-Idempotency-Token": "idem-1",
        "User-Agent": "TwilioProxy/1.1",
    }
    assert record.dedupe_key == "idem-1"
    assert record.request_id == response.headers["X-Request-Id"]
    assert len(record.request_id) == 32
    assert before <= record.received_at <= time.time_ns() // 1_000_000


async def test_dedupe_key_falls_back_to_message_sid(client: Client, publisher: FakePublisher) -> None:
    fields = _inbound_fields()
    response = await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields))
    assert response.status == 200
    assert publisher.published[0][0].dedupe_key == f"twilio:{fields['MessageSid']}:received"


async def test_rotated_token_and_query_string_are_signed(client: Client, publisher: FakePublisher) -> None:
    # The query string is part of the signed URL; the next token of a rotation is accepted.
    fields = _inbound_fields()
    path = PATH + "?source=primary&n=%2B1%20x"
    headers = _signed_headers(fields, token=NEXT_TOKEN, path=path)
    response = await client.post(path, data=urlencode(fields), headers=headers)
    assert response.status == 200
    assert publisher.published[0][0].url == PUBLIC_BASE + path


async def test_unknown_extra_fields_accepted(client: Client, publisher: FakePublisher) -> None:
    fields = _inbound_fields(SomethingTwilioAddedLater="yes", MediaUrl0="", OptOutType="STOP")
    response = await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields))
    assert response.status == 200
    assert len(publisher.published) == 1


async def test_bad_signature_is_403_and_nothing_published(client: Client, publisher: FakePublisher) -> None:
    fields = _inbound_fields()
    headers = _signed_headers(fields)
    tampered = {**fields, "Body": "START"}
    response = await client.post(PATH, data=urlencode(tampered), headers=headers)
    await _error(response, 403, "bad_signature")
    # Signed with a token that is not the company's.
    response = await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields, token="x"))
    await _error(response, 403, "bad_signature")
    assert publisher.published == []


async def test_missing_signature_is_401(client: Client, publisher: FakePublisher) -> None:
    fields = _inbound_fields()
    headers = _signed_headers(fields)
    del headers["X-Twilio-Signature"]
    response = await client.post(PATH, data=urlencode(fields), headers=headers)
    await _error(response, 401, "missing_signature")
    assert publisher.published == []


async def test_number_without_twilio_account_is_403(client: Client, publisher: FakePublisher) -> None:
    fields = _inbound_fields(To="+13125550199")
    response = await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields))
    await _error(response, 403, "vendor_not_configured")
    assert publisher.published == []


async def test_wrong_content_type_is_415(client: Client, publisher: FakePublisher) -> None:
    fields = _inbound_fields()
    headers = {**_signed_headers(fields), "Content-Type": "text/plain"}
    response = await client.post(PATH, data=b"To=x", headers=headers)
    payload = await _error(response, 415, "unsupported_media_type")
    assert "application/x-www-form-urlencoded" in payload["error"]["message"]
    assert publisher.published == []


async def test_body_too_large_is_413(client: Client, publisher: FakePublisher) -> None:
    fields = _inbound_fields(Body="x" * MAX_BODY)
    response = await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields))
    await _error(response, 413, "body_too_large")
    assert publisher.published == []


async def test_chunked_body_too_large_is_413(client: Client, publisher: FakePublisher) -> None:
    # No Content-Length: the limit is enforced while reading.
    fields = _inbound_fields(Body="x" * MAX_BODY)

    async def chunks() -> Any:
        data = urlencode(fields).encode()
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    response = await client.post(PATH, data=chunks(), headers=_signed_headers(fields))
    await _error(response, 413, "body_too_large")
    assert publisher.published == []


async def test_get_on_the_route_is_405_json(client: Client) -> None:
    response = await client.get(PATH)
    await _error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


async def test_unknown_route_is_404_json(client: Client) -> None:
    response = await client.get("/nope")
    await _error(response, 404, "not_found")


@pytest.mark.parametrize("missing", ["From", "To", "MessageSid"])
async def test_missing_required_field_is_400_naming_it(
    client: Client, publisher: FakePublisher, missing: str
) -> None:
    fields = _inbound_fields(**{missing: None})
    response = await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields))
    payload = await _error(response, 400, "missing_field")
    assert missing in payload["error"]["message"]
    assert publisher.published == []


async def test_repeated_required_field_is_400(client: Client) -> None:
    fields = _inbound_fields()
    body = urlencode(fields) + "&" + urlencode({"To": "+14155550101"})
    response = await client.post(PATH, data=body, headers=_signed_headers(fields))
    payload = await _error(response, 400, "duplicate_field")
    assert "To" in payload["error"]["message"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"To=%2B1&broken&From=x", "broken"), (b"To=%ff%fe", "UTF-8"), (b"\xff=1", "UTF-8")],
)
async def test_malformed_body_is_400(client: Client, body: bytes, problem: str) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"}
    response = await client.post(PATH, data=body, headers=headers)
    payload = await _error(response, 400, "malformed_body")
    assert problem in payload["error"]["message"]


async def test_unknown_to_number_is_404_masked(client: Client, publisher: FakePublisher) -> None:
    fields = _inbound_fields(To="+19995550123")
    response = await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields))
    payload = await _error(response, 404, "unknown_number")
    assert "+19995550123" not in payload["error"]["message"]
    assert "+1999***0123" in payload["error"]["message"]
    assert publisher.published == []


async def test_publish_error_is_503_with_retry_after(client: Client, publisher: FakePublisher) -> None:
    publisher.fail = True
    fields = _inbound_fields()
    response = await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields))
    await _error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) > 0


async def test_unexpected_error_is_500_json_without_traceback_or_number(
    aiohttp_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await aiohttp_client(create_app(_settings(), _companies(), ExplodingPublisher()))
    fields = _inbound_fields()
    response = await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields))
    payload = await _error(response, 500, "internal_error")
    assert "boom" not in payload["error"]["message"]
    # Logged with its traceback, the number masked.
    assert "RuntimeError" in caplog.text
    assert SENDER not in caplog.text
    assert mask_phone(SENDER) in caplog.text


async def test_logs_never_hold_a_full_number(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    for to in (ACME_NUMBER, "+19995550123"):
        fields = _inbound_fields(To=to)
        await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields))
    assert caplog.records
    assert SENDER not in caplog.text
    assert ACME_NUMBER not in caplog.text
    assert "+19995550123" not in caplog.text


async def test_healthz(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    assert response.headers["X-Request-Id"]


async def test_every_response_has_a_distinct_request_id(client: Client) -> None:
    fields = _inbound_fields()
    responses = [
        await client.get("/healthz"),
        await client.get(PATH),
        await client.post(PATH, data=urlencode(fields), headers=_signed_headers(fields)),
        await client.post(PATH, data=b"", headers={"Content-Type": "text/plain"}),
    ]
    ids = [response.headers["X-Request-Id"] for response in responses]
    assert all(ids)
    assert len(set(ids)) == len(ids)


def test_mask_phone() -> None:
    assert mask_phone("+14155550100") == "+1415***0100"
    assert mask_phone("12345") == "***45"
    assert mask_phone("") == "***"
    assert redact_phones("to +14155550100 and 4155550100.") == "to +1415***0100 and 41555***0100."


class FakeProducer:
    """Duck-typed stand-in for streams.producer.EventLogProducer."""

    def __init__(self, error: Exception | None = None, delay_s: float = 0.0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.error = error
        self.delay_s = delay_s

    def send_nowait(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def settle(error: Exception | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(None)

        self.produce(topic, key, value, settle)
        return future

    def produce(self, topic: str, key: bytes | None, value: bytes, on_delivery: AckCallback) -> None:
        def deliver() -> None:
            if self.error is None:
                self.sent.append((topic, key, value))
            on_delivery(self.error)

        asyncio.get_running_loop().call_later(self.delay_s, deliver)


class FakeCodec:
    def encode(self, model: RawWebhook) -> bytes:
        return model.model_dump_json().encode()


def _record() -> RawWebhook:
    return RawWebhook(
        request_id="r1",
        vendor="twilio",
        endpoint="inbound",
        url=PUBLIC_BASE + PATH,
        method="POST",
        content_type="application/x-www-form-urlencoded",
        headers={},
        body=b"To=x",
        received_at=1,
        dedupe_key="twilio:SM1:received",
    )


async def test_kafka_raw_publisher_sends_encoded_record_keyed_by_sender() -> None:
    producer = FakeProducer()
    await KafkaRawPublisher(producer, FakeCodec(), "sms.webhooks.raw", 1.0).publish_raw(_record(), SENDER)
    assert producer.sent == [("sms.webhooks.raw", SENDER.encode(), FakeCodec().encode(_record()))]


async def test_kafka_raw_publisher_turns_produce_failure_into_publish_error() -> None:
    producer = FakeProducer(error=RuntimeError("broker down"))
    publisher = KafkaRawPublisher(producer, FakeCodec(), "sms.webhooks.raw", 1.0)
    with pytest.raises(PublishError, match="sms.webhooks.raw"):
        await publisher.publish_raw(_record(), SENDER)


async def test_kafka_raw_publisher_times_out_into_publish_error() -> None:
    producer = FakeProducer(delay_s=10.0)
    publisher = KafkaRawPublisher(producer, FakeCodec(), "sms.webhooks.raw", 0.01)
    with pytest.raises(PublishError, match="did not acknowledge"):
        await publisher.publish_raw(_record(), SENDER)
    assert producer.sent == []


def _event() -> InboundReceived:
    return InboundReceived(
        event_id="e1", company_id="acme", profile_key=f"acme:{SENDER}", occurred_at=1, received_at=1,
        vendor="twilio", vendor_message_id="SM1", to_number=ACME_NUMBER, body="hi",
        message_type="unrecognized",
    )


async def test_kafka_event_publisher_keys_domain_events_by_profile() -> None:
    producer = FakeProducer()
    publisher = KafkaEventPublisher(producer, AvroCodec(), "sms.events", 1.0)
    await publisher.publish_event(_event())
    [(topic, key, value)] = producer.sent
    assert (topic, key) == ("sms.events", f"acme:{SENDER}".encode())
    assert AvroCodec().decode(value) == _event()


async def test_kafka_event_publisher_without_ack_raises_publish_error() -> None:
    publisher = KafkaEventPublisher(FakeProducer(delay_s=10.0), AvroCodec(), "sms.events", 0.01)
    with pytest.raises(PublishError, match="InboundReceived"):
        await publisher.publish_event(_event())
