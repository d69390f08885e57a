"""What every vendor parser returns, and the helpers they share for reading untrusted payloads."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ParsedInbound",
    "ParsedStatus",
    "VendorPayloadError",
    "iso_to_epoch_ms",
    "load_json_object",
    "require_list",
    "require_object",
    "require_str",
]


class VendorPayloadError(ValueError):
    """A webhook body that does not have its vendor's shape; ``reason`` names the field and the problem."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedInbound:
    """An inbound message as the vendor reported it, numbers not yet normalized."""

    vendor: str
    vendor_message_id: str
    from_number: str
    to_number: str
    body: str
    media_urls: tuple[str, ...] = ()
    # Vendor time in epoch ms (UTC), or None when the vendor sends none (Twilio inbound).
    occurred_at: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedStatus:
    """A delivery status callback for one outbound message to one recipient."""

    vendor: str
    vendor_message_id: str
    # The vendor's own status word; agents.delivery maps it to a canonical status.
    vendor_status: str
    our_number: str
    recipient: str
    error_codes: tuple[str, ...] = field(default=())
    occurred_at: int | None = None


def load_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body; anything else is a VendorPayloadError."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VendorPayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise VendorPayloadError(f"body is a JSON {type(value).__name__}, expected an object")
    return value


def require_object(obj: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = obj.get(name)
    if not isinstance(value, dict):
        raise VendorPayloadError(f"{where}{name} is missing or not an object")
    return value


def require_list(obj: dict[str, Any], name: str, where: str) -> list[Any]:
    value = obj.get(name)
    if not isinstance(value, list):
        raise VendorPayloadError(f"{where}{name} is missing or not a list")
    return value


def require_str(obj: dict[str, Any], name: str, where: str, *, allow_empty: bool = False) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise VendorPayloadError(f"{where}{name} is missing or not a non-empty string")
    return value


def iso_to_epoch_ms(value: str, where: str) -> int:
    """An ISO 8601 time with an offset (``Z`` or ``+00:00``) as UTC epoch ms; a naive time is refused."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise VendorPayloadError(f"{where} is not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise VendorPayloadError(f"{where} has no time zone: {value[:40]!r}")
    return int(parsed.timestamp() * 1000)
