"""Masking of phone numbers for logs and error messages: no log line ever holds a full number."""

from __future__ import annotations

import re

__all__ = ["mask_phone", "redact_phones"]

# Anything that looks like a phone number inside free text: an optional +, then 7 to 15 digits, standing
# alone (or after a percent-encoded +). Digits inside a word (hex request ids, SIDs) are left alone, so
# ids stay searchable in the logs.
_PHONE_IN_TEXT = re.compile(r"(?:(?<=%2[Bb])|(?<![\w%]))\+?\d{7,15}(?!\w)")


def mask_phone(number: str) -> str:
    """``+14155550100`` -> ``+1415***0100``; short numbers keep only their last two characters."""
    if len(number) >= 10:
        return f"{number[:5]}***{number[-4:]}"
    if len(number) > 4:
        return f"***{number[-2:]}"
    return "***"


def redact_phones(text: str) -> str:
    """``text`` with every phone-number-like run of digits masked (for exception messages in logs)."""
    return _PHONE_IN_TEXT.sub(lambda match: mask_phone(match.group(0)), text)
