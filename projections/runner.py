"""Runs one projection: a confluent-kafka consumer group over ``sms.events`` feeding a sink in batches.

A batch is at most ``batch_size`` records or ``batch_seconds`` old. Its offsets are committed
synchronously only after the sink wrote it; while the store is down the same batch is retried with
backoff, so nothing is lost, and a crash before the commit redelivers a batch the sink absorbs
idempotently (event-id keyed tables, version-guarded keys), so nothing counts twice. A record that
cannot be decoded goes to ``sms.deadletter`` with the reason (by the projector chosen for that) and the
projection moves on.

A write error is either the store's (down, overloaded, not migrated yet: the whole batch is retried
with backoff) or the data's (the sink says so with ``refused_for_good``, e.g. Redis WRONGTYPE on one
key): then the batch is bisected to find the records the store refuses on their own, those go to the
dead letters with the store's reason, and the rest is written, so one bad record never wedges a
projection. If every record of a batch is refused, the store is to blame and the batch is retried.

A live runner may follow a :class:`Follow`: between batches, at most once per ``follow_interval_s``, it
asks which group and which version are live; when a rebuild was swapped in (or rolled back) it commits
its batch, leaves its group, and continues in the new one from that group's committed offsets, writing
into the new version. That hand-over is what makes a swap exact: the rebuild committed exactly what it
wrote, so the adopted group starts where the rebuilt data ends (no gap), and anything written twice on
the way is absorbed by the idempotent sinks (no double count).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from config.settings import Settings
from streams.checks import event_problem
from streams.codec import AvroCodec, DecodeError
from streams.events import AVRO_NAMESPACE, EVENT_TYPES
from streams.producer import producer_config

__all__ = ["DecodedBatch", "Follow", "ProjectorRunner", "Sink", "Target", "decode_batch"]

log = logging.getLogger("smsfold.projector")

_EVENT_RECORDS = frozenset(f"{AVRO_NAMESPACE}.{name}" for name in EVENT_TYPES)


class Sink(Protocol):
    """A read model that absorbs a batch of decoded events idempotently; raises if the write failed."""

    def write(self, events: Sequence[dict[str, Any]]) -> None: ...

    def refused_for_good(self, exc: Exception) -> bool:
        """Whether ``exc`` is the store refusing this data (retrying cannot help), not an outage."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """Where a live runner reads from and writes to: a consumer group and a projection version."""

    group_id: str
    version: int


class Follow(Protocol):
    """Tells a live runner which :class:`Target` is live, and makes a sink for a version."""

    def target(self) -> Target: ...

    def sink(self, target: Target) -> Sink: ...


@dataclass
class DecodedBatch:
    """The events of a batch as field dicts, and the records that could not be decoded."""

    events: list[dict[str, Any]] = field(default_factory=list)
    poison: list[tuple[Message, str]] = field(default_factory=list)
    # The record each event was decoded from (same order as ``events``).
    sources: list[Message] = field(default_factory=list)


def decode_batch(codec: AvroCodec, messages: Sequence[Message]) -> DecodedBatch:
    """Decode to dicts without pydantic: the writer schema already enforced every field's type."""
    out = DecodedBatch()
    for msg in messages:
        value = msg.value()
        if value is None:
            out.poison.append((msg, "empty record"))
            continue
        try:
            name, values = codec.decode_values(value)
        except DecodeError as exc:
            out.poison.append((msg, exc.reason))
            continue
        if name not in _EVENT_RECORDS:
            out.poison.append((msg, f"not a domain event: {name}"))
            continue
        problem = event_problem(name.rsplit(".", 1)[1], values)
        if problem:
            out.poison.append((msg, f"invalid event: {problem}"))
            continue
        out.events.append(values)
        out.sources.append(msg)
    return out


