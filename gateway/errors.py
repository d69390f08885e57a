"""The gateway's exceptions."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ApiError", "GatewayError", "PublishError", "SpoolError", "SpoolFull"]


class GatewayError(Exception):
    """Base class of the gateway's own errors."""


class PublishError(GatewayError):
    """A record was not acknowledged by Kafka (broker unavailable, error or timeout): it is not durable."""


class SpoolError(GatewayError):
    """The local spool cannot be opened or written (directory in use by another gateway, disk error)."""


class SpoolFull(SpoolError):
    """The spool reached its size quota: nothing more can be made durable until the drainer catches up."""


class ApiError(GatewayError):
    """A request is answered with an error: rendered as ``{"error": {"code", "message", "field"?},
    "request_id"}``; ``field`` names the offending field of a 400."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers: dict[str, str] = dict(headers or {})
