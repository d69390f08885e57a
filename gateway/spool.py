"""The local spool: an fsync'd, append-only log of raw records Kafka has not acknowledged in time.

Records live in segment files ``<seq>.seg`` (frames of ``length, crc32, written_at_ms, key, value``). The
gateway appends with group commit (one fsync covers every request waiting at that moment) and answers 2xx
only once its frames are on disk. The drainer (:mod:`gateway.drainer`) forwards sealed segments in order
and deletes a segment only after Kafka acknowledged all of it, so a crash re-sends at most one segment
(harmless: downstream dedupe). A torn frame at the tail of a segment (kill -9 during a write) was never
acknowledged and is skipped.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import SpoolError, SpoolFull

__all__ = ["SegmentInfo", "Spool", "SpooledRecord", "encode_frame", "read_segment"]

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">II")  # body length, crc32 of the body
_BODY = struct.Struct(">QI")  # written_at_ms, key length
_SUFFIX = ".seg"


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    """One spooled Kafka record: its key and value bytes, and when it was spooled."""

    key: bytes
    value: bytes
    written_at_ms: int


@dataclass(slots=True)
class SegmentInfo:
    """What the spool knows of one segment file without reading it again."""

    records: int
    size: int
    first_written_at_ms: int


def encode_frame(key: bytes, value: bytes, written_at_ms: int) -> bytes:
    """One frame as stored in a segment."""
    body = _BODY.pack(written_at_ms, len(key)) + key + value
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def read_segment(path: Path) -> list[SpooledRecord]:
    """Every intact frame of a segment, in order; stops at a torn or corrupt tail."""
    data = path.read_bytes()
    records: list[SpooledRecord] = []
    offset = 0
    while offset + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, offset)
        body = data[offset + _FRAME.size : offset + _FRAME.size + length]
        if len(body) != length or zlib.crc32(body) != crc or length < _BODY.size:
            break
        written_at_ms, key_len = _BODY.unpack_from(body)
        key = body[_BODY.size : _BODY.size + key_len]
        records.append(SpooledRecord(key, body[_BODY.size + key_len :], written_at_ms))
        offset += _FRAME.size + length
    if offset != len(data):
        log.warning(
            "spool segment %s has %d unreadable trailing bytes (torn write)", path.name, len(data) - offset
        )
    return records


@dataclass(slots=True)
class _Pending:
    frames: bytes
    records: int
    written_at_ms: int
    done: asyncio.Future[None]


class Spool:
    """Append-only segments in one directory, owned by one gateway process (an exclusive lock file)."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._segments: dict[Path, SegmentInfo] = {}
        self._lock_fd: int | None = None
        self._active_fd: int | None = None
        self._active_path: Path | None = None
        self._active_size = 0
        self._next_seq = 1
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        self._flusher: asyncio.Task[None] | None = None
        self._seal_requested = False
        # Set when an append was refused at the quota; cleared once the drainer frees space.
        self._refused = False

    # -- lifecycle ---------------------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the directory and index the segments a previous run left (they are drained first)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(f"cannot open spool directory {self.directory}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolError(
                f"spool directory {self.directory} is in use by another gateway; give each gateway its own "
                "(SMSFOLD_GATEWAY__SPOOL_DIR)"
            ) from None
        self._lock_fd = fd
        for path in sorted(self.directory.glob("*" + _SUFFIX)):
            records = read_segment(path)
            if not records:
                path.unlink()
                continue
            self._segments[path] = SegmentInfo(len(records), path.stat().st_size, records[0].written_at_ms)
            self._next_seq = max(self._next_seq, int(path.stem) + 1)
        if self._segments:
            log.warning("spool %s holds %d records from a previous run", self.directory, self.depth)

    def close(self) -> None:
        self._close_active()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- state -------------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Records on disk not yet acknowledged by Kafka through the drainer."""
        return sum(info.records for info in self._segments.values())

    @property
    def size(self) -> int:
        """Bytes on disk plus bytes waiting for their fsync."""
        return sum(info.size for info in self._segments.values()) + self._pending_bytes

    def oldest_age_s(self, now_ms: int | None = None) -> float:
        """Age of the oldest spooled record in seconds (0 when empty)."""
        if not self._segments:
            return 0.0
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        return max(0.0, (now - min(i.first_written_at_ms for i in self._segments.values())) / 1000)

    @property
    def full(self) -> bool:
        """At the quota: the last append did not fit and nothing was drained since."""
        return self._refused or self.size >= self.max_bytes

    def sealed_segments(self) -> list[Path]:
        """Segments no longer written to, oldest first: what the drainer may forward."""
        return sorted(path for path in self._segments if path != self._active_path)

    def seal(self) -> None:
        """Stop appending to the active segment, so the drainer can take it."""
        if self._flusher is not None and not self._flusher.done():
            self._seal_requested = True
        else:
            self._close_active()

    def remove(self, path: Path) -> None:
        """Delete a sealed segment whose records Kafka acknowledged."""
        if path == self._active_path:
            raise SpoolError(f"segment {path.name} is still being written")
        path.unlink(missing_ok=True)
        self._segments.pop(path, None)
        self._refused = False

    # -- appending ---------------------------------------------------------------------------------------

    async def append(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Write ``(key, value)`` records and fsync them; returns only once they are on disk.

        Raises SpoolFull at the quota, SpoolError when the disk write fails."""
        if self._lock_fd is None:
            raise SpoolError("spool is not open")
        now_ms = time.time_ns() // 1_000_000
        frames = b"".join(encode_frame(key, value, now_ms) for key, value in records)
        if self.size + len(frames) > self.max_bytes:
            self._refused = True
            raise SpoolFull(f"spool quota of {self.max_bytes} bytes reached ({self.depth} records waiting)")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(frames, len(records), now_ms, done))
        self._pending_bytes += len(frames)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        # A cancelled request must not cancel the shared write.
        await asyncio.shield(done)

    async def _flush_loop(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            data = b"".join(item.frames for item in batch)
            self._pending_bytes -= len(data)
            try:
                path = await asyncio.to_thread(self._write, data)
            except OSError as exc:
                log.error("spool write failed: %s", exc)
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(SpoolError(f"spool write failed: {exc}"))
                continue
            info = self._segments.get(path)
            if info is None:
                info = self._segments[path] = SegmentInfo(0, 0, batch[0].written_at_ms)
            info.records += sum(item.records for item in batch)
            info.size += len(data)
            for item in batch:
                if not item.done.done():
                    item.done.set_result(None)
        if self._seal_requested:
            self._seal_requested = False
            self._close_active()

    def _write(self, data: bytes) -> Path:
        """Runs in a worker thread; only ever one at a time (the flush loop awaits it)."""
        if self._active_fd is None or self._active_size >= self.segment_bytes:
            self._close_active()
            path = self.directory / f"{self._next_seq:016d}{_SUFFIX}"
            self._next_seq += 1
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            _fsync_dir(self.directory)
            self._active_fd, self._active_path, self._active_size = fd, path, 0
        assert self._active_fd is not None and self._active_path is not None
        view = memoryview(data)
        while view:
            written = os.write(self._active_fd, view)
            view = view[written:]
        os.fsync(self._active_fd)
        self._active_size += len(data)
        return self._active_path

    def _close_active(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
        self._active_fd, self._active_path, self._active_size = None, None, 0


def _fsync_dir(directory: Path) -> None:
    # A new file's directory entry is durable only once the directory itself is fsync'd.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
