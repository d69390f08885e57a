"""SMS segments, the billing unit: GSM-7 / UCS-2 counting as carriers (and Twilio's calculator) do it.

GSM-7 holds 160 septets in one segment and 153 per part of a concatenated message (the user data header
takes the rest); an extension character costs two septets (escape + char) and is never split across
parts. Any character outside GSM-7 makes the whole message UCS-2: 70 UTF-16 units, then 67 per part;
an astral character (most emoji) is a surrogate pair of two units and is never split either.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Encoding", "SegmentCount", "count_segments", "price_micros"]

# The GSM 03.38 basic character set (the escape 0x1B itself is not a character a message holds).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The basic set's extension table: each costs an escape septet plus itself.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_GSM7_SINGLE, _GSM7_PART = 160, 153
_UCS2_SINGLE, _UCS2_PART = 70, 67


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """How a body is encoded and how many segments (billable parts) it takes."""

    encoding: Encoding
    segments: int
    # Septets (GSM-7) or UTF-16 code units (UCS-2) the body takes.
    units: int


def _is_gsm7(body: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body)


def _unit_costs(body: str, encoding: Encoding) -> list[int]:
    if encoding is Encoding.GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in body]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in body]


def _pack(costs: list[int], part_size: int) -> int:
    # Fill parts greedily; a character that does not fit whole starts the next part.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part_size:
            parts += 1
            used = 0
        used += cost
    return parts


def count_segments(body: str) -> SegmentCount:
    """The encoding and segment count of an SMS body; an empty body is one segment."""
    encoding = Encoding.GSM7 if _is_gsm7(body) else Encoding.UCS2
    costs = _unit_costs(body, encoding)
    units = sum(costs)
    single, part = (_GSM7_SINGLE, _GSM7_PART) if encoding is Encoding.GSM7 else (_UCS2_SINGLE, _UCS2_PART)
    segments = 1 if units <= single else _pack(costs, part)
    return SegmentCount(encoding=encoding, segments=segments, units=units)


def price_micros(segments: int, price_per_segment_micros: int) -> int:
    """What a message costs: segments times the company's price per segment."""
    if segments < 1:
        raise ValueError(f"segments must be at least 1, got {segments}")
    if price_per_segment_micros < 0:
        raise ValueError(f"price_per_segment_micros must not be negative, got {price_per_segment_micros}")
    return segments * price_per_segment_micros
