"""Runs one projection: a confluent-kafka consumer group over ``sms.events`` feeding a sink in batches.

A batch is at most ``batch_size`` records or ``batch_seconds`` old. Its offsets are committed
synchronously only after the sink wrote it; while the store is down the same batch is retried with
backoff, so nothing is lost, and a crash before the commit redelivers a batch the sink absorbs
idempotently (event-id keyed tables, version-guarded keys), so nothing counts twice. A record that
cannot be decoded goes to ``sms.deadletter`` with the reason (by the projector chosen for that) and the
projection moves on. The sink writes in a thread of its own while the runner reads and decodes the next
batch (the store works on another core meanwhile); batches are written and committed in the order they
were read, and at most two are written but not yet committed.

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

A rebuild of several projections feeds them all from one runner (one consumer, each record decoded
once): every projection is a :class:`Lane` with its own sink, writer thread and consumer group. Each
lane's offsets are committed to its own group only after that lane wrote the batch, so every group's
committed offsets say exactly what its projection holds. The runner starts each partition at the lowest
offset any lane's group committed; a lane that is ahead writes those records again, which its
idempotent sink absorbs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer, TopicPartition

from config.settings import Settings
from streams.checks import event_problem
from streams.codec import AvroCodec, DecodeError
from streams.events import AVRO_NAMESPACE, EVENT_TYPES
from streams.producer import producer_config

__all__ = ["DecodedBatch", "Follow", "Lane", "ProjectorRunner", "Sink", "Target", "decode_batch"]

log = logging.getLogger("smsfold.projector")

# Batches written but not yet committed, at most: the lanes write while the next batch is decoded, and
# a lane that is faster than the others can run one batch ahead.
_IN_FLIGHT = 2

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


@dataclass(eq=False)
class Lane:
    """One projection a runner feeds: its sink, the group its offsets are committed to, its progress."""

    name: str
    sink: Sink
    group_id: str
    # Told of every batch once it is written (the worker's stage metrics); must not raise.
    on_written: Callable[[list[dict[str, Any]]], None] | None = None
    folded: int = 0
    refused_records: int = 0
    write_failures: int = 0  # refused writes, and refused reads of the live version
    # Committed offset per partition (the next record to read), for progress and lag.
    positions: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _InFlight:
    """A batch being written: the offsets it ends at per (topic, partition), its events, and each
    lane's write (the records refused for good, or None when not written)."""

    ends: dict[tuple[str, int], int]
    decoded: DecodedBatch
    writes: list[Future[list[tuple[Message, str]] | None]]


