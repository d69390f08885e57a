"""Quiet hours: may a marketing text go to this number now, in the recipient's local time?

Federal rule (TCPA): no marketing text before 8:00 or from 21:00 local time; FL, CT, MD, OK and WA end at
20:00. The recipient's time zone comes from the number (``phonenumbers.timezone``), the state from the
area code. When a number maps to several zones (an area code across a zone line, e.g. Alaska's 907), the
window must be open in *every* one of them: the strictest reading, and deterministic. A NANP number
with no geographic zone (toll-free numbers map to every zone from Guam to Samoa) or whose zones share
no window gets the contiguous US zones instead. Local times are computed with ``zoneinfo``, so the DST
change moves the window's UTC instants with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as pn_timezone

__all__ = [
    "Allowed",
    "HeldUntil",
    "QuietHoursDecision",
    "QuietSkipped",
    "QuietWindow",
    "SendKind",
    "check_quiet_hours",
    "next_open",
    "window_for",
]

FEDERAL_OPEN, FEDERAL_CLOSE = time(8, 0), time(21, 0)
STRICT_CLOSE = time(20, 0)
# Area codes of the states whose quiet hours end at 20:00 (NANPA assignments; a test cross-checks
# them against phonenumbers' geocoder).
STRICT_STATE_AREA_CODES: dict[str, frozenset[str]] = {
    "FL": frozenset({"239", "305", "321", "324", "352", "386", "407", "448", "561", "645", "656", "689",
                     "727", "728", "754", "772", "786", "813", "850", "863", "904", "941", "954"}),
    "CT": frozenset({"203", "475", "860", "959"}),
    "MD": frozenset({"227", "240", "301", "410", "443", "667"}),
    "OK": frozenset({"405", "539", "572", "580", "918"}),
    "WA": frozenset({"206", "253", "360", "425", "509", "564"}),
}
_STATE_BY_AREA_CODE = {code: state for state, codes in STRICT_STATE_AREA_CODES.items() for code in codes}
CONTIGUOUS_US_ZONES = ("America/Chicago", "America/Denver", "America/Los_Angeles", "America/New_York")
_UNKNOWN_ZONE = "Etc/Unknown"
# How far ahead a hold may look for the window (two days covers any day's window in any zone).
_SEARCH_DAYS = 3


class SendKind(StrEnum):
    """What a send request is; flow and campaign messages are marketing."""

    FLOW = "flow"
    CAMPAIGN = "campaign"
    TRANSACTIONAL = "transactional"
    AUTO_REPLY = "auto_reply"

    @property
    def is_marketing(self) -> bool:
        return self in (SendKind.FLOW, SendKind.CAMPAIGN)


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """The recipient's sending window: [opens, closes) local time in every one of ``zones``."""

    zones: tuple[str, ...]
    opens: time
    closes: time
    state: str | None = None

    def is_open(self, now_utc: datetime) -> bool:
        return all(self.opens <= now_utc.astimezone(_zone(z)).time() < self.closes for z in self.zones)


@dataclass(frozen=True, slots=True)
class Allowed:
    """The message may go now."""


@dataclass(frozen=True, slots=True)
class HeldUntil:
    """Outside the window: decide again at ``until`` (UTC), when it opens."""

    until: datetime


@dataclass(frozen=True, slots=True)
class QuietSkipped:
    """Outside the window, and the company's setting says campaigns are skipped then."""

    opens_at: datetime


QuietHoursDecision = Allowed | HeldUntil | QuietSkipped


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _has_common_window(zones: tuple[str, ...], opens: time, closes: time, now_utc: datetime) -> bool:
    return _search_open(QuietWindow(zones, opens, closes), now_utc) is not None


def _geographic_zones(phone: phonenumbers.PhoneNumber) -> tuple[str, ...]:
    # A non-geographic number (toll-free, premium) gets its whole country's zone list from phonenumbers,
    # which says nothing about where the recipient is.
    number_type = phonenumbers.number_type(phone)
    if not phonenumbers.is_number_type_geographical(number_type, phone.country_code or 0):
        return ()
    return tuple(sorted(z for z in pn_timezone.time_zones_for_number(phone) if z != _UNKNOWN_ZONE))


def window_for(phone: phonenumbers.PhoneNumber, now_utc: datetime | None = None) -> QuietWindow:
    """The sending window of a parsed number: its zones (see the module doc) and its state's hours."""
    state = None
    if phone.country_code == 1:
        area_code = str(phone.national_number)[:3]
        state = _STATE_BY_AREA_CODE.get(area_code)
    closes = STRICT_CLOSE if state else FEDERAL_CLOSE
    zones = _geographic_zones(phone)
    probe = now_utc or datetime(2026, 1, 15, tzinfo=UTC)
    if zones and _has_common_window(zones, FEDERAL_OPEN, closes, probe):
        return QuietWindow(zones, FEDERAL_OPEN, closes, state)
    if phone.country_code == 1:
        return QuietWindow(CONTIGUOUS_US_ZONES, FEDERAL_OPEN, closes, state)
    # Outside NANP with no usable zones: the country's first zone by name, so the choice is stable.
    country = tuple(sorted(z for z in pn_timezone.time_zones_for_number(phone) if z != _UNKNOWN_ZONE))
    return QuietWindow(zones[:1] or country[:1] or ("UTC",), FEDERAL_OPEN, closes, state)


def _search_open(window: QuietWindow, now_utc: datetime) -> datetime | None:
    # A common window always starts at some zone's opening instant, so those are the only candidates.
    candidates = []
    for name in window.zones:
        local_day = now_utc.astimezone(_zone(name)).date()
        for offset in range(-1, _SEARCH_DAYS):
            day = local_day + timedelta(days=offset)
            opening = datetime.combine(day, window.opens, tzinfo=_zone(name)).astimezone(UTC)
            if opening > now_utc:
                candidates.append(opening)
    for candidate in sorted(candidates):
        if window.is_open(candidate):
            return candidate
    return None


def next_open(window: QuietWindow, now_utc: datetime) -> datetime | None:
    """None while the window is open, else the UTC instant at which it next opens."""
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    if window.is_open(now_utc):
        return None
    opening = _search_open(window, now_utc)
    if opening is None:  # window_for never builds such a window; a hand-made one may
        raise ValueError(f"the zones {window.zones} share no sending window")
    return opening


def check_quiet_hours(
    now_utc: datetime,
    phone: phonenumbers.PhoneNumber,
    kind: SendKind,
    campaign_policy: str = "hold",
) -> QuietHoursDecision:
    """Flow messages are held until the window opens; campaigns are held or skipped per the company's
    ``campaign_quiet_hours``; transactional messages and auto replies ignore quiet hours."""
    if not kind.is_marketing:
        return Allowed()
    if campaign_policy not in ("hold", "skip"):
        raise ValueError(f"campaign_quiet_hours must be 'hold' or 'skip', got {campaign_policy!r}")
    opening = next_open(window_for(phone, now_utc), now_utc)
    if opening is None:
        return Allowed()
    if kind is SendKind.CAMPAIGN and campaign_policy == "skip":
        return QuietSkipped(opens_at=opening)
    return HeldUntil(until=opening)
