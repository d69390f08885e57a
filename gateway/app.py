"""The gateway application: vendor webhooks (durably acknowledged), the JSON API base, operations.

Build it with :func:`create_app`; ``web.run_app`` belongs to the entry point.
"""

from __future__ import annotations

from aiohttp import web

from config.companies import CompanyDirectory
from config.settings import Settings
from gateway.api import API_KEYS_KEY, OPERATIONS_KEY, api_key_index
from gateway.conversions import add_conversion_routes
from gateway.durable import DurableRecorder
from gateway.http import error_middleware, metric_labels
from gateway.join import add_join_routes
from gateway.keys import (
    COMPANIES_KEY,
    EVENTS_KEY,
    METRICS_KEY,
    RAW_ENCODER_KEY,
    RECORDER_KEY,
    SETTINGS_KEY,
)
from gateway.links import ClickEmitter, LinkLookup, NoLinks, add_link_routes
from gateway.messages import add_message_routes
from gateway.metrics import GatewayMetrics
from gateway.ops import PROBE_KEY, SPOOL_KEY, BrokerProbe, add_ops_routes
from gateway.profiles import NoProfileReads, ProfileReads, add_profile_routes
from gateway.publisher import EventPublisher, RawPublisher
from gateway.spool import Spool
from gateway.v1 import add_v1_routes
from gateway.vendors import add_vendor_routes
from gateway.vendors.telnyx import TELNYX_KEYS_KEY, telnyx_keys
from gateway.vendors.twilio import TWIML_EMPTY
from streams.codec import RawWebhookEncoder

__all__ = ["TWIML_EMPTY", "create_app"]


def create_app(
    settings: Settings,
    companies: CompanyDirectory,
    publisher: RawPublisher,
    *,
    spool: Spool | None = None,
    probe: BrokerProbe | None = None,
    metrics: GatewayMetrics | None = None,
    events: EventPublisher | None = None,
    links: LinkLookup | None = None,
    clicks: ClickEmitter | None = None,
    profiles: ProfileReads | None = None,
) -> web.Application:
    """The gateway application, with its dependencies passed in (no globals). Without a spool, a webhook
    Kafka does not acknowledge within budget is answered 503; with one (opened by the caller, drained by
    :class:`gateway.drainer.SpoolDrainer`) it is spooled and answered 2xx. ``links`` (the short-link
    store) and ``clicks`` (where LinkClicked goes) serve ``/l/{code}``; without them no code is known.
    ``profiles`` (the read models) serves the profile API's reads; without it they answer 503."""
    metrics = metrics or GatewayMetrics()

    def observe(request: web.Request, status: int) -> None:
        vendor, endpoint = metric_labels(request)
        metrics.request(vendor, endpoint, status)

    app = web.Application(
        middlewares=[error_middleware(observe)], client_max_size=settings.gateway.max_body_bytes
    )
    app[SETTINGS_KEY] = settings
    app[COMPANIES_KEY] = companies
    app[METRICS_KEY] = metrics
    app[RAW_ENCODER_KEY] = RawWebhookEncoder()
    app[RECORDER_KEY] = DurableRecorder(publisher, spool, metrics)
    app[TELNYX_KEYS_KEY] = telnyx_keys(companies)
    app[API_KEYS_KEY] = api_key_index(companies)
    app[OPERATIONS_KEY] = []
    if spool is not None:
        app[SPOOL_KEY] = spool
        metrics.observe_spool(lambda: (spool.depth, spool.size, spool.oldest_age_s()))
    if probe is not None:
        app[PROBE_KEY] = probe
    if events is not None:
        app[EVENTS_KEY] = events
    add_vendor_routes(app)
    add_v1_routes(app)
    add_message_routes(app)
    add_profile_routes(app, profiles or NoProfileReads())
    add_conversion_routes(app)
    add_link_routes(app, links or NoLinks(), clicks or NoLinks())
    add_join_routes(app, companies)
    add_ops_routes(app)
    return app
