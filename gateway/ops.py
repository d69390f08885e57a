"""Operations endpoints: liveness, readiness (broker reachable, spool below quota), Prometheus metrics,
and the OpenAPI document."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from gateway.api import OPERATIONS_KEY, Operation, add_operation
from gateway.keys import METRICS_KEY
from gateway.metrics import CONTENT_TYPE
from gateway.openapi import build_openapi
from gateway.spool import Spool

__all__ = ["PROBE_KEY", "SPOOL_KEY", "BrokerProbe", "add_ops_routes"]


class BrokerProbe(Protocol):
    """Whether the Kafka cluster answers a metadata request right now."""

    async def reachable(self) -> bool: ...


PROBE_KEY = web.AppKey("broker_probe", BrokerProbe)
SPOOL_KEY = web.AppKey("spool", Spool)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the broker answers and the spool is below its quota; 503 naming what is not."""
    checks: dict[str, str] = {}
    probe = request.app.get(PROBE_KEY)
    if probe is not None:
        checks["broker"] = "ok" if await probe.reachable() else "unreachable"
    spool = request.app.get(SPOOL_KEY)
    if spool is not None:
        checks["spool"] = "full" if spool.full else "ok"
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    operations: list[Operation] = request.app[OPERATIONS_KEY]
    document = build_openapi(operations, "smsfold gateway", "1.0.0")
    return web.json_response(document)


def add_ops_routes(app: web.Application) -> None:
    ok = {"description": "OK"}
    for path, handler, op_id, summary, responses in (
        ("/healthz", healthz, "healthz", "Liveness: the process answers", {"200": ok}),
        (
            "/readyz",
            readyz,
            "readyz",
            "Readiness: broker reachable and spool below quota",
            {"200": ok, "503": {"description": "not ready; the body names the failing check"}},
        ),
        ("/metrics", metrics, "metrics", "Prometheus metrics", {"200": {"description": "text format 0.0.4"}}),
        ("/openapi.json", openapi, "openapi", "This OpenAPI document", {"200": ok}),
    ):
        add_operation(app, Operation("GET", path, handler, op_id, summary, "operations", responses=responses))
