"""The aiohttp gateway: vendor webhooks and the JSON API in front of the event log."""

from gateway.app import create_app
from gateway.errors import ApiError, GatewayError, PublishError, SpoolError, SpoolFull
from gateway.publisher import EventPublisher, KafkaEventPublisher, KafkaRawPublisher, RawPublisher

__all__ = [
    "ApiError",
    "EventPublisher",
    "GatewayError",
    "KafkaEventPublisher",
    "KafkaRawPublisher",
    "PublishError",
    "RawPublisher",
    "SpoolError",
    "SpoolFull",
    "create_app",
]
