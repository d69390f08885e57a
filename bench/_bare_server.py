"""A bare aiohttp server that reads the body and answers 200: the baseline the benchmarks compare with."""

from __future__ import annotations

import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text='<?xml version="1.0" encoding="UTF-8"?><Response/>', content_type="text/xml")


def main() -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
