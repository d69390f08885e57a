"""Segment counting against DOMAIN.md section 4's reference vectors (Twilio's segment calculator)."""

from __future__ import annotations

import pytest

from agents.send.segments import Encoding, count_segments, price_micros


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        ("0" * 160, Encoding.GSM7, 1),
        ("0" * 161, Encoding.GSM7, 2),
        ("0" * 306, Encoding.GSM7, 2),
        ("0" * 307, Encoding.GSM7, 3),
        ("😜" + "a" * 68, Encoding.UCS2, 1),
        ("😜" + "a" * 69, Encoding.UCS2, 2),
        ("€" + "0" * 158, Encoding.GSM7, 1),
        ("€" + "0" * 159, Encoding.GSM7, 2),
        ("Á" * 70, Encoding.UCS2, 1),
        ("Á" * 71, Encoding.UCS2, 2),
        ("", Encoding.GSM7, 1),
    ],
)
def test_reference_vectors(body: str, encoding: Encoding, segments: int) -> None:
    got = count_segments(body)
    assert (got.encoding, got.segments) == (encoding, segments)


@pytest.mark.parametrize("ch", list("\f^{}\\[~]|€"))
def test_extension_characters_cost_two_septets(ch: str) -> None:
    assert count_segments(ch * 80).units == 160
    assert count_segments(ch * 80).segments == 1
    assert count_segments(ch * 81).segments == 2


@pytest.mark.parametrize("ch", ["ç", "á", "í", "ó", "ú", "“", "”", "’", "😜"])
def test_one_non_gsm_character_switches_the_whole_message_to_ucs2(ch: str) -> None:
    assert count_segments("Hello " + ch).encoding is Encoding.UCS2


def test_gsm_basic_set_accents_stay_gsm7() -> None:
    # é, Ç, ñ, ü, £ are in the GSM-7 basic set, unlike ç or á.
    assert count_segments("Café Ça niño über £5").encoding is Encoding.GSM7


def test_an_extension_character_is_never_split_across_parts() -> None:
    # 152 digits then € (2 septets): the € does not fit in part one's 153rd septet, so it moves on.
    assert count_segments("0" * 152 + "€" + "0" * 152).segments == 3
    assert count_segments("0" * 151 + "€" + "0" * 153).segments == 2


def test_a_surrogate_pair_is_never_split_across_parts() -> None:
    # 66 units then an emoji (2 units): part one cannot take it whole.
    assert count_segments("a" * 66 + "😜" + "a" * 66).segments == 3
    assert count_segments("a" * 65 + "😜" + "a" * 67).segments == 2


def test_price_is_segments_times_the_company_price() -> None:
    assert price_micros(3, 7900) == 23700
    with pytest.raises(ValueError, match="segments"):
        price_micros(0, 7900)
    with pytest.raises(ValueError, match="price_per_segment_micros"):
        price_micros(1, -1)
