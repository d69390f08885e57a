"""Which URLs smsfold shortens and redirects to: absolute http(s) only, no credentials, no tricks.

Shared by the shortener (what may be stored) and the redirect (what may be followed), so a value that
somehow reached the link map unchecked is still never redirected to.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

__all__ = ["MAX_URL_LENGTH", "UnsafeUrlError", "safe_url"]

MAX_URL_LENGTH = 2048
_SCHEMES = ("http", "https")


class UnsafeUrlError(ValueError):
    """A URL that must not be shortened or redirected to; the message says why."""


def _has_control_or_space(url: str) -> bool:
    # Browsers strip tabs and newlines inside URLs ("java\tscript:"), and C0/C1 controls or Unicode
    # separators can hide a different target from a reviewer; none belongs in a link we emit.
    return any(unicodedata.category(ch)[0] in ("C", "Z") for ch in url)


def safe_url(url: str) -> str:
    """``url`` unchanged if it is an absolute http(s) URL without credentials; else UnsafeUrlError."""
    if not url:
        raise UnsafeUrlError("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _has_control_or_space(url):
        raise UnsafeUrlError("the URL contains control or whitespace characters")
    if "\\" in url:
        # Browsers read a backslash as a slash: "https:\\evil.example" goes to evil.example.
        raise UnsafeUrlError("the URL contains a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrlError(f"the URL does not parse: {exc}") from None
    if parts.scheme.lower() not in _SCHEMES:
        scheme = parts.scheme or "(none)"
        raise UnsafeUrlError(f"only http and https URLs are allowed, not scheme {scheme[:20]!r}")
    if not url.lower().startswith(f"{parts.scheme.lower()}://"):
        raise UnsafeUrlError("the URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise UnsafeUrlError("the URL carries credentials (user info before '@')")
    if not parts.hostname:
        raise UnsafeUrlError("the URL has no host")
    if port == 0:
        raise UnsafeUrlError("the URL's port is 0")
    return url
