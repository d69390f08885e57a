"""``smsfold renormalize --from-beginning``: re-derive domain events from ``sms.webhooks.raw``.

After a parser or classifier fix, every raw vendor request is normalized again with the normalizer's own
code (agents/normalize.py) and compared with what ``sms.events`` already holds, by deterministic event id:

- unchanged (same id, same content): not produced by default. It would be a duplicate the projections
  ignore, but the profile decider remembers only its recent causes, so an old duplicate could be decided
  again (an auto reply sent twice); ``--include-unchanged`` produces them anyway, byte for byte as logged.
- changed (same id, new content, e.g. a message now classified differently): produced; the projections
  fold the newer content under the same id (ClickHouse rows replaced, Redis entries overwritten).
- new (an id the log lacks, e.g. a record the old parser dead-lettered): produced.
Re-derived events keep the original ``stage_times`` (when the pipeline first handled the request), so
only a real change differs. Changed and new events reach the deciders like any new event: that is the
point of a fix (a STOP now recognised unsubscribes). Nothing else is re-run: no decider replays its
history, so decisions already made are not made again.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Producer

from agents.normalize import NormalizationError, Normalizer
from config import Settings, load_companies
from projections.offsets import scan_all
from streams.codec import AvroCodec, DecodeError
from streams.events import Event, RawWebhook
from streams.producer import producer_config

__all__ = ["Renormalized", "renormalize", "run_renormalize"]


@dataclass
class Renormalized:
    """Counts of one renormalization run."""

    raw_records: int = 0
    failed: int = 0
    unchanged: int = 0
    changed: int = 0
    new: int = 0
    produced: int = 0


def _content(values: dict[str, Any]) -> bytes:
    """A digest of the event without ``stage_times`` (a digest, so a large log's index stays small)."""
    canonical = orjson.dumps({k: v for k, v in values.items() if k != "stage_times"},
                             option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).digest()


def _logged(settings: Settings, codec: AvroCodec) -> dict[str, tuple[bytes, dict[str, int] | None]]:
    """Event id → (digest without stage_times, stage_times) for every event in ``sms.events``."""
    out: dict[str, tuple[bytes, dict[str, int] | None]] = {}
    for messages in scan_all(settings, settings.topics.events):
        for msg in messages:
            try:
                _, values = codec.decode_values(msg.value() or b"")
            except DecodeError:
                continue
            if "event_id" in values:
                out.setdefault(values["event_id"], (_content(values), values.get("stage_times")))
    return out


def run_renormalize(settings: Settings, *, dry_run: bool = False, include_unchanged: bool = False,
                    codec: AvroCodec | None = None) -> Renormalized:
    """Normalize every raw record again and produce what is new or changed (see the module doc)."""
    codec = codec or AvroCodec()
    normalizer = Normalizer(load_companies(settings.companies_file))
    logged = _logged(settings, codec)
    producer = None if dry_run else Producer(producer_config(settings.kafka))
    out = Renormalized()
    for messages in scan_all(settings, settings.topics.raw):
        for msg in messages:
            out.raw_records += 1
            try:
                raw = codec.decode(msg.value() or b"")
                if not isinstance(raw, RawWebhook):
                    raise NormalizationError(f"expected RawWebhook, got {type(raw).__name__}")
                events = normalizer.normalize(raw).events
            except (DecodeError, NormalizationError):
                out.failed += 1
                continue
            for derived in events:
                event = _classified(derived, logged, out, include_unchanged)
                if event is not None and producer is not None:
                    producer.produce(settings.topics.events, key=event.profile_key.encode(),
                                     value=codec.encode(event))
                    producer.poll(0)
                    out.produced += 1
    if producer is not None and producer.flush(60):
        raise RuntimeError("renormalized events not acknowledged by Kafka within 60 s")
    return out


def _classified(event: Event, logged: dict[str, tuple[bytes, dict[str, int] | None]],
                out: Renormalized, include_unchanged: bool = False) -> Event | None:
    """The event to produce (with the logged stage_times), or None; counts it in ``out``."""
    before = logged.get(event.event_id)
    if before is None:
        out.new += 1
        return event
    content, stage_times = before
    if stage_times is not None and hasattr(event, "stage_times"):
        event = event.model_copy(update={"stage_times": stage_times})
    if _content(event.model_dump()) == content:
        out.unchanged += 1
        return event if include_unchanged else None
    out.changed += 1
    return event


def renormalize(settings: Settings, args: argparse.Namespace) -> int:
    """The CLI command: run it and print the counts."""
    result = run_renormalize(settings, dry_run=args.dry_run, include_unchanged=args.include_unchanged)
    print(f"raw records {result.raw_records:,}: {result.failed:,} not normalizable, {result.unchanged:,} "
          f"unchanged, {result.changed:,} changed, {result.new:,} new; produced {result.produced:,}"
          f"{' (dry run)' if args.dry_run else ''}", file=sys.stderr)
    return 0
