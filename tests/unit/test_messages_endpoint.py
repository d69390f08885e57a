"""POST /v1/messages: a send request → SendRequested published (acknowledged before the 202), the company
from the API key, idempotent on the client's message id, and a 400 naming the field for bad input."""

from __future__ import annotations

from typing import Any

import pytest

from config.companies import CompanyDirectory
from gateway import create_app
from gateway.errors import PublishError
from streams.events import Event, SendRequested
from tests.unit.gateway_support import (
    ACME_KEY,
    ACME_NUMBER,
    GLOBEX_KEY,
    Client,
    FakePublisher,
    MakeClient,
    companies,
    expect_error,
    settings,
)

TO = "+12125551234"


class RecordingEvents:
    """An EventPublisher that records what Kafka acknowledged, or refuses like a broker that is down."""

    def __init__(self) -> None:
        self.published: list[Event] = []
        self.down = False

    async def publish_event(self, event: Event) -> None:
        if self.down:
            raise PublishError("no ack")
        self.published.append(event)


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
async def client(aiohttp_client: MakeClient, events: RecordingEvents) -> Client:
    return await aiohttp_client(create_app(settings(), companies(), FakePublisher(), events=events))


async def _post(client: Client, body: Any, key: str = ACME_KEY) -> Any:
    return await client.post("/v1/messages", json=body, headers={"Authorization": f"Bearer {key}"})


async def test_a_send_request_is_published_then_answered_202(client: Client, events: RecordingEvents) -> None:
    response = await _post(client, {"to": TO, "body": "Hi", "kind": "flow", "flow_id": "welcome-1"})
    assert response.status == 202
    answer = await response.json()
    [event] = events.published
    assert isinstance(event, SendRequested)
    assert answer == {"message_id": event.message_id, "event_id": event.event_id, "status": "requested"}
    assert (event.company_id, event.profile_key, event.kind, event.flow_id) == (
        "acme", f"acme:{TO}", "flow", "welcome-1")
    # Composition happens at decision time: the request records the body as asked.
    assert event.body == "Hi" and event.from_number is None and not event.suppressed


async def test_a_client_message_id_makes_the_request_idempotent(
    client: Client, events: RecordingEvents
) -> None:
    body = {"to": TO, "body": "Your order shipped", "kind": "transactional", "message_id": "order-42:ship"}
    first = await (await _post(client, body)).json()
    again = await (await _post(client, body)).json()
    assert first == again and first["message_id"] == "order-42:ship"
    assert events.published[0].event_id == events.published[1].event_id
    # Another company's same message id is another message.
    other = await (await _post(client, body, key=GLOBEX_KEY)).json()
    assert other["event_id"] != first["event_id"]
    assert events.published[2].profile_key == f"globex:{TO}"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"body": "x", "kind": "flow"}, "missing_field", "to"),
        ({"to": "2125551234", "body": "x", "kind": "flow"}, "invalid_field", "to"),
        ({"to": TO, "kind": "flow"}, "missing_field", "body"),
        ({"to": TO, "body": "   ", "kind": "flow"}, "invalid_field", "body"),
        ({"to": TO, "body": "x" * 1601, "kind": "flow"}, "invalid_field", "body"),
        ({"to": TO, "body": "x", "kind": "newsletter"}, "invalid_field", "kind"),
        ({"to": TO, "body": 7, "kind": "flow"}, "invalid_field", "body"),
        ({"to": TO, "body": "x", "kind": "flow", "message_id": "has spaces"}, "invalid_field", "message_id"),
        ({"to": TO, "body": "x", "kind": "flow", "from": "+13125550199"}, "invalid_field", "from"),
        ({"to": TO, "body": "x", "kind": "flow", "company_id": "globex"}, "unknown_field", "company_id"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    client: Client, events: RecordingEvents, body: dict[str, Any], code: str, field: str
) -> None:
    await expect_error(await _post(client, body), 400, code, field=field)
    assert events.published == []


async def test_not_json_no_key_and_no_ack(client: Client, events: RecordingEvents) -> None:
    response = await client.post("/v1/messages", data=b"[1,", headers={
        "Authorization": f"Bearer {ACME_KEY}", "Content-Type": "application/json"})
    await expect_error(response, 400, "malformed_body")
    await expect_error(await _post(client, ["to"]), 400, "malformed_body")
    response = await client.post("/v1/messages", json={"to": TO, "body": "x", "kind": "flow"})
    await expect_error(response, 401, "missing_api_key")
    events.down = True
    response = await _post(client, {"to": TO, "body": "x", "kind": "flow", "from": ACME_NUMBER})
    await expect_error(response, 503, "not_durable")
    assert response.headers["Retry-After"] == "5"


async def test_a_load_test_company_request_is_marked_suppressed(aiohttp_client: MakeClient) -> None:
    directory = companies()
    acme = directory.get("acme")
    assert acme is not None
    events = RecordingEvents()
    loadtest = CompanyDirectory([acme.model_copy(update={"load_test": True})])
    client = await aiohttp_client(create_app(settings(), loadtest, FakePublisher(), events=events))
    assert (await _post(client, {"to": TO, "body": "x", "kind": "auto_reply"})).status == 202
    assert events.published[0].model_dump()["suppressed"] is True
