"""Real redis-server processes for tests: standalone, a 3-master cluster, and sentinel.

Why real servers instead of fakes: the router's budget store relies on Lua scripts,
hash-tag slot placement and connection-failure behaviour, none of which an in-process
fake reproduces faithfully. Each helper starts processes on free loopback ports with
data in a temp dir and no persistence, and is a context manager so that they are
stopped even when a test fails (an ``atexit`` hook is the last resort).

Use as pytest fixtures by wrapping::

    @pytest.fixture(scope="module")
    def redis_server() -> Iterator[RedisServer]:
        with RedisServer() as server:
            yield server
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

REDIS_SERVER = (
    os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server") or ("/usr/bin/redis-server")
)
REDIS_CLI = os.environ.get("REDIS_CLI_BIN") or shutil.which("redis-cli") or "/usr/bin/redis-cli"
CONFIG_DIR = Path(__file__).resolve().parent / "redis-configs"
STANDALONE_CONF = CONFIG_DIR / "standalone.conf"
CLUSTER_NODE_CONF = CONFIG_DIR / "cluster-node.conf"
SENTINEL_CONF = CONFIG_DIR / "sentinel.conf"
HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 15.0

__all__ = [
    "CLUSTER_NODE_CONF",
    "REDIS_CLI",
    "REDIS_SERVER",
    "STANDALONE_CONF",
    "RedisCluster",
    "RedisSentinel",
    "RedisServer",
    "RedisStartError",
    "free_port",
    "redis_binaries_available",
    "wait_until",
]


class RedisStartError(RuntimeError):
    """A redis process did not come up (or a cluster did not converge) in time."""


def redis_binaries_available() -> bool:
    """True if redis-server and redis-cli can be run, so tests can skip cleanly otherwise."""
    return all(os.access(p, os.X_OK) for p in (REDIS_SERVER, REDIS_CLI))


def free_port() -> int:
    """Return a loopback TCP port that is free right now.

    There is an unavoidable race with other processes; callers that pick the port
    themselves retry startup on "address in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll ``predicate`` until true or raise ``RedisStartError`` after ``timeout`` seconds.

    Bounded polling instead of fixed sleeps keeps fast machines fast and slow CI honest.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() >= deadline:
            raise RedisStartError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


# --- last-resort cleanup -------------------------------------------------------------

_LIVE: set[_Proc] = set()
_LIVE_DIRS: set[Path] = set()
_LIVE_LOCK = threading.Lock()


def _make_temp_dir(prefix: str) -> Path:
    """mkdtemp, remembered so the atexit hook can delete it if ``stop()`` never runs."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    with _LIVE_LOCK:
        _LIVE_DIRS.add(path)
    return path


def _remove_temp_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with _LIVE_LOCK:
        _LIVE_DIRS.discard(path)


def _cleanup_all() -> None:
    """Kill anything a test forgot to stop, so no redis-server outlives the test run."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
        dirs = list(_LIVE_DIRS)
    for proc in procs:
        proc.kill()
    for path in dirs:
        _remove_temp_dir(path)


atexit.register(_cleanup_all)


