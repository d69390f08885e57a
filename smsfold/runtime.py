"""Entry points that wire settings into running processes: the gateway and the Faust worker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import faust
import redis.asyncio as aioredis
from aiohttp import web

from agents.app import create_worker_app
from config import Settings, load_companies
from config.production import ProductionConfigError, check_production
from gateway import KafkaEventPublisher, KafkaRawPublisher, create_app
from gateway.drainer import SpoolDrainer
from gateway.links import KafkaEventEmitter
from gateway.logs import configure_logging
from gateway.metrics import GatewayMetrics
from gateway.spool import Spool
from projections.links import RedisLinkStore
from smsfold.profile_reads import StoreProfileReads
from streams.codec import AvroCodec
from streams.producer import EventLogProducer

__all__ = [
    "KafkaBrokerProbe",
    "build_gateway",
    "gateway_spool_dir",
    "refuse_unsafe_production",
    "run_gateway",
    "run_worker",
]


class KafkaBrokerProbe:
    """Readiness probe over the gateway's producer; caches its answer for a second so /readyz stays cheap."""

    def __init__(self, producer: EventLogProducer, ttl_s: float = 1.0) -> None:
        self._producer = producer
        self._ttl_s = ttl_s
        self._checked_at = 0.0
        self._last = False

    async def reachable(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at > self._ttl_s:
            self._last = await self._producer.reachable(timeout_s=1.0)
            self._checked_at = time.monotonic()
        return self._last


def gateway_spool_dir(settings: Settings) -> Path:
    """The gateway's spool directory: the setting, else one per port under the stack's state dir."""
    return (
        settings.gateway.spool_dir or settings.stack.state_dir / "spool" / f"gateway-{settings.gateway.port}"
    )


def build_gateway(settings: Settings) -> web.Application:
    """The gateway app with its producer, spool and spool drainer started and stopped with it."""
    producer = EventLogProducer(settings.kafka)
    codec = AvroCodec()
    timeout_s = settings.gateway.kafka_ack_timeout_s
    publisher = KafkaRawPublisher(producer, codec, settings.topics.raw, timeout_s=timeout_s)
    # The JSON API's domain events share the producer (and so its connections and batching).
    events = KafkaEventPublisher(producer, codec, settings.topics.events, timeout_s=timeout_s)
    spool = Spool(
        gateway_spool_dir(settings), settings.gateway.spool_max_bytes, settings.gateway.spool_segment_bytes
    )
    metrics = GatewayMetrics()
    # The client connects lazily, in the server's loop; closed with the app.
    redis_client: aioredis.Redis = aioredis.Redis.from_url(settings.redis.url)
    profiles = StoreProfileReads(settings, redis_client)
    app = create_app(
        settings,
        load_companies(settings.companies_file),
        publisher,
        spool=spool,
        probe=KafkaBrokerProbe(producer),
        metrics=metrics,
        events=events,
        links=RedisLinkStore(redis_client, settings.redis),
        # Clicks never wait for Kafka: the redirect is answered at once, a lost click is logged.
        clicks=KafkaEventEmitter(producer, codec, settings.topics.events),
        profiles=profiles,
    )
    drainer = SpoolDrainer(spool, producer, settings.topics.raw, on_forwarded=metrics.drained)

    async def producer_ctx(_app: web.Application) -> AsyncIterator[None]:
        # The spool opens first: records a killed predecessor left are forwarded before anything else
        # is spooled, and a second gateway on the same directory fails here.
        spool.open()
        await producer.start()
        task = asyncio.create_task(drainer.run(), name="spool-drainer")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
        spool.close()
        await redis_client.aclose()
        profiles.close()

    app.cleanup_ctx.append(producer_ctx)
    return app


def refuse_unsafe_production(settings: Settings) -> None:
    """Exit with one line naming the problem when production mode's settings are unsafe."""
    try:
        check_production(settings, load_companies(settings.companies_file))
    except ProductionConfigError as exc:
        raise SystemExit(f"smsfold: {exc}") from None


# The youngest generation is collected after this many net allocations (CPython's default is 700).
GC_THRESHOLD = (20_000, 20, 10)


def freeze_heap() -> None:
    """Once a service has started, move everything built so far (modules, settings, the app: ~110,000
    objects in the gateway) out of the cyclic collector's sight and collect the young generation less
    often. Under load the default thresholds ran a full collection of the whole heap about once a second
    (~65 ms each in the gateway, a stall for every request in flight) and ~140 young collections a
    second: ~12% of the gateway's event loop."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    logging.getLogger("smsfold").info("%d objects moved out of the collector's sight", gc.get_freeze_count())


async def _freeze_gateway_heap(_app: web.Application) -> None:
    freeze_heap()


def run_gateway(settings: Settings) -> None:
    """Serve the gateway until interrupted."""
    refuse_unsafe_production(settings)
    configure_logging(settings.log_level)
    app = build_gateway(settings)
    app.on_startup.append(_freeze_gateway_heap)
    web.run_app(
        app,
        host=settings.gateway.host,
        port=settings.gateway.port,
        print=None,
        access_log=None,
        reuse_port=settings.gateway.reuse_port,
    )


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner, which sets the root logger to DEBUG so that it can spin
    on every record: every library's debug line then builds a LogRecord that the handler drops (~5% of
    the worker's event loop at 400 inbound messages/s)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)


def run_worker(settings: Settings) -> None:
    """Run the Faust worker until interrupted."""
    refuse_unsafe_production(settings)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_worker_app(settings, load_companies(settings.companies_file))

    @app.service
    class _FrozenHeap(faust.Service):
        """The gateway's collector settings for the worker too: its heap (Faust, aiokafka, the agents'
        code) is larger, so each full collection stalls every agent for longer."""

        async def on_started(self) -> None:
            freeze_heap()

    worker = QuietWorker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
