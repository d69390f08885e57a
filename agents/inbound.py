"""The inbound decider: folds inbound messages into consent (a Faust table) and emits ConsentChanged."""

from __future__ import annotations

from collections.abc import Sequence

import faust
from faust.types import EventT

from agents.base import WorkerContext, run_batches
from agents.consent import ConsentState, fold_consent
from streams.events import InboundReceived

__all__ = ["register_inbound_decider"]


def register_inbound_decider(ctx: WorkerContext) -> None:
    # Keyed like sms.events and partitioned by the same murmur2 hash, so a profile's consent lives in
    # the changelog partition of its events whatever the batch it was written in.
    consent_table = ctx.app.Table(
        "consent",
        default=None,
        partitions=ctx.settings.topics.events_partitions,
        schema=faust.Schema(key_type=str, value_type=None, key_serializer="raw", value_serializer="json"),
        use_partitioner=True,
    )

    @ctx.app.agent(ctx.events_topic, name="inbound-decider")
    async def inbound_decider(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            for event in await ctx.decode_events(batch, dead_letter_poison=False):
                if not isinstance(event, InboundReceived):
                    continue
                state = ConsentState.from_json(consent_table.get(event.profile_key))
                new_state, changed = fold_consent(state, event)
                if new_state != state:
                    consent_table[event.profile_key] = new_state.to_json()
                if changed is not None:
                    await ctx.emit(changed)

        await run_batches(stream, 500, 0.05, handle)
