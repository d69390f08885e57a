"""Rebuild a projection from ``sms.events`` into shadow storage, verify it, swap it in; or roll back.

A rebuild of version N runs a :class:`ProjectorRunner` with the fresh group ``…-{name}-v{N}`` (reading
from the start of the topic) into the version's own storage (projections/shadow.py), while the live
runners keep serving. Its state (``building: N``) is saved before it starts, so after a kill -9 the same
command resumes version N from the group's committed offsets. Once caught up it is stopped, verified
against the topic up to exactly the offsets it committed (projections/replay_check.py), and swapped in; the
live runners then adopt its group (projections/runner.py), so they continue where the rebuild ended.
Projections rebuilt together share one runner, a lane each (:func:`start_rebuilds`): the log is read and
decoded once, and each lane commits to its own group.
Only projectors run: no decider, no vendor call, nothing produced to any topic.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from config.settings import Settings
from projections.offsets import committed_offsets, partitions, seed_group, topic_ends
from projections.projectors import check_projection
from projections.replay_check import TopicSummary, verify
from projections.runner import Lane, ProjectorRunner
from projections.shadow import Storage, storage_for
from projections.versions import ProjectionState, StateStore, build_group, live_group, state_store
from streams.codec import AvroCodec

__all__ = ["Plan", "Rebuild", "ReplayError", "fewer_gc_passes", "plan", "rollback", "start_rebuilds"]


class ReplayError(RuntimeError):
    """A replay or rollback that cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class Plan:
    """What a replay of one projection would do, and where things stand now (nothing written)."""

    name: str
    state: ProjectionState
    version: int
    resume: bool
    group: str
    home: str
    live_group: str
    ends: dict[int, int]
    live_positions: dict[int, int]
    build_positions: dict[int, int]

    @property
    def live_lag(self) -> int:
        return sum(max(0, self.ends[p] - self.live_positions.get(p, 0)) for p in self.ends)


def plan(name: str, settings: Settings, *, from_beginning: bool = False) -> Plan:
    """Read the state and the topic and say what a replay would do; writes nothing."""
    check_projection(name)
    store = state_store(name, settings)
    try:
        state = store.load()
    finally:
        store.close()
    resume = state.building is not None and not from_beginning
    version = state.building if resume and state.building is not None else state.next_version
    parts = partitions(settings)
    group = build_group(settings, name, version)
    live = live_group(settings, name, state)
    return Plan(name, state, version, resume, group, storage_for(name, settings).build_home(version), live,
                topic_ends(settings, parts), committed_offsets(settings, live, parts),
                committed_offsets(settings, group, parts) if resume else dict.fromkeys(parts, 0))


