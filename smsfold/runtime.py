"""Entry points that wire settings into running processes: the gateway and the Faust worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import faust
from aiohttp import web

from agents.app import create_worker_app
from config import Settings, load_companies
from gateway import KafkaRawPublisher, create_app
from streams.codec import AvroCodec
from streams.producer import EventLogProducer

__all__ = ["build_gateway", "run_gateway", "run_worker"]


def build_gateway(settings: Settings) -> web.Application:
    """The gateway app with a Kafka producer started and stopped with it."""
    producer = EventLogProducer(settings.kafka)
    publisher = KafkaRawPublisher(
        producer, AvroCodec(), settings.topics.raw, timeout_s=settings.gateway.kafka_ack_timeout_s
    )
    app = create_app(settings, load_companies(settings.companies_file), publisher)

    async def producer_ctx(_app: web.Application) -> AsyncIterator[None]:
        await producer.start()
        yield
        await producer.stop()

    app.cleanup_ctx.append(producer_ctx)
    return app


def run_gateway(settings: Settings) -> None:
    """Serve the gateway until interrupted."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    web.run_app(
        build_gateway(settings),
        host=settings.gateway.host,
        port=settings.gateway.port,
        print=None,
        access_log=None,
    )


def run_worker(settings: Settings) -> None:
    """Run the Faust worker until interrupted."""
    app = create_worker_app(settings, load_companies(settings.companies_file))
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
