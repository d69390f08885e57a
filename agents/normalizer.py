"""The normalizer agent: ``sms.webhooks.raw`` → domain events on ``sms.events`` (or the dead letters).

A record that fails validation or hydration goes to ``sms.deadletter`` with its reason and original
bytes, and the batch goes on: one bad vendor payload never holds up the good ones behind it.
"""

from __future__ import annotations

from collections.abc import Sequence

import faust
from faust.types import EventT

from agents.base import WorkerContext, run_batches
from agents.normalize import NormalizationError, Normalizer
from streams.codec import DecodeError
from streams.events import InboundReceived, RawWebhook

__all__ = ["register_normalizer"]


def register_normalizer(ctx: WorkerContext) -> None:
    normalizer_steps = Normalizer(ctx.companies)
    metrics = ctx.metrics

    @ctx.app.agent(ctx.raw_topic, name="normalizer")
    async def normalizer(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            for ev in batch:
                try:
                    raw = ctx.codec.decode(ev.value)
                    if not isinstance(raw, RawWebhook):
                        raise NormalizationError(f"expected RawWebhook, got {type(raw).__name__}")
                    result = normalizer_steps.normalize(raw)
                except (DecodeError, NormalizationError) as exc:
                    metrics.stage_failed(getattr(exc, "stage", "validation"))
                    await ctx.dead_letter(ev.key, ev.value, exc.reason, ctx.settings.topics.raw)
                    continue
                for event in result.events:
                    await ctx.emit(event)
                    if isinstance(event, InboundReceived):
                        metrics.observe_latency(event.received_at, event.stage_times, event.message_type)
                metrics.observe_durations(result.durations)

        await run_batches(stream, 500, 0.05, handle)
