"""Replay benchmark: rebuild every projection from ``sms.events`` into shadow storage, against a bare loop.

Starts a private embedded stack (port base 26500, temp state dir), fills ``sms.events`` with realistic
events (mixed types, ~24 per profile, ~5% duplicates; bench/fold.py's filler), then measures on the same
data:
- bare: one confluent-kafka consumer → fastavro decode of every record, nothing written (the floor any
  rebuild pays to read the log);
- `smsfold replay --projection all` as the command runs it: both projections rebuilt together (one
  runner reading the log once, fresh groups, shadow database and key prefix) until caught up; then the
  verification scan and the swap, timed separately.

    python bench/replay.py [--events 1000000] [--port-base 26500]
"""

from __future__ import annotations

import argparse
import io
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import fastavro
from confluent_kafka import Consumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fold import bench_settings, fill  # noqa: E402
from config.settings import Settings  # noqa: E402
from projections.replay import Rebuild, fewer_gc_passes, start_rebuilds  # noqa: E402
from projections.replay_check import summarize  # noqa: E402
from smsfold.stack import EmbeddedStack  # noqa: E402
from streams.codec import _HEADER, AvroCodec  # noqa: E402


def bare_decode(settings: Settings, total: int) -> float:
    """The baseline: consume → fastavro decode, nothing written; returns events/s."""
    codec = AvroCodec()
    writers = {fp: codec._by_fingerprint[fp][0] for fp in codec.fingerprints}
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([settings.topics.events])
    seen, started = 0, 0.0
    while seen < total:
        for msg in consumer.consume(10_000, timeout=1.0):
            if msg.error():
                continue
            started = started or time.monotonic()
            value = msg.value()
            fastavro.schemaless_reader(io.BytesIO(value[_HEADER.size:]),
                                       writers[_HEADER.unpack_from(value)[1]], None)
            seen += 1
    elapsed = time.monotonic() - started
    consumer.close()
    return total / elapsed


def rebuild_all(settings: Settings, total: int) -> float:
    """Rebuild, verify and swap both projections; returns the rebuild's events/s."""
    codec = AvroCodec()
    rebuilds = [Rebuild(name, settings, codec=codec) for name in ("clickhouse", "redis")]
    started = time.monotonic()
    start_rebuilds(rebuilds)
    while not all(r.caught_up() for r in rebuilds):
        time.sleep(0.2)
    for r in rebuilds:
        r.stop()
    built = time.monotonic() - started
    for r in rebuilds:
        assert r.runner is not None and r.runner.first_read_at and r.runner.last_commit_at
        own = r.folded / (r.runner.last_commit_at - r.runner.first_read_at)
        print(f"  {r.name}: {r.folded:,} events, {own:,.0f} events/s from its first read to its last commit")
    print(f"rebuild of every projection (start to caught up, group joins included): {built:.1f}s, "
          f"{total / built:,.0f} events/s, {built * 1_000_000 / total:.1f}s per million events")
    t = time.monotonic()
    summary = summarize(settings, rebuilds[0].offsets, codec)
    for r in rebuilds:
        r.verify(summary)
    verified = time.monotonic() - t
    t = time.monotonic()
    for r in rebuilds:
        r.swap()
    print(f"verification (topic scan, counts, sample): {verified:.1f}s; swap (incl. dropping the old "
          f"version): {time.monotonic() - t:.1f}s")
    return total / built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--port-base", type=int, default=26500,
                        help="ports base+1, +9, +23, +79, +92 (default 26500)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="smsfold-bench-") as state:
        settings = bench_settings(args.port_base, Path(state))
        stack = EmbeddedStack(settings)
        stack.up()
        try:
            t = time.monotonic()
            total = fill(settings, args.events)
            print(f"filled {settings.topics.events} with {total:,} events in {time.monotonic() - t:.1f}s")
            bare = bare_decode(settings, total)
            print(f"bare confluent-kafka → fastavro decode loop: {bare:,.0f} events/s")
            with fewer_gc_passes():  # as `smsfold replay` runs
                rate = rebuild_all(settings, total)
            print(f"ratio rebuild / bare decode: {rate / bare:.2f}")
        finally:
            stack.down(purge=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
