"""The topic registry: every topic smsfold uses, with its key and partition count, created explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import TopicSettings

__all__ = ["TopicSpec", "topic_specs"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic, what its records are keyed by, and how many partitions it has."""

    name: str
    partitions: int
    key: str
    description: str


def topic_specs(topics: TopicSettings) -> list[TopicSpec]:
    """The topics to create before workers start: an auto-created topic gets the wrong partition count."""
    return [
        TopicSpec(
            topics.raw,
            topics.raw_partitions,
            "sender phone (inbound) or vendor message id (status)",
            "each accepted vendor request as received; the audit log normalization re-runs from",
        ),
        TopicSpec(
            topics.events,
            topics.events_partitions,
            "profile key {company_id}:{E.164 phone}",
            "the event log of record: domain events, ordered per profile",
        ),
        TopicSpec(
            topics.deadletter,
            topics.deadletter_partitions,
            "original key",
            "records that could not be decoded or validated, with the reason and the original bytes",
        ),
    ]
