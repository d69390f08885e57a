"""The spool (fsync'd segments, quota, lock, torn tails), its drainer, and the durable recorder that
chooses between Kafka's ack and the spool. Real files in a temp dir; Kafka is a fake sender here (the
real broker cases live in tests/faults)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlencode

import pytest

from gateway import PublishError, SpoolError, SpoolFull, create_app
from gateway.drainer import SpoolDrainer
from gateway.durable import Durability, DurableRecorder
from gateway.metrics import GatewayMetrics
from gateway.signatures import twilio_signature
from gateway.spool import Spool, read_segment
from streams.codec import AvroCodec
from streams.events import RawWebhook
from tests.unit.gateway_support import (
    ACME_NUMBER,
    PUBLIC_BASE,
    SENDER,
    TWILIO_TOKEN,
    FakePublisher,
    MakeClient,
    companies,
    expect_error,
    settings,
)


def _spool(path: Path, max_bytes: int = 1 << 20, segment_bytes: int = 1 << 16) -> Spool:
    spool = Spool(path, max_bytes, segment_bytes)
    spool.open()
    return spool


def _all(spool: Spool) -> list[tuple[bytes, bytes]]:
    return [(r.key, r.value) for path in spool.sealed_segments() for r in read_segment(path)]


async def test_appended_records_survive_reopen_in_order(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=200)
    records = [(f"k{i}".encode(), f"value-{i}".encode() * 5) for i in range(20)]
    for record in records:
        await spool.append([record])
    assert spool.depth == 20
    spool.close()
    # A new process (a restart) finds every record, in order, across several segments.
    reopened = _spool(tmp_path)
    assert len(reopened.sealed_segments()) > 1
    assert _all(reopened) == records
    assert reopened.depth == 20


async def test_concurrent_appends_share_fsyncs_and_all_land(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    await asyncio.gather(*(spool.append([(b"k", str(i).encode())]) for i in range(200)))
    spool.seal()
    assert sorted(int(v) for _, v in _all(spool)) == list(range(200))


def _tear(directory: Path) -> Path:
    [segment] = directory.glob("*.seg")
    with segment.open("ab") as f:
        f.write(b"\x00\x00\x00\x40\x12")
    return segment


def _segments(directory: Path) -> list[Path]:
    return list(directory.glob("*.seg"))


async def test_torn_tail_is_skipped(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    await spool.append([(b"a", b"1"), (b"b", b"2")])
    spool.close()
    # kill -9 in the middle of a write: half a frame at the end was never acknowledged.
    segment = _tear(tmp_path)
    assert [(r.key, r.value) for r in read_segment(segment)] == [(b"a", b"1"), (b"b", b"2")]


async def test_quota_refuses_with_spool_full(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=300)
    await spool.append([(b"k", b"x" * 200)])
    with pytest.raises(SpoolFull):
        await spool.append([(b"k", b"x" * 200)])
    assert spool.full
    assert spool.depth == 1


def test_second_gateway_cannot_use_the_same_directory(tmp_path: Path) -> None:
    _spool(tmp_path)
    with pytest.raises(SpoolError, match="in use by another gateway"):
        _spool(tmp_path)


class FakeSender:
    """Acknowledges (or fails) like librdkafka's delivery reports."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.fail = False

    def send_nowait(self, topic: str, key: bytes | None, value: bytes, /) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(PublishError("no ack"))
        else:
            self.sent.append((key, value))
            future.set_result(None)
        return future


async def _until(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_drainer_forwards_in_order_and_removes_only_after_ack(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=100)
    sender = FakeSender()
    sender.fail = True
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(10)]
    for record in records:
        await spool.append([record])
    task = asyncio.create_task(SpoolDrainer(spool, sender, "raw", idle_s=0.01, retry_s=0.01).run())
    try:
        # Kafka does not acknowledge: nothing is removed.
        await asyncio.sleep(0.1)
        assert spool.depth == 10
        sender.fail = False
        await _until(lambda: spool.depth == 0)
    finally:
        task.cancel()
    assert sender.sent[:10] == records
    assert _segments(tmp_path) == []


