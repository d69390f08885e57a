"""Shared fixtures: the real embedded stack, started once per test session on private ports.

The session stack uses its own ports and state dir, so a developer's `smsfold stack up` or demo on the
default ports never collides with the tests. Child processes (gateway, worker) read the same
``SMSFOLD_*`` environment that the fixtures set here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from config import Settings, load_settings
from smsfold.processes import ManagedProcess
from smsfold.stack import EmbeddedStack, private_stack_env

T = TypeVar("T")

# Every port the tests use is PORT_BASE + a small offset, so parallel checkouts can test side by side
# (set SMSFOLD_TEST_PORT_BASE to a different thousand in each). Keep it below 32768: Linux hands out
# ports from 32768 up as the local ports of outgoing connections, which can take a listener's port.
PORT_BASE = int(os.environ.get("SMSFOLD_TEST_PORT_BASE", "24000"))


def stack_ports(offset: int = 0) -> dict[str, int]:
    """The ports of ``private_stack_env(PORT_BASE + offset, ...)``, for tests that run a second stack."""
    env = private_stack_env(PORT_BASE + offset, Path("."))
    return {
        "broker": int(env["SMSFOLD_STACK__BROKER_PORT"]),
        "ch_tcp": int(env["SMSFOLD_STACK__CLICKHOUSE_TCP_PORT"]),
        "ch_http": int(env["SMSFOLD_STACK__CLICKHOUSE_HTTP_PORT"]),
        "ch_inter": int(env["SMSFOLD_STACK__CLICKHOUSE_INTERSERVER_PORT"]),
        "redis": int(env["SMSFOLD_STACK__REDIS_PORT"]),
        "worker_metrics": int(env["SMSFOLD_WORKER__WEB_PORT"]),
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
    env = private_stack_env(PORT_BASE, tmp_path_factory.mktemp("stack"), database="smsfold_test")
    # The suites send hundreds of auto replies from one long code through the simulated vendor; at the
    # carrier rate (1 msg/s) they would queue for minutes. Rate limiting has its own unit tests.
    env["SMSFOLD_VENDOR__LONG_CODE_MPS"] = "1000"
    # The simulated vendor fails ~3.5% of messages at random by default, which would make every end-to-end
    # "delivered" wait flaky; failures are tested with rates of their own (test_simulated_vendor.py).
    env["SMSFOLD_VENDOR__SIMULATED_FAILURE_RATES"] = "{}"
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



@pytest.fixture(scope="session")
def pipeline(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway and a worker running against the session stack; yields the gateway's base URL."""
    log_dir: Path = tmp_path_factory.mktemp("logs")
    # DEBUG: accepted webhooks are logged at DEBUG, and the log-masking test reads those lines too.
    gateway = ManagedProcess("gateway", ["gateway"], log_dir, env={"SMSFOLD_LOG_LEVEL": "DEBUG"})
    worker = ManagedProcess("worker", ["worker"], log_dir)
    gateway.start()
    worker.start()
    base = f"http://{stack_settings.gateway.host}:{stack_settings.gateway.port}"
    try:
        gateway.wait_healthy(base)
        yield base
    finally:
        gateway.stop()
        worker.stop()
