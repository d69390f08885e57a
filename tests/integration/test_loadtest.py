"""The load-test tool against the embedded stack: sent, acknowledged, projected once, reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from config import Settings
from smsfold.loadtest import LoadTestOptions, run_loadtest
from smsfold.loadtest.gateway_metrics import scrape_gateway
from tests.conftest import wait_until

pytestmark = pytest.mark.stack


def render_in_chromium(page: Path, tmp_path: Path) -> tuple[str, bytes]:
    """Load a page in headless Chromium: its rendered DOM and a screenshot."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=900,1100",
    ]
    url = page.resolve().as_uri()
    dom = subprocess.run(["chromium", *flags, "--dump-dom", url], capture_output=True, timeout=60, check=True)
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", *flags, f"--screenshot={shot}", url], capture_output=True, timeout=60, check=True
    )
    return dom.stdout.decode(), shot.read_bytes()


def _durable_at_gateway(base_url: str) -> int:
    snapshot = scrape_gateway(base_url)
    assert snapshot is not None, "the gateway's /metrics did not answer"
    return int(sum(snapshot.durability.values()))


def _report(out_dir: Path) -> dict[str, object]:
    [path] = sorted(out_dir.glob("loadtest-*.json"))
    data: dict[str, object] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("vendor", ["twilio", "telnyx", "bandwidth"])
def test_small_run_is_acknowledged_verified_and_reported(
    stack_settings: Settings, pipeline: str, tmp_path: Path, vendor: str
) -> None:
    # 70 messages of every type through the gateway, with the verifier on.
    options = LoadTestOptions(
        company_ids=("loadtest",),
        message_count=70,
        senders=20,
        workers=8,
        vendor=vendor,
        out_dir=tmp_path,
        settle_timeout_s=60,
        seed=7,
    )
    assert run_loadtest(stack_settings, options, console=Console(width=150), gateway_url=pipeline) == 0
    report = _report(tmp_path)
    assert report["sent"] == 70 and report["acknowledged"] == 70
    verifier = report["verifier"]
    assert isinstance(verifier, dict) and verifier["passed"] is True
    # The gateway's own metrics saw the run: every acknowledged webhook became durable in Kafka or the spool.
    gateway = report["gateway"]
    assert isinstance(gateway, dict) and sum(gateway["durable_by"].values()) >= 70
    per_type = verifier["per_type"]
    assert set(per_type) == {
        "subscribe",
        "unsubscribe",
        "help",
        "info",
        "custom_keyword",
        "reaction",
        "unrecognized",
    }
    assert all(c["projected"] == c["acknowledged"] == 10 and c["doubled"] == 0 for c in per_type.values())
    # The HTML page renders in a real browser: both charts with their points, the verdict, the table.
    [page] = tmp_path.glob("loadtest-*.html")
    dom, png = render_in_chromium(page, tmp_path)
    assert dom.count("<svg") == 2 and "<polyline" in dom and "<circle" in dom
    assert "verifier: passed" in dom and "custom_keyword" in dom
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_skip_types_and_mix_are_honoured(stack_settings: Settings, pipeline: str, tmp_path: Path) -> None:
    options = LoadTestOptions(
        company_ids=("loadtest",),
        message_count=40,
        senders=10,
        workers=4,
        out_dir=tmp_path,
        skip_types=frozenset({"custom_keyword", "reaction", "info", "help"}),
        mix={"unsubscribe": 0.5, "subscribe": 0.25},
        settle_timeout_s=60,
        seed=3,
    )
    assert run_loadtest(stack_settings, options, console=Console(width=150), gateway_url=pipeline) == 0
    verifier = _report(tmp_path)["verifier"]
    assert isinstance(verifier, dict)
    counts = {t: c["acknowledged"] for t, c in verifier["per_type"].items()}
    assert counts == {"unsubscribe": 20, "subscribe": 10, "unrecognized": 10}


def test_ctrl_c_stops_cleanly_with_a_partial_report(
    stack_settings: Settings, pipeline: str, tmp_path: Path
) -> None:
    # A long run at a modest rate, interrupted once it is sending, like an operator's Ctrl-C.
    durable_before = _durable_at_gateway(pipeline)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smsfold",
            "loadtest",
            "--company-ids",
            "loadtest",
            "--duration",
            "60",
            "--rate",
            "20",
            "--workers",
            "4",
            "--out-dir",
            str(tmp_path),
            "--gateway-url",
            pipeline,
            "--settle-timeout",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    # Wait until the gateway has made at least 20 of its webhooks durable (a loaded machine may take
    # seconds just to import the CLI; a SIGINT then would only test the interpreter's import).
    wait_until(lambda: _durable_at_gateway(pipeline) >= durable_before + 20, 60, "the load test sending")
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output.decode(errors="replace")
    report = _report(tmp_path)
    assert report["interrupted"] is True
    sent = report["sent"]
    assert isinstance(sent, int) and 20 <= sent < 1200
    assert b"partial report" in output
    assert list(tmp_path.glob("loadtest-*.html"))