class _Proc:
    """One redis-server process with its log file; registered for atexit cleanup."""

    def __init__(self, argv: Sequence[str], port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            list(argv), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        with _LIVE_LOCK:
            _LIVE.add(self)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """Last lines of the server log, for error messages that explain a failed start."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _finish(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)
        self._log.close()

    def terminate(self, timeout: float = 5.0) -> None:
        """SIGTERM (config says shutdown without saving), escalating to SIGKILL."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGCONT)  # a frozen process cannot exit
                self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._finish()

    def kill(self) -> None:
        """SIGKILL: an abrupt crash, as outage tests want."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait()
        self._finish()

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            self.popen.send_signal(sig)


def _client(port: int, timeout: float = 1.0, **kwargs: object) -> redis.Redis:
    """A sync client that fails fast: redis-py >= 6 retries with backoff by default,
    which would turn every expected failure in a test into seconds of waiting."""
    opts: dict[str, object] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    opts.update(kwargs)
    return redis.Redis(host=HOST, port=port, **opts)  # type: ignore[arg-type]


def _ping(port: int) -> bool:
    with _client(port, 0.5) as client:
        return bool(client.ping())


def _spawn_ready(
    argv_for_port: Callable[[int], list[str]],
    port: int | None,
    log_path: Path,
    timeout: float,
) -> tuple[_Proc, int]:
    """Start a server and wait for PING; if we chose the port, retry on a port clash."""
    attempts = 1 if port is not None else 5
    last_err = ""
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        proc = _Proc(argv_for_port(chosen), chosen, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive:
                break
            with contextlib.suppress(redis.RedisError, OSError):
                if _ping(chosen):
                    return proc, chosen
            time.sleep(0.02)
        last_err = proc.log_tail()
        proc.kill()
        if "Address already in use" not in last_err:
            break
    raise RedisStartError(f"redis-server did not start (log {log_path}):\n{last_err}")


# --- standalone ------------------------------------------------------------------------


class RedisServer:
    """A standalone redis-server on a free loopback port, in its own temp dir.

    ``kill()`` + ``restart()`` simulate a crash and recovery on the same port (data is
    gone, since persistence is off); ``pause()``/``frozen()`` simulate a slow or hung
    server so timeout paths can be tested.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        config: Path = STANDALONE_CONF,
        extra_args: Sequence[str] = (),
        db: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        start: bool = True,
    ) -> None:
        self.host = HOST
        self.port = port or 0
        self.db = db
        self.config = Path(config)
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.dir = _make_temp_dir("redis-test-")
        self._proc: _Proc | None = None
        if start:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise

    # lifecycle
    def _argv(self, port: int) -> list[str]:
        return [
            REDIS_SERVER,
            str(self.config),
            "--port",
            str(port),
            "--dir",
            str(self.dir),
            "--bind",
            HOST,
            *self.extra_args,
        ]

    def start(self) -> None:
        """Start the process (on the previous port if it ran before) and wait for PING."""
        if self.running:
            return
        if not self.dir.exists():
            self.dir.mkdir(parents=True)
        # Once a port is known (given, or chosen on first start) restarts reuse it so
        # clients holding the URL reconnect to the same address.
        self._proc, self.port = _spawn_ready(
            self._argv, self.port or None, self.dir / "redis.log", self.timeout
        )

    def stop(self) -> None:
        """Graceful shutdown and removal of the temp dir; safe to call twice."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc = None
        _remove_temp_dir(self.dir)

    def shutdown(self) -> None:
        """Graceful shutdown that keeps the temp dir, so ``start()`` can follow."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc = None

    def kill(self) -> None:
        """SIGKILL the server (a crash, not a shutdown); ``restart()`` brings it back."""
        if self._proc is not None:
            self._proc.kill()
            self._proc = None

    def restart(self) -> None:
        """Stop if running (SIGTERM) and start again on the same port."""
        self.shutdown()
        self.start()

    # fault injection
    def pause(self, seconds: float, mode: str = "ALL") -> None:
        """Make the server stall every client for ``seconds`` (CLIENT PAUSE); returns at once.

        Connections stay open and commands simply wait, which is what a latency spike
        looks like to the router. ``mode="WRITE"`` pauses only writes.
        """
        with self.sync_client() as client:
            client.execute_command("CLIENT", "PAUSE", int(seconds * 1000), mode)

    def unpause(self) -> None:
        """End a ``pause()`` early."""
        with self.sync_client() as client:
            client.execute_command("CLIENT", "UNPAUSE")

    def freeze(self) -> None:
        """SIGSTOP the process: TCP connects still succeed but nothing answers (a hang)."""
        if self._proc is not None:
            self._proc.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after ``freeze()``."""
        if self._proc is not None:
            self._proc.signal(signal.SIGCONT)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Hang the server for the duration of the block, thawing it even on error."""
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    # access
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive

    @property
    def pid(self) -> int | None:
        return self._proc.popen.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def sync_client(self, **kwargs: object) -> redis.Redis:
        """A synchronous client without retries, for test setup and assertions.

        ``kwargs`` override the defaults (5 s timeouts, no retry) and go to ``redis.Redis``.
        """
        opts: dict[str, object] = {"db": self.db}
        opts.update(kwargs)
        return _client(self.port, 5.0, **opts)

    def flushall(self) -> None:
        """Empty every database, so a module-scoped server can be shared between tests."""
        with self.sync_client() as client:
            client.flushall()

    def log_tail(self, lines: int = 20) -> str:
        return self._proc.log_tail(lines) if self._proc is not None else ""

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisServer(url={self.url!r}, running={self.running})"


