"""Shared pieces of the gateway unit tests: in-memory publishers, a company directory with every vendor
configured (keys generated per run), and the error-body check."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from nacl.signing import SigningKey
from pydantic import SecretStr

from config.companies import (
    BandwidthAccount,
    BasicCredential,
    Company,
    CompanyDirectory,
    TelnyxAccount,
    TwilioAccount,
)
from config.settings import GatewaySettings, Settings
from gateway import PublishError
from gateway.api import hash_api_key
from gateway.publisher import AckCallback
from streams.codec import AvroCodec
from streams.events import RawWebhook

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

PUBLIC_BASE = "https://sms.example.com"
ACME_NUMBER = "+14155550100"
GLOBEX_NUMBER = "+13125550199"
SENDER = "+14155551234"
TWILIO_TOKEN = "acme-token"


def _seed() -> str:
    return base64.b64encode(bytes(SigningKey.generate())).decode()


def _public(seed: str) -> str:
    return base64.b64encode(bytes(SigningKey(base64.b64decode(seed)).verify_key)).decode()


ACME_SEED, ACME_NEXT_SEED, GLOBEX_SEED, STRANGER_SEED = _seed(), _seed(), _seed(), _seed()
ACME_KEY, GLOBEX_KEY = "sk_test_acme_0123456789", "sk_test_globex_0123456789"
ACME_BW = ("acme-bw", "acme-pass")
ACME_BW_NEXT = ("acme-bw", "acme-pass-next")
GLOBEX_BW = ("globex-bw", "globex-pass")


def companies() -> CompanyDirectory:
    return CompanyDirectory(
        [
            Company(
                id="acme",
                name="Acme",
                program_name="Acme SMS",
                numbers=(ACME_NUMBER,),
                twilio=TwilioAccount(account_sid="AC" + "a" * 32, auth_tokens=(SecretStr(TWILIO_TOKEN),)),
                telnyx=TelnyxAccount(public_keys=(_public(ACME_SEED), _public(ACME_NEXT_SEED))),
                bandwidth=BandwidthAccount(
                    application_id="app-acme",
                    credentials=tuple(
                        BasicCredential(username=u, password=SecretStr(p)) for u, p in (ACME_BW, ACME_BW_NEXT)
                    ),
                ),
                api_key_hashes=(hash_api_key(ACME_KEY),),
            ),
            Company(
                id="globex",
                name="Globex",
                program_name="Globex SMS",
                numbers=(GLOBEX_NUMBER,),
                telnyx=TelnyxAccount(public_keys=(_public(GLOBEX_SEED),)),
                bandwidth=BandwidthAccount(
                    application_id="app-globex",
                    credentials=(BasicCredential(username=GLOBEX_BW[0], password=SecretStr(GLOBEX_BW[1])),),
                ),
                api_key_hashes=(hash_api_key(GLOBEX_KEY),),
            ),
        ]
    )


def settings(**gateway: Any) -> Settings:
    return Settings(gateway=GatewaySettings(public_base_url=PUBLIC_BASE, **gateway))


class FakePublisher:
    """In-memory RawPublisher: records what was published, fails like an unavailable broker, or hangs
    like a stopped one."""

    def __init__(self) -> None:
        self.published: list[tuple[RawWebhook, str]] = []
        self.fail = False
        self.hang = False

    def start_raw(self, value: bytes, key: str, on_ack: AckCallback) -> None:
        if self.fail:
            on_ack(PublishError("broker unavailable"))
        elif not self.hang:
            self.published.append((decode_raw(value), key))
            on_ack(None)


_CODEC = AvroCodec()


def decode_raw(value: bytes) -> RawWebhook:
    """An encoded RawWebhook record, decoded."""
    record = _CODEC.decode(value)
    assert isinstance(record, RawWebhook)
    return record


async def expect_error(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """The response is the one JSON error format with this status and code (and field, if given)."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    payload: dict[str, Any] = await response.json()
    assert payload["error"]["code"] == code
    assert payload["request_id"] == response.headers["X-Request-Id"]
    if field is not None:
        assert payload["error"]["field"] == field
    return payload
