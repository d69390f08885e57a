"""What the REST clients share: one aiohttp request mapped to a parsed body or a classified VendorError."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from agents.send.vendors.base import VendorError

__all__ = ["request_json", "retry_after"]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header given in seconds (HTTP dates are ignored)."""
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


async def request_json(
    session: aiohttp.ClientSession,
    vendor: str,
    method: str,
    url: str,
    timeout_s: float,
    **kwargs: Any,
) -> tuple[int, Mapping[str, str], Any]:
    """(status, headers, parsed JSON or None). Network failures become transient VendorErrors: a refused
    connection is not ambiguous (nothing was sent), a timeout or a dropped connection is."""
    try:
        async with session.request(
            method, url, timeout=aiohttp.ClientTimeout(total=timeout_s), **kwargs
        ) as response:
            text = await response.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = None
            return response.status, response.headers, body
    except aiohttp.ClientConnectorError as exc:
        raise VendorError(vendor, f"cannot connect: {exc}", transient=True) from exc
    except TimeoutError as exc:
        raise VendorError(vendor, f"no answer within {timeout_s:g}s", transient=True, ambiguous=True) from exc
    except aiohttp.ClientError as exc:
        raise VendorError(vendor, f"connection failed: {type(exc).__name__}: {exc}", transient=True,
                          ambiguous=True) from exc
