"""The send pipeline end to end on the real stack, with the simulated vendor:

POST /v1/messages → SendRequested → the profile decider decides (consent at that point of the log) →
SendApproved → the sender agent shortens links and hands the message to the simulator → MessageSent → the
simulator's signed Twilio status callbacks come back through the gateway → normalizer → profile decider
→ DeliveryStatusChanged with our message id → the message status read model. Plus: skipped sends with
their reason, a transactional send to a never-subscribed profile, a load-test company's reply that
never reaches the vendor, an idempotent retry, and a short link followed through the gateway.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
import pytest
import redis
from clickhouse_driver import Client

from agents.send.checks import SkipReason, parse_recipient
from agents.send.quiet_hours import next_open, window_for
from config import Settings, load_companies
from projections.clickhouse import clickhouse_client
from smsfold.webhooks import SignedRequest, twilio_inbound
from streams.statuses import status_rank
from tests.conftest import wait_until

pytestmark = pytest.mark.stack

ACME_KEY = "sk_dev_acme_ec09d93a41f579efb3b97072"
LOADTEST_NUMBER = "+16465550142"
LONG_URL = "https://shop.example/collections/winter-sale/products/merino-wool-sweater?utm_source=sms&utm_medium=x"
# Mobile number patterns in zones whose sending windows together cover every hour of the day.
_CANDIDATES = ("+1212555{:04d}", "+1312555{:04d}", "+1213555{:04d}", "+1808555{:04d}", "+81902222{:04d}",
               "+49151234{:05d}")


@pytest.fixture(scope="module")
def ch(stack_settings: Settings) -> Iterator[Client]:
    client = clickhouse_client(stack_settings.clickhouse)
    yield client
    client.disconnect()


@pytest.fixture(scope="module")
def r(stack_settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack_settings.redis.url, decode_responses=True)
    yield client
    client.close()


def _phone(open_window: bool = False) -> str:
    """A fresh valid mobile number; with ``open_window``, one whose marketing window is open for the next
    half hour (so the test does not depend on the time of day it runs)."""
    now = datetime.now(UTC)
    for _ in range(500):
        number = random.choice(_CANDIDATES).format(random.randrange(10_000))
        parsed = parse_recipient(number)
        if parsed is None or not phonenumbers.is_valid_number(parsed):
            continue
        if not open_window:
            return number
        window = window_for(parsed, now)
        if window.is_open(now) and window.is_open(now + timedelta(minutes=30)):
            return number
    raise AssertionError("no candidate number is inside its sending window now")


def _phone_in_quiet_hours() -> tuple[str, int]:
    """A fresh mobile number whose marketing window is closed for at least the next half hour, and the
    epoch ms at which it opens."""
    now = datetime.now(UTC)
    for _ in range(500):
        number = random.choice(_CANDIDATES).format(random.randrange(10_000))
        parsed = parse_recipient(number)
        if parsed is None or not phonenumbers.is_valid_number(parsed):
            continue
        opens = next_open(window_for(parsed, now), now)
        if opens is not None and opens > now + timedelta(minutes=30):
            return number, int(opens.timestamp() * 1000)
    raise AssertionError("no candidate number is in quiet hours now")


def _post_json(base: str, path: str, body: dict[str, Any], key: str = ACME_KEY) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _post_signed(base: str, req: SignedRequest) -> int:
    request = urllib.request.Request(base + req.path, data=req.body, headers=req.headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return int(resp.status)


def _text(settings: Settings, company_id: str, sender: str, body: str) -> None:
    """The profile texts ``body`` to the company's first number, signed like Twilio."""
    company = load_companies(settings.companies_file).get(company_id)
    assert company is not None and company.twilio is not None
    token = company.twilio.auth_tokens[0].get_secret_value()
    req = twilio_inbound(settings.gateway.public_base_url, token, sender=sender, to=company.numbers[0],
                         body=body, account_sid=company.twilio.account_sid)
    assert _post_signed(settings.gateway.public_base_url, req) == 200


def _consent(r: redis.Redis, settings: Settings, profile: str, status: str) -> None:
    key = f"{settings.redis.key_prefix}:consent:{profile}"
    wait_until(lambda: r.hget(key, "status") == status, 60, f"{profile} {status} in Redis")


