"""Typed keys of the gateway's application and request state (no globals: everything hangs off the app)."""

from __future__ import annotations

from aiohttp import web

from config.companies import Company, CompanyDirectory
from config.settings import Settings
from gateway.durable import DurableRecorder
from gateway.metrics import GatewayMetrics
from gateway.publisher import EventPublisher
from streams.codec import RawWebhookEncoder

__all__ = [
    "COMPANIES_KEY",
    "COMPANY_KEY",
    "EVENTS_KEY",
    "METRICS_KEY",
    "METRIC_LABELS_KEY",
    "RAW_ENCODER_KEY",
    "RECEIVED_AT_KEY",
    "RECORDER_KEY",
    "REQUEST_ID_KEY",
    "SETTINGS_KEY",
]

SETTINGS_KEY = web.AppKey("settings", Settings)
COMPANIES_KEY = web.AppKey("companies", CompanyDirectory)
METRICS_KEY = web.AppKey("metrics", GatewayMetrics)
RECORDER_KEY = web.AppKey("recorder", DurableRecorder)
# Encodes each accepted request as a RawWebhook record, once: Kafka and the spool get the same bytes.
RAW_ENCODER_KEY = web.AppKey("raw_encoder", RawWebhookEncoder)
# Where JSON API handlers publish domain events (sms.events, keyed by profile key); absent in apps built
# without one.
EVENTS_KEY = web.AppKey("events", EventPublisher)
REQUEST_ID_KEY = web.RequestKey("request_id", str)
# Epoch milliseconds when the request reached the gateway (before its body was read).
RECEIVED_AT_KEY = web.RequestKey("received_at", int)
# (vendor, endpoint) of a webhook request, for the request counter; set by the vendor handlers.
METRIC_LABELS_KEY = web.RequestKey("metric_labels", tuple)
# The company an API key authenticated as.
COMPANY_KEY = web.RequestKey("company", Company)
