"""Form bodies (``application/x-www-form-urlencoded``), as Twilio posts them: parsed once in the gateway
(to verify and route) and again in the normalizer, so both use this parser rather than ``parse_qsl``,
which unquotes every field and was most of the normalizer's time for a Twilio webhook."""

from __future__ import annotations

from urllib.parse import unquote_plus

__all__ = ["FormError", "parse_form", "unquote_plus_ascii"]

_HEXDIGITS = "0123456789ABCDEFabcdef"
_HEX = {(a + b).encode(): bytes.fromhex(a + b) for a in _HEXDIGITS for b in _HEXDIGITS}


class FormError(ValueError):
    """A body that is not a form: not UTF-8, or a field without ``=`` (``field``, to be redacted)."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def unquote_plus_ascii(text: str) -> str:
    """``unquote_plus(text, errors="strict")``, with fewer steps for the ASCII text a form body holds
    (the same %XX table, a malformed escape kept as is); a test compares the two."""
    if not text.isascii():
        return unquote_plus(text, errors="strict")
    first, *rest = text.replace("+", " ").encode("ascii").split(b"%")
    out = [first]
    for item in rest:
        byte = _HEX.get(item[:2])
        out += (b"%", item) if byte is None else (byte, item[2:])
    return b"".join(out).decode("utf-8")


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """``parse_qsl(body, keep_blank_values=True, strict_parsing=True)``, without unquoting the many fields
    that need none; raises :class:`FormError`."""
    if not body:
        return []
    try:
        fields: list[tuple[str, str]] = []
        for piece in body.decode("utf-8").split("&"):
            name, sep, value = piece.partition("=")
            if not sep:
                raise FormError("bad field", piece)
            if "%" in name or "+" in name:
                name = unquote_plus_ascii(name)
            if "%" in value or "+" in value:
                value = unquote_plus_ascii(value)
            fields.append((name, value))
        return fields
    except UnicodeDecodeError:
        raise FormError("not valid UTF-8") from None
