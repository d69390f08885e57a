"""The embedded stack manager against real processes.

Runs its own stack on private ports (the test port base + 500) and a temp state dir, so it never
touches the session stack other tests share.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client
from confluent_kafka.admin import AdminClient

from config.settings import Settings, load_settings
from projections.migrate import MigrationError, apply_migrations, discover_migrations
from smsfold import stack as stack_module
from smsfold.cli import main as cli_main
from smsfold.stack import COMPONENTS, EmbeddedStack, StackError
from streams.topics import topic_specs
from tests.conftest import stack_ports

pytestmark = pytest.mark.stack

_PORTS = stack_ports(offset=500)
BROKER, CH_TCP, CH_HTTP, CH_INTER, REDIS = (
    _PORTS["broker"], _PORTS["ch_tcp"], _PORTS["ch_http"], _PORTS["ch_inter"], _PORTS["redis"]
)


def make_settings(state_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "kafka": {"bootstrap_servers": f"127.0.0.1:{BROKER}"},
        "clickhouse": {
            "host": "127.0.0.1",
            "port": CH_TCP,
            "http_port": CH_HTTP,
            "database": "smsfold_stack",
        },
        "redis": {"url": f"redis://127.0.0.1:{REDIS}/0"},
        "stack": {
            "state_dir": state_dir,
            "broker_port": BROKER,
            "clickhouse_tcp_port": CH_TCP,
            "clickhouse_http_port": CH_HTTP,
            "clickhouse_interserver_port": CH_INTER,
            "redis_port": REDIS,
            "start_timeout_s": 30.0,
        },
    }
    return load_settings(**{**base, **overrides})


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack-state")


@pytest.fixture(scope="module")
def stack(state_dir: Path) -> Iterator[EmbeddedStack]:
    embedded = EmbeddedStack(make_settings(state_dir))
    try:
        yield embedded
    finally:
        embedded.down(purge=True)


def ch_client(settings: Settings) -> Client:
    return Client(settings.clickhouse.host, settings.clickhouse.port)


def test_up_starts_everything_healthy_with_topics_and_migrations(stack: EmbeddedStack) -> None:
    started = time.monotonic()
    stack.up()
    assert time.monotonic() - started < 30

    statuses = stack.status()
    assert [s.name for s in statuses] == list(COMPONENTS)
    for status in statuses:
        assert status.embedded and status.healthy and status.pid, status
        assert str(stack.state_dir) in Path(f"/proc/{status.pid}/cwd").resolve().as_posix()

    metadata = AdminClient({"bootstrap.servers": f"127.0.0.1:{BROKER}"}).list_topics(timeout=10)
    for spec in topic_specs(stack.settings.topics):
        assert len(metadata.topics[spec.name].partitions) == spec.partitions

    client = ch_client(stack.settings)
    versions = client.execute("SELECT version FROM smsfold_stack.schema_migrations")
    assert ("001",) in versions
    assert client.execute("EXISTS TABLE smsfold_stack.events") == [(1,)]
    client.disconnect()


def test_up_again_is_harmless(stack: EmbeddedStack) -> None:
    pids = {name: stack.pid(name) for name in COMPONENTS}
    stack.up()
    assert {name: stack.pid(name) for name in COMPONENTS} == pids
    rows = ch_client(stack.settings).execute("SELECT count() FROM smsfold_stack.schema_migrations")
    assert rows == [(len(discover_migrations()),)]  # nothing re-applied


def test_cli_status_prints_a_table(
    stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSFOLD_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{BROKER}")
    monkeypatch.setenv("SMSFOLD_CLICKHOUSE__PORT", str(CH_TCP))
    monkeypatch.setenv("SMSFOLD_REDIS__URL", f"redis://127.0.0.1:{REDIS}/0")
    for key, value in stack.settings.stack.model_dump().items():
        monkeypatch.setenv(f"SMSFOLD_STACK__{key.upper()}", str(value))
    assert cli_main(["stack", "status"]) == 0
    out = capsys.readouterr().out
    for name in COMPONENTS:
        assert name in out
    assert str(stack.pid("broker")) in out


def test_stop_and_start_one_component_even_when_sigstopped(stack: EmbeddedStack) -> None:
    broker = stack.pid("broker")
    assert broker is not None
    os.kill(broker, signal.SIGSTOP)  # a frozen broker, as fault tests make one
    started = time.monotonic()
    assert stack.stop("broker") is True
    assert time.monotonic() - started < 8
    assert stack.pid("broker") is None
    assert stack.check("broker") is not None
    assert stack.stop("broker") is False

    stack.start("broker")  # memory storage: the topics are gone and are created again
    assert stack.pid("broker") not in (None, broker)
    topics = AdminClient({"bootstrap.servers": f"127.0.0.1:{BROKER}"}).list_topics(timeout=10).topics
    assert stack.settings.topics.events in topics

    assert stack.stop("redis") is True
    stack.start("redis")
    assert stack.check("redis") is None


def test_partition_count_mismatch_is_an_error(stack: EmbeddedStack) -> None:
    wrong = make_settings(stack.state_dir, topics={"events_partitions": 5})
    with pytest.raises(StackError, match=r"sms\.events has 12 partitions but settings want 5"):
        EmbeddedStack(wrong).ensure_topics()


def test_changed_migration_is_refused(stack: EmbeddedStack, tmp_path: Path) -> None:
    ch = stack.settings.clickhouse.model_copy(update={"database": "smsfold_migtest"})
    migration = tmp_path / "001_t.sql"
    migration.write_text(
        "-- a table; and a comment that ends with a semicolon;\n"
        "CREATE TABLE IF NOT EXISTS {db}.t (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
        "INSERT INTO {db}.t SELECT 1\n"
    )
    try:
        assert apply_migrations(ch, tmp_path) == ["001_t.sql"]
        assert apply_migrations(ch, tmp_path) == []
        migration.write_text(migration.read_text() + "-- edited\n")
        with pytest.raises(MigrationError, match="001_t.sql changed after it was applied"):
            apply_migrations(ch, tmp_path)
    finally:
        ch_client(stack.settings).execute("DROP DATABASE IF EXISTS smsfold_migtest")


def test_down_stops_only_our_processes(stack: EmbeddedStack) -> None:
    pids = [stack.pid(name) for name in COMPONENTS]
    assert all(pids)
    stack.down()
    for name, pid in zip(COMPONENTS, pids, strict=True):
        assert stack.pid(name) is None
        assert not stack_module._cmdline(pid or 0), f"{name} pid {pid} still runs"
    assert (stack.state_dir / "clickhouse" / "data").is_dir()  # ClickHouse data survives a plain down

    decoy = subprocess.Popen(["sleep", "30"])
    try:
        (stack.state_dir / "pids" / "broker.pid").write_text(f"{decoy.pid}\n")
        assert stack.pid("broker") is None  # not our binary: never signalled
        stack.down()
        assert decoy.poll() is None
    finally:
        decoy.kill()
        decoy.wait()


def test_taken_port_is_reported_and_nothing_starts(stack: EmbeddedStack) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", REDIS))
        squatter.listen()
        with pytest.raises(StackError, match=rf"port {REDIS} \(redis\) is in use by another process"):
            stack.up()
    assert all(stack.pid(name) is None for name in COMPONENTS)


def test_missing_binaries_say_what_to_install(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda *args, **kwargs: None)
    with pytest.raises(StackError, match=r"clickhouse-server not found: run `make deps`"):
        stack.up()
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(StackError, match="tansu broker not found"):
        stack.up()
    assert all(stack.pid(name) is None for name in COMPONENTS)


def test_external_components_are_not_managed(state_dir: Path) -> None:
    external = EmbeddedStack(
        make_settings(
            state_dir, redis={"url": "redis://127.0.0.1:1/0"}, kafka={"bootstrap_servers": "k:9092"}
        )
    )
    assert not external.is_embedded("redis") and not external.is_embedded("broker")
    assert external.is_embedded("clickhouse")
    with pytest.raises(StackError, match="external"):
        external.stop("redis")
    redis_status = next(s for s in external.status() if s.name == "redis")
    assert not redis_status.embedded and not redis_status.healthy and redis_status.pid is None