# --- cluster ---------------------------------------------------------------------------


class RedisCluster:
    """A real Redis Cluster of ``masters`` masters (and optional replicas) on loopback.

    Built with ``redis-cli --cluster create`` exactly as operators do, then polled until
    every node reports ``cluster_state:ok`` with all 16384 slots assigned, so tests never
    race a half-formed cluster.
    """

    SLOTS = 16384

    def __init__(
        self,
        masters: int = 3,
        replicas_per_master: int = 0,
        *,
        config: Path = CLUSTER_NODE_CONF,
        extra_args: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.host = HOST
        self.masters = masters
        self.replicas_per_master = replicas_per_master
        self.config = Path(config)
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.root = _make_temp_dir("redis-cluster-test-")
        self._procs: list[_Proc] = []
        self.ports: list[int] = []
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start_node(self) -> None:
        node_dir = self.root / f"node{len(self._procs)}"
        node_dir.mkdir()

        def argv(port: int) -> list[str]:
            # A fresh bus port per attempt: a clash on either port is retried.
            return [
                REDIS_SERVER,
                str(self.config),
                "--port",
                str(port),
                "--cluster-port",
                str(free_port()),
                "--dir",
                str(node_dir),
                "--bind",
                HOST,
                *self.extra_args,
            ]

        proc, port = _spawn_ready(argv, None, node_dir / "redis.log", self.timeout)
        self._procs.append(proc)
        self.ports.append(port)

    def _start(self) -> None:
        for _ in range(self.masters * (1 + self.replicas_per_master)):
            self._start_node()
        cmd = [
            REDIS_CLI,
            "--cluster",
            "create",
            *(f"{HOST}:{p}" for p in self.ports),
            "--cluster-replicas",
            str(self.replicas_per_master),
            "--cluster-yes",
        ]
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=self.timeout, check=False
        )
        if result.returncode != 0:
            raise RedisStartError(
                f"redis-cli --cluster create failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        wait_until(self._converged, self.timeout, "cluster_state:ok on every node")

    def _converged(self) -> bool:
        expected_nodes = len(self.ports)
        for port in self.ports:
            with _client(port) as client:
                info = client.execute_command("CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            if (
                fields.get("cluster_state") != "ok"
                or int(fields.get("cluster_slots_assigned", 0)) != self.SLOTS
                or int(fields.get("cluster_known_nodes", 0)) != expected_nodes
            ):
                return False
        if self.replicas_per_master:
            masters = set(self.master_ports())
            for port in set(self.ports) - masters:
                with _client(port) as client:
                    if client.info("replication").get("master_link_status") != "up":
                        return False
        return True

    def master_ports(self) -> list[int]:
        """Ports of the nodes currently serving slots (differs from ``ports`` with replicas)."""
        with _client(self.ports[0], 2.0) as client:
            slots = client.execute_command("CLUSTER", "SLOTS")
        return sorted({int(entry[2][1]) for entry in slots})

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every node, for ``redis.asyncio.cluster.ClusterNode`` lists."""
        return [(self.host, p) for p in self.ports]

    @property
    def url(self) -> str:
        """``redis+cluster://host:port`` naming one seed node; clients discover the rest."""
        return f"redis+cluster://{self.host}:{self.ports[0]}"

    @property
    def urls(self) -> list[str]:
        """Plain ``redis://`` URL of each node (for ``RedisCluster.from_url`` seeds)."""
        return [f"redis://{self.host}:{p}" for p in self.ports]

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.alive for p in self._procs)

    def node_for_key(self, key: str | bytes) -> int:
        """Port of the master that currently owns ``key``'s slot (asks the cluster)."""
        with _client(self.ports[0], 2.0) as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(master[1])
        raise LookupError(f"no node owns slot {slot}")

    def kill_node(self, port: int) -> None:
        """SIGKILL one node, for partial-outage tests (the cluster may go to fail state)."""
        for proc in self._procs:
            if proc.port == port:
                proc.kill()

    def flushall(self) -> None:
        """FLUSHALL on every live master, so one cluster can serve several tests."""
        for proc in self._procs:
            if not proc.alive:
                continue
            with (
                _client(proc.port, 5.0) as client,
                contextlib.suppress(redis.ReadOnlyError, redis.ResponseError),
            ):
                client.flushall()

    def stop(self) -> None:
        """Kill every node and delete all temp dirs; safe to call twice."""
        for proc in self._procs:
            proc.kill()
        self._procs.clear()
        _remove_temp_dir(self.root)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisCluster(url={self.url!r}, ports={self.ports})"


