"""The profile API end to end through the real gateway and worker, then the log and error hygiene check.

1. PUT consent → ConsentChangeRequested → the profile decider's ConsentChanged → GET consent reads it from
   Redis; an unrecognized text shows in GET conversation; a transactional send delivered by the simulated
   vendor is a touch, so POST /v1/conversions is attributed to it; GET timeline pages through it all.
2. A mixed workload (webhooks of every vendor, good and bad; API calls, good and bad; unknown links), then
   every line the gateway and the worker logged, and every error body, is scanned: no full phone number,
   no vendor secret, no API key.
"""

from __future__ import annotations

import json
import random
import re
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from config import Settings, load_companies
from gateway.signatures import basic_credentials
from projections.clickhouse import clickhouse_client
from smsfold.webhooks import (
    DEV_VENDOR_KEYS,
    bandwidth_event,
    bandwidth_request,
    dev_telnyx_seed,
    telnyx_event,
    telnyx_request,
    twilio_inbound,
)
from tests.conftest import wait_until

pytestmark = pytest.mark.stack

KEYS = {"acme": "sk_dev_acme_ec09d93a41f579efb3b97072", "globex": "sk_dev_globex_2fe45eda47d70bb8413c0b6c",
        "loadtest": "sk_dev_loadtest_35d15a97dd117e5ddf01a933"}
ACME = {"Authorization": f"Bearer {KEYS['acme']}"}
# Every error body the workload received, for the scan.
ERROR_BODIES: list[str] = []


def _phone() -> str:
    return f"+1212555{random.randrange(10_000):04d}"


