"""Gateway throughput and latency against a bare aiohttp handler, in one run on this machine.

Starts a private embedded broker, then (each as real processes sharing one port with SO_REUSEPORT):
a bare aiohttp server that only reads the body, and the smsfold gateway answering signed Twilio inbound
webhooks only after Kafka's ack. ``wrk`` drives both with the same pre-signed requests: a closed-loop
maximum-rate run for each, then the gateway at half its maximum rate for p99 latency. Prints the rates,
their ratio and p50/p99, and checks the raw topic grew by at least the number of 2xx answers.

    python bench/gateway.py [--processes 1] [--seconds 15] [--connections 128]

One process and 128 connections by default: on 2 cores a second process halves each producer's
batches and costs the broker more per record, and at 64 connections the gateway's rate is bound by
Kafka's acknowledgement latency (64 connections / ~7.6 ms ≈ 8,400/s) with its core not yet full.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _cpu import cpu_seconds  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # noqa: E402

from config import load_companies, load_settings  # noqa: E402
from config.settings import Settings  # noqa: E402
from smsfold.stack import EmbeddedStack  # noqa: E402
from smsfold.webhooks import twilio_inbound  # noqa: E402

PATH = "/webhooks/twilio/inbound"
LUA = r"""
local reqs = {}
local idx = 0
function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local sig, tok, body = line:match("([^\t]*)\t([^\t]*)\t(.*)")
    reqs[#reqs + 1] = wrk.format("POST", "/webhooks/twilio/inbound", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = sig,
      ["I-Twilio-Idempotency-Token"] = tok,
      ["User-Agent"] = "TwilioProxy/1.1",
    }, body)
  end
  f:close()
  idx = math.random(#reqs)
end
function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
if delay_ms > 0 then
  function delay() return delay_ms end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d non2xx=%d errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

BARE_SERVER = r"""
import sys
from aiohttp import web

async def handle(request):
    await request.read()
    return web.Response(text='<?xml version="1.0" encoding="UTF-8"?><Response/>', content_type="text/xml")

app = web.Application()
app.router.add_post("/webhooks/twilio/inbound", handle)
app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), reuse_port=True, access_log=None, print=None)
"""


def _settings(state_dir: Path, base: int) -> Settings:
    return load_settings(
        kafka={"bootstrap_servers": f"127.0.0.1:{base + 92}"},
        stack={"state_dir": state_dir, "broker_port": base + 92},
        gateway={"port": base + 80, "public_base_url": f"http://127.0.0.1:{base + 80}"},
    )


def _write_requests(settings: Settings, path: Path, count: int) -> None:
    company = load_companies(settings.companies_file).get("loadtest")
    assert company is not None and company.twilio is not None
    token = company.twilio.auth_tokens[0].get_secret_value()
    with path.open("w") as out:
        for i in range(count):
            req = twilio_inbound(
                settings.gateway.public_base_url,
                token,
                sender=f"+1646555{i % 10000:04d}",
                to=company.numbers[0],
                body=f"Loved “the boots” {i}",
                account_sid=company.twilio.account_sid,
            )
            out.write(
                f"{req.headers['X-Twilio-Signature']}\t{req.headers['I-Twilio-Idempotency-Token']}\t"
                f"{req.body.decode()}\n"
            )


def _wait_healthy(url: str, procs: list[subprocess.Popen[bytes]], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a server process exited while starting ({url})")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _wrk(
    url: str, script: Path, requests: Path, seconds: int, connections: int, delay_ms: float = 0
) -> dict[str, float]:
    env = {**os.environ, "WRK_DELAY_MS": str(delay_ms)}
    cmd = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        str(requests),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    match = re.search(r"RESULT (.*)", out)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    fields = {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    fields["ok_per_s"] = (fields["requests"] - fields["non2xx"]) / (fields["duration_us"] / 1e6)
    fields["ok"] = fields["requests"] - fields["non2xx"]
    return fields


def _raw_count(settings: Settings, quiet_s: float = 1.5) -> int:
    """Records on the raw topic, counted by reading it: Tansu's high watermarks under-count after
    multi-record batches (they point past the last batch's first record)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": "bench-count",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign(
            [
                TopicPartition(settings.topics.raw, p, OFFSET_BEGINNING)
                for p in range(settings.topics.raw_partitions)
            ]
        )
        count, last = 0, time.monotonic()
        while time.monotonic() - last < quiet_s:
            batch = consumer.consume(10_000, 0.2)
            good = sum(1 for m in batch if not m.error())
            if good:
                count, last = count + good, time.monotonic()
        return count
    finally:
        consumer.close()


def _fmt(name: str, r: dict[str, float]) -> str:
    rate, p50, p99 = r["ok_per_s"], r["p50_us"] / 1000, r["p99_us"] / 1000
    return (
        f"{name:<30} {rate:>9,.0f}/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
        f"   non-2xx {int(r['non2xx'])}  errors {int(r['errors'])}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=1, help="server processes (gateway and bare alike)")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument(
        "--port-base", type=int, default=int(os.environ.get("SMSFOLD_BENCH_PORT_BASE", "28500"))
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench/gateway.py needs wrk (apt-get install wrk; `make bench` installs it)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="smsfold-bench-"))
    settings = _settings(work / "stack", args.port_base)
    stack = EmbeddedStack(settings)
    script, requests = work / "twilio.lua", work / "requests.tsv"
    script.write_text(LUA)
    _write_requests(settings, requests, 20_000)
    url = f"http://127.0.0.1:{settings.gateway.port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        stack.start("broker")
        print(
            f"{os.cpu_count()} cores; {args.processes} server processes; wrk -t2 -c{args.connections}, "
            f"{args.seconds} s per run; broker, servers and wrk share the machine"
        )

        # 1. The bare baseline: reads the body, answers 200.
        bare_src = work / "bare.py"
        bare_src.write_text(BARE_SERVER)
        procs = [
            subprocess.Popen([sys.executable, str(bare_src), str(settings.gateway.port)])
            for _ in range(args.processes)
        ]
        _wait_healthy(url + "/healthz", procs)
        _wrk(url + PATH, script, requests, 2, args.connections)  # warm-up
        bare = _wrk(url + PATH, script, requests, args.seconds, args.connections)
        _stop(procs)

        # 2. The gateway: verify, record, answer after Kafka's ack.
        gw_env = {
            **env,
            "SMSFOLD_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "SMSFOLD_GATEWAY__PORT": str(settings.gateway.port),
            "SMSFOLD_GATEWAY__PUBLIC_BASE_URL": settings.gateway.public_base_url,
            "SMSFOLD_GATEWAY__REUSE_PORT": "true",
            "SMSFOLD_LOG_LEVEL": "WARNING",
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "smsfold", "gateway"],
                env={**gw_env, "SMSFOLD_GATEWAY__SPOOL_DIR": str(work / f"spool-{i}")},
            )
            for i in range(args.processes)
        ]
        _wait_healthy(url + "/healthz", procs)
        _wrk(url + PATH, script, requests, 2, args.connections)  # warm-up
        before = _raw_count(settings)
        broker_pid = stack.pid("broker")
        watched = {"gateways": [p.pid for p in procs], "broker": [broker_pid] if broker_pid else []}
        cpu_before = {name: cpu_seconds(pids) for name, pids in watched.items()}
        gateway = _wrk(url + PATH, script, requests, args.seconds, args.connections)
        cpu = {name: (cpu_seconds(pids) - cpu_before[name]) / args.seconds for name, pids in watched.items()}
        target = gateway["ok_per_s"] / 2
        # Half the maximum rate: each connection waits `delay` between requests. A short calibration run
        # measures the latency the delay must leave room for (rate = conns / (delay + latency)).
        conns = min(args.connections, 32)
        delay_ms = conns * 1000 / target
        probe = _wrk(url + PATH, script, requests, 3, conns, delay_ms=delay_ms)
        latency_ms = conns * 1000 / probe["ok_per_s"] - delay_ms
        delay_ms = max(0.0, conns * 1000 / target - latency_ms)
        half = _wrk(url + PATH, script, requests, args.seconds, conns, delay_ms=delay_ms)
        time.sleep(1)
        spooled = sum(len(list((work / f"spool-{i}").glob("*.seg"))) for i in range(args.processes))
        landed = _raw_count(settings) - before
        _stop(procs)

        ratio = gateway["ok_per_s"] / bare["ok_per_s"]
        print(_fmt("bare aiohttp (read body)", bare))
        print(_fmt("gateway (ack after Kafka)", gateway))
        print(_fmt(f"gateway at {half['ok_per_s']:,.0f}/s (half)", half))
        print(
            f"CPU during the gateway's maximum run: gateways {cpu['gateways']:.2f} cores, "
            f"broker {cpu['broker']:.2f} cores (the rest: wrk and other tenants)"
        )
        print(f"ratio gateway/bare: {ratio:.2f}   (goal ≥ 0.35)")
        print(f"acknowledged webhooks/s: {gateway['ok_per_s']:,.0f}   (goal ≥ 8,000)")
        print(f"p99 at half the maximum rate: {half['p99_us'] / 1000:.2f} ms   (goal ≤ 25 ms)")
        acked = int(gateway["ok"] + probe["ok"] + half["ok"])
        print(
            f"raw topic grew by {landed:,} records for {acked:,} acknowledged requests "
            f"(+ in-flight at the end of runs); spool segments left: {spooled}"
        )
        return 0
    finally:
        _stop(procs)
        stack.stop("broker")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
