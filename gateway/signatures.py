"""Vendor webhook signatures: pure functions, no I/O.

Twilio signs ``base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 ...))`` over the POST
parameters sorted by name (and, for a repeated name, by value), as its reference libraries compute it.
Telnyx signs ``f"{timestamp}|{raw body}"`` with Ed25519 (verified with PyNaCl); Bandwidth sends HTTP
Basic credentials.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

__all__ = [
    "BasicCredentials",
    "TelnyxKeys",
    "TwilioParams",
    "basic_credentials",
    "parse_basic_auth",
    "telnyx_sign",
    "twilio_body_sha256",
    "twilio_signature",
    "twilio_url_variants",
    "verify_twilio",
    "verify_basic",
    "verify_twilio_json",
]

# Form parameters as parsed (pairs, repeated names allowed) or as a mapping (a MultiDict's items() yields
# every pair, so multidicts work too).
TwilioParams = Sequence[tuple[str, str]] | Mapping[str, str]

_DEFAULT_PORTS = {"https": 443, "http": 80}


def _signed_params(params: TwilioParams) -> str:
    """What Twilio appends to the URL before signing: each distinct (name, value) pair once, sorted by name
    then value, as its reference libraries (twilio-python, twilio-node) do."""
    pairs: Iterable[tuple[str, str]] = params.items() if isinstance(params, Mapping) else params
    return "".join(chain.from_iterable(sorted(set(pairs))))


def _mac(auth_token: str, payload: str) -> bytes:
    """The base64 HMAC-SHA1 of ``payload``: one-shot ``hmac.digest`` spares the HMAC object of
    ``hmac.new``."""
    return base64.b64encode(hmac.digest(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1))


def twilio_signature(auth_token: str, url: str, params: TwilioParams) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a POST of ``params`` to ``url``."""
    return _mac(auth_token, url + _signed_params(params)).decode("ascii")


def twilio_url_variants(url: str) -> list[str]:
    """``url`` plus the same URL with its default port added or removed: Twilio signs either form."""
    return list(_cached_variants(url))


# Webhook URLs repeat (a handful of routes), so the split is done once per URL.
@functools.lru_cache(maxsize=1024)
def _cached_variants(url: str) -> tuple[str, ...]:
    return tuple(_url_variants(url))


def _url_variants(url: str) -> list[str]:
    variants = [url]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return variants
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or not parts.netloc:
        return variants
    if port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}")))
    elif port == default:
        # rpartition keeps userinfo and bracketed IPv6 hosts intact.
        variants.append(urlunsplit(parts._replace(netloc=parts.netloc.rpartition(":")[0])))
    return variants


def verify_twilio(tokens: Sequence[str], url: str, params: TwilioParams, signature: str) -> bool:
    """Whether ``signature`` is Twilio's for this request under any of ``tokens`` (rotation) and either
    form of the URL's default port. The parameters are sorted once for every candidate. Each comparison is
    constant-time; stopping at the first match only reveals which candidate matched, which is no secret."""
    signed = _signed_params(params)
    # compare_digest takes bytes; a header may hold anything, so its bytes are compared.
    given = signature.encode("utf-8", errors="replace")
    return any(
        hmac.compare_digest(_mac(token, candidate + signed), given)
        for token in tokens
        for candidate in _cached_variants(url)
    )


def twilio_body_sha256(body: bytes) -> str:
    """The hex SHA-256 Twilio puts in the ``bodySHA256`` query parameter of a signed JSON request."""
    return hashlib.sha256(body).hexdigest()


def verify_twilio_json(tokens: Sequence[str], url: str, body: bytes, signature: str) -> bool:
    """Verify a Twilio JSON request: ``bodySHA256`` in the URL must hash ``body``, and the URL (with no
    params) must carry a valid signature."""
    try:
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return False
    hashes = [value for name, value in query if name == "bodySHA256"]
    if len(hashes) != 1:
        return False
    body_ok = hmac.compare_digest(
        twilio_body_sha256(body).encode("ascii"), hashes[0].encode("utf-8", errors="replace")
    )
    signature_ok = verify_twilio(tokens, url, (), signature)
    return body_ok and signature_ok


class TelnyxKeys:
    """Ed25519 public keys (base64), parsed once; a key that does not decode is a config error."""

    def __init__(self, public_keys: Iterable[str]) -> None:
        self._keys: list[tuple[str, VerifyKey]] = []
        for encoded in dict.fromkeys(public_keys):
            try:
                raw = base64.b64decode(encoded, validate=True)
                self._keys.append((encoded, VerifyKey(raw)))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"Telnyx public key {encoded[:12]}... is not a base64 Ed25519 key") from exc

    def verify(self, timestamp: str, body: bytes, signature: str) -> str | None:
        """The key (as configured) that signed ``timestamp|body``, or None when no key did."""
        try:
            sig = base64.b64decode(signature, validate=True)
        except ValueError:
            return None
        if len(sig) != 64:
            return None
        message = timestamp.encode("utf-8") + b"|" + body
        for encoded, key in self._keys:
            try:
                key.verify(message, sig)
            except BadSignatureError:
                continue
            return encoded
        return None


def telnyx_sign(seed_b64: str, timestamp: str, body: bytes) -> str:
    """The ``telnyx-signature-ed25519`` header for ``body`` (for tests and the load generator)."""
    key = SigningKey(base64.b64decode(seed_b64))
    return base64.b64encode(key.sign(timestamp.encode("utf-8") + b"|" + body).signature).decode("ascii")


BasicCredentials = tuple[str, str]


def parse_basic_auth(header: str) -> BasicCredentials | None:
    """``(username, password)`` from an ``Authorization: Basic ...`` header, or None if it is not one."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def basic_credentials(username: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic credentials."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def verify_basic(expected: Sequence[BasicCredentials], given: BasicCredentials) -> bool:
    """Whether ``given`` is one of ``expected``; every candidate is compared in constant time."""
    results = [
        hmac.compare_digest(username.encode(), given[0].encode())
        & hmac.compare_digest(password.encode(), given[1].encode())
        for username, password in expected
    ]
    return any(results)