def _call(base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
          raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text.startswith(("{", "[")) else {}
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        ERROR_BODIES.append(text + json.dumps(dict(exc.headers)))
        return exc.code, json.loads(text) if text.startswith("{") else {}


def _inbound(settings: Settings, sender: str, body: str) -> None:
    company = load_companies(settings.companies_file).get("acme")
    assert company is not None and company.twilio is not None
    req = twilio_inbound(settings.gateway.public_base_url, company.twilio.auth_tokens[0].get_secret_value(),
                         sender=sender, to=company.numbers[0], body=body,
                         account_sid=company.twilio.account_sid)
    status, _ = _call(settings.gateway.public_base_url, "POST", req.path, raw=req.body, headers=req.headers)
    assert status == 200


def _timeline(base: str, phone: str, limit: int = 3) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, page = _call(base, "GET", f"/v1/profiles/%2B{phone[1:]}/timeline?limit={limit}{cursor}",
                             headers=ACME)
        assert status == 200, page
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        cursor = f"&cursor={page['next_cursor']}"


def test_profile_api_end_to_end(stack_settings: Settings, pipeline: str) -> None:
    phone = _phone()
    # Consent: requested through the API, decided by the profile decider, read back from Redis.
    status, answer = _call(pipeline, "PUT", f"/v1/profiles/{phone}/consent",
                           {"status": "subscribed", "source": "api", "method": "checkout"}, ACME)
    assert (status, answer["status"]) == (202, "requested")
    path = f"/v1/profiles/{phone}/consent"
    consent = wait_until(lambda: (c := _call(pipeline, "GET", path, headers=ACME)[1])
                         and c["status"] == "subscribed" and c, 60, "consent subscribed")
    assert (consent["source"], consent["method"], consent["version"]) == ("api", "checkout", 1)
    # Another company's key reads its own (never changed) profile of the same number.
    other = _call(pipeline, "GET", f"/v1/profiles/{phone}/consent", headers={"X-Api-Key": KEYS["globex"]})[1]
    assert other["status"] == "never_subscribed"

    # The conversation: an unrecognized text, kept for a human.
    _inbound(stack_settings, phone, "Where is my order #1234?")
    messages = wait_until(lambda: _call(pipeline, "GET", f"/v1/profiles/{phone}/conversation",
                                        headers=ACME)[1]["messages"], 60, "the conversation message")
    assert [m["body"] for m in messages] == ["Where is my order #1234?"]

    # A delivered transactional message of a flow is a touch; a conversion after it is attributed to it.
    flow = f"shipping-{phone[-4:]}"
    status, sent = _call(pipeline, "POST", "/v1/messages", {"to": phone, "body": "Your order shipped",
                                                            "kind": "transactional", "flow_id": flow}, ACME)
    assert status == 202
    # The simulated vendor's status callback carries only its own message id; the profile decider joins it
    # to ours and emits DeliveryStatusChanged, which the stats and the attribution count.
    moves = wait_until(lambda: [i for i in _timeline(pipeline, phone, 50)
                                if i["event_type"] == "DeliveryStatusChanged" and i["status"] == "delivered"],
                       60, "the message delivered")
    assert [(m["message_id"], m["flow_id"]) for m in moves] == [(sent["message_id"], flow)]
    ch = clickhouse_client(stack_settings.clickhouse)
    stats = wait_until(lambda: ch.execute(
        "SELECT flow_id, message_id, sum(sent), sum(delivered), sum(failed) FROM message_stats "
        "WHERE company_id = 'acme' AND flow_id = %(flow)s GROUP BY flow_id, message_id "
        "HAVING sum(delivered) > 0", {"flow": flow}), 60, "the delivery in message_stats")
    assert stats == [(flow, sent["message_id"], 1, 1, 0)]
    latency = ch.execute("SELECT flow_id, latency_ms FROM delivery_latency WHERE message_id = %(m)s",
                         {"m": sent["message_id"]})
    assert len(latency) == 1 and latency[0][0] == flow
    order = {"metric": "Placed Order", "value": 59.9, "currency": "USD", "phone": phone,
             "idempotency_key": f"order-{phone[1:]}"}
    first = _call(pipeline, "POST", "/v1/conversions", order, ACME)
    assert first == _call(pipeline, "POST", "/v1/conversions", order, ACME)  # a retry is the same event
    attributed = wait_until(lambda: [i for i in _timeline(pipeline, phone, 50)
                                     if i["event_type"] == "ConversionAttributed"], 60, "the attribution")
    assert len(attributed) == 1
    assert (attributed[0]["touch"], attributed[0]["value_micros"], attributed[0]["currency"],
            attributed[0]["message_id"], attributed[0]["flow_id"]) == (
        "delivery", 59_900_000, "USD", sent["message_id"], flow)

    # Paging (3 at a time) returns every event once, newest first.
    items = _timeline(pipeline, phone)
    keys = [(i["occurred_at"], i["event_id"]) for i in items]
    assert keys == sorted(set(keys), reverse=True)
    assert {"ConsentChangeRequested", "ConsentChanged", "InboundReceived", "SendRequested",
            "ConversionRecorded", "ConversionAttributed"} <= {i["event_type"] for i in items}


def _secrets(settings: Settings) -> set[str]:
    """Every dev secret: vendor tokens and passwords, Telnyx private seeds, API keys, Basic headers."""
    found = set(KEYS.values())
    for company in load_companies(settings.companies_file):
        if company.twilio is not None:
            found |= {t.get_secret_value() for t in company.twilio.auth_tokens}
        if company.bandwidth is not None:
            for cred in company.bandwidth.credentials:
                found |= {cred.password.get_secret_value(),
                          basic_credentials(cred.username, cred.password.get_secret_value()).split()[1]}
    found |= set(tomllib.loads(DEV_VENDOR_KEYS.read_text())["telnyx"].values())
    return found


# A full number with its +, or (percent-encoded) after %2B; masked ones (+1415***0123) do not match.
_E164 = re.compile(r"(?:\+|%2[Bb])[1-9]\d{9,14}(?![\w*])")


def test_no_full_number_secret_or_key_in_logs_or_error_responses(
    stack_settings: Settings, pipeline: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base, phone = pipeline, _phone()
    public = stack_settings.gateway.public_base_url
    # A mixed workload: good and bad webhooks of every vendor, good and bad API calls, links.
    _inbound(stack_settings, phone, "STOP")
    _inbound(stack_settings, phone, "hello, call me at +14155550123 or 4155550124")
    event = telnyx_event("message.received", sender=phone, to="+14155550100", text="HELP")
    for seed in ("acme", "globex"):  # globex's key signing for acme's number: 403
        req = telnyx_request(dev_telnyx_seed(seed), event)
        _call(public, "POST", req.path, raw=req.body, headers=req.headers)
    for password in ("dev-acme-bandwidth-password", "wrong-password"):
        req = bandwidth_request("acme-bw", password, [bandwidth_event(
            "message-received", sender=phone, to="+14155550100", application_id="app", text="thanks")])
        _call(public, "POST", req.path, raw=req.body, headers=req.headers)
    req = twilio_inbound(public, "not-the-token", sender=phone, to="+19995550100", body="x",
                         account_sid="AC1")
    _call(public, "POST", req.path, raw=req.body, headers=req.headers)  # unknown number: 404
    _call(public, "POST", req.path, raw=req.body.replace(b"From=", b"From=%2B1"),
          headers={**req.headers, "X-Twilio-Signature": KEYS["acme"]})
    _call(base, "POST", "/v1/messages", {"to": phone, "body": "hi", "kind": "flow"}, ACME)
    _call(base, "POST", "/v1/messages", {"to": phone[1:], "body": "hi", "kind": "flow"}, ACME)
    _call(base, "POST", "/v1/messages", {"to": phone, "body": "hi", "kind": "x"},
          {"X-Api-Key": KEYS["acme"] + "x"})
    _call(base, "GET", f"/v1/profiles/{phone[1:]}/consent", headers=ACME)
    _call(base, "GET", f"/v1/profiles/{phone}/timeline?cursor={phone}", headers=ACME)
    _call(base, "PUT", f"/v1/profiles/{phone}/consent", {"status": phone, "source": "api"}, ACME)
    _call(base, "POST", "/v1/conversions", {"metric": "x", "value": 1, "currency": "USD", "phone": phone,
                                            "idempotency_key": phone}, ACME)
    _call(base, "GET", f"/v1/companies/globex?phone={phone}", headers=ACME)
    _call(base, "GET", f"/l/{phone[1:]}")
    # Let the worker fold it all (the STOP becomes an unsubscribe).
    wait_until(lambda: _call(base, "GET", f"/v1/profiles/{phone}/consent", headers=ACME)[1].get("status")
               == "unsubscribed", 60, "the STOP folded")

    logs = sorted(tmp_path_factory.getbasetemp().glob("logs*/*.log"))
    assert {p.name for p in logs} >= {"gateway.log", "worker.log"}
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert phone[:5] + "***" + phone[-4:] in text  # numbers were logged, masked
    assert len(ERROR_BODIES) >= 8
    used = [phone[1:], "14155550123", "4155550124", "4155550100", "9995550100"]
    for where, body in [("logs", text), ("error responses", "\n".join(ERROR_BODIES))]:
        numbers = sorted({m.group(0) for m in _E164.finditer(body)} | {n for n in used if n in body})
        assert numbers == [], f"full phone numbers in {where}: {numbers[:5]}"
        leaked = sorted(s[:6] + "…" for s in _secrets(stack_settings) if s in body)
        assert leaked == [], f"secrets in {where}: {leaked}"


def test_the_scan_would_catch_a_leak() -> None:
    assert _E164.search("inbound from +14155550123 ok")
    assert _E164.search("profile acme:+12125550000")
    assert _E164.search("From=%2B14155550123&To=")
    assert not _E164.search("from +1415***0123 request 1234567abcdef SM1111111111 ts 1732881600000")
    assert Path(DEV_VENDOR_KEYS).exists()