def _record(i: int) -> RawWebhook:
    return RawWebhook(
        request_id=f"r{i}",
        vendor="twilio",
        endpoint="inbound",
        url="u",
        method="POST",
        content_type="x",
        headers={},
        body=b"b",
        received_at=1,
        dedupe_key=f"d{i}",
    )


def _encoded(i: int) -> bytes:
    return AvroCodec().encode(_record(i))


async def test_recorder_spools_what_kafka_did_not_ack_within_budget(tmp_path: Path) -> None:
    publisher = FakePublisher()
    publisher.hang = True
    spool = _spool(tmp_path)
    recorder = DurableRecorder(publisher, spool, GatewayMetrics())
    started = asyncio.get_running_loop().time()
    assert await recorder.record("twilio", [(_encoded(1), SENDER)], budget_s=0.2) is Durability.SPOOL
    assert asyncio.get_running_loop().time() - started < 1.0
    spool.seal()
    [(key, value)] = _all(spool)
    assert key == SENDER.encode()
    assert AvroCodec().decode(value) == _record(1)


async def test_recorder_wakes_each_request_when_its_own_budget_runs_out(tmp_path: Path) -> None:
    # One timer serves every waiting request, whatever their budgets and the order they came in.
    publisher = FakePublisher()
    publisher.hang = True
    recorder = DurableRecorder(publisher, _spool(tmp_path), GatewayMetrics())
    loop = asyncio.get_running_loop()

    async def spooled_after(budget_s: float, delay_s: float = 0.0) -> float:
        await asyncio.sleep(delay_s)
        started = loop.time()
        assert await recorder.record("twilio", [(_encoded(1), "k")], budget_s) is Durability.SPOOL
        return loop.time() - started

    slow, fast, later = await asyncio.gather(spooled_after(1.0), spooled_after(0.1), spooled_after(0.1, 0.2))
    assert 1.0 <= slow < 2.0
    assert 0.1 <= fast < 0.5 and 0.1 <= later < 0.5


async def test_recorder_acked_by_kafka_does_not_spool(tmp_path: Path) -> None:
    publisher = FakePublisher()
    spool = _spool(tmp_path)
    recorder = DurableRecorder(publisher, spool, GatewayMetrics())
    assert await recorder.record("twilio", [(_encoded(1), "k"), (_encoded(2), "k")], 1.0) is Durability.KAFKA
    assert spool.depth == 0
    assert len(publisher.published) == 2


async def test_recorder_without_spool_raises_publish_error() -> None:
    publisher = FakePublisher()
    publisher.fail = True
    recorder = DurableRecorder(publisher, None, GatewayMetrics())
    with pytest.raises(PublishError):
        await recorder.record("twilio", [(_encoded(1), "k")], 1.0)


def _twilio_inbound() -> tuple[str, dict[str, str]]:
    fields = {"MessageSid": "SM" + "1" * 32, "From": SENDER, "To": ACME_NUMBER, "Body": "hi"}
    path = "/webhooks/twilio/inbound"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + path, fields),
    }
    return urlencode(fields), headers


async def test_webhook_is_acknowledged_through_the_spool_then_503_at_quota(
    aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    publisher = FakePublisher()
    publisher.hang = True
    spool = _spool(tmp_path, max_bytes=700)
    app = create_app(settings(ack_budgets={"twilio": 0.05}), companies(), publisher, spool=spool)
    client = await aiohttp_client(app)
    body, headers = _twilio_inbound()
    # Kafka hangs: the first request is spooled and acknowledged with a 2xx.
    assert (await client.post("/webhooks/twilio/inbound", data=body, headers=headers)).status == 200
    assert spool.depth == 1
    # Until the quota is reached; then 503 with Retry-After, and /readyz says why.
    statuses = [
        (await client.post("/webhooks/twilio/inbound", data=body, headers=headers)).status for _ in range(5)
    ]
    assert 503 in statuses
    response = await client.post("/webhooks/twilio/inbound", data=body, headers=headers)
    await expect_error(response, 503, "spool_full")
    assert int(response.headers["Retry-After"]) > 0
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["spool"] == "full"
    metrics = await (await client.get("/metrics")).text()
    assert 'smsfold_gateway_durability_total{outcome="spool",vendor="twilio"}' in metrics
    assert f"smsfold_gateway_spool_records {float(spool.depth)}" in metrics
