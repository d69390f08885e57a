"""Shared fixtures: the real embedded stack, started once per test session on private ports.

The session stack uses its own ports and state dir, so a developer's `smsfold stack up` or demo on the
default ports never collides with the tests. Child processes (gateway, worker) read the same
``SMSFOLD_*`` environment that the fixtures set here.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from config import Settings, load_settings
from smsfold.processes import ManagedProcess
from smsfold.stack import EmbeddedStack

T = TypeVar("T")

# Every port the tests use is PORT_BASE + a small offset, so parallel checkouts can test side by side
# (set SMSFOLD_TEST_PORT_BASE to a different thousand in each).
PORT_BASE = int(os.environ.get("SMSFOLD_TEST_PORT_BASE", "39000"))


def stack_ports(offset: int = 0) -> dict[str, int]:
    """A full set of embedded-stack ports; ``offset`` separates stacks of one test session."""
    base = PORT_BASE + offset
    return {"broker": base + 92, "ch_tcp": base + 1, "ch_http": base + 23, "ch_inter": base + 9,
            "redis": base + 79, "gateway": base + 80, "worker_metrics": base + 66}


_P = stack_ports()
TEST_ENV = {
    "SMSFOLD_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{_P['broker']}",
    "SMSFOLD_STACK__BROKER_PORT": str(_P["broker"]),
    "SMSFOLD_CLICKHOUSE__PORT": str(_P["ch_tcp"]),
    "SMSFOLD_CLICKHOUSE__HTTP_PORT": str(_P["ch_http"]),
    "SMSFOLD_STACK__CLICKHOUSE_TCP_PORT": str(_P["ch_tcp"]),
    "SMSFOLD_STACK__CLICKHOUSE_HTTP_PORT": str(_P["ch_http"]),
    "SMSFOLD_STACK__CLICKHOUSE_INTERSERVER_PORT": str(_P["ch_inter"]),
    "SMSFOLD_CLICKHOUSE__DATABASE": "smsfold_test",
    "SMSFOLD_REDIS__URL": f"redis://127.0.0.1:{_P['redis']}/0",
    "SMSFOLD_STACK__REDIS_PORT": str(_P["redis"]),
    "SMSFOLD_GATEWAY__PORT": str(_P["gateway"]),
    "SMSFOLD_WORKER__WEB_PORT": str(_P["worker_metrics"]),
    "SMSFOLD_GATEWAY__PUBLIC_BASE_URL": f"http://127.0.0.1:{_P['gateway']}",
}


def wait_until(probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.2) -> T:
    """Poll until ``probe`` returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings for the session stack; the stack is up for as long as the session runs."""
    state_dir = tmp_path_factory.mktemp("stack")
    env = {**TEST_ENV, "SMSFOLD_STACK__STATE_DIR": str(state_dir)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    settings = load_settings()
    stack = EmbeddedStack(settings)
    try:
        stack.up()
        yield settings
    finally:
        stack.down(purge=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def embedded_stack(stack_settings: Settings) -> EmbeddedStack:
    return EmbeddedStack(stack_settings)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def pipeline(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway and a worker running against the session stack; yields the gateway's base URL."""
    log_dir: Path = tmp_path_factory.mktemp("logs")
    gateway = ManagedProcess("gateway", ["gateway"], log_dir)
    worker = ManagedProcess("worker", ["worker"], log_dir)
    gateway.start()
    worker.start()
    base = f"http://{stack_settings.gateway.host}:{stack_settings.gateway.port}"
    try:
        gateway.wait_for(lambda: _healthy(base + "/healthz"), 30, "/healthz")
        yield base
    finally:
        gateway.stop()
        worker.stop()