def _events(ch: Client, profile: str, event_type: str, message_id: str | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT payload, message_id FROM events FINAL WHERE profile_key = %(p)s AND event_type = %(t)s"
           + (" AND message_id = %(m)s" if message_id else "") + " ORDER BY occurred_at, event_id")
    rows = ch.execute(sql, {"p": profile, "t": event_type, "m": message_id})
    return [{**json.loads(payload), "message_id": mid} for payload, mid in rows]


def _final_status(r: redis.Redis, settings: Settings, message_id: str) -> dict[str, str]:
    key = f"{settings.redis.key_prefix}:message-status-by-id:{message_id}"

    def final() -> dict[str, str] | None:
        got = {str(k): str(v) for k, v in r.hgetall(key).items()}
        return got if got.get("status") in ("delivered", "failed") else None

    return wait_until(final, 60, f"a final status of {message_id} in Redis")


def test_a_flow_message_goes_out_and_its_delivery_comes_back_by_our_message_id(
    stack_settings: Settings, pipeline: str, ch: Client, r: redis.Redis
) -> None:
    phone = _phone(open_window=True)
    profile = f"acme:{phone}"
    _text(stack_settings, "acme", phone, "START")
    _consent(r, stack_settings, profile, "subscribed")

    # The product asks for a flow message with a long link: 202 with our message id.
    status, answer = _post_json(pipeline, "/v1/messages", {
        "to": phone, "kind": "flow", "flow_id": "winter-1", "body": f"Winter sale, 20% off: {LONG_URL}"})
    assert status == 202, answer
    message_id = answer["message_id"]
    posted = time.monotonic()

    # Delivered (or failed at the simulator's configured rate), folded by our message id.
    final = _final_status(r, stack_settings, message_id)
    to_final_s = time.monotonic() - posted
    sent = wait_until(lambda: _events(ch, profile, "MessageSent", message_id), 30, "MessageSent")
    assert final["vendor_message_id"] == sent[0]["vendor_message_id"]
    assert final["vendor"] == "twilio" and final["profile_key"] == profile
    if final["status"] == "failed":
        assert final["error_code"] and final["failure_category"]

    # The decision composed the opt-out language; the link was shortened before segments were counted.
    [approved] = _events(ch, profile, "SendApproved", message_id)
    assert approved["body"].endswith("Reply STOP to opt out.") and LONG_URL in approved["body"]
    decided_ms = approved["stage_times"]["decided"] - approved["stage_times"]["requested"]
    print(f"\nrequest → decided {decided_ms} ms; request → {final['status']} in Redis {to_final_s:.2f} s "
          f"(simulated delivery median {stack_settings.vendor.simulated_delay_median_ms:.0f} ms)")
    [link] = wait_until(lambda: _events(ch, profile, "LinkCreated", message_id), 30, "LinkCreated")
    assert link["url"] == LONG_URL
    assert sent[0]["segments"] == 1 and sent[0]["cost_micros"] == 7900 and sent[0]["encoding"] == "GSM-7"

    # Every forward move is on the log once, with our message id. (Sorted by rank: a Twilio delivery's
    # time has minute precision, so it may sort before the send by occurred_at.)
    def folded() -> list[dict[str, Any]] | None:
        got = _events(ch, profile, "DeliveryStatusChanged", message_id)
        return got if final["status"] in {c["status"] for c in got} else None

    changes = wait_until(folded, 30, "status changes")
    statuses = sorted((c["status"] for c in changes), key=status_rank)
    assert statuses in (["queued", "sent", final["status"]], ["queued", final["status"]])

    # The short link redirects through the gateway (302, never elsewhere) and the click is recorded.
    parts = urlsplit(pipeline)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    conn.request("GET", f"/l/{link['code']}", headers={"User-Agent": "Mozilla/5.0 (iPhone) Safari/604.1"})
    response = conn.getresponse()
    assert (response.status, response.getheader("Location")) == (302, LONG_URL)
    conn.close()
    [click] = wait_until(lambda: _events(ch, profile, "LinkClicked", message_id), 30, "LinkClicked")
    assert click["code"] == link["code"] and click["is_bot"] is False


