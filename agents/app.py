"""The Faust worker: an app factory that registers every agent module (deciders and projectors).

Deciders read events and emit events; projectors fold ``sms.events`` into read models. Outputs go
through a librdkafka producer, and every agent works in batches acked only after the batch body ran and
Kafka acknowledged every record it sent (see ``agents.base.run_batches``): a crash re-delivers, never
loses. Deterministic event ids and guarded read-model writes make re-delivery harmless.
"""

from __future__ import annotations

import faust

from agents.attributor import register_attribution_decider
from agents.base import WorkerContext
from agents.consumer import WorkerApp
from agents.normalizer import register_normalizer
from agents.profile_decider import register_profile_decider
from agents.projectors import register_projectors
from agents.sender import register_sender
from config.companies import CompanyDirectory
from config.settings import Settings
from streams.codec import AvroCodec
from streams.producer import EventLogProducer

__all__ = ["create_worker_app"]


def _broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


def create_worker_app(settings: Settings, companies: CompanyDirectory) -> faust.App:
    """Build the Faust app with its agents; nothing connects until the worker starts."""
    kafka, topics, worker = settings.kafka, settings.topics, settings.worker
    app = WorkerApp(
        worker.app_id,
        broker=_broker_urls(kafka.bootstrap_servers),
        store=worker.store,
        topic_partitions=topics.events_partitions,
        topic_replication_factor=topics.replication_factor,
        topic_disable_leader=True,
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        broker_commit_every=worker.commit_every,
        broker_commit_interval=worker.commit_interval_s,
        fetch_max_wait_ms=worker.fetch_max_wait_ms,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Faust's producer writes the tables' changelogs (the agents' events go through ctx.producer).
        # It lingers like every other producer (aiokafka's default is 0): each produce request stores one
        # batch per partition it touches, and the embedded broker's fetch cost grows with the number of
        # batches a partition holds (README, "End to end").
        producer_linger=kafka.linger_ms / 1000,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
    )
    ctx = WorkerContext(
        app=app,
        settings=settings,
        companies=companies,
        codec=AvroCodec(),
        raw_topic=app.topic(topics.raw, key_type=bytes, value_type=bytes, partitions=topics.raw_partitions),
        events_topic=app.topic(topics.events, key_type=bytes, value_type=bytes),
        # Reports served every 2 ms: a batch waits for its acks anyway, and polling costs the loop.
        producer=EventLogProducer(kafka, poll_interval_s=0.002),
    )
    _register_producer(ctx)
    _register_metrics_endpoint(ctx)
    register_normalizer(ctx)
    register_profile_decider(ctx)
    register_attribution_decider(ctx)
    register_sender(ctx)
    register_projectors(ctx)
    return app


def _register_producer(ctx: WorkerContext) -> None:
    @ctx.app.service
    class _Producer(faust.Service):
        """Flushes the agents' producer when the worker stops. It is not closed: an agent still finishing
        a batch may send, and whatever was not acknowledged belongs to a batch that was not committed."""

        async def on_stop(self) -> None:
            await ctx.producer.flush()


def _register_metrics_endpoint(ctx: WorkerContext) -> None:
    worker = ctx.settings.worker
    if not worker.metrics_enabled:
        return

    @ctx.app.service
    class _MetricsEndpoint(faust.Service):
        """Serves the worker's Prometheus metrics while the worker runs."""

        async def on_start(self) -> None:
            ctx.metrics.serve(worker.web_port, worker.metrics_host)

        async def on_stop(self) -> None:
            ctx.metrics.close()