class ProjectorRunner:
    """Consumes ``sms.events`` with its own group and folds it into one sink; run it in a thread."""

    def __init__(
        self, name: str, sink: Sink, settings: Settings, *, dead_letter: bool = False,
        codec: AvroCodec | None = None, on_written: Callable[[list[dict[str, Any]]], None] | None = None,
        group_id: str | None = None, follow: Follow | None = None, follow_interval_s: float = 1.0,
    ) -> None:
        self.name = name
        self._group_id = group_id or f"{settings.projector.group_prefix}-{name}"
        self._follow = follow
        self._follow_interval = follow_interval_s
        self.target: Target | None = None
        # Told of every batch once it is written (the worker's stage metrics); must not raise.
        self._on_written = on_written
        self._sink = sink
        self._settings = settings
        self._projector = settings.projector
        self._codec = codec or AvroCodec()
        self._dead_letter = dead_letter
        self._stop = threading.Event()
        self._pending: list[Message] = []
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        # Progress, for metrics and the benchmark: records committed, and when the first and the latest
        # committed batch were read and committed (monotonic seconds).
        self.folded = 0
        self.poison_records = 0
        self.refused_records = 0
        self.write_failures = 0  # refused writes, and refused reads of the live version
        self.assigned = threading.Event()
        self.first_read_at: float | None = None
        self.last_commit_at: float | None = None
        # Committed offset per partition (the next record to read), for progress and lag.
        self.positions: dict[int, int] = {}
        # When the last consume call came back empty with nothing pending (monotonic seconds), and the
        # producer's timestamp of the newest record read (epoch ms): how a rebuild knows it caught up.
        self.idle_since: float | None = None
        self.newest_record_ms = 0

    @property
    def group_id(self) -> str:
        return self.target.group_id if self.target is not None else self._group_id

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return.

        Tansu (the embedded broker) wedges a consumer group when a member leaves before its first join
        completed; wait for :attr:`assigned` before stopping a runner that was just started.
        """
        self._stop.set()

    def _consumer_config(self) -> dict[str, Any]:
        kafka = self._settings.kafka
        return {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": kafka.session_timeout_ms,
            "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
            # A store outage is waited out inside the loop; being kicked out of the group only means
            # the uncommitted batch is redelivered, which the sinks absorb.
            "max.poll.interval.ms": 600_000,
            "fetch.wait.max.ms": 100,
        }

    def _resolve(self) -> Target | None:
        """The live target, or None (logged) while the store that records it cannot be read."""
        assert self._follow is not None
        try:
            return self._follow.target()
        except Exception as exc:
            # The version is recorded in the projection's own store: that store refused, as a write would.
            self.write_failures += 1
            log.warning("%s: cannot read the live version (%s)", self.name, _first_line(exc))
            return None

    def _open(self) -> None:
        self._consumer = Consumer(self._consumer_config())
        self._consumer.subscribe([self._settings.topics.events], on_assign=self._on_assign,
                                 on_revoke=self._on_revoke)

    def _start_following(self) -> bool:
        """Wait until the live target is known (its store may be down at start); False if stopped."""
        assert self._follow is not None
        delay = 0.1
        while (target := self._resolve()) is None:
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, self._projector.max_backoff_s)
        self.target = target
        self._sink.close()
        self._sink = self._follow.sink(target)
        return True

    def _switch_if_swapped(self) -> None:
        """Move to the live target if a swap or rollback changed it (only once assigned: Tansu wedges a
        group whose member leaves before its first join completed)."""
        assert self._follow is not None and self._consumer is not None
        target = self._resolve()
        if target is None or target == self.target or not self.assigned.is_set():
            return
        log.info("%s: live version %s (group %s) replaces %s", self.name, target.version, target.group_id,
                 self.target)
        if self._pending:
            self._flush()
        self._consumer.close()
        self._sink.close()
        self.target = target
        self._sink = self._follow.sink(target)
        self.assigned.clear()
        self.positions = {}
        self._open()

    def run(self) -> None:
        """Consume, write, commit until :meth:`stop`; a batch is committed only after it was written."""
        if self._follow is not None and not self._start_following():
            self._sink.close()
            return
        self._open()
        assert self._consumer is not None
        batch_size, batch_s = self._projector.batch_size, self._projector.batch_seconds
        started = checked = time.monotonic()
        try:
            while not self._stop.is_set():
                if self._follow is not None and time.monotonic() - checked >= self._follow_interval:
                    self._switch_if_swapped()
                    checked = time.monotonic()
                wait = max(0.0, batch_s - (time.monotonic() - started)) if self._pending else 0.2
                msgs = self._consumer.consume(num_messages=batch_size - len(self._pending), timeout=wait)
                if not msgs and not self._pending:
                    self.idle_since = self.idle_since or time.monotonic()
                elif msgs:
                    self.idle_since = None
                    self.newest_record_ms = max(self.newest_record_ms, msgs[-1].timestamp()[1])
                for msg in msgs:
                    err = msg.error()
                    if err is None:
                        if not self._pending:
                            started = time.monotonic()
                            if self.first_read_at is None:
                                self.first_read_at = started
                        self._pending.append(msg)
                    elif not err.retriable() and err.fatal():
                        raise KafkaException(err)
                if self._pending and (
                    len(self._pending) >= batch_size or time.monotonic() - started >= batch_s
                ):
                    self._flush()
            if self._pending:
                self._flush()
        finally:
            self._consumer.close()
            self._sink.close()
            if self._producer is not None:
                self._producer.flush(10)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Write and commit what was read from these partitions before another member takes them over.
        if self._pending:
            self._flush()

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        decoded = decode_batch(self._codec, batch)
        if decoded.poison and self._dead_letter:
            self._send_dead_letters(decoded.poison)
        refused: list[tuple[Message, str]] = []
        if decoded.events:
            written = self._write_until_done(decoded.events, decoded.sources)
            if written is None:
                return  # stopping while the store is down: nothing committed, the batch is redelivered
            refused = written
        if refused:
            # Dead-lettered by this projection: the others may well have written these records.
            self._send_dead_letters(refused)
        offsets: dict[tuple[str, int], int] = {}
        for msg in batch:
            key = (msg.topic() or "", msg.partition() or 0)
            offsets[key] = max(offsets.get(key, -1), (msg.offset() or 0) + 1)
        assert self._consumer is not None
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
            )
            for (_, partition), offset in offsets.items():
                self.positions[partition] = offset
        except KafkaException as exc:
            # Typically a rebalance took the partitions away: the new owner re-reads from the last
            # commit and the sink absorbs the repeat.
            log.warning("%s: offset commit failed (%s); the batch will be redelivered", self.name, exc)
        self.folded += len(decoded.events) - len(refused)
        self.poison_records += len(decoded.poison)
        self.refused_records += len(refused)
        self.last_commit_at = time.monotonic()

    def _write_until_done(
        self, events: list[dict[str, Any]], sources: list[Message]
    ) -> list[tuple[Message, str]] | None:
        """Write the batch; returns the records the store refused for good, or None when stopping
        while the store is down."""
        delay = 0.1
        while True:
            try:
                refused = self._write_isolating(events, sources)
                if self._on_written is not None:
                    gone = {id(msg) for msg, _ in refused}
                    self._on_written([e for e, m in zip(events, sources, strict=True) if id(m) not in gone])
                return refused
            except Exception as exc:  # the store is down or refused the write: back off, same batch
                self.write_failures += 1
                if self._stop.is_set():
                    log.warning("%s: stopping with an unwritten batch (%s)", self.name, _first_line(exc))
                    return None
                log.warning("%s: write failed (%s: %s); retrying in %.1fs",
                            self.name, type(exc).__name__, _first_line(exc), delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._projector.max_backoff_s)

    def _write_isolating(
        self, events: list[dict[str, Any]], sources: list[Message]
    ) -> list[tuple[Message, str]]:
        """Write ``events``; on a refusal for good, the records refused on their own (by bisection).

        Raises on an outage, and when every record of a batch of several is refused: then the store is
        to blame, not the data.
        """
        try:
            self._sink.write(events)
            return []
        except Exception as exc:
            if not self._sink.refused_for_good(exc):
                raise
            refused = self._bisect(events, sources, exc)
            if len(refused) == len(events) > 1:
                raise
            log.error("%s: the store refused %d of %d records for good; dead-lettering them: %s",
                      self.name, len(refused), len(events), refused[0][1])
            return refused

    def _bisect(
        self, events: list[dict[str, Any]], sources: list[Message], exc: Exception
    ) -> list[tuple[Message, str]]:
        """The records of a refused write that the store refuses on their own; outages raise."""
        if len(events) == 1:
            reason = f"projector {self.name}: store refused the write: {type(exc).__name__}: "
            return [(sources[0], reason + _first_line(exc))]
        refused: list[tuple[Message, str]] = []
        half = len(events) // 2
        for part, part_sources in ((events[:half], sources[:half]), (events[half:], sources[half:])):
            try:
                self._sink.write(part)
            except Exception as part_exc:
                if not self._sink.refused_for_good(part_exc):
                    raise
                refused += self._bisect(part, part_sources, part_exc)
        return refused

    def _send_dead_letters(self, poison: list[tuple[Message, str]]) -> None:
        if self._producer is None:
            self._producer = Producer(producer_config(self._settings.kafka))
        for msg, reason in poison:
            log.warning("%s: dead-lettered a record from %s[%s]@%s: %s",
                        self.name, msg.topic(), msg.partition(), msg.offset(), reason)
            self._producer.produce(
                self._settings.topics.deadletter, key=msg.key(), value=msg.value() or b"",
                headers={"reason": reason.encode(), "source_topic": (msg.topic() or "").encode(),
                         "projector": self.name.encode()},
            )
        # Durable before the offsets that skip these records are committed.
        remaining = self._producer.flush(30)
        if remaining:
            raise KafkaException(f"{remaining} dead letters not acknowledged")


def _first_line(exc: BaseException) -> str:
    """The gist of a store error, without ClickHouse's server stack trace."""
    text = " ".join(str(getattr(exc, "message", "") or exc).split("Stack trace:")[0].split())
    return text[:300]
