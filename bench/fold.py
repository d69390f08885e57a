"""Fold benchmark: events/s folded by the projectors into ClickHouse and Redis, against a bare loop.

Starts a private embedded stack (port base 26000, temp state dir), fills ``sms.events`` with
realistic events (mixed types, many profiles, ~5% duplicates), then measures on the same data:
- bare: one confluent-kafka consumer → fastavro decode → row tuples → ClickHouse INSERT of 10,000 rows,
  commit; the simplest loop that does the ClickHouse part of the job;
- the projectors as the worker runs them (ClickHouse and Redis runners, two threads, one process), and
  each in its own process as `smsfold projector --name ...` runs them.
Events/s count from each consumer's first record to its last commit (group joins excluded).

    python bench/fold.py [--events 200000] [--port-base 26000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import multiprocessing as mp
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
import orjson
from confluent_kafka import Consumer, Producer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.settings import Settings, load_settings  # noqa: E402
from projections.clickhouse import ENVELOPE_FIELDS, clickhouse_client  # noqa: E402
from projections.projectors import build_runner  # noqa: E402
from smsfold.stack import EmbeddedStack  # noqa: E402
from smsfold.workload import generate_events  # noqa: E402
from streams.codec import _HEADER, AvroCodec  # noqa: E402
from streams.producer import producer_config  # noqa: E402

_COLUMNS = ("event_id, event_type, company_id, profile_key, occurred_at, received_at, projected_at, "
            "event_date, causation_id, message_id, flow_id, campaign_id, payload")


def bench_settings(port_base: int, state_dir: Path) -> Settings:
    b = port_base
    return load_settings(
        kafka={"bootstrap_servers": f"127.0.0.1:{b + 92}"},
        clickhouse={"port": b + 1, "http_port": b + 23, "database": "bench"},
        redis={"url": f"redis://127.0.0.1:{b + 79}/0"},
        stack={"state_dir": state_dir, "broker_port": b + 92, "clickhouse_tcp_port": b + 1,
               "clickhouse_http_port": b + 23, "clickhouse_interserver_port": b + 9, "redis_port": b + 79},
        projector={"group_prefix": f"bench-{uuid.uuid4().hex[:8]}"},
    )


def fill(settings: Settings, events: int) -> int:
    """Produce at least ``events`` records to sms.events; returns how many were produced."""
    codec = AvroCodec()
    producer = Producer(producer_config(settings.kafka, **{"linger.ms": 50, "batch.num.messages": 10000}))
    profiles = max(1, events // 24)
    produced = 0
    while produced < events:
        for event in generate_events(profiles, seed=produced + 7):
            while True:
                try:
                    producer.produce(settings.topics.events, key=event.profile_key.encode(),
                                     value=codec.encode(event))
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            produced += 1
            if produced >= events:
                break
    producer.flush(60)
    return produced


def bare_loop(settings: Settings, total: int, batch: int) -> float:
    """The baseline: consume → fastavro → rows → INSERT → commit; returns events/s."""
    codec = AvroCodec()
    writers = {fp: codec._by_fingerprint[fp][0] for fp in codec.fingerprints}
    client = clickhouse_client(settings.clickhouse, database="bench_bare")
    query = f"INSERT INTO events ({_COLUMNS}) VALUES"
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([settings.topics.events])
    rows: list[tuple[Any, ...]] = []
    seen, started = 0, 0.0
    while seen < total:
        for msg in consumer.consume(batch, timeout=1.0):
            if msg.error():
                continue
            if not started:
                started = time.monotonic()
            value = msg.value()
            e = fastavro.schemaless_reader(io.BytesIO(value[_HEADER.size:]),
                                           writers[_HEADER.unpack_from(value)[1]], None)
            rows.append((e["event_id"], e["event_type"], e["company_id"], e["profile_key"], e["occurred_at"],
                         e["received_at"], int(time.time() * 1000),
                         dt.datetime.fromtimestamp(e["occurred_at"] / 1000, tz=dt.UTC).date(),
                         e.get("causation_id") or "", e.get("message_id") or "", e.get("flow_id") or "",
                         e.get("campaign_id") or "",
                         orjson.dumps({k: v for k, v in e.items() if k not in ENVELOPE_FIELDS}).decode()))
            seen += 1
        if len(rows) >= batch or (rows and seen >= total):
            client.execute(query, rows)
            consumer.commit(asynchronous=False)
            rows = []
    elapsed = time.monotonic() - started
    consumer.close()
    client.disconnect()
    return total / elapsed


def _run_until(settings: Settings, names: tuple[str, ...], total: int) -> dict[str, float]:
    runners = [build_runner(name, settings) for name in names]
    threads = [threading.Thread(target=r.run) for r in runners]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 600
    while any(r.folded + r.poison_records < total for r in runners):
        if time.monotonic() > deadline:
            raise TimeoutError(f"projectors stuck: {[(r.name, r.folded) for r in runners]} of {total}")
        time.sleep(0.02)
    for r in runners:
        r.stop()
    for t in threads:
        t.join()
    rates = {}
    for r in runners:
        assert r.first_read_at is not None and r.last_commit_at is not None
        rates[r.name] = total / (r.last_commit_at - r.first_read_at)
    start = min(r.first_read_at or 0 for r in runners)
    rates["both"] = total / (max(r.last_commit_at or 0 for r in runners) - start)
    return rates


def _child(settings: Settings, name: str, total: int, out: Any) -> None:
    out.put(_run_until(settings, (name,), total)[name])


def projectors_in_processes(settings: Settings, total: int) -> dict[str, float]:
    # spawn, not fork: the parent holds librdkafka threads, which a forked child would inherit broken.
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(settings, name, total, queue))
             for name in ("clickhouse", "redis")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(660)
    return {f"process-{i}": queue.get() for i in range(2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--port-base", type=int, default=26000,
                        help="ports base+1, +9, +23, +79, +92 (default 26000)")
    args = parser.parse_args()
    # A SIGTERM (e.g. from `timeout`) unwinds through the finally below, so the stack goes down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="smsfold-bench-") as state:
        settings = bench_settings(args.port_base, Path(state))
        stack = EmbeddedStack(settings)
        stack.up()
        try:
            from projections.migrate import apply_migrations
            apply_migrations(settings.clickhouse.model_copy(update={"database": "bench_bare"}))
            t = time.monotonic()
            total = fill(settings, args.events)
            print(f"filled {settings.topics.events} with {total} events in {time.monotonic() - t:.1f}s")
            batch = settings.projector.batch_size
            bare = bare_loop(settings, total, batch)
            print(f"bare confluent-kafka → fastavro → ClickHouse loop: {bare:,.0f} events/s")
            rates = _run_until(settings, ("clickhouse", "redis"), total)
            print(f"projectors, one process (worker threads): ClickHouse {rates['clickhouse']:,.0f}/s, "
                  f"Redis {rates['redis']:,.0f}/s, both folded at {rates['both']:,.0f} events/s")
            print(f"ratio (both projectors, one process) / bare: {rates['both'] / bare:.2f}")
            prefix = settings.projector.group_prefix + "-p"
            fresh = settings.projector.model_copy(update={"group_prefix": prefix})
            procs = projectors_in_processes(settings.model_copy(update={"projector": fresh}), total)
            slowest = min(procs.values())
            print(f"projectors, one process each: slowest {slowest:,.0f} events/s "
                  f"(ratio {slowest / bare:.2f})")
        finally:
            stack.down(purge=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
