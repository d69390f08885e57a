"""Link safety (open-redirect attempts), link finding, click classification and sign-up links."""

from __future__ import annotations

import pytest

from agents.send.links import BASE62, find_links, random_code
from gateway.clicks import classify_click
from gateway.join import sms_link
from streams.urls import UnsafeUrlError, safe_url

SAFE = [
    "https://shop.example/p/1?utm_source=sms#top",
    "http://shop.example:8080/",
    "HTTPS://Shop.Example/Path",
    "http://[2001:db8::1]/x",
    "https://xn--bcher-kva.example/",
]
UNSAFE = [
    ("javascript:alert(1)", "scheme"),
    ("JavaScript:alert(document.cookie)", "scheme"),
    ("data:text/html;base64,PHNjcmlwdD4=", "scheme"),
    ("vbscript:msgbox(1)", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("ftp://files.example/x", "scheme"),
    ("//evil.example/", "scheme"),
    ("/relative/path", "scheme"),
    ("https:/evil.example", "start with"),
    ("https:evil.example", "start with"),
    ("https://user:secret@shop.example/", "credentials"),
    ("https://shop.example@evil.example/", "credentials"),
    ("https://@evil.example/", "credentials"),
    ("https://shop.example/\r\nLocation: https://evil.example", "control"),
    ("https://shop.example/\x00", "control"),
    ("java\tscript:alert(1)", "control"),
    ("https://shop.example/a b", "whitespace"),
    ("https://shop\u200b.example/", "control"),
    ("https://shop.example\u2028/", "control"),
    ("https:\\\\evil.example", "backslash"),
    ("https://shop.example\\@evil.example", "backslash"),
    ("https:///nohost", "no host"),
    ("https://shop.example:99999/", "parse"),
    ("", "empty"),
    ("https://shop.example/" + "a" * 2100, "longer"),
]


@pytest.mark.parametrize("url", SAFE)
def test_safe_urls_pass_unchanged(url: str) -> None:
    assert safe_url(url) == url


@pytest.mark.parametrize(("url", "why"), UNSAFE)
def test_open_redirect_attempts_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrlError, match=why):
        safe_url(url)


@pytest.mark.parametrize(
    ("body", "urls"),
    [
        ("Sale! https://shop.example/sale.", ["https://shop.example/sale"]),
        ("(see https://shop.example/a?b=1), ok", ["https://shop.example/a?b=1"]),
        ("https://en.example/wiki/Foo_(bar) and HTTP://X.example/y!", [
            "https://en.example/wiki/Foo_(bar)", "HTTP://X.example/y"]),
        ("two: http://a.example/1 https://b.example/2", ["http://a.example/1", "https://b.example/2"]),
        ("no links, javascript:alert(1) or www.shop.example or https://", []),
        ("quoted \"https://q.example/x\" and <https://r.example/y>", [
            "https://q.example/x", "https://r.example/y"]),
    ],
)
def test_find_links(body: str, urls: list[str]) -> None:
    found = find_links(body)
    assert [u for _, _, u in found] == urls
    assert all(body[start:end] == url for start, end, url in found)


def test_random_codes_are_base62_of_the_asked_length_and_differ() -> None:
    codes = {random_code(8) for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set(BASE62) for c in codes)
    assert len(random_code(12)) == 12


IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Version/17.4 Mobile"
ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36"


@pytest.mark.parametrize(
    ("method", "headers", "agent_class", "is_bot", "signal"),
    [
        ("GET", {"User-Agent": IPHONE}, "ios", False, ""),
        ("GET", {"User-Agent": ANDROID}, "android", False, ""),
        ("GET", {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64) Chrome/124.0"}, "desktop", False, ""),
        ("GET", {}, "unknown", False, ""),
        # iMessage link previews announce themselves as both Facebook's and Twitter's fetchers.
        ("GET", {"User-Agent": "Mozilla/5.0 (compatible; facebookexternalhit/1.1; Facebot Twitterbot/1.0)"},
         "preview", True, "preview_agent"),
        ("GET", {"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"}, "preview", True,
         "preview_agent"),
        ("GET", {"User-Agent": "WhatsApp/2.23.20.0 A"}, "preview", True, "preview_agent"),
        ("GET", {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}, "crawler", True, "crawler_agent"),
        ("GET", {"User-Agent": "curl/8.5.0"}, "http_client", True, "http_client_agent"),
        ("GET", {"User-Agent": IPHONE, "Sec-Purpose": "prefetch;prerender"}, "ios", True, "prefetch_header"),
        ("GET", {"User-Agent": ANDROID, "Purpose": "prefetch"}, "android", True, "prefetch_header"),
        ("HEAD", {"User-Agent": IPHONE}, "ios", True, "head_request"),
    ],
)
def test_click_classification(
    method: str, headers: dict[str, str], agent_class: str, is_bot: bool, signal: str
) -> None:
    click = classify_click(method, headers)
    assert (click.agent_class, click.is_bot, click.signal) == (agent_class, is_bot, signal)


def test_sms_links_for_ios_android_and_both() -> None:
    assert sms_link("+14155550100", "JOIN", "ios") == "sms:+14155550100&body=JOIN"
    assert sms_link("+14155550100", "JOIN", "android") == "sms:+14155550100?body=JOIN"
    assert sms_link("+14155550100", "JOIN") == "sms:+14155550100?&body=JOIN"
    assert sms_link("+14155550100", "a b&c") == "sms:+14155550100?&body=a%20b%26c"
