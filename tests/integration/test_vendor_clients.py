"""The Twilio and Telnyx REST clients against a local fake vendor server: request shape and auth,
success and error shapes, and retries that never send a message twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from agents.send.vendors import FailureCategory, OutboundMessage, SMSClient, VendorError
from agents.send.vendors.retry import RetryPolicy, send_with_retry
from agents.send.vendors.telnyx import TelnyxClient
from agents.send.vendors.twilio import TwilioClient
from config.companies import TwilioAccount
from tests.fakes.vendor_server import FakeVendorState, create_fake_vendor_app

FROM = "+14155550100"
TO = "+12125551234"
FAST = RetryPolicy(max_attempts=4, backoff_initial_s=0.01, backoff_max_s=0.05)
MakeServer = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
def state() -> FakeVendorState:
    return FakeVendorState(hang_s=1.2)


@pytest.fixture
async def base_url(aiohttp_server: MakeServer, state: FakeVendorState) -> str:
    server = await aiohttp_server(create_fake_vendor_app(state))
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _twilio(
    session: aiohttp.ClientSession, base: str, state: FakeVendorState, token: str | None = None,
    timeout_s: float = 5.0,
) -> TwilioClient:
    tokens = (SecretStr(token or state.twilio_token),)
    account = TwilioAccount(account_sid=state.twilio_sid, auth_tokens=tokens)
    return TwilioClient(session, account, api_base=base, lookup_base=base, timeout_s=timeout_s)


def _telnyx(
    session: aiohttp.ClientSession, base: str, state: FakeVendorState, key: str | None = None,
    timeout_s: float = 5.0,
) -> TelnyxClient:
    return TelnyxClient(session, key or state.telnyx_key, api_base=base, timeout_s=timeout_s)


def _message(to: str = TO, key: str = "msg-1", body: str = "Hi from Acme https://acme.link/Ab3dE6gH") -> (
        OutboundMessage):
    return OutboundMessage(message_id=key, company_id="acme", from_number=FROM, to_number=to, body=body,
                           idempotency_key=key)


CLIENTS = ["twilio", "telnyx"]


def _client(
    name: str, session: aiohttp.ClientSession, base: str, state: FakeVendorState, timeout_s: float = 5.0
) -> SMSClient:
    if name == "twilio":
        return _twilio(session, base, state, timeout_s=timeout_s)
    return _telnyx(session, base, state, timeout_s=timeout_s)


async def test_twilio_send_has_the_right_shape_and_auth(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState
) -> None:
    receipt = await _twilio(session, base_url, state).send(_message())
    (created,) = state.twilio_messages
    assert (receipt.vendor, receipt.vendor_message_id, receipt.status, receipt.segments) == (
        "twilio", created["sid"], "queued", 1)
    assert receipt.vendor_message_id.startswith("SM") and len(receipt.vendor_message_id) == 34
    assert (created["to"], created["from"], created["body"]) == (TO, FROM, _message().body)
    assert state.shape_errors == []
    assert state.requests == [("twilio", "POST", f"/2010-04-01/Accounts/{state.twilio_sid}/Messages.json")]


async def test_telnyx_send_has_the_right_shape_auth_and_key(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState
) -> None:
    receipt = await _telnyx(session, base_url, state).send(_message())
    (created,) = state.telnyx_messages
    assert (receipt.vendor, receipt.vendor_message_id, receipt.status, receipt.segments) == (
        "telnyx", created["id"], "queued", 1)
    assert created["text"] == _message().body and created["to"][0]["phone_number"] == TO
    assert list(state.telnyx_idempotency) == ["msg-1"]
    assert state.shape_errors == []


@pytest.mark.parametrize("vendor", CLIENTS)
async def test_bad_credentials_are_a_permanent_authentication_failure(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState, vendor: str
) -> None:
    client = (_twilio(session, base_url, state, token="wrong") if vendor == "twilio"
              else _telnyx(session, base_url, state, key="KEY_wrong"))
    with pytest.raises(VendorError) as caught:
        await send_with_retry(client, _message(), FAST)
    assert (caught.value.transient, caught.value.status, caught.value.category) == (
        False, 401, FailureCategory.AUTHENTICATION)
    assert caught.value.code == ("20003" if vendor == "twilio" else "10009")
    assert state.sent_to(TO) == 0 and len(state.requests) == 1


@pytest.mark.parametrize("vendor", CLIENTS)
@pytest.mark.parametrize(("to", "opted_out", "category", "codes"), [
    ("+15555550100", False, FailureCategory.INVALID_NUMBER, ("21211", "40310")),
    (TO, True, FailureCategory.OPTED_OUT, ("21610", "40300")),
])
async def test_permanent_errors_get_a_category_and_are_not_retried(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState, vendor: str, to: str,
    opted_out: bool, category: FailureCategory, codes: tuple[str, str],
) -> None:
    if opted_out:
        state.opted_out.add(to)
    with pytest.raises(VendorError) as caught:
        await send_with_retry(_client(vendor, session, base_url, state), _message(to=to), FAST)
    assert caught.value.category == category and not caught.value.transient
    assert caught.value.code == (codes[0] if vendor == "twilio" else codes[1])
    assert len(state.requests) == 1


@pytest.mark.parametrize("vendor", CLIENTS)
async def test_a_sender_the_account_does_not_own_is_a_configuration_failure(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState, vendor: str
) -> None:
    state.owned_numbers.clear()
    with pytest.raises(VendorError) as caught:
        await _client(vendor, session, base_url, state).send(_message())
    assert caught.value.category == FailureCategory.SENDER_NOT_CONFIGURED


@pytest.mark.parametrize("vendor", CLIENTS)
@pytest.mark.parametrize("faults", [["429"], ["500"], ["500", "429", "500"]])
async def test_transient_refusals_are_retried_and_send_once(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState, vendor: str, faults: list[str]
) -> None:
    state.faults = list(faults)
    receipt = await send_with_retry(_client(vendor, session, base_url, state), _message(), FAST)
    assert state.sent_to(TO) == 1
    assert receipt.replayed is False
    assert len([r for r in state.requests if r[1] == "POST"]) == len(faults) + 1


@pytest.mark.parametrize("vendor", CLIENTS)
@pytest.mark.parametrize("fault", ["500_after_create", "hang_after_create"])
async def test_a_retry_after_an_ambiguous_failure_never_sends_twice(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState, vendor: str, fault: str
) -> None:
    # The vendor created the message but its answer was an error or never came: the client cannot know.
    state.faults = [fault]
    # The client gives up waiting after 0.6 s; a hung answer would come after 1.2 s.
    client = _client(vendor, session, base_url, state, timeout_s=0.6)
    receipt = await send_with_retry(client, _message(), FAST)
    assert state.sent_to(TO) == 1
    if vendor == "twilio":
        # Twilio has no idempotency key: the client found its message in the list before resending.
        assert receipt.replayed and receipt.vendor_message_id == state.twilio_messages[0]["sid"]
        assert [r[1] for r in state.requests] == ["POST", "GET"]
    else:
        # Telnyx recognised the retried request by its Idempotency-Key and replayed the first answer.
        assert state.telnyx_replays == 1
        assert receipt.vendor_message_id == state.telnyx_messages[0]["id"]


async def test_the_fake_would_catch_a_double_send(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState
) -> None:
    # The same Telnyx request twice under one key: one message. Under a fresh key: a second message,
    # which is what a retry without the key would do to a customer.
    client = _telnyx(session, base_url, state)
    first = await client.send(_message(key="k1"))
    again = await client.send(_message(key="k1"))
    assert again.vendor_message_id == first.vendor_message_id and state.sent_to(TO) == 1
    await client.send(_message(key="k2"))
    assert state.sent_to(TO) == 2
    # A different body under a used key is refused, not sent.
    with pytest.raises(VendorError) as caught:
        await client.send(_message(key="k1", body="something else"))
    assert caught.value.status == 422 and state.sent_to(TO) == 2


async def test_twilio_resends_when_the_ambiguous_attempt_created_nothing(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState
) -> None:
    # A 500 that created nothing: the lookup finds no message, so the retry sends the only one.
    state.faults = ["500"]
    receipt = await send_with_retry(_twilio(session, base_url, state), _message(), FAST)
    assert state.sent_to(TO) == 1 and not receipt.replayed
    assert [r[1] for r in state.requests] == ["POST", "GET", "POST"]


@pytest.mark.parametrize("vendor", CLIENTS)
async def test_giving_up_after_max_attempts_raises_the_transient_error(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState, vendor: str
) -> None:
    state.faults = ["500"] * 4
    with pytest.raises(VendorError) as caught:
        await send_with_retry(_client(vendor, session, base_url, state), _message(), FAST)
    assert caught.value.transient and caught.value.status == 500
    assert state.sent_to(TO) == 0


async def test_a_refused_connection_is_transient_but_not_ambiguous(session: aiohttp.ClientSession) -> None:
    state = FakeVendorState()
    with pytest.raises(VendorError) as caught:
        await _twilio(session, "http://127.0.0.1:9", state).send(_message())
    assert caught.value.transient and not caught.value.ambiguous


@pytest.mark.parametrize("vendor", CLIENTS)
async def test_lookup(
    session: aiohttp.ClientSession, base_url: str, state: FakeVendorState, vendor: str
) -> None:
    client = _client(vendor, session, base_url, state)
    info = await client.lookup(TO)
    assert (info.number, info.valid, info.line_type, info.carrier) == (TO, True, "mobile", "Fake Wireless")
    assert (await client.lookup("+15555550100")).valid is False