def test_marketing_to_an_unsubscribed_profile_is_skipped_with_its_reason(
    stack_settings: Settings, pipeline: str, ch: Client, r: redis.Redis
) -> None:
    phone = _phone()
    profile = f"acme:{phone}"
    _text(stack_settings, "acme", phone, "START")
    _text(stack_settings, "acme", phone, "STOP")
    _consent(r, stack_settings, profile, "unsubscribed")
    status, answer = _post_json(pipeline, "/v1/messages", {"to": phone, "kind": "campaign", "body": "Sale!",
                                                           "campaign_id": "bfcm"})
    assert status == 202
    [skipped] = wait_until(lambda: _events(ch, profile, "SendSkipped", answer["message_id"]), 30,
                           "SendSkipped")
    assert skipped["reason"] == SkipReason.UNSUBSCRIBED.value
    assert skipped["reason_text"] == SkipReason.UNSUBSCRIBED.text
    assert _events(ch, profile, "SendApproved", answer["message_id"]) == []


def test_a_transactional_message_reaches_a_never_subscribed_profile_once_per_message_id(
    stack_settings: Settings, pipeline: str, ch: Client, r: redis.Redis
) -> None:
    phone = _phone()
    profile = f"acme:{phone}"
    body = {"to": phone, "kind": "transactional", "body": "Your order #1042 shipped.",
            "message_id": f"order-{random.randrange(10**9)}"}
    # The product retries the same request (its first answer was lost): one message all the same.
    first, again = _post_json(pipeline, "/v1/messages", body), _post_json(pipeline, "/v1/messages", body)
    assert first == again and first[0] == 202
    final = _final_status(r, stack_settings, body["message_id"])
    assert final["profile_key"] == profile
    time.sleep(1.0)  # room for a second send, if there were one
    assert len(_events(ch, profile, "MessageSent", body["message_id"])) == 1
    assert len(_events(ch, profile, "SendApproved", body["message_id"])) == 1
    [approved] = _events(ch, profile, "SendApproved", body["message_id"])
    assert approved["body"] == "Your order #1042 shipped."  # not marketing: nothing added


def test_a_load_test_companys_reply_is_recorded_and_never_reaches_the_vendor(
    stack_settings: Settings, pipeline: str, ch: Client
) -> None:
    phone = _phone()
    profile = f"loadtest:{phone}"
    _text(stack_settings, "loadtest", phone, "HELP")
    [skipped] = wait_until(lambda: _events(ch, profile, "SendSkipped"), 60, "the suppressed reply")
    assert skipped["reason"] == SkipReason.SUPPRESSED.value
    [requested] = _events(ch, profile, "SendRequested")
    assert requested["suppressed"] is True and "Load Test" in requested["body"]
    # Meanwhile an acme reply does go out, so the vendor counters below are live.
    acme_phone = _phone()
    _text(stack_settings, "acme", acme_phone, "HELP")
    wait_until(lambda: _events(ch, f"acme:{acme_phone}", "MessageSent"), 60, "acme's HELP reply sent")
    assert _events(ch, profile, "SendApproved") == [] and _events(ch, profile, "MessageSent") == []
    # What the simulator accepted, by company, from the worker's own counters.
    url = f"http://127.0.0.1:{stack_settings.worker.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        metrics = resp.read().decode()
    sends = [line for line in metrics.splitlines() if line.startswith("smsfold_vendor_sends_total{")]
    assert any('company="acme"' in line for line in sends), sends
    assert not any('company="loadtest"' in line for line in sends), sends


def test_a_flow_message_in_quiet_hours_is_held_until_the_window_opens(
    stack_settings: Settings, pipeline: str, ch: Client, r: redis.Redis
) -> None:
    phone, opens_ms = _phone_in_quiet_hours()
    profile = f"acme:{phone}"
    _text(stack_settings, "acme", phone, "START")
    _consent(r, stack_settings, profile, "subscribed")
    status, answer = _post_json(pipeline, "/v1/messages",
                                {"to": phone, "kind": "flow", "body": "New arrivals"})
    assert status == 202
    [held] = wait_until(lambda: _events(ch, profile, "SendHeld", answer["message_id"]), 30, "SendHeld")
    assert held["held_until"] == opens_ms and held["reason"] == "quiet_hours"
    # Held, not sent: the hold timer releases it when the window opens (the release is unit-tested).
    assert _events(ch, profile, "SendApproved", answer["message_id"]) == []
