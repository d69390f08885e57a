"""The gateway's exceptions."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ApiError", "GatewayError", "PublishError"]


class GatewayError(Exception):
    """Base class of the gateway's own errors."""


class PublishError(GatewayError):
    """A record was not acknowledged by Kafka (broker unavailable, error or timeout): it is not durable."""


class ApiError(GatewayError):
    """A request is answered with an error: rendered as ``{"error": {"code", "message"}, "request_id"}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})