class Rebuild:
    """One projection's rebuild: :meth:`start` (or :func:`start_rebuilds`), poll :meth:`caught_up`, then
    :meth:`stop`, :meth:`verify`, :meth:`swap`."""

    def __init__(self, name: str, settings: Settings, *, from_beginning: bool = False,
                 keep_old: bool = False, codec: AvroCodec | None = None) -> None:
        self.plan = plan(name, settings, from_beginning=from_beginning)
        self.name = name
        self._settings = settings
        self._keep_old = keep_old
        self._codec = codec or AvroCodec()
        self._storage: Storage = storage_for(name, settings)
        self._store: StateStore = state_store(name, settings)
        self.runner: ProjectorRunner | None = None
        self.lane: Lane | None = None
        self._thread: threading.Thread | None = None
        self.ends = dict(self.plan.ends)
        self.offsets: dict[int, int] = {}

    def start(self) -> None:
        """Prepare the shadow, record ``building`` (so a kill -9 resumes), start the runner thread."""
        start_rebuilds([self])

    def _prepare(self) -> Lane:
        """Prepare the shadow and record ``building``; the lane that writes into the shadow."""
        p = self.plan
        state = self._store.load()
        if not p.resume and state.building is not None:
            # --from-beginning over an unfinished rebuild: discard it, build a new version.
            self._storage.drop(self._storage.build_home(state.building))
        self._storage.prepare(p.version, fresh=not p.resume)
        self._store.save(dataclasses.replace(
            state, building=p.version, next_version=max(state.next_version, p.version + 1)))
        sink = self._storage.build_sink(p.version)
        return Lane(self.name, sink, p.group, positions=dict(p.build_positions))

    @property
    def folded(self) -> int:
        """Events written into the shadow and committed so far."""
        return self.lane.folded if self.lane is not None else 0

    def refresh_ends(self) -> None:
        """High watermarks for the progress display (a lower bound on the embedded broker)."""
        ends = topic_ends(self._settings, sorted(self.ends))
        positions = self.positions()
        self.ends = {p: max(end, positions[p]) for p, end in ends.items()}

    def positions(self) -> dict[int, int]:
        assert self.lane is not None
        return {p: self.lane.positions.get(p, 0) for p in self.ends}

    def lag(self) -> dict[int, int]:
        return {p: max(0, self.ends[p] - pos) for p, pos in self.positions().items()}

    def caught_up(self, idle_s: float = 0.5, recent_ms: int = 1_000) -> bool:
        """Idle at the end of the topic, or reading records produced within the last ``recent_ms`` while
        records keep arriving (the live runners fold what arrives after the swap). High watermarks are
        not used: the embedded broker's under-count after multi-record batches."""
        runner = self.runner
        if runner is None or not runner.assigned.is_set():
            return False
        if self._thread is not None and not self._thread.is_alive():
            raise ReplayError(f"the {self.name} rebuild stopped unexpectedly (see the log)")
        # Before its first record the consumer is still looking up offsets and fetching: idle then means
        # an empty topic (or a resumed rebuild with nothing left) only after a longer wait.
        needed = idle_s if runner.first_read_at is not None else 5.0
        if runner.idle_since is not None and time.monotonic() - runner.idle_since >= needed:
            return True
        return runner.newest_record_ms >= time.time() * 1000 - recent_ms

    def stop(self) -> dict[int, int]:
        """Stop the runner (its last batch written and committed); return the offsets it covers."""
        assert self.runner is not None and self._thread is not None
        self.runner.stop()
        self._thread.join(60)
        if self._thread.is_alive():
            raise ReplayError(f"the {self.name} rebuild did not stop within 60 s")
        self.offsets = committed_offsets(self._settings, self.plan.group, sorted(self.ends))
        return self.offsets

    def verify(self, topic: TopicSummary) -> None:
        verify(self.name, self._settings, self.plan.home, topic)

    def swap(self) -> ProjectionState:
        """Swap the built version in for readers and live runners; drop the old one unless kept."""
        state = self._store.load()
        parts = sorted(self.ends)
        # Everything the old group committed was written to the old version: a rollback resumes there.
        old_offsets = committed_offsets(self._settings, live_group(self._settings, self.name, state), parts)
        old_home = self._storage.swap(self.plan.version, self.plan.home, state.active)
        stale_home = state.previous_home if state.previous is not None else ""
        new = dataclasses.replace(
            state, active=self.plan.version, group=self.plan.group, building=None, previous=state.active,
            previous_home=old_home, previous_offsets=old_offsets)
        if not self._keep_old:
            new = dataclasses.replace(new, previous=None, previous_home="", previous_offsets={})
        self._store.save(new)
        if stale_home:
            self._storage.drop(stale_home)
        if not self._keep_old:
            # Live Redis runners notice the swap within a second; let a batch in flight land first.
            time.sleep(2.5)
            self._storage.drop(old_home)
        self._store.close()
        return new

    def abandon(self) -> None:
        """Stop the runner without swapping (after a failed verification); the shadow is kept."""
        if self.runner is not None and self._thread is not None:
            self.runner.stop()
            self._thread.join(60)
        self._store.close()


def start_rebuilds(rebuilds: Sequence[Rebuild]) -> None:
    """Prepare every rebuild, then run them all in one runner thread, one lane each: every record is
    read and decoded once, and each projection's offsets are committed to its own group."""
    lanes = [r._prepare() for r in rebuilds]
    first, settings = lanes[0], rebuilds[0]._settings
    settings = settings.model_copy(update={"projector": settings.projector.model_copy(
        update={"batch_size": settings.projector.rebuild_batch_size})})
    runner = ProjectorRunner(first.name, first.sink, settings, codec=rebuilds[0]._codec,
                             group_id=first.group_id, also=lanes[1:])
    # The runner made its own first lane: carry the resumed positions over for the progress display.
    runner.lanes[0].positions.update(first.positions)
    thread = threading.Thread(target=runner.run, name=f"rebuild-{runner.name}", daemon=True)
    for r, lane in zip(rebuilds, runner.lanes, strict=True):
        r.runner, r.lane, r._thread = runner, lane, thread
    thread.start()


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Run the cyclic garbage collector rarely for the block (a rebuild): decoding allocates millions of
    short-lived dicts without cycles, and with the default thresholds the collector's passes over the
    batches in flight cost a fifth of the rebuild's time. Reference counting still frees them."""
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def rollback(name: str, settings: Settings) -> ProjectionState:
    """Swap the kept previous version back in; it resumes from where its group had committed."""
    check_projection(name)
    store = state_store(name, settings)
    storage = storage_for(name, settings)
    try:
        state = store.load()
        if state.previous is None:
            raise ReplayError(f"{name}: no previous version is kept to roll back to "
                              "(a replay keeps one only with --keep-old)")
        if state.building is not None:
            raise ReplayError(f"{name}: version {state.building} is being rebuilt; finish or discard it "
                              "(smsfold replay --from-beginning) before rolling back")
        parts = partitions(settings)
        rollbacks = state.rollbacks + 1
        group = f"{build_group(settings, name, state.previous)}-r{rollbacks}"
        # A fresh group seeded with the offsets its version was written up to: it catches up from there.
        seed_group(settings, group, {p: state.previous_offsets.get(p, 0) for p in parts})
        current = committed_offsets(settings, live_group(settings, name, state), parts)
        home = storage.swap(state.previous, state.previous_home, state.active)
        new = dataclasses.replace(state, active=state.previous, group=group, previous=state.active,
                                  previous_home=home, previous_offsets=current, rollbacks=rollbacks)
        store.save(new)
        return new
    finally:
        store.close()
