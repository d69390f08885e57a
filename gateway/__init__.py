"""The aiohttp gateway: vendor webhooks and the JSON API in front of the event log."""

from gateway.app import create_app
from gateway.errors import ApiError, GatewayError, PublishError
from gateway.publisher import KafkaRawPublisher, RawPublisher

__all__ = ["ApiError", "GatewayError", "KafkaRawPublisher", "PublishError", "RawPublisher", "create_app"]
