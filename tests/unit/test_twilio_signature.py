"""Twilio webhook signatures: the published vector, tampering, rotation, default ports, round trips."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from gateway.signatures import (
    twilio_signature,
    twilio_url_variants,
    verify_twilio,
    verify_twilio_json,
)

# Twilio's published reference vector.
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_published_vector() -> None:
    assert twilio_signature(TOKEN, URL, PARAMS) == SIGNATURE
    assert verify_twilio([TOKEN], URL, PARAMS, SIGNATURE)


def test_pairs_and_mapping_sign_the_same() -> None:
    # Order of arrival does not matter: Twilio sorts by name.
    pairs = list(reversed(list(PARAMS.items())))
    assert twilio_signature(TOKEN, URL, pairs) == SIGNATURE


def test_tampered_param_rejected() -> None:
    assert not verify_twilio([TOKEN], URL, {**PARAMS, "Digits": "1235"}, SIGNATURE)
    assert not verify_twilio([TOKEN], URL, {**PARAMS, "Extra": "x"}, SIGNATURE)


def test_tampered_url_rejected() -> None:
    assert not verify_twilio([TOKEN], URL.replace("foo=1", "foo=2"), PARAMS, SIGNATURE)
    assert not verify_twilio([TOKEN], URL.replace("https:", "http:"), PARAMS, SIGNATURE)


def test_wrong_token_rejected() -> None:
    assert not verify_twilio(["54321"], URL, PARAMS, SIGNATURE)
    assert not verify_twilio([], URL, PARAMS, SIGNATURE)


def test_rotated_token_accepted() -> None:
    # During rotation both the old and the new token are configured; either order works.
    assert verify_twilio(["new-token", TOKEN], URL, PARAMS, SIGNATURE)
    assert verify_twilio([TOKEN, "new-token"], URL, PARAMS, SIGNATURE)


def test_url_with_and_without_default_port_accepted() -> None:
    # Signed without the port, received with it, and the other way round.
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert verify_twilio([TOKEN], with_port, PARAMS, SIGNATURE)
    signed_with_port = twilio_signature(TOKEN, with_port, PARAMS)
    assert verify_twilio([TOKEN], URL, PARAMS, signed_with_port)
    # http uses port 80.
    http = "http://example.com/hook"
    assert verify_twilio([TOKEN], "http://example.com:80/hook", {}, twilio_signature(TOKEN, http, {}))


def test_non_default_port_is_not_dropped() -> None:
    assert twilio_url_variants("https://example.com:8443/hook") == ["https://example.com:8443/hook"]
    signed = twilio_signature(TOKEN, "https://example.com/hook", PARAMS)
    assert not verify_twilio([TOKEN], "https://example.com:8443/hook", PARAMS, signed)


def test_url_variants_keep_ipv6_and_userinfo() -> None:
    assert twilio_url_variants("https://[::1]/x") == ["https://[::1]/x", "https://[::1]:443/x"]
    assert twilio_url_variants("https://u:p@h:443/x") == ["https://u:p@h:443/x", "https://u:p@h/x"]
    assert twilio_url_variants("https://h:notaport/x") == ["https://h:notaport/x"]


def test_repeated_names_sorted_by_value() -> None:
    # Twilio's reference libraries sort a repeated name's values, so arrival order does not matter.
    a = twilio_signature(TOKEN, URL, [("MediaUrl", "b"), ("MediaUrl", "a")])
    b = twilio_signature(TOKEN, URL, [("MediaUrl", "a"), ("MediaUrl", "b")])
    assert a == b == twilio_signature(TOKEN, URL + "MediaUrlaMediaUrlb", [])


def test_garbage_signature_header_rejected() -> None:
    assert not verify_twilio([TOKEN], URL, PARAMS, "")
    assert not verify_twilio([TOKEN], URL, PARAMS, "not-base64-é\udcff")


def test_json_body_hash() -> None:
    body = b'{"MessageSid": "SM1"}'
    url = f"https://example.com/hook?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = twilio_signature(TOKEN, url, {})
    assert verify_twilio_json([TOKEN], url, body, signature)
    assert not verify_twilio_json([TOKEN], url, body + b" ", signature)
    assert not verify_twilio_json([TOKEN], "https://example.com/hook", body, signature)


_text = st.text(st.characters(codec="utf-8"), max_size=30)
_params = st.lists(st.tuples(_text, _text), max_size=10)


@given(
    token=st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
    params=_params,
    path=st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=20),
)
def test_sign_then_verify_round_trip(token: str, params: list[tuple[str, str]], path: str) -> None:
    url = f"https://example.com/{path}?a=1"
    signature = twilio_signature(token, url, params)
    assert verify_twilio([token], url, params, signature)
    # Any arrival order, and the URL with its default port, verify too.
    assert verify_twilio([token], url.replace(".com/", ".com:443/"), list(reversed(params)), signature)
    # An extra parameter breaks it.
    assert not verify_twilio([token], url, [*params, ("Injected", "1")], signature)
