"""The profile API and conversions: the company always from the API key, consent change requests and
conversions published before the 202, reads passed to the read models, and a 400 naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from gateway import create_app
from gateway.errors import ApiError
from streams.events import ConsentChangeRequested, ConversionRecorded, event_id_for
from tests.unit.gateway_support import (
    ACME_KEY,
    GLOBEX_KEY,
    Client,
    FakePublisher,
    MakeClient,
    companies,
    expect_error,
    settings,
)
from tests.unit.test_messages_endpoint import RecordingEvents

PHONE = "+12125551234"
ACME = {"Authorization": f"Bearer {ACME_KEY}"}


class FakeReads:
    """In-memory read models, keyed by (company, phone), recording what was asked."""

    def __init__(self) -> None:
        self.consents: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.timelines: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.asked: list[tuple[Any, ...]] = []

    async def consent(self, company_id: str, phone: str) -> Mapping[str, Any] | None:
        self.asked.append(("consent", company_id, phone))
        return self.consents.get((company_id, phone))

    async def timeline(
        self, company_id: str, phone: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        self.asked.append(("timeline", company_id, phone, limit, cursor))
        if cursor not in (None, "page2"):
            raise ApiError(400, "invalid_field", "cursor: not a cursor this API issued", field="cursor")
        items = self.timelines.get((company_id, phone), [])
        start = limit if cursor else 0
        page = items[start:start + limit]
        return page, "page2" if cursor is None and len(items) > limit else None

    async def conversation(self, company_id: str, phone: str, limit: int) -> list[dict[str, Any]]:
        self.asked.append(("conversation", company_id, phone, limit))
        return [{"body": "hello?", "company": company_id}] if (company_id, phone) in self.timelines else []


@pytest.fixture
def reads() -> FakeReads:
    return FakeReads()


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
async def client(aiohttp_client: MakeClient, reads: FakeReads, events: RecordingEvents) -> Client:
    return await aiohttp_client(create_app(settings(), companies(), FakePublisher(), events=events,
                                           profiles=reads))


async def test_consent_reads_the_calling_companys_profile(client: Client, reads: FakeReads) -> None:
    reads.consents[("acme", PHONE)] = {"status": "subscribed", "source": "keyword", "method": "START",
                                       "version": 3, "updated_at": 1_700_000_000_000}
    response = await client.get(f"/v1/profiles/{PHONE}/consent", headers=ACME)
    assert response.status == 200
    assert (await response.json())["status"] == "subscribed"
    # The same number under globex's key is globex's profile: it never changed.
    response = await client.get(f"/v1/profiles/%2B{PHONE[1:]}/consent", headers={"X-Api-Key": GLOBEX_KEY})
    assert (await response.json()) == {"phone": PHONE, "status": "never_subscribed", "source": None,
                                       "method": None, "version": 0, "updated_at": None}
    assert reads.asked == [("consent", "acme", PHONE), ("consent", "globex", PHONE)]


@pytest.mark.parametrize("path", ["consent", "timeline", "conversation"])
async def test_a_bad_phone_is_a_400_that_does_not_echo_it(client: Client, path: str) -> None:
    response = await client.get(f"/v1/profiles/12125551234567/{path}", headers=ACME)
    payload = await expect_error(response, 400, "invalid_field", field="phone")
    assert "12125551234567" not in payload["error"]["message"]


async def test_a_consent_change_is_requested_not_written(client: Client, events: RecordingEvents) -> None:
    body = {"status": "subscribed", "source": "form", "method": "footer_form"}
    response = await client.put(f"/v1/profiles/{PHONE}/consent", json=body, headers=ACME)
    assert response.status == 202
    [event] = events.published
    assert isinstance(event, ConsentChangeRequested)
    assert (event.company_id, event.profile_key, event.status, event.source, event.method) == (
        "acme", f"acme:{PHONE}", "subscribed", "form", "footer_form")
    assert (await response.json()) == {"event_id": event.event_id, "status": "requested"}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"source": "api"}, "missing_field", "status"),
        ({"status": "pending", "source": "api"}, "invalid_field", "status"),
        ({"status": "subscribed", "source": "keyword"}, "invalid_field", "source"),
        ({"status": "subscribed", "source": "api", "method": "has spaces"}, "invalid_field", "method"),
        ({"status": "subscribed", "source": "api", "company_id": "globex"}, "unknown_field", "company_id"),
    ],
)
async def test_a_bad_consent_request_names_the_field(
    client: Client, events: RecordingEvents, body: dict[str, Any], code: str, field: str
) -> None:
    response = await client.put(f"/v1/profiles/{PHONE}/consent", json=body, headers=ACME)
    await expect_error(response, 400, code, field=field)
    assert events.published == []


async def test_a_consent_request_kafka_did_not_ack_is_a_503(client: Client, events: RecordingEvents) -> None:
    events.down = True
    response = await client.put(f"/v1/profiles/{PHONE}/consent", json={"status": "unsubscribed",
                                                                       "source": "api"}, headers=ACME)
    await expect_error(response, 503, "not_durable")
    assert response.headers["Retry-After"] == "5"


async def test_timeline_pages_and_limits(client: Client, reads: FakeReads) -> None:
    reads.timelines[("acme", PHONE)] = [{"event_id": str(i)} for i in range(5)]
    first = await (await client.get(f"/v1/profiles/{PHONE}/timeline?limit=3", headers=ACME)).json()
    assert first == {"items": [{"event_id": str(i)} for i in range(3)], "next_cursor": "page2"}
    second = await client.get(f"/v1/profiles/{PHONE}/timeline?limit=3&cursor=page2", headers=ACME)
    assert (await second.json())["next_cursor"] is None
    for bad in ("0", "201", "x", "1e3", "-1"):
        response = await client.get(f"/v1/profiles/{PHONE}/timeline?limit={bad}", headers=ACME)
        await expect_error(response, 400, "invalid_field", field="limit")
    response = await client.get(f"/v1/profiles/{PHONE}/timeline?cursor=forged", headers=ACME)
    await expect_error(response, 400, "invalid_field", field="cursor")
    assert reads.asked[0] == ("timeline", "acme", PHONE, 3, None)


async def test_conversation_is_the_calling_companys(client: Client, reads: FakeReads) -> None:
    reads.timelines[("acme", PHONE)] = []
    response = await client.get(f"/v1/profiles/{PHONE}/conversation?limit=10", headers=ACME)
    assert (await response.json()) == {"messages": [{"body": "hello?", "company": "acme"}]}
    response = await client.get(f"/v1/profiles/{PHONE}/conversation", headers={"X-Api-Key": GLOBEX_KEY})
    assert (await response.json()) == {"messages": []}
    assert reads.asked[-1] == ("conversation", "globex", PHONE, 100)


async def test_reads_without_read_models_are_503(aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(create_app(settings(), companies(), FakePublisher()))
    await expect_error(await client.get(f"/v1/profiles/{PHONE}/consent", headers=ACME), 503, "unavailable")


ORDER = {"metric": "Placed Order", "value": 42.5, "currency": "USD", "phone": PHONE,
         "idempotency_key": "order-1001"}


async def test_a_conversion_is_recorded_once_per_idempotency_key(
    client: Client, events: RecordingEvents
) -> None:
    first = await client.post("/v1/conversions", json=ORDER, headers=ACME)
    again = await client.post("/v1/conversions", json=ORDER, headers=ACME)
    assert first.status == again.status == 202
    assert await first.json() == await again.json()
    one, two = events.published
    assert isinstance(one, ConversionRecorded)
    assert one == two.model_copy(update={"received_at": one.received_at, "occurred_at": one.occurred_at})
    assert one.event_id == event_id_for("ConversionRecorded", "acme", "order-1001")
    assert (one.profile_key, one.metric, one.value_micros, one.currency) == (
        f"acme:{PHONE}", "Placed Order", 42_500_000, "USD")
    # Another company's order with the same key is another conversion.
    other = await client.post("/v1/conversions", json=ORDER, headers={"X-Api-Key": GLOBEX_KEY})
    assert (await other.json())["event_id"] != one.event_id


async def test_a_conversion_time_may_be_iso_or_epoch_ms(client: Client, events: RecordingEvents) -> None:
    for when in ("2024-11-29T12:00:00Z", 1_732_881_600_000):
        body = {**ORDER, "occurred_at": when}
        assert (await client.post("/v1/conversions", json=body, headers=ACME)).status == 202
    assert [e.occurred_at for e in events.published] == [1_732_881_600_000] * 2


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"value": None}, "missing_field", "value"),
        ({"value": True}, "invalid_field", "value"),
        ({"value": -1}, "invalid_field", "value"),
        ({"value": "12"}, "invalid_field", "value"),
        ({"value": 1e13}, "invalid_field", "value"),
        ({"currency": "usd"}, "invalid_field", "currency"),
        ({"phone": "2125551234"}, "invalid_field", "phone"),
        ({"idempotency_key": None}, "missing_field", "idempotency_key"),
        ({"occurred_at": "2024-11-29T12:00:00"}, "invalid_field", "occurred_at"),
        ({"occurred_at": 12}, "invalid_field", "occurred_at"),
        ({"metric": ""}, "invalid_field", "metric"),
    ],
)
async def test_a_bad_conversion_names_the_field(
    client: Client, events: RecordingEvents, change: dict[str, Any], code: str, field: str
) -> None:
    body = {k: v for k, v in {**ORDER, **change}.items() if v is not None}
    await expect_error(await client.post("/v1/conversions", json=body, headers=ACME), 400, code, field=field)
    assert events.published == []


async def test_nan_is_not_an_amount(client: Client) -> None:
    body = (b'{"metric":"Placed Order","value":NaN,"currency":"USD","phone":"+12125551234",'
            b'"idempotency_key":"k"}')
    response = await client.post("/v1/conversions", data=body,
                                 headers={**ACME, "Content-Type": "application/json"})
    await expect_error(response, 400, "invalid_field", field="value")
