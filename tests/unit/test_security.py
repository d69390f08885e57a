"""Security requirements, route by route from the operations registry (a new route without a case here
fails): API keys checked and no company reaching another's data on every API route; every vendor route
refuses unsigned and mis-signed requests; the redirect goes nowhere but a stored URL; /l/ is rate limited
per client; production mode refuses unsafe settings."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr

from config import load_companies
from config.production import DEV_COMPANIES_FILE, check_production, production_problems
from config.settings import ClickHouseSettings, RedisSettings, Settings
from gateway import create_app
from gateway.api import OPERATIONS_KEY, Operation
from gateway.ratelimit import ClientRateLimiter
from smsfold.webhooks import (
    bandwidth_event,
    bandwidth_request,
    telnyx_event,
    telnyx_request,
    twilio_inbound,
    twilio_json,
    twilio_status,
)
from tests.unit.gateway_support import (
    ACME_BW,
    ACME_KEY,
    ACME_NUMBER,
    ACME_SEED,
    GLOBEX_KEY,
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
from tests.unit.test_messages_endpoint import RecordingEvents
from tests.unit.test_profile_api import FakeReads

PHONE = "+12125551234"


def _operations() -> list[Operation]:
    # Building the app does no I/O: it only registers the routes.
    return list(create_app(settings(), companies(), FakePublisher())[OPERATIONS_KEY])


OPERATIONS = _operations()
API_OPS = [op for op in OPERATIONS if op.auth == "api_key"]
VENDOR_OPS = [op for op in OPERATIONS if op.auth in ("twilio", "telnyx", "bandwidth")]


@dataclass(frozen=True)
class Call:
    path: str
    body: Any = None


# One valid call per API route, as acme would make it; company-scoped paths name acme.
API_CALLS: dict[str, Call] = {
    "getCompany": Call("/v1/companies/acme"),
    "createMessage": Call("/v1/messages", {"to": PHONE, "body": "hi", "kind": "flow"}),
    "getConsent": Call(f"/v1/profiles/{PHONE}/consent"),
    "requestConsentChange": Call(f"/v1/profiles/{PHONE}/consent", {"status": "subscribed", "source": "api"}),
    "getTimeline": Call(f"/v1/profiles/{PHONE}/timeline"),
    "getConversation": Call(f"/v1/profiles/{PHONE}/conversation"),
    "recordConversion": Call("/v1/conversions", {"metric": "Placed Order", "value": 10, "currency": "USD",
                                                 "phone": PHONE, "idempotency_key": "o-1"}),
}


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def reads() -> FakeReads:
    reads = FakeReads()
    # acme has data for PHONE; globex has none.
    reads.consents[("acme", PHONE)] = {"status": "subscribed", "source": "api", "method": "api",
                                       "version": 1, "updated_at": 1}
    reads.timelines[("acme", PHONE)] = [{"event_id": "acme-secret"}]
    return reads


@pytest.fixture
async def client(aiohttp_client: MakeClient, events: RecordingEvents, reads: FakeReads) -> Client:
    return await aiohttp_client(create_app(settings(link_rate_per_s=1, link_burst=3), companies(),
                                           FakePublisher(), events=events, profiles=reads))


async def _call(client: Client, op: Operation, headers: dict[str, str]) -> Any:
    call = API_CALLS[op.operation_id]
    return await client.request(op.method, call.path, json=call.body, headers=headers)


def test_every_api_route_has_a_security_case() -> None:
    assert {op.operation_id for op in API_OPS} == set(API_CALLS)


@pytest.mark.parametrize("op", API_OPS, ids=lambda op: op.operation_id)
async def test_api_route_refuses_missing_and_wrong_keys(client: Client, op: Operation) -> None:
    await expect_error(await _call(client, op, {}), 401, "missing_api_key")
    await expect_error(await _call(client, op, {"Authorization": "Bearer sk_forged"}), 401, "invalid_api_key")
    await expect_error(await _call(client, op, {"X-Api-Key": ACME_KEY[:-1]}), 401, "invalid_api_key")
    # The right key gets through (so the refusals above are about the key, not the call).
    assert (await _call(client, op, {"Authorization": f"Bearer {ACME_KEY}"})).status < 300


@pytest.mark.parametrize("op", API_OPS, ids=lambda op: op.operation_id)
async def test_api_route_never_reaches_another_companys_data(
    client: Client, op: Operation, events: RecordingEvents, reads: FakeReads
) -> None:
    response = await _call(client, op, {"X-Api-Key": GLOBEX_KEY})
    if "{company_id}" in op.path:
        await expect_error(response, 403, "forbidden", field="company_id")
        return
    # No path names a company: what globex's key touches is globex's, whatever the path or body says.
    assert response.status < 300, await response.text()
    assert "acme" not in await response.text()
    touched = [e.company_id for e in events.published] + [asked[1] for asked in reads.asked]
    assert touched and set(touched) == {"globex"}
    assert all(e.profile_key.startswith("globex:") for e in events.published)


def _vendor_requests(path: str) -> tuple[Any, Any]:
    """(a correctly signed request, the same request signed by someone else) for a vendor route."""
    if path.startswith("/webhooks/twilio"):
        if path.endswith("status"):
            good = twilio_status(PUBLIC_BASE, TWILIO_TOKEN, sender=ACME_NUMBER, to=SENDER, status="delivered",
                                 account_sid="AC" + "a" * 32, message_sid="SM" + "1" * 32)
            forged = twilio_status(PUBLIC_BASE, "stolen", sender=ACME_NUMBER, to=SENDER, status="delivered",
                                   account_sid="AC" + "a" * 32, message_sid="SM" + "1" * 32)
        else:
            good = twilio_inbound(PUBLIC_BASE, TWILIO_TOKEN, sender=SENDER, to=ACME_NUMBER, body="hi",
                                  account_sid="AC" + "a" * 32, message_sid="SM" + "1" * 32)
            forged = twilio_inbound(PUBLIC_BASE, "stolen", sender=SENDER, to=ACME_NUMBER, body="hi",
                                    account_sid="AC" + "a" * 32, message_sid="SM" + "1" * 32)
        return good, forged
    if path.startswith("/webhooks/telnyx"):
        event = telnyx_event("message.received", sender=SENDER, to=ACME_NUMBER, text="hi")
        concrete = path.replace("{endpoint}", "inbound")
        return (telnyx_request(ACME_SEED, event, path=concrete),
                telnyx_request(STRANGER_SEED, event, path=concrete))
    event = bandwidth_event("message-received", sender=SENDER, to=ACME_NUMBER, application_id="app-acme")
    concrete = path.replace("{endpoint}", "inbound")
    good = bandwidth_request(*ACME_BW, [event])
    forged = bandwidth_request(ACME_BW[0], "guessed", [event])
    return replace(good, path=concrete), replace(forged, path=concrete)


def _openapi_path(op: Operation) -> str:
    return op.path.replace("{endpoint:inbound|status}", "{endpoint}")


SIGNATURE_HEADERS = ("X-Twilio-Signature", "telnyx-signature-ed25519", "telnyx-timestamp", "Authorization")


@pytest.mark.parametrize("op", VENDOR_OPS, ids=lambda op: op.operation_id)
async def test_vendor_route_refuses_unsigned_and_mis_signed(client: Client, op: Operation) -> None:
    good, forged = _vendor_requests(_openapi_path(op))
    unsigned = {k: v for k, v in good.headers.items() if k not in SIGNATURE_HEADERS}
    await expect_error(await client.post(good.path, data=good.body, headers=unsigned), 401,
                       "missing_credentials" if op.auth == "bandwidth" else "missing_signature")
    response = await client.post(forged.path, data=forged.body, headers=forged.headers)
    await expect_error(response, 403, "bad_credentials" if op.auth == "bandwidth" else "bad_signature")
    if op.auth != "bandwidth":  # Bandwidth's Basic credentials do not cover the body, by its design
        # A valid signature over other bytes is no signature for these.
        tampered = good.body + (b"&Extra=1" if op.auth == "twilio" else b" ")
        response = await client.post(good.path, data=tampered, headers=good.headers)
        await expect_error(response, 403, "bad_signature")
    assert (await client.post(good.path, data=good.body, headers=good.headers)).status == 200


async def test_twilio_json_bodies_must_match_their_hash(client: Client) -> None:
    good = twilio_json(PUBLIC_BASE, TWILIO_TOKEN, "/webhooks/twilio/inbound",
                       {"To": ACME_NUMBER, "From": SENDER, "MessageSid": "SM" + "3" * 32, "Body": "hi"})
    response = await client.post(good.path, data=good.body.replace(b"hi", b"ho"), headers=good.headers)
    await expect_error(response, 403, "bad_signature")


class StoredLinks:
    """A link store holding a few links, one of them with an unsafe URL that slipped into storage."""

    def __init__(self) -> None:
        self.links = {"abcd1234": "https://shop.example/p/1?x=1", "evil0001": "javascript:alert(1)"}

    async def get(self, code: str, now_ms: int | None = None) -> Any:
        url = self.links.get(code)
        return None if url is None else _Link(url)

    def emit_nowait(self, event: object) -> None:
        return None


@dataclass(frozen=True)
class _Link:
    url: str
    company_id: str = "acme"
    profile_key: str = f"acme:{PHONE}"
    message_id: str = "m-1"


@pytest.fixture
async def link_client(aiohttp_client: MakeClient) -> Client:
    links = StoredLinks()
    app = create_app(settings(link_rate_per_s=1000, link_burst=1000), companies(), FakePublisher(),
                     links=links, clicks=links)
    return await aiohttp_client(app)


_PATH_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.one_of(st.sampled_from(["abcd1234", "evil0001", "abcd1234/", "abcd1234%2F..", "ABCD1234"]),
                        _PATH_TEXT),
       query=_PATH_TEXT, host=st.sampled_from(["evil.example", "shop.example", "localhost"]))
async def test_the_redirect_goes_only_to_a_stored_safe_url(
    link_client: Client, suffix: str, query: str, host: str
) -> None:
    from urllib.parse import quote

    path = "/l/" + quote(suffix, safe="/%") + ("?" + quote(query, safe="=&") if query else "")
    response = await link_client.get(path, allow_redirects=False,
                                     headers={"Host": host, "X-Forwarded-Host": "evil.example",
                                              "Referer": "https://evil.example/"})
    if response.status == 302:
        assert response.headers["Location"] == "https://shop.example/p/1?x=1"
    else:
        assert 400 <= response.status < 500
        assert response.content_type == "application/json"
        assert "Location" not in response.headers


async def test_links_are_rate_limited_per_client(client: Client) -> None:
    statuses = [(await client.get("/l/abcd1234", allow_redirects=False)).status for _ in range(4)]
    assert statuses[:3] == [404, 404, 404]
    limited = await client.get("/l/abcd1234", allow_redirects=False)
    payload = await expect_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1 and "too many" in payload["error"]["message"]


def test_each_client_has_its_own_bucket_and_the_table_is_bounded() -> None:
    now = [0.0]
    limiter = ClientRateLimiter(rate=2, burst=2, max_clients=3, clock=lambda: now[0])
    assert [limiter.retry_after("a") for _ in range(3)] == [0, 0, 0.5]
    assert limiter.retry_after("b") == 0  # another client is unaffected
    now[0] += 0.5
    assert limiter.retry_after("a") == 0  # refilled at the rate
    for client_id in ("c", "d", "e"):
        limiter.retry_after(client_id)
    assert len(limiter._buckets) == 3


def _production(**changes: Any) -> Settings:
    base: dict[str, Any] = {
        "env": "production",
        "clickhouse": ClickHouseSettings(password=SecretStr("ch-secret")),
        "redis": RedisSettings(url="redis://:r-secret@redis:6379/0"),
        "companies_file": Path("/etc/smsfold/companies.toml"),
    }
    return Settings(**{**base, **changes})


def test_production_mode_accepts_real_secrets() -> None:
    assert production_problems(_production(), companies()) == []
    # Development mode refuses nothing.
    assert production_problems(Settings(), load_companies(DEV_COMPANIES_FILE)) == []


@pytest.mark.parametrize(
    ("changes", "directory", "named"),
    [
        ({"clickhouse": ClickHouseSettings()}, None, "ClickHouse password is empty"),
        ({"redis": RedisSettings(url="redis://redis:6379/0")}, None, "Redis URL has no password"),
        ({"companies_file": DEV_COMPANIES_FILE}, None, "repository's development file"),
        ({}, "dev", "development secret"),
    ],
)
def test_production_mode_refuses_unsafe_settings_naming_the_problem(
    changes: dict[str, Any], directory: str | None, named: str
) -> None:
    directory_ = load_companies(DEV_COMPANIES_FILE) if directory else companies()
    with pytest.raises(Exception, match=named) as raised:
        check_production(_production(**changes), directory_)
    assert "\n" not in str(raised.value) and str(raised.value).startswith("refusing to start in production")

