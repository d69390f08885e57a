"""Settings for every smsfold process.

Every endpoint is a setting: the same code runs against the embedded stack (the defaults, on private
ports) or against external clusters. Environment variables use the ``SMSFOLD_`` prefix and ``__`` for
nesting, e.g. ``SMSFOLD_KAFKA__BOOTSTRAP_SERVERS=broker-1:9092,broker-2:9092``. Nothing here reads the
environment at import: call :func:`load_settings` from an entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AckBudgets",
    "AttributionSettings",
    "ClickHouseSettings",
    "GatewaySettings",
    "KafkaSettings",
    "ProjectorSettings",
    "RedisSettings",
    "Settings",
    "StackSettings",
    "TopicSettings",
    "VendorSettings",
    "WorkerSettings",
    "load_settings",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    """Where the Kafka-protocol broker is and how clients talk to it."""

    bootstrap_servers: str = "127.0.0.1:19092"
    # Short group timeouts make a consumer group join take ~3 s on the embedded broker instead of ~25 s.
    # Production clusters should use the client defaults (set these to 45000 / 3000).
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1500
    # How long a producer keeps retrying one record before it reports failure.
    delivery_timeout_ms: int = 30000
    # How long the producer gathers records into one batch. 5 ms instead of 2 ms: the gateway's rate is the
    # same, but the broker (sharing the gateway's cores) spends ~26 us per record instead of 37-46 us and
    # librdkafka's broker thread wakes half as often; an ack takes up to 3 ms longer.
    linger_ms: int = 5
    # The longest the projectors' fetch waits for data. Kafka answers a waiting fetch as soon as data
    # arrives, so this only bounds idle polling there; the embedded broker (Tansu) answers only when the
    # wait is over, so on it every hop costs up to this long. The worker's Faust consumer has its own
    # (worker.fetch_max_wait_ms).
    fetch_max_wait_ms: int = Field(default=50, ge=1, le=10_000)
    # Loopback brokers gain nothing from compression; clusters across a network usually want lz4.
    compression_type: str = "none"


class TopicSettings(_Frozen):
    """Topic names and their partition counts; topics are always created explicitly."""

    raw: str = "sms.webhooks.raw"
    events: str = "sms.events"
    deadletter: str = "sms.deadletter"
    raw_partitions: int = 12
    events_partitions: int = 12
    deadletter_partitions: int = 3
    replication_factor: int = 1


class ClickHouseSettings(_Frozen):
    """ClickHouse native-protocol endpoint and the database smsfold owns."""

    host: str = "127.0.0.1"
    port: int = 19000
    http_port: int = 18123
    database: str = "smsfold"
    user: str = "default"
    password: SecretStr = SecretStr("")


class RedisSettings(_Frozen):
    """Redis endpoint and the key prefix smsfold owns."""

    url: str = "redis://127.0.0.1:16379/0"
    key_prefix: str = "smsfold"


class AckBudgets(_Frozen):
    """Seconds a webhook waits for Kafka's ack before it is spooled instead: about half each vendor's
    timeout (Twilio ~15 s, Telnyx 2 s, Bandwidth 10 s), so the vendor still gets its 2xx in time."""

    twilio: float = 7.0
    telnyx: float = 1.0
    bandwidth: float = 5.0


class GatewaySettings(_Frozen):
    """The aiohttp gateway: where it listens and the public URL vendors sign against."""

    host: str = "127.0.0.1"
    port: int = 18080
    # The URL vendors call. Twilio signs the URL it called, which differs from what the gateway sees
    # behind a proxy or load balancer, so signature checks use this base, not the request's Host.
    public_base_url: str = "http://127.0.0.1:18080"
    # How long a webhook may wait for Kafka's acknowledgement before it is answered 503.
    kafka_ack_timeout_s: float = 5.0
    max_body_bytes: int = 64 * 1024
    ack_budgets: AckBudgets = Field(default_factory=AckBudgets)
    # The local spool that holds requests Kafka did not acknowledge within budget. One directory per
    # gateway process; by default ``<stack.state_dir>/spool/gateway-<port>``.
    spool_dir: Path | None = None
    # At the quota the gateway answers 503 with Retry-After instead of spooling more.
    spool_max_bytes: int = 256 * 1024 * 1024
    spool_segment_bytes: int = 1024 * 1024
    retry_after_s: int = 5
    # The Telnyx signature timestamp may be this far from the gateway's clock.
    telnyx_tolerance_s: int = 300
    # Several gateway processes may share the port (SO_REUSEPORT), each with its own spool directory.
    reuse_port: bool = False
    # /l/{code} per client address: a token bucket of link_burst requests refilled at link_rate_per_s.
    link_rate_per_s: float = Field(default=10.0, gt=0)
    link_burst: float = Field(default=30.0, ge=1)


class WorkerSettings(_Frozen):
    """The Faust worker."""

    app_id: str = "smsfold"
    # Prometheus /metrics of the worker (stage counters and latency histograms) listen here.
    web_port: int = 16066
    metrics_enabled: bool = True
    metrics_host: str = "127.0.0.1"
    # Faust table store: memory:// in tests and the embedded stack, rocksdb:// in production.
    store: str = "memory://"
    # Faust commits the deciders' offsets after this many acked records or this often.
    commit_every: int = 1000
    commit_interval_s: float = 1.0
    # How often the hold timer looks for held sends whose sending window has opened.
    held_scan_interval_s: float = Field(default=15.0, gt=0)
    # The sender agent's batch: approvals sent concurrently per sending number, acked together.
    sender_batch_size: int = Field(default=200, ge=1)
    # The Faust consumer's fetch wait (Faust hard-codes 1,500 ms; the worker's consumer thread sets this).
    # On Tansu each hop into an agent costs up to this long: 50 ms took gateway -> normalizer from ~450 to
    # ~60 ms p50. (50 ms once made rebalances hang and lose records in Faust; agents/consumer.py fixes both.)
    fetch_max_wait_ms: int = Field(default=50, ge=1, le=10_000)


class VendorSettings(_Frozen):
    """Outbound SMS vendors: which one sends, their API endpoints, rate limits, retries, the simulator."""

    # "simulated" is the default for the demo and load tests: nothing leaves the machine.
    default: Literal["simulated", "twilio", "telnyx"] = "simulated"
    twilio_api_base: str = "https://api.twilio.com"
    telnyx_api_base: str = "https://api.telnyx.com"
    twilio_lookup_base: str = "https://lookups.twilio.com"
    request_timeout_s: float = 10.0
    # Transient errors (429, 5xx, timeouts) are retried this often with exponential backoff.
    max_attempts: int = Field(default=4, ge=1)
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    # Messages per second per sending number (US carrier norms); the bucket holds burst_s of them.
    long_code_mps: float = 1.0
    toll_free_mps: float = 3.0
    short_code_mps: float = 100.0
    burst_s: float = 1.0
    # The simulated vendor: lognormal delivery delay (median, sigma) and failure rate per error code.
    simulated_delay_median_ms: float = 800.0
    simulated_delay_sigma: float = 0.6
    simulated_failure_rates: dict[str, float] = Field(
        default_factory=lambda: {"30003": 0.02, "30006": 0.01, "30007": 0.005}
    )
    # Where the simulator posts its Twilio-shaped status callbacks, relative to the gateway's public URL.
    simulated_status_path: str = "/webhooks/twilio/status"

class ProjectorSettings(_Frozen):
    """The read-model projectors: one confluent-kafka consumer group per projection."""

    # Group ids are ``{group_prefix}-{name}``; a fresh prefix replays ``sms.events`` from the start.
    group_prefix: str = "smsfold-projector"
    # Which projections the worker runs alongside its agents; `smsfold projector` runs one alone.
    names: tuple[str, ...] = ("clickhouse", "redis")
    # An insert carries up to batch_size records or what arrived within batch_seconds. ClickHouse wants
    # big inserts: 10,000 rows per insert fold ~3x faster than 1,000 (one part per table per insert).
    # The window bounds end-to-end latency when traffic is light: a quarter of a second keeps inserts at
    # most four a second per projector (a full batch goes at once) and leaves room for p99 <= 1 s from
    # gateway receipt to projection (0.5 s made the ClickHouse hop alone ~0.75 s at p99).
    batch_size: int = Field(default=10_000, ge=1)
    batch_seconds: float = Field(default=0.25, gt=0)
    # A rebuild reads a backlog, not a trickle: bigger batches mean fewer parts for ClickHouse to write
    # and merge (Redis gets them in chunks either way, projections/redis_store.py).
    rebuild_batch_size: int = Field(default=50_000, ge=1)
    max_backoff_s: float = Field(default=5.0, gt=0)
    # Latest timeline entries kept per profile in Redis; older pages come from ClickHouse.
    timeline_entries: int = Field(default=200, ge=1)


class AttributionSettings(_Frozen):
    """Last-touch attribution windows (Klaviyo's SMS defaults)."""

    click_window_s: int = Field(default=5 * 24 * 3600, ge=0)
    delivery_window_s: int = Field(default=12 * 3600, ge=0)


class StackSettings(_Frozen):
    """The embedded stack: private broker, ClickHouse and Redis processes under ``state_dir``."""

    state_dir: Path = PROJECT_ROOT / ".smsfold"
    broker_port: int = 19092
    clickhouse_tcp_port: int = 19000
    clickhouse_http_port: int = 18123
    clickhouse_interserver_port: int = 19009
    redis_port: int = 16379
    start_timeout_s: float = 60.0


class Settings(BaseSettings):
    """All settings of an smsfold process, read from ``SMSFOLD_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="SMSFOLD_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    vendor: VendorSettings = Field(default_factory=VendorSettings)
    projector: ProjectorSettings = Field(default_factory=ProjectorSettings)
    attribution: AttributionSettings = Field(default_factory=AttributionSettings)
    # Companies, their numbers, keywords and vendor secrets. The default file holds dev-only secrets.
    companies_file: Path = PROJECT_ROOT / "config" / "companies.toml"
    log_level: str = "INFO"
    # SMSFOLD_ENV=production: the gateway and worker refuse to start with empty store passwords or the
    # repository's development secrets (config.production).
    env: Literal["development", "production"] = "development"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]