class ProjectorRunner:
    """Consumes ``sms.events`` with its own group and folds it into one sink (or, given ``also``, into
    several lanes, each committed to its own group); run it in a thread."""

    def __init__(
        self, name: str, sink: Sink, settings: Settings, *, dead_letter: bool = False,
        codec: AvroCodec | None = None, on_written: Callable[[list[dict[str, Any]]], None] | None = None,
        group_id: str | None = None, follow: Follow | None = None, follow_interval_s: float = 1.0,
        also: Sequence[Lane] = (),
    ) -> None:
        if follow is not None and also:
            raise ValueError("a runner that follows the live version feeds one projection")
        self.lanes = [Lane(name, sink, group_id or f"{settings.projector.group_prefix}-{name}", on_written),
                      *also]
        self.name = "+".join(lane.name for lane in self.lanes)
        self._follow = follow
        self._follow_interval = follow_interval_s
        self.target: Target | None = None
        self._settings = settings
        self._projector = settings.projector
        self._codec = codec or AvroCodec()
        self._dead_letter = dead_letter
        self._stop = threading.Event()
        self._pending: list[Message] = []
        # The batches being written, oldest first, while the next one is read and decoded.
        self._in_flight: deque[_InFlight] = deque()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        # Commit the offsets of the lanes after the first, each with its own group (never subscribed).
        self._committers: dict[str, Consumer] = {}
        # One writer thread per lane, so each store gets the batches in the order they were read.
        self._writers = [ThreadPoolExecutor(1, thread_name_prefix=f"write-{lane.name}")
                         for lane in self.lanes]
        # Lanes that left a batch unwritten (stopping during an outage): nothing after it is committed.
        self._unwritten: set[int] = set()
        # Progress, for metrics and the benchmark: records committed, and when the first and the latest
        # committed batch were read and committed (monotonic seconds).
        self.poison_records = 0
        self.assigned = threading.Event()
        self.first_read_at: float | None = None
        self.last_commit_at: float | None = None
        # When the last consume call came back empty with nothing pending (monotonic seconds), and the
        # producer's timestamp of the newest record read (epoch ms): how a rebuild knows it caught up.
        self.idle_since: float | None = None
        self.newest_record_ms = 0

    # The first lane's progress is the runner's (a live runner has just that one).
    @property
    def folded(self) -> int:
        return self.lanes[0].folded

    @property
    def refused_records(self) -> int:
        return self.lanes[0].refused_records

    @property
    def write_failures(self) -> int:
        return self.lanes[0].write_failures

    @property
    def positions(self) -> dict[int, int]:
        return self.lanes[0].positions

    @property
    def group_id(self) -> str:
        return self.target.group_id if self.target is not None else self.lanes[0].group_id

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return.

        Tansu (the embedded broker) wedges a consumer group when a member leaves before its first join
        completed; wait for :attr:`assigned` before stopping a runner that was just started.
        """
        self._stop.set()

    def _consumer_config(self, group_id: str) -> dict[str, Any]:
        kafka = self._settings.kafka
        return {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": kafka.session_timeout_ms,
            "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
            # A store outage is waited out inside the loop; being kicked out of the group only means
            # the uncommitted batch is redelivered, which the sinks absorb.
            "max.poll.interval.ms": 600_000,
            "fetch.wait.max.ms": kafka.fetch_max_wait_ms,
        }

    def _resolve(self) -> Target | None:
        """The live target, or None (logged) while the store that records it cannot be read."""
        assert self._follow is not None
        try:
            return self._follow.target()
        except Exception as exc:
            # The version is recorded in the projection's own store: that store refused, as a write would.
            self.lanes[0].write_failures += 1
            log.warning("%s: cannot read the live version (%s)", self.name, _first_line(exc))
            return None

    def _open(self) -> None:
        self._consumer = Consumer(self._consumer_config(self.group_id))
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
        self.lanes[0].sink.close()
        self.lanes[0].sink = self._follow.sink(target)
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
        self._flush()
        self._settle()
        self._consumer.close()
        lane = self.lanes[0]
        lane.sink.close()
        self.target = target
        lane.sink = self._follow.sink(target)
        self.assigned.clear()
        lane.positions = {}
        self._open()

    def run(self) -> None:
        """Consume, write, commit until :meth:`stop`; a batch is committed only after it was written."""
        if self._follow is not None and not self._start_following():
            self.lanes[0].sink.close()
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
                    self._settle()  # nothing more to read for now: commit what was written
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
            self._flush()
            self._settle()
        finally:
            # After an error, closing revokes the partitions, which writes what was read; a write that
            # fails then gives up (stopping) and is not committed.
            self._stop.set()
            self._consumer.close()
            for writer in self._writers:
                writer.shutdown()
            for committer in self._committers.values():
                committer.close()
            for lane in self.lanes:
                lane.sink.close()
            if self._producer is not None:
                self._producer.flush(10)

    def _committer(self, lane: Lane) -> Consumer:
        """The consumer that commits ``lane``'s offsets: the runner's own for the first lane; for the
        others one per group that never subscribes (a group with no member accepts such commits)."""
        if lane is self.lanes[0]:
            assert self._consumer is not None
            return self._consumer
        if lane.group_id not in self._committers:
            self._committers[lane.group_id] = Consumer(self._consumer_config(lane.group_id))
        return self._committers[lane.group_id]

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if len(self.lanes) > 1:
            # Start where the least advanced lane's group committed, so no lane misses a record.
            starts: dict[int, int] = {}
            for lane in self.lanes:
                for tp in self._committer(lane).committed(partitions, timeout=30):
                    if tp.error is not None:
                        raise KafkaException(tp.error)
                    lane.positions[tp.partition] = max(tp.offset, 0)
                    starts[tp.partition] = min(starts.get(tp.partition, tp.offset), tp.offset)
            for tp in partitions:
                # No commit yet (a negative offset): the start of the partition.
                tp.offset = starts[tp.partition] if starts[tp.partition] >= 0 else OFFSET_BEGINNING
            consumer.assign(partitions)
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Write and commit what was read from these partitions before another member takes them over.
        self._flush()
        self._settle()

    def _flush(self) -> None:
        """Decode the pending batch and queue it to every lane's writer. While the lanes write, the
        next batches are read and decoded; at most ``_IN_FLIGHT`` batches wait to be committed."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        decoded = decode_batch(self._codec, batch)
        if decoded.poison and self._dead_letter:
            self._send_dead_letters(decoded.poison)
        while len(self._in_flight) >= _IN_FLIGHT:
            self._settle_oldest()
        ends: dict[tuple[str, int], int] = {}
        for msg in batch:
            key = (msg.topic() or "", msg.partition() or 0)
            ends[key] = max(ends.get(key, -1), (msg.offset() or 0) + 1)
        writes = [writer.submit(self._write_until_done, lane, decoded.events, decoded.sources)
                  for lane, writer in zip(self.lanes, self._writers, strict=True)] if decoded.events else []
        self._in_flight.append(_InFlight(ends, decoded, writes))

    def _settle(self) -> None:
        """Wait until every batch in flight is written and committed."""
        while self._in_flight:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        """Wait until the oldest batch in flight is written, then commit it lane by lane: each lane's
        group only once that lane wrote it."""
        flight = self._in_flight.popleft()
        events = len(flight.decoded.events)
        for i, lane in enumerate(self.lanes):
            refused = flight.writes[i].result() if flight.writes else []
            if refused is None or i in self._unwritten:
                # Stopping while the store is down: this batch and any after it are not committed
                # (they are redelivered), even if the store came back for a later one.
                self._unwritten.add(i)
                continue
            if refused:
                # Dead-lettered by this projection: the others may well have written these records.
                self._send_dead_letters(refused, lane.name)
            self._commit(lane, flight.ends)
            lane.folded += events - len(refused)
            lane.refused_records += len(refused)
        self.poison_records += len(flight.decoded.poison)
        self.last_commit_at = time.monotonic()

    def _commit(self, lane: Lane, ends: dict[tuple[str, int], int]) -> None:
        """Commit ``lane``'s group past the batch (never back: a lane ahead of the others stays ahead)."""
        offsets = {key: max(end, lane.positions.get(key[1], 0)) for key, end in ends.items()}
        try:
            self._committer(lane).commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
            )
            for (_, partition), offset in offsets.items():
                lane.positions[partition] = offset
        except KafkaException as exc:
            # Typically a rebalance took the partitions away: the new owner re-reads from the last
            # commit and the sink absorbs the repeat.
            log.warning("%s: offset commit failed (%s); the batch will be redelivered", lane.name, exc)

    def _write_until_done(
        self, lane: Lane, events: list[dict[str, Any]], sources: list[Message]
    ) -> list[tuple[Message, str]] | None:
        """Write the batch; returns the records the store refused for good, or None when stopping
        while the store is down."""
        delay = 0.1
        while True:
            try:
                refused = self._write_isolating(lane, events, sources)
                if lane.on_written is not None:
                    gone = {id(msg) for msg, _ in refused}
                    lane.on_written([e for e, m in zip(events, sources, strict=True) if id(m) not in gone])
                return refused
            except Exception as exc:  # the store is down or refused the write: back off, same batch
                lane.write_failures += 1
                if self._stop.is_set():
                    log.warning("%s: stopping with an unwritten batch (%s)", lane.name, _first_line(exc))
                    return None
                log.warning("%s: write failed (%s: %s); retrying in %.1fs",
                            lane.name, type(exc).__name__, _first_line(exc), delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._projector.max_backoff_s)

    def _write_isolating(
        self, lane: Lane, events: list[dict[str, Any]], sources: list[Message]
    ) -> list[tuple[Message, str]]:
        """Write ``events``; on a refusal for good, the records refused on their own (by bisection).

        Raises on an outage, and when every record of a batch of several is refused: then the store is
        to blame, not the data.
        """
        try:
            lane.sink.write(events)
            return []
        except Exception as exc:
            if not lane.sink.refused_for_good(exc):
                raise
            refused = self._bisect(lane, events, sources, exc)
            if len(refused) == len(events) > 1:
                raise
            log.error("%s: the store refused %d of %d records for good; dead-lettering them: %s",
                      lane.name, len(refused), len(events), refused[0][1])
            return refused

    def _bisect(
        self, lane: Lane, events: list[dict[str, Any]], sources: list[Message], exc: Exception
    ) -> list[tuple[Message, str]]:
        """The records of a refused write that the store refuses on their own; outages raise."""
        if len(events) == 1:
            reason = f"projector {lane.name}: store refused the write: {type(exc).__name__}: "
            return [(sources[0], reason + _first_line(exc))]
        refused: list[tuple[Message, str]] = []
        half = len(events) // 2
        for part, part_sources in ((events[:half], sources[:half]), (events[half:], sources[half:])):
            try:
                lane.sink.write(part)
            except Exception as part_exc:
                if not lane.sink.refused_for_good(part_exc):
                    raise
                refused += self._bisect(lane, part, part_sources, part_exc)
        return refused

    def _send_dead_letters(self, poison: list[tuple[Message, str]], projector: str | None = None) -> None:
        if self._producer is None:
            self._producer = Producer(producer_config(self._settings.kafka))
        for msg, reason in poison:
            log.warning("%s: dead-lettered a record from %s[%s]@%s: %s",
                        projector or self.name, msg.topic(), msg.partition(), msg.offset(), reason)
            self._producer.produce(
                self._settings.topics.deadletter, key=msg.key(), value=msg.value() or b"",
                headers={"reason": reason.encode(), "source_topic": (msg.topic() or "").encode(),
                         "projector": (projector or self.name).encode()},
            )
        # Durable before the offsets that skip these records are committed.
        remaining = self._producer.flush(30)
        if remaining:
            raise KafkaException(f"{remaining} dead letters not acknowledged")


def _first_line(exc: BaseException) -> str:
    """The gist of a store error, without ClickHouse's server stack trace."""
    text = " ".join(str(getattr(exc, "message", "") or exc).split("Stack trace:")[0].split())
    return text[:300]
