"""A real gateway process for the hostile-input tests, on private topics and a private Redis prefix of the
session stack (fuzzed traffic never reaches the session worker), plus signing of generated requests with
the repository's dev secrets, the way each vendor signs."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl

import requests
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from config import Settings
from gateway.signatures import basic_credentials, telnyx_sign, twilio_body_sha256, twilio_signature
from smsfold.processes import ManagedProcess
from smsfold.webhooks import dev_telnyx_seed
from tests.conftest import PORT_BASE

__all__ = ["DEV_KEYS", "hostile_gateway", "sign"]

# The dev API keys of README.md (their hashes are in config/companies.toml).
DEV_KEYS = {"acme": "sk_dev_acme_ec09d93a41f579efb3b97072",
            "globex": "sk_dev_globex_2fe45eda47d70bb8413c0b6c"}
TWILIO_TOKEN = "dev-acme-twilio-token"
BANDWIDTH = ("acme-bw", "dev-acme-bandwidth-password")
SIGNATURE_HEADERS = {"x-twilio-signature", "telnyx-signature-ed25519", "telnyx-timestamp", "authorization"}


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def hostile_gateway(
    settings: Settings, log_dir: Path, offset: int = 730
) -> Iterator[tuple[str, ManagedProcess]]:
    """``smsfold gateway`` on ``PORT_BASE + offset`` with fresh raw and events topics; yields its base URL."""
    tag = uuid.uuid4().hex[:10]
    raw, events = f"hostile.raw.{tag}", f"hostile.events.{tag}"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for future in admin.create_topics([NewTopic(raw, 3, 1), NewTopic(events, 3, 1)]).values():
        future.result(15)
    port = PORT_BASE + offset
    base = f"http://127.0.0.1:{port}"
    process = ManagedProcess("hostile-gateway", ["gateway"], log_dir, env={
        "SMSFOLD_GATEWAY__PORT": str(port),
        "SMSFOLD_GATEWAY__PUBLIC_BASE_URL": base,
        "SMSFOLD_GATEWAY__SPOOL_DIR": str(log_dir / "spool"),
        "SMSFOLD_TOPICS__RAW": raw,
        "SMSFOLD_TOPICS__EVENTS": events,
        "SMSFOLD_REDIS__KEY_PREFIX": f"h{tag}",
    })
    process.start()
    try:
        process.wait_for(lambda: _up(base + "/healthz"), 30, "/healthz")
        yield base, process
    finally:
        process.stop()


def sign(prepared: requests.PreparedRequest, auth: str) -> requests.PreparedRequest:
    """``prepared`` signed for ``auth`` (twilio, telnyx, bandwidth) as acme's vendor would sign it; any
    signature headers the generator made up are dropped first."""
    for name in list(prepared.headers):
        if name.lower() in SIGNATURE_HEADERS:
            del prepared.headers[name]
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
        prepared.body = body
    url = prepared.url or ""
    if auth == "twilio":
        if "json" in prepared.headers.get("Content-Type", ""):
            prepared.prepare_url(url, {"bodySHA256": twilio_body_sha256(body)})
            prepared.headers["X-Twilio-Signature"] = twilio_signature(TWILIO_TOKEN, prepared.url or "", {})
        else:
            pairs = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
            prepared.headers["X-Twilio-Signature"] = twilio_signature(TWILIO_TOKEN, url, pairs)
    elif auth == "telnyx":
        timestamp = str(int(time.time()))
        prepared.headers["telnyx-timestamp"] = timestamp
        prepared.headers["telnyx-signature-ed25519"] = telnyx_sign(dev_telnyx_seed("acme"), timestamp, body)
    elif auth == "bandwidth":
        prepared.headers["Authorization"] = basic_credentials(*BANDWIDTH)
    return prepared


def json_error(response: requests.Response) -> str:
    """The error code of a JSON error body; fails the test if the body is not the one error format."""
    assert response.headers.get("Content-Type", "").startswith("application/json"), (
        response.status_code, response.text[:300])
    payload = json.loads(response.content)
    assert isinstance(payload["error"]["code"], str) and payload["request_id"], payload
    return str(payload["error"]["code"])
