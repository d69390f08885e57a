"""The attribution decider: folds touches and conversions per profile in a Faust table, emits attributions."""

from __future__ import annotations

from collections.abc import Sequence

import faust
from faust.types import EventT

from agents.attribution import AttributionState, fold_attribution
from agents.base import WorkerContext, run_batches
from streams.events import ConversionRecorded, DeliveryStatusChanged, LinkClicked

__all__ = ["register_attribution_decider"]

_RELEVANT = (LinkClicked, DeliveryStatusChanged, ConversionRecorded)


def register_attribution_decider(ctx: WorkerContext) -> None:
    windows = ctx.settings.attribution
    # Keyed and partitioned like sms.events, so a profile's touches live next to its events.
    table = ctx.app.Table(
        "attribution",
        default=None,
        partitions=ctx.settings.topics.events_partitions,
        schema=faust.Schema(key_type=str, value_type=None, key_serializer="raw", value_serializer="json"),
        use_partitioner=True,
    )

    @ctx.app.agent(ctx.events_topic, name="attribution-decider")
    async def attribution_decider(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            for ev in batch:
                event = ctx.decode_event(ev.value, _RELEVANT)  # poison: skipped (dead-lettered elsewhere)
                if event is None:
                    continue
                state = AttributionState.from_json(table.get(event.profile_key))
                try:
                    new_state, attributed = fold_attribution(state, event, windows)
                except Exception as exc:  # a pure fold: this event fails every time
                    await ctx.refuse("attribution-decider", ev, exc)
                    continue
                if new_state != state:
                    table[event.profile_key] = new_state.to_json()
                if attributed is not None:
                    await ctx.emit(attributed)

        await run_batches(stream, 500, 0.05, handle)
