"""GET /join/{company}/{keyword}: an sms: link with the opt-in keyword, for iOS, Android or both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.companies import Company, CompanyDirectory, CustomKeyword, KeywordSettings
from config.settings import Settings
from gateway.app import create_app
from streams.events import RawWebhook

Client = TestClient[web.Request, web.Application]
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"
ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36"


class _NoPublisher:
    async def publish_raw(self, record: RawWebhook, key: str) -> None:
        raise AssertionError("the join page publishes nothing")


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    companies = CompanyDirectory([
        Company(id="acme", name="Acme", program_name="Acme <SMS>", numbers=("+14155550100", "+14155550101"),
                keywords=KeywordSettings(custom={
                    "JOIN": CustomKeyword(reply="Welcome", consent_effect="subscribe"),
                    "HOURS": CustomKeyword(reply="9-5"),
                })),
        Company(id="nonumber", name="N", program_name="N", numbers=()),
    ])
    app = create_app(Settings(), companies, _NoPublisher())
    return await aiohttp_client(app)


async def test_default_page_links_the_form_both_platforms_read(client: Client) -> None:
    response = await client.get("/join/acme/join")
    assert response.status == 200
    page = await response.text()
    assert 'href="sms:+14155550100?&amp;body=JOIN"' in page
    # The program name is escaped into the page, never injected.
    assert "Acme &lt;SMS&gt;" in page and "<SMS>" not in page


@pytest.mark.parametrize(("agent", "link"), [
    (IPHONE, "sms:+14155550100&body=START"),
    (ANDROID, "sms:+14155550100?body=START"),
    ("curl/8", "sms:+14155550100?&body=START"),
])
async def test_redirect_and_json_pick_the_agents_form(client: Client, agent: str, link: str) -> None:
    response = await client.get("/join/acme/Start?redirect=1", headers={"User-Agent": agent},
                                allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == link
    json_headers = {"User-Agent": agent, "Accept": "application/json"}
    response = await client.get("/join/acme/start", headers=json_headers)
    payload = await response.json()
    assert payload == {"company": "acme", "number": "+14155550100", "keyword": "START", "sms_link": link,
                       "sms_link_any": "sms:+14155550100?&body=START"}


@pytest.mark.parametrize(("path", "code"), [
    ("/join/nobody/START", "unknown_company"),
    ("/join/nonumber/START", "unknown_company"),
    ("/join/acme/HOURS", "unknown_keyword"),  # a company keyword that does not subscribe
    ("/join/acme/STOP", "unknown_keyword"),
    ("/join/acme/J%20OIN", "unknown_keyword"),
])
async def test_unknown_company_or_non_opt_in_keyword_is_404(client: Client, path: str, code: str) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == code
