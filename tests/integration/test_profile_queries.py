"""The query side: consent and timeline pages (Redis, then ClickHouse) equal the fold; companies fenced."""

from __future__ import annotations

import pytest
import redis

from config import Settings
from projections.clickhouse import clickhouse_client
from projections.fold import unique_events
from projections.queries import ProfileQueries, QueryError, timeline_item
from smsfold.workload import generate_events
from streams.events import Event
from tests.integration.projection_helpers import private_settings, produce, running, wait_folded

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def folded(stack_settings: Settings) -> tuple[Settings, list[Event]]:
    # Redis keeps 5 entries per profile; profiles have ~20 events, so pages must continue in ClickHouse.
    base = stack_settings.model_copy(update={"projector": stack_settings.projector.model_copy(
        update={"timeline_entries": 5})})
    settings = private_settings(base)
    events = list(generate_events(12, messages_per_profile=10, seed=5))
    total = produce(settings, events + events[:40])
    with running(settings, "clickhouse", "redis") as runners:
        wait_folded(runners, total)
    return settings, events


def _queries(settings: Settings) -> ProfileQueries:
    return ProfileQueries(redis.Redis.from_url(settings.redis.url), settings.redis.key_prefix,
                          lambda: clickhouse_client(settings.clickhouse), settings.projector.timeline_entries)


@pytest.mark.parametrize("limit", [1, 3, 7])
def test_paging_through_the_timeline_equals_the_fold(
    folded: tuple[Settings, list[Event]], limit: int
) -> None:
    settings, events = folded
    queries = _queries(settings)
    for profile in sorted({e.profile_key for e in events})[:4]:
        company, phone = profile.split(":", 1)
        unique = unique_events(e.model_dump() for e in events).values()
        mine = [e for e in unique if e["profile_key"] == profile]
        expected = [timeline_item(e) for e in sorted(mine, key=lambda e: (e["occurred_at"], e["event_id"]),
                                                      reverse=True)]
        got, cursor, pages = [], None, 0
        while True:
            page = queries.timeline(company, phone, limit=limit, cursor=cursor)
            got += page.items
            pages += 1
            assert len(page.items) <= limit
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert len(expected) > settings.projector.timeline_entries  # the pages crossed into ClickHouse
        assert got == expected
        assert pages == -(-len(expected) // limit)


def test_consent_equals_the_latest_version(folded: tuple[Settings, list[Event]]) -> None:
    settings, events = folded
    queries = _queries(settings)
    latest: dict[str, Event] = {}
    for e in events:
        if e.event_type == "ConsentChanged" and (e.profile_key not in latest or
                                                e.version > latest[e.profile_key].version):  # type: ignore[attr-defined]
            latest[e.profile_key] = e
    assert latest, "the workload has consent changes"
    for profile, change in latest.items():
        company, phone = profile.split(":", 1)
        view = queries.consent(company, phone)
        assert view is not None
        assert (view.status, view.version) == (change.status, change.version)  # type: ignore[attr-defined]


def test_another_company_sees_nothing_and_cannot_reuse_a_cursor(folded: tuple[Settings, list[Event]]) -> None:
    settings, events = folded
    queries = _queries(settings)
    acme = next(e for e in events if e.company_id == "acme" and e.event_type == "ConsentChanged")
    phone = acme.phone
    assert queries.consent("acme", phone) is not None
    # globex asking for acme's customer gets nothing: the company is part of the key.
    assert queries.consent("globex", phone) is None
    assert queries.timeline("globex", phone).items == []
    page = queries.timeline("acme", phone, limit=2)
    assert page.next_cursor is not None
    with pytest.raises(QueryError, match="cursor: was issued for another profile"):
        queries.timeline("globex", phone, cursor=page.next_cursor)
    with pytest.raises(QueryError, match="cursor: not a cursor"):
        queries.timeline("acme", phone, cursor="garbage!")


def test_bad_input_names_the_field(folded: tuple[Settings, list[Event]]) -> None:
    queries = _queries(folded[0])
    with pytest.raises(QueryError, match="^phone: '4155550100' is not an E.164"):
        queries.consent("acme", "4155550100")
    with pytest.raises(QueryError, match="^company_id:"):
        queries.timeline("acme:+1415", "+14155550100")
    with pytest.raises(QueryError, match="^limit:"):
        queries.timeline("acme", "+14155550100", limit=0)
