"""Short links against the real Redis (and Kafka for clicks): shortening, collisions, re-processing,
expiry, and the /l/{code} redirect that never goes anywhere but the stored URL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from confluent_kafka import Consumer

from agents.send.links import LinkError, shorten_body
from config.companies import Company, CompanyDirectory, SendingSettings
from config.settings import KafkaSettings, Settings
from gateway import links as link_routes
from gateway.app import create_app
from projections.links import CREATED, RedisLinkStore, StoredLink
from streams.codec import AvroCodec
from streams.events import Event, LinkClicked, RawWebhook, SendRequested
from streams.producer import EventLogProducer

pytestmark = pytest.mark.stack

Client = TestClient[web.Request, web.Application]
DAY_MS = 86_400_000
ACME = Company(id="acme", name="Acme", program_name="Acme", numbers=("+14155550100",),
               sending=SendingSettings(link_domain="https://acme.link/"))


def _now() -> int:
    return time.time_ns() // 1_000_000


def _request(body: str = "") -> SendRequested:
    message_id = uuid.uuid4().hex
    return SendRequested(
        event_id=f"send-{message_id}", company_id="acme", profile_key="acme:+12125551234", occurred_at=_now(),
        received_at=_now(), message_id=message_id, kind="flow", body=body,
    )


@pytest.fixture
async def store(stack_settings: Settings) -> AsyncIterator[RedisLinkStore]:
    client = aioredis.Redis.from_url(stack_settings.redis.url)
    yield RedisLinkStore(client, stack_settings.redis)
    await client.aclose()


def _codes(*codes: str) -> Callable[[int], str]:
    it: Iterator[str] = iter(codes)
    return lambda length: next(it)


async def test_links_are_shortened_stored_and_announced(store: RedisLinkStore) -> None:
    send = _request()
    body = "Sale! https://shop.example/p/1?utm=sms. Or https://user:pw@shop.example/x. Reply STOP to opt out."
    now = _now()
    result = await shorten_body(body, ACME, send, now, store)

    # The safe link became the company's short link; the one with credentials was left alone.
    (created,) = result.created
    assert result.body == (f"Sale! https://acme.link/{created.code}. Or https://user:pw@shop.example/x. "
                           "Reply STOP to opt out.")
    assert [r.url for r in result.refused] == ["https://user:pw@shop.example/x"]
    assert len(created.code) == 8
    assert (created.url, created.message_id, created.profile_key) == (
        "https://shop.example/p/1?utm=sms", send.message_id, send.profile_key)
    assert created.expires_at == now + 90 * DAY_MS
    # Redis holds it with a 90-day expiry.
    stored = await store.get(created.code)
    assert stored is not None and stored.url == created.url and stored.message_id == send.message_id
    ttl_ms = await store._redis.pttl(store.key(created.code))
    assert 89 * DAY_MS < ttl_ms <= 90 * DAY_MS


async def test_a_collision_is_retried_with_a_new_code_and_never_overwrites(store: RedisLinkStore) -> None:
    taken = "T" + uuid.uuid4().hex[:7]
    first = await shorten_body("https://first.example/", ACME, _request(), _now(), store, _codes(taken))
    assert first.created[0].code == taken

    fresh = "F" + uuid.uuid4().hex[:7]
    second = await shorten_body("https://second.example/", ACME, _request(), _now(), store,
                                _codes(taken, taken, fresh))
    assert second.created[0].code == fresh
    owner = await store.get(taken)
    assert owner is not None and owner.url == "https://first.example/"

    with pytest.raises(LinkError, match="no free link code after 5 attempts"):
        await shorten_body("https://third.example/", ACME, _request(), _now(), store, lambda n: taken)


async def test_deciding_the_same_message_again_keeps_its_codes(store: RedisLinkStore) -> None:
    send = _request()
    body = "A https://a.example/1 B https://b.example/2"
    once = await shorten_body(body, ACME, send, _now(), store)
    again = await shorten_body(body, ACME, send, _now(), store)
    assert again.body == once.body
    assert [e.event_id for e in again.created] == [e.event_id for e in once.created]
    assert [e.code for e in again.created] == [e.code for e in once.created]
    assert len({e.code for e in once.created}) == 2


async def test_expired_links_are_gone(store: RedisLinkStore) -> None:
    code = "E" + uuid.uuid4().hex[:7]
    now = _now()
    link = StoredLink(code, "https://shop.example/", "acme", "acme:+12125551234", "m1", now, now + 300)
    assert (await store.put_if_absent(link, 0))[0] == CREATED
    assert await store.get(code, now) is not None
    # Past expires_at the lookup refuses it even before Redis evicts the key...
    assert await store.get(code, now + 300) is None
    # ...and Redis evicts it.
    await asyncio.sleep(0.4)
    assert await store.get(code) is None


class RecordingEmitter:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit_nowait(self, event: Event) -> None:
        self.events.append(event)


class _NoPublisher:
    async def publish_raw(self, record: RawWebhook, key: str) -> None:
        raise AssertionError("nothing is published")


async def _client(make: Callable[..., Awaitable[Client]], store: RedisLinkStore,
                  emitter: link_routes.ClickEmitter) -> Client:
    app = create_app(Settings(), CompanyDirectory([ACME]), _NoPublisher(), links=store, clicks=emitter)
    return await make(app)


async def test_redirect_goes_to_the_stored_url_and_records_the_click(
    aiohttp_client: Callable[..., Awaitable[Client]], store: RedisLinkStore
) -> None:
    emitter = RecordingEmitter()
    client = await _client(aiohttp_client, store, emitter)
    send = _request()
    shortened = await shorten_body("https://shop.example/p/9", ACME, send, _now(), store)
    code = shortened.created[0].code

    response = await client.get(f"/l/{code}", allow_redirects=False,
                                headers={"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4)"})
    assert response.status == 302
    assert response.headers["Location"] == "https://shop.example/p/9"
    assert response.headers["Cache-Control"] == "no-store"
    (click,) = emitter.events
    assert isinstance(click, LinkClicked)
    assert (click.code, click.message_id, click.profile_key, click.is_bot, click.agent_class) == (
        code, send.message_id, send.profile_key, False, "ios")

    # A HEAD request is a bot's (a preview fetch): still redirected, flagged.
    response = await client.head(f"/l/{code}", allow_redirects=False)
    assert response.status == 302
    clicked = emitter.events[-1]
    assert isinstance(clicked, LinkClicked) and clicked.is_bot and clicked.bot_signal == "head_request"


@pytest.mark.parametrize(
    "path", ["/l/unknown1", "/l/a%2Fb", "/l/..%2F..", "/l/" + "x" * 40, "/l/javascript:x"]
)
async def test_unknown_or_malformed_codes_are_404_json(
    aiohttp_client: Callable[..., Awaitable[Client]], store: RedisLinkStore, path: str
) -> None:
    emitter = RecordingEmitter()
    client = await _client(aiohttp_client, store, emitter)
    response = await client.get(path, allow_redirects=False)
    assert response.status == 404
    assert (await response.json())["error"]["code"] in ("unknown_link", "not_found")
    assert "Location" not in response.headers
    assert emitter.events == []


async def test_an_unsafe_url_that_reached_redis_is_never_redirected_to(
    aiohttp_client: Callable[..., Awaitable[Client]], store: RedisLinkStore
) -> None:
    client = await _client(aiohttp_client, store, RecordingEmitter())
    now = _now()
    for i, url in enumerate(["javascript:alert(1)", "//evil.example", "https://u:p@evil.example/"]):
        code = f"U{i}" + uuid.uuid4().hex[:6]
        record = {"code": code, "url": url, "company_id": "acme", "profile_key": "acme:+1", "message_id": "m",
                  "created_at": now, "expires_at": now + DAY_MS}
        # Written behind the store's back: the store itself refuses unsafe URLs.
        await store._redis.set(store.key(code), json.dumps(record), px=DAY_MS)
        response = await client.get(f"/l/{code}", allow_redirects=False)
        assert response.status == 404, url
    with pytest.raises(ValueError, match="scheme"):
        bad = StoredLink("Zzzzzzzz", "data:text/html,x", "acme", "p", "m", now, now + 1)
        await store.put_if_absent(bad, 0)


async def test_the_redirect_does_not_wait_for_kafka(
    aiohttp_client: Callable[..., Awaitable[Client]], store: RedisLinkStore
) -> None:
    # A producer whose broker does not answer: the click stays pending, the redirect is immediate.
    producer = EventLogProducer(KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    await producer.start()
    emitter = link_routes.KafkaEventEmitter(producer, AvroCodec(), "sms.events")
    client = await _client(aiohttp_client, store, emitter)
    code = (await shorten_body("https://shop.example/", ACME, _request(), _now(), store)).created[0].code
    started = time.monotonic()
    response = await client.get(f"/l/{code}", allow_redirects=False)
    elapsed = time.monotonic() - started
    assert response.status == 302
    assert elapsed < 1.0, f"redirect took {elapsed:.2f}s"
    await producer.stop(flush_timeout_s=0.2)


async def test_a_click_reaches_the_event_log(
    aiohttp_client: Callable[..., Awaitable[Client]], store: RedisLinkStore, stack_settings: Settings
) -> None:
    producer = EventLogProducer(stack_settings.kafka)
    await producer.start()
    codec = AvroCodec()
    emitter = link_routes.KafkaEventEmitter(producer, codec, stack_settings.topics.events)
    client = await _client(aiohttp_client, store, emitter)
    send = _request()
    code = (await shorten_body("https://shop.example/k", ACME, send, _now(), store)).created[0].code
    assert (await client.get(f"/l/{code}", allow_redirects=False)).status == 302
    await producer.stop()
    assert emitter.failed == 0

    consumer = Consumer({"bootstrap.servers": stack_settings.kafka.bootstrap_servers,
                         "group.id": f"click-probe-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
    consumer.subscribe([stack_settings.topics.events])
    try:
        deadline = time.monotonic() + 30
        found = None
        while found is None and time.monotonic() < deadline:
            msg = await asyncio.to_thread(consumer.poll, 0.5)
            if msg is None or msg.error():
                continue
            event = codec.decode(msg.value())
            if isinstance(event, LinkClicked) and event.code == code:
                found = (msg.key(), event)
        assert found is not None, "the click never reached sms.events"
        key, event = found
        assert key == send.profile_key.encode() and event.message_id == send.message_id
    finally:
        consumer.close()
