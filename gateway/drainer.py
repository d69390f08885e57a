"""The spool drainer: forwards spooled records to Kafka in order, deleting a segment only once every
record in it was acknowledged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from gateway.spool import Spool, SpooledRecord, read_segment

__all__ = ["RecordSender", "SpoolDrainer"]

log = logging.getLogger(__name__)


class RecordSender(Protocol):
    """What the drainer needs of ``streams.producer.EventLogProducer``."""

    def send_nowait(self, topic: str, key: bytes | None, value: bytes, /) -> asyncio.Future[None]: ...


class SpoolDrainer:
    """Runs as a background task of the gateway for as long as it serves."""

    def __init__(
        self,
        spool: Spool,
        sender: RecordSender,
        topic: str,
        *,
        idle_s: float = 0.1,
        retry_s: float = 1.0,
        on_forwarded: Callable[[int], None] | None = None,
    ) -> None:
        self._spool = spool
        self._sender = sender
        self._topic = topic
        self._idle_s = idle_s
        self._retry_s = retry_s
        self._on_forwarded = on_forwarded

    async def run(self) -> None:
        """Forward segments oldest first, forever; a failed segment is retried whole after a pause."""
        while True:
            segments = self._spool.sealed_segments()
            if not segments:
                if self._spool.depth:
                    self._spool.seal()
                await asyncio.sleep(self._idle_s)
                continue
            path = segments[0]
            records = await asyncio.to_thread(read_segment, path)
            if await self._forward(records):
                self._spool.remove(path)
                log.info("spool: forwarded %d records of %s to Kafka", len(records), path.name)
                if self._on_forwarded is not None:
                    self._on_forwarded(len(records))
            else:
                await asyncio.sleep(self._retry_s)

    async def _forward(self, records: list[SpooledRecord]) -> bool:
        # Pipelined in order: the idempotent producer keeps per-partition order across retries.
        futures: list[asyncio.Future[None]] = []
        failure: BaseException | None = None
        try:
            for record in records:
                futures.append(self._sender.send_nowait(self._topic, record.key, record.value))
        except Exception as exc:
            failure = exc
        results = await asyncio.gather(*futures, return_exceptions=True)
        failure = failure or next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            log.warning("spool: Kafka did not acknowledge a spooled record (%s); retrying", failure)
            return False
        return True
