"""The normalizer agent: ``sms.webhooks.raw`` → domain events on ``sms.events`` (or the dead letters)."""

from __future__ import annotations

from collections.abc import Sequence

import faust
from faust.types import EventT

from agents.base import WorkerContext, run_batches
from agents.normalize import NormalizationError, normalize
from streams.codec import DecodeError
from streams.events import RawWebhook

__all__ = ["register_normalizer"]


def register_normalizer(ctx: WorkerContext) -> None:
    @ctx.app.agent(ctx.raw_topic, name="normalizer")
    async def normalizer(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            for ev in batch:
                try:
                    raw = ctx.codec.decode(ev.value)
                    if not isinstance(raw, RawWebhook):
                        raise NormalizationError(f"expected RawWebhook, got {type(raw).__name__}")
                    await ctx.emit(normalize(raw, ctx.companies))
                except (DecodeError, NormalizationError) as exc:
                    await ctx.dead_letter(ev.key, ev.value, exc.reason, ctx.settings.topics.raw)

        await run_batches(stream, 500, 0.05, handle)
