"""The projectors inside the worker: confluent-kafka runners in threads, started and stopped with Faust.

They are not Faust agents on purpose: each projection has its own consumer group (so it replays alone
with a fresh group, and a slow store never holds back the deciders), commits only after its write, and
runs on librdkafka, which folds several times faster than a Faust agent on aiokafka.
"""

from __future__ import annotations

import asyncio
import logging
import os

import faust

from agents.base import WorkerContext
from projections.projectors import ProjectorThreads

__all__ = ["register_projectors"]

log = logging.getLogger("smsfold.worker")


# The latency stage each projection's writes complete (the seed's panels: event log, timeline).
_STAGE = {"clickhouse": "event_log", "redis": "timeline"}


def register_projectors(ctx: WorkerContext) -> None:
    names = ctx.settings.projector.names
    if not names:
        return
    threads = ProjectorThreads(
        names, ctx.settings,
        on_written=lambda name, events: ctx.metrics.observe_projected(_STAGE.get(name, name), events),
    )

    @ctx.app.service
    class _Projectors(faust.Service):
        """Starts the projector threads with the worker and stops them, batch finished, with it."""

        async def on_start(self) -> None:
            threads.start()

        @faust.Service.task
        async def _watch(self) -> None:
            # A projector thread only dies on an unexpected error: stop the worker like an agent would.
            while not self.should_stop:
                await asyncio.sleep(1.0)
                if not self.should_stop and not threads.alive():
                    log.critical("a projector thread died; exiting, its batch not committed")
                    logging.shutdown()
                    os._exit(70)

        async def on_stop(self) -> None:
            await asyncio.to_thread(threads.stop)
