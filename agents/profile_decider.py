"""The profile decider: the one agent that folds each profile's events, in partition order, into a
profile state (a Faust table) and emits what follows: ConsentChanged and auto replies.

It is the only writer of ConsentChanged (it assigns the per-profile version the read models guard on);
the decisions themselves are the pure ``agents.profile.decide``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import faust
from faust.types import EventT

from agents.base import WorkerContext, run_batches
from agents.profile import ProfileState, decide
from streams.codec import DecodeError
from streams.events import ConsentChangeRequested, Event, InboundReceived

__all__ = ["register_profile_decider"]

_CAUSES = (InboundReceived, ConsentChangeRequested)


def register_profile_decider(ctx: WorkerContext) -> None:
    # Keyed like sms.events and partitioned by the same murmur2 hash, so a profile's state lives in
    # the changelog partition of its events whatever the batch it was written in.
    profiles = ctx.app.Table(
        "profile",
        default=None,
        partitions=ctx.settings.topics.events_partitions,
        schema=faust.Schema(key_type=str, value_type=None, key_serializer="raw", value_serializer="json"),
        use_partitioner=True,
    )
    metrics = ctx.metrics

    @ctx.app.agent(ctx.events_topic, name="profile-decider")
    async def profile_decider(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            for ev in batch:
                try:
                    event = ctx.codec.decode(ev.value)
                except DecodeError:
                    continue  # the ClickHouse projector dead-letters poison on sms.events
                if not isinstance(event, _CAUSES):
                    continue
                await _fold(event, ev.message.offset)

        async def _fold(event: Event, offset: int) -> None:
            state = ProfileState.from_json(profiles.get(event.profile_key))
            now_ms = time.time_ns() // 1_000_000
            company = ctx.companies.get(event.company_id)
            new_state, outputs = decide(state, event, company, offset, now_ms)
            if new_state is not state:
                profiles[event.profile_key] = new_state.to_json()
            for output in outputs:
                await ctx.emit(output)
            if isinstance(event, InboundReceived) and new_state is not state:
                metrics.observe_stage("consent_update", [(event.received_at, event.message_type)], now_ms)

        await run_batches(stream, 500, 0.05, handle)
