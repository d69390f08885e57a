"""SMSFOLD_ENV=production: the gateway and the worker refuse to start on unsafe settings, with one line
naming the problem, before they connect to anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", ["gateway", "worker"])
def test_production_refuses_to_start_with_dev_settings(command: str) -> None:
    env = {**os.environ, "SMSFOLD_ENV": "production", "SMSFOLD_CLICKHOUSE__PASSWORD": ""}
    done = subprocess.run([sys.executable, "-m", "smsfold", command], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    # The empty ClickHouse password first, then the Redis password, the dev companies file and each of
    # its secrets are counted.
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("smsfold: refusing to start in production: the ClickHouse password is empty "
                               "(set SMSFOLD_CLICKHOUSE__PASSWORD) (and "), lines[0]
