"""The form parser (streams/forms.py): the same answers as the standard library's, faster."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote_plus

from hypothesis import example, given
from hypothesis import strategies as st

from streams.forms import FormError, parse_form, unquote_plus_ascii

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
        got: str | type[UnicodeDecodeError] = unquote_plus_ascii(text)
    except UnicodeDecodeError:
        got = UnicodeDecodeError
    assert got == expected


@given(st.lists(st.tuples(values, values), max_size=6), st.sampled_from(["", "&", "&&", "novalue"]))
@example([("To", "+16465550142")], "")
def test_parse_form_matches_the_standard_library(fields: list[tuple[str, str]], extra: str) -> None:
    body = "&".join(f"{name.replace('&', '%26').replace('=', '%3D')}={value.replace('&', '%26')}"
                    for name, value in fields) + extra
    try:
        expected: list[tuple[str, str]] | type[ValueError] = parse_qsl(
            body, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError:  # a field without "=", or an escape that is not UTF-8
        expected = ValueError
    try:
        got: list[tuple[str, str]] | type[ValueError] = parse_form(body.encode())
    except FormError:
        got = ValueError
    assert got == expected
