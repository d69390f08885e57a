"""Quiet hours in the recipient's zone: federal 8:00-21:00, stricter states, several zones, DST."""

from __future__ import annotations

from datetime import UTC, datetime

import phonenumbers
import pytest
from phonenumbers import geocoder

from agents.send.quiet_hours import (
    CONTIGUOUS_US_ZONES,
    STRICT_STATE_AREA_CODES,
    Allowed,
    HeldUntil,
    QuietSkipped,
    QuietWindow,
    SendKind,
    check_quiet_hours,
    next_open,
    window_for,
)

LA = "+14155550100"  # San Francisco: America/Los_Angeles
NY = "+12125551234"  # New York: America/New_York
MIAMI = "+13055550100"  # Florida: 8:00-20:00
SEATTLE = "+12065550100"  # Washington State: 8:00-20:00
PHOENIX = "+16025550100"  # Arizona keeps MST all year
ALASKA = "+19075550100"  # 907 spans America/Anchorage and America/Adak
TOLL_FREE = "+18005550100"  # maps to every NANP zone


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _check(number: str, now: datetime, kind: SendKind = SendKind.FLOW, policy: str = "hold") -> object:
    return check_quiet_hours(now, phonenumbers.parse(number), kind, policy)


@pytest.mark.parametrize(
    ("number", "now", "expected"),
    [
        # 7:00 PST: held until 8:00 PST = 16:00 UTC.
        (LA, _utc(2026, 1, 15, 15, 0), HeldUntil(_utc(2026, 1, 15, 16, 0))),
        (LA, _utc(2026, 1, 15, 16, 0), Allowed()),
        # 9:00 EST: open; the same instant is 6:00 in San Francisco.
        (NY, _utc(2026, 1, 15, 14, 0), Allowed()),
        # 20:59 EST open, 21:00 EST closed until 8:00 EST tomorrow.
        (NY, _utc(2026, 1, 16, 1, 59), Allowed()),
        (NY, _utc(2026, 1, 16, 2, 0), HeldUntil(_utc(2026, 1, 16, 13, 0))),
        # 20:30 EDT: open in New York, closed in Florida (20:00), held until 8:00 EDT = 12:00 UTC.
        (NY, _utc(2026, 7, 2, 0, 30), Allowed()),
        (MIAMI, _utc(2026, 7, 2, 0, 30), HeldUntil(_utc(2026, 7, 2, 12, 0))),
        (SEATTLE, _utc(2026, 7, 2, 3, 0), HeldUntil(_utc(2026, 7, 2, 15, 0))),
        # Arizona has no DST: 8:00 MST is 15:00 UTC in July too.
        (PHOENIX, _utc(2026, 7, 2, 14, 59), HeldUntil(_utc(2026, 7, 2, 15, 0))),
    ],
)
def test_window_in_the_recipients_zone(number: str, now: datetime, expected: object) -> None:
    assert _check(number, now) == expected


def test_dst_spring_forward_moves_the_opening_an_hour_earlier_in_utc() -> None:
    # US DST starts 2026-03-08: 8:00 New York time is 13:00 UTC on the 7th, 12:00 UTC on the 8th.
    assert _check(NY, _utc(2026, 3, 7, 12, 30)) == HeldUntil(_utc(2026, 3, 7, 13, 0))
    assert _check(NY, _utc(2026, 3, 8, 12, 30)) == Allowed()
    # In the small hours of the change day, the hold ends at the new (EDT) opening.
    assert _check(NY, _utc(2026, 3, 8, 6, 0)) == HeldUntil(_utc(2026, 3, 8, 12, 0))


def test_dst_fall_back_moves_the_opening_an_hour_later_in_utc() -> None:
    # US DST ends 2026-11-01: 8:00 New York time is 12:00 UTC on Oct 31, 13:00 UTC on Nov 1.
    assert _check(NY, _utc(2026, 10, 31, 12, 30)) == Allowed()
    assert _check(NY, _utc(2026, 11, 1, 12, 30)) == HeldUntil(_utc(2026, 11, 1, 13, 0))
    # 21:00 EST on Nov 1 is 02:00 UTC Nov 2; one hour earlier it was still open.
    assert _check(NY, _utc(2026, 11, 2, 1, 59)) == Allowed()
    assert _check(NY, _utc(2026, 11, 2, 2, 0)) == HeldUntil(_utc(2026, 11, 2, 13, 0))