# --- sentinel --------------------------------------------------------------------------


class RedisSentinel:
    """One master plus one Sentinel monitoring it under ``service_name``.

    Enough to exercise sentinel URL parsing and master discovery; with one sentinel
    (quorum 1) a failover cannot be promoted anywhere, so it is not a failover test bed.
    """

    def __init__(
        self,
        service_name: str = "mymaster",
        *,
        down_after_ms: int = 1000,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.host = HOST
        self.service_name = service_name
        self.timeout = timeout
        self.dir = _make_temp_dir("redis-sentinel-test-")
        self._proc: _Proc | None = None
        self.port = 0
        self.master = RedisServer(timeout=timeout, start=False)
        try:
            self.master.start()
            self._start_sentinel(down_after_ms)
        except BaseException:
            self.stop()
            raise

    def _start_sentinel(self, down_after_ms: int) -> None:
        conf = self.dir / "sentinel.conf"  # sentinel rewrites its config, so copy it

        def argv(port: int) -> list[str]:
            conf.write_text(
                SENTINEL_CONF.read_text()
                + f"\nport {port}\ndir {self.dir}\n"
                + f"sentinel monitor {self.service_name} {HOST} {self.master.port} 1\n"
                + f"sentinel down-after-milliseconds {self.service_name} {down_after_ms}\n"
                + f"sentinel failover-timeout {self.service_name} 10000\n"
            )
            return [REDIS_SERVER, str(conf), "--sentinel"]

        self._proc, self.port = _spawn_ready(argv, None, self.dir / "sentinel.log", self.timeout)
        wait_until(self._knows_master, self.timeout, "sentinel to report the master")

    def _knows_master(self) -> bool:
        with _client(self.port) as client:
            addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
        return bool(addr) and int(addr[1]) == self.master.port

    @property
    def url(self) -> str:
        """``redis+sentinel://host:sentinel_port/service_name``."""
        return f"redis+sentinel://{self.host}:{self.port}/{self.service_name}"

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """(host, port) list for ``redis.asyncio.sentinel.Sentinel``."""
        return [(self.host, self.port)]

    def stop(self) -> None:
        """Kill the sentinel and the master and delete their temp dirs; safe to call twice."""
        if self._proc is not None:
            self._proc.kill()
            self._proc = None
        self.master.stop()
        _remove_temp_dir(self.dir)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisSentinel(url={self.url!r}, master={self.master.url!r})"
