"""The Twilio form parser's unquoting: the same answers as the standard library's, faster."""

from __future__ import annotations

from urllib.parse import unquote_plus

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.vendors.twilio import _unquote_plus

# Escapes (valid, malformed, truncated, upper and lower case), pluses, ASCII and non-ASCII text.
pieces = st.sampled_from(
    ["%", "+", "%2B", "%2b", "%E2%80%9C", "%e2", "%zz", "%4", "a", "Z", " ", "é", "“", "%C3", "%A9"]
)
values = st.lists(pieces | st.text(max_size=3), max_size=12).map("".join)


@given(values)
@example("Loved+%E2%80%9Cthe+boots%E2%80%9D+0")
@example("%2B16465550142")
@example("%FF")
def test_unquote_plus_matches_the_standard_library(text: str) -> None:
    try:
        expected: str | type[UnicodeDecodeError] = unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        expected = UnicodeDecodeError
    try:
        got: str | type[UnicodeDecodeError] = _unquote_plus(text)
    except UnicodeDecodeError:
        got = UnicodeDecodeError
    assert got == expected