def test_a_number_in_two_zones_needs_the_window_open_in_both() -> None:
    window = window_for(phonenumbers.parse(ALASKA))
    assert window.zones == ("America/Adak", "America/Anchorage")
    # 17:30 UTC in January: 8:30 in Anchorage but 7:30 in Adak, so held until 8:00 in Adak.
    assert _check(ALASKA, _utc(2026, 1, 15, 17, 30)) == HeldUntil(_utc(2026, 1, 15, 18, 0))
    # 06:00 UTC: 21:00 in Anchorage (closed) though 20:00 in Adak.
    assert isinstance(_check(ALASKA, _utc(2026, 1, 16, 6, 0)), HeldUntil)


def test_a_non_geographic_number_uses_the_contiguous_us() -> None:
    window = window_for(phonenumbers.parse(TOLL_FREE))
    assert window.zones == CONTIGUOUS_US_ZONES
    # 8:00 in Los Angeles is the earliest moment open in all four zones.
    assert _check(TOLL_FREE, _utc(2026, 1, 15, 14, 0)) == HeldUntil(_utc(2026, 1, 15, 16, 0))


def test_transactional_and_auto_replies_ignore_quiet_hours() -> None:
    three_am = _utc(2026, 1, 15, 8, 0)  # 3:00 in New York
    assert _check(NY, three_am, SendKind.TRANSACTIONAL) == Allowed()
    assert _check(NY, three_am, SendKind.AUTO_REPLY) == Allowed()
    assert _check(NY, three_am, SendKind.FLOW) == HeldUntil(_utc(2026, 1, 15, 13, 0))


def test_campaigns_are_held_or_skipped_per_the_company_setting() -> None:
    three_am = _utc(2026, 1, 15, 8, 0)
    assert _check(NY, three_am, SendKind.CAMPAIGN, "hold") == HeldUntil(_utc(2026, 1, 15, 13, 0))
    assert _check(NY, three_am, SendKind.CAMPAIGN, "skip") == QuietSkipped(_utc(2026, 1, 15, 13, 0))
    # Flows are always held, whatever the campaign setting says.
    assert _check(NY, three_am, SendKind.FLOW, "skip") == HeldUntil(_utc(2026, 1, 15, 13, 0))
    with pytest.raises(ValueError, match="campaign_quiet_hours"):
        _check(NY, three_am, SendKind.CAMPAIGN, "never")


def test_naive_times_and_windows_without_overlap_are_refused() -> None:
    # Three zones 8 hours apart: no 13-hour window is open in all of them at once.
    ny = window_for(phonenumbers.parse(NY))
    window = QuietWindow(("Etc/GMT", "Etc/GMT-8", "Etc/GMT+8"), ny.opens, ny.closes)
    with pytest.raises(ValueError, match="share no sending window"):
        next_open(window, _utc(2026, 1, 15, 0, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_open(window, datetime(2026, 1, 15))


def test_a_number_outside_nanp_uses_its_own_zone() -> None:
    london = phonenumbers.parse("+447911123456")
    # 7:30 in London in January (GMT): held until 8:00.
    assert check_quiet_hours(_utc(2026, 1, 15, 7, 30), london, SendKind.FLOW) == HeldUntil(
        _utc(2026, 1, 15, 8, 0))


def test_strict_state_table_agrees_with_the_phonenumbers_geocoder() -> None:
    # Every area code geocoded to one of the five states is in the table, and nothing else is.
    markers = {"FL": "Florida", "CT": "Connecticut", "MD": "Maryland", "OK": "Oklahoma",
               "WA": "Washington State"}
    geocoded: dict[str, set[str]] = {state: set() for state in markers}
    for area_code in range(200, 1000):
        number = phonenumbers.parse(f"+1{area_code}5550100")
        where = geocoder.description_for_number(number, "en")
        for state, name in markers.items():
            if where == name or where.endswith(f", {state}"):
                geocoded[state].add(str(area_code))
    assert {state: set(codes) for state, codes in STRICT_STATE_AREA_CODES.items()} == geocoded
