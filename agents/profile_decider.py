"""The profile decider: the one agent that folds each profile's events, in partition order, into a
profile state (a Faust table) and emits what follows: ConsentChanged, auto replies, send decisions and
delivery status by our message id.

It is the only writer of ConsentChanged (it assigns the per-profile version the read models guard on);
the decisions themselves are the pure ``agents.profile.decide``. Held sends live in the profile state;
a second table lists only the profiles that hold some (with the earliest release), so the hold timer
scans that short list, not every profile. Both are changelog-backed, so holds survive restarts: a
restarted worker recovers the tables and the timer releases whatever fell due meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import faust
from faust.types import EventT, TableT

from agents.base import WorkerContext, run_batches
from agents.profile import ProfileState, decide
from agents.send.fold import due_releases
from streams.events import (
    ConsentChangeRequested,
    Event,
    InboundReceived,
    MessageDelivered,
    MessageFailed,
    MessageSent,
    MessageStatusUpdated,
    SendReleased,
    SendRequested,
)

__all__ = ["register_profile_decider", "releases_due"]

log = logging.getLogger(__name__)

_CAUSES = (InboundReceived, ConsentChangeRequested, SendRequested, SendReleased, MessageSent,
           MessageDelivered, MessageFailed, MessageStatusUpdated)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def releases_due(
    held_index: Mapping[str, Any], profiles: Mapping[str, Any], now_ms: int
) -> list[SendReleased]:
    """The releases the hold timer puts on the log at ``now_ms``: every held send of every profile in
    the index whose earliest release is due."""
    due = [key for key, until in list(held_index.items()) if isinstance(until, int) and until <= now_ms]
    releases: list[SendReleased] = []
    for key in due:
        releases += due_releases(ProfileState.from_json(profiles.get(key)).outbound, now_ms)
    return releases


def register_profile_decider(ctx: WorkerContext) -> None:
    # Keyed like sms.events and partitioned by the same murmur2 hash, so a profile's state lives in
    # the changelog partition of its events whatever the batch it was written in.
    def table(name: str) -> TableT[str, Any]:
        return ctx.app.Table(
            name,
            default=None,
            partitions=ctx.settings.topics.events_partitions,
            schema=faust.Schema(key_type=str, value_type=None, key_serializer="raw", value_serializer="json"),
            use_partitioner=True,
        )

    profiles = table("profile")
    # profile key -> epoch ms of its earliest held send; absent when it holds none.
    held_index = table("held-sends")
    metrics = ctx.metrics

    @ctx.app.agent(ctx.events_topic, name="profile-decider")
    async def profile_decider(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            for ev in batch:
                # Poison is skipped here; the ClickHouse projector dead-letters it.
                event = ctx.decode_event(ev.value, _CAUSES)
                if event is None:
                    continue
                await _fold(event, ev)

        async def _fold(event: Event, ev: EventT[bytes]) -> None:
            state = ProfileState.from_json(profiles.get(event.profile_key))
            now_ms = _now_ms()
            company = ctx.companies.get(event.company_id)
            try:
                new_state, outputs = decide(state, event, company, ev.message.offset, now_ms)
            except Exception as exc:  # decide is pure: this event fails every time
                await ctx.refuse("profile-decider", ev, exc)
                return
            if new_state is not state:
                profiles[event.profile_key] = new_state.to_json()
                release = new_state.outbound.next_release_ms
                if release != state.outbound.next_release_ms:
                    if release is None:
                        held_index.pop(event.profile_key, None)
                    else:
                        held_index[event.profile_key] = release
            for output in outputs:
                await ctx.emit(output)
            if isinstance(event, InboundReceived) and new_state is not state:
                metrics.observe_stage("consent_update", [(event.received_at, event.message_type)], now_ms)

        await run_batches(stream, 500, 0.05, handle)

    @ctx.app.timer(interval=ctx.settings.worker.held_scan_interval_s)  # type: ignore[untyped-decorator]
    async def release_held_sends() -> None:
        """Put a SendReleased on the log for every held send whose window opened; the fold decides it
        again in order with the profile's other events. Releasing twice is harmless (same ids, and the
        fold ignores a release for a send no longer held)."""
        releases = releases_due(held_index, profiles, _now_ms())
        for release in releases:
            await ctx.emit(release)
        if releases:
            log.info("released %d held sends", len(releases))
