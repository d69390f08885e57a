"""The JSON API base and the operations endpoints: API keys and company isolation, the error format,
request ids, the OpenAPI document, /readyz, /metrics and masked structured logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from config import load_companies
from config.companies import CompanyDirectory
from gateway import create_app
from gateway.api import api_key_index, hash_api_key
from gateway.keys import EVENTS_KEY
from gateway.logs import JsonFormatter
from gateway.masking import redact_phones
from smsfold.webhooks import telnyx_event, telnyx_request
from tests.unit.gateway_support import (
    ACME_KEY,
    ACME_NUMBER,
    ACME_SEED,
    GLOBEX_KEY,
    SENDER,
    Client,
    FakePublisher,
    MakeClient,
    companies,
    expect_error,
    settings,
)

PROJECT = Path(__file__).resolve().parents[2]


class Probe:
    def __init__(self, up: bool) -> None:
        self.up = up

    async def reachable(self) -> bool:
        return self.up


@pytest.fixture
async def client(aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(create_app(settings(), companies(), FakePublisher(), probe=Probe(True)))


async def test_api_key_reads_its_own_company(client: Client) -> None:
    for headers in ({"Authorization": f"Bearer {ACME_KEY}"}, {"X-Api-Key": ACME_KEY}):
        response = await client.get("/v1/companies/acme", headers=headers)
        assert response.status == 200
        assert (await response.json())["id"] == "acme"


async def test_api_key_never_reaches_another_company(client: Client) -> None:
    response = await client.get("/v1/companies/globex", headers={"Authorization": f"Bearer {ACME_KEY}"})
    await expect_error(response, 403, "forbidden", field="company_id")
    response = await client.get("/v1/companies/acme", headers={"X-Api-Key": GLOBEX_KEY})
    await expect_error(response, 403, "forbidden")


async def test_missing_or_wrong_api_key_is_401(client: Client) -> None:
    response = await client.get("/v1/companies/acme")
    await expect_error(response, 401, "missing_api_key")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    response = await client.get("/v1/companies/acme", headers={"Authorization": "Bearer sk_wrong"})
    await expect_error(response, 401, "invalid_api_key")


def test_dev_api_keys_in_the_readme_match_the_hashes_in_config() -> None:
    # The README documents the dev keys in clear; the config holds only their hashes.
    readme = (PROJECT / "README.md").read_text()
    index = api_key_index(load_companies(PROJECT / "config" / "companies.toml"))
    for company_id in ("acme", "globex", "loadtest"):
        key = next(
            word.strip("`|")
            for word in readme.split()
            if word.strip("`|").startswith(f"sk_dev_{company_id}_")
        )
        assert index[hash_api_key(key)].id == company_id


def test_a_hash_shared_by_two_companies_is_refused() -> None:
    directory = companies()
    acme, globex = directory.get("acme"), directory.get("globex")
    assert acme is not None and globex is not None
    shared = globex.model_copy(update={"api_key_hashes": acme.api_key_hashes})
    with pytest.raises(ValueError, match="both"):
        api_key_index(CompanyDirectory([acme, shared]))


async def test_request_id_is_echoed_when_sane_and_minted_otherwise(client: Client) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": "lb-1234567890"})
    assert response.headers["X-Request-Id"] == "lb-1234567890"
    response = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert response.headers["X-Request-Id"] != "bad id\twith spaces"
    assert len(response.headers["X-Request-Id"]) == 32


async def test_openapi_describes_every_route(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"].startswith("3.")
    # aiohttp's add_get adds an undocumented HEAD to every GET; the one HEAD with a meaning of its own
    # (a link probe, recorded as a bot click) is documented and checked below.
    routes = {(method.upper(), path) for path, item in doc["paths"].items() for method in item
              if method != "head"}
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    # Every served route is documented (path patterns like {endpoint:inbound|status} become {endpoint}).
    assert {(m, p.replace(":inbound|status", "")) for m, p in served} == routes
    twilio = doc["paths"]["/webhooks/twilio/inbound"]["post"]
    assert twilio["security"] == [{"twilio": []}]
    assert {"400", "401", "403", "413", "415", "503"} <= set(twilio["responses"])
    assert doc["paths"]["/v1/companies/{company_id}"]["get"]["security"] == [{"api_key": []}]
    assert "Error" in doc["components"]["schemas"]
    assert set(doc["paths"]["/l/{code}"]) == {"get", "head"}
    assert doc["paths"]["/v1/messages"]["post"]["security"] == [{"api_key": []}]
    assert "/join/{company}/{keyword}" in doc["paths"]


async def test_readyz_reports_an_unreachable_broker(aiohttp_client: MakeClient) -> None:
    probe = Probe(False)
    client = await aiohttp_client(create_app(settings(), companies(), FakePublisher(), probe=probe))
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["checks"] == {"broker": "unreachable"}
    probe.up = True
    assert (await client.get("/readyz")).status == 200


async def test_metrics_count_requests_by_vendor_endpoint_and_status(client: Client) -> None:
    event = telnyx_event("message.received", sender=SENDER, to=ACME_NUMBER)
    req = telnyx_request(ACME_SEED, event)
    assert (await client.post(req.path, data=req.body, headers=req.headers)).status == 200
    await client.post(req.path, data=b"{}", headers={"Content-Type": "application/json"})
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    assert 'smsfold_gateway_requests_total{endpoint="inbound",status="200",vendor="telnyx"} 1.0' in text
    assert 'smsfold_gateway_requests_total{endpoint="any",status="401",vendor="telnyx"} 1.0' in text
    assert "smsfold_gateway_kafka_ack_seconds_count 1.0" in text


def test_json_logs_mask_every_phone_number() -> None:
    record = logging.LogRecord(
        "gateway", logging.INFO, __file__, 1, "from %s to %s", (SENDER, ACME_NUMBER), None
    )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert SENDER not in line and ACME_NUMBER not in line
    assert entry["msg"] == "from +1415***1234 to +1415***0100"
    assert entry["level"] == "info"


def test_log_masking_leaves_ids_alone_but_catches_encoded_numbers() -> None:
    # Hex request ids and SIDs with long digit runs stay searchable in the logs.
    assert redact_phones("request 1234567abcdef SM1111111111") == "request 1234567abcdef SM1111111111"
    # A number in a form body, with its + percent-encoded, is still masked.
    assert "14155550100" not in redact_phones("From=%2B14155550100&To=%2b14155550101")


def test_later_routes_find_the_event_publisher_in_the_app() -> None:
    class Events:
        async def publish_event(self, event: object) -> None:
            return None

    events = Events()
    app = create_app(settings(), companies(), FakePublisher(), events=events)  # type: ignore[arg-type]
    assert app[EVENTS_KEY] is events
