"""The Redis key layout of every read model; the profile key holds the company id, which scopes lookups."""

from __future__ import annotations

__all__ = ["RedisKeys"]


class RedisKeys:
    """The key layout; the profile key already holds the company id, which scopes every lookup."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def consent(self, profile: str) -> str:
        return f"{self.prefix}:consent:{profile}"

    def timeline(self, profile: str) -> str:
        return f"{self.prefix}:timeline:{profile}"

    def timeline_entries(self, profile: str) -> str:
        return f"{self.prefix}:timeline-entries:{profile}"

    def link(self, code: str) -> str:
        return f"{self.prefix}:link:{code}"

    def vendor_message(self, vendor: str, vendor_message_id: str) -> str:
        return f"{self.prefix}:vendor-message:{vendor}:{vendor_message_id}"

    def message_status(self, vendor: str, vendor_message_id: str) -> str:
        return f"{self.prefix}:message-status:{vendor}:{vendor_message_id}"

    def message_status_by_id(self, message_id: str) -> str:
        return f"{self.prefix}:message-status-by-id:{message_id}"

    def conversation(self, profile: str) -> str:
        return f"{self.prefix}:conversation:{profile}"
