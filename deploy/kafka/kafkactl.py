#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker (KRaft) from Maven Central jars.

No Docker needed: the broker jars are fetched once with Maven into a cache
outside the repository and started with the local Java (17 or newer).

CLI (used by the Makefile and by a Procfile supervisor)::

    kafkactl.py fetch
    kafkactl.py start [--data-dir DIR] [--port 9092] [--controller-port 9093]
                      [--heap 768m] [--timeout 90] [--set KEY=VALUE]... [--foreground]
    kafkactl.py wait [--bootstrap 127.0.0.1:9092] [--timeout 60]
    kafkactl.py create-topics [--bootstrap 127.0.0.1:9092] [--topics FILE] [--timeout 60]
    kafkactl.py stop [--data-dir DIR] [--timeout 30]
    kafkactl.py status [--data-dir DIR]
    kafkactl.py run-class CLASS [ARGS...]

Python API (for pytest fixtures; load this file with importlib)::

    port, controller_port = free_ports(2)
    broker = EmbeddedBroker(tmp_dir, port=port, controller_port=controller_port)
    bootstrap = broker.start()        # raises BrokerStartError with the log tail
    broker.create_topics()            # from topics.toml next to this file
    broker.stop()

Only the standard library and aiokafka are used; aiokafka is imported lazily so
that fetch/stop/status/run-class work without it.
"""

import argparse
import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import tomllib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

__all__ = [
    "BrokerStartError",
    "BrokerStatus",
    "EmbeddedBroker",
    "KafkaCtlError",
    "TopicSpec",
    "TopicsReport",
    "create_topics",
    "create_topics_async",
    "fetch",
    "free_port",
    "free_ports",
    "kafka_version",
    "libs_dir",
    "load_topics",
    "wait_ready",
    "wait_ready_async",
]

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
POM = HERE / "pom.xml"
SERVER_PROPERTIES_TEMPLATE = HERE / "server.properties"
LOG4J2_CONFIG = HERE / "log4j2.properties"
TOOLS_LOG4J2_CONFIG = HERE / "tools-log4j2.properties"
DEFAULT_TOPICS = HERE / "topics.toml"
DEFAULT_DATA_DIR = REPO_ROOT / ".run" / "kafka"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_HEAP = "768m"
MIN_JAVA = 17

MAVEN_COPY_GOAL = "org.apache.maven.plugins:maven-dependency-plugin:3.7.1:copy-dependencies"
COMPLETE_MARKER = ".complete.json"

# Files kafkactl keeps in a data dir (the Kafka log dir is a subdirectory so
# that Kafka never sees our files among its partitions).
PID_FILE = "kafka.pid"
STATE_FILE = "kafkactl.json"
CLUSTER_ID_FILE = "cluster.id"
PROPS_FILE = "server.properties"
KRAFT_DIR = "kraft"
LOGS_DIR = "logs"
SERVER_LOG = "server.log"
STDOUT_LOG = "stdout.log"

LOG_TAIL_LINES = 30

# Kafka protocol error codes that create-topics treats as "already there".
_TOPIC_ALREADY_EXISTS = 36

T = TypeVar("T")


class KafkaCtlError(RuntimeError):
    """A failure with a message meant for a person (printed without a traceback)."""


class BrokerStartError(KafkaCtlError):
    """The broker did not become ready; ``log_tail`` holds the end of its logs."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message if not log_tail else f"{message}\n{log_tail}")
        self.reason = message
        self.log_tail = log_tail


# --------------------------------------------------------------------------- paths


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version pinned in pom.xml (``<kafka.version>``)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise KafkaCtlError(f"cannot read {pom}: {exc}") from exc
    node = root.find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise KafkaCtlError(f"{pom} has no <properties><kafka.version>")
    return (node.text or "").strip()


def cache_root() -> Path:
    env = os.environ.get("ORDER_PIPELINE_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "order-pipeline"
    return base / "kafka"


def libs_dir(version: str | None = None) -> Path:
    """Where the jars of ``version`` (default: the pom's) are cached."""
    return cache_root() / (version or kafka_version()) / "libs"


def _classpath(libs: Path) -> str:
    # A JVM wildcard entry: the JVM expands it itself, which keeps the command
    # line short and the jar order irrelevant (there are no duplicate classes).
    return str(libs / "*")


# ------------------------------------------------------------------ tool checks


def java_executable() -> str:
    """Path of ``java``: ``$JAVA_HOME/bin/java`` if set (as Kafka's scripts do), else PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise KafkaCtlError(
            f"java not found (looked in $JAVA_HOME/bin and PATH). Kafka needs Java {MIN_JAVA}+; "
            "install it, e.g. `apt-get install openjdk-17-jre-headless`, or set JAVA_HOME."
        )
    return found


def java_major_version(java: str) -> int:
    try:
        proc = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaCtlError(f"cannot run `{java} -version`: {exc}") from exc
    # `java -version` writes to stderr: openjdk version "17.0.15" / "1.8.0_292".
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if match is None:
        raise KafkaCtlError(f"cannot tell the Java version from `{java} -version`:\n{proc.stderr}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def check_java() -> str:
    """Return the java executable, or fail clearly when it is missing or too old."""
    java = java_executable()
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise KafkaCtlError(
            f"{java} is Java {major}; Kafka {kafka_version()} needs Java {MIN_JAVA} or newer. "
            "Install a newer JDK/JRE or point JAVA_HOME at one."
        )
    return java


# ------------------------------------------------------------------------ fetch


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _libs_complete(libs: Path, pom: Path, version: str) -> bool:
    marker = libs.parent / COMPLETE_MARKER
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    # The digest makes a pom edit that keeps the Kafka version (say, a log4j
    # bump) refetch instead of silently running the old jars.
    return (
        isinstance(data, dict)
        and data.get("pom_sha256") == _pom_digest(pom)
        and (libs / f"kafka_2.13-{version}.jar").is_file()
    )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Parallel pytest workers may all try to fetch on a fresh machine.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fetch(pom: Path = POM, *, force: bool = False) -> Path:
    """Make sure the broker and tool jars are cached; return the libs directory."""
    version = kafka_version(pom)
    libs = libs_dir(version)
    if not force and _libs_complete(libs, pom, version):
        return libs
    with _file_lock(libs.parent / ".lock"):
        if not force and _libs_complete(libs, pom, version):
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaCtlError(
                "mvn not found on PATH: it is needed once to fetch the Kafka jars "
                "(`apt-get install maven`)."
            )
        java_executable()  # Maven needs Java as well; fail with our message, not Maven's.
        # Leftovers of fetches that were killed half-way; holding the lock
        # means none of them is still being written.
        for partial in libs.parent.glob("libs.partial-*"):
            shutil.rmtree(partial, ignore_errors=True)
        staging = libs.parent / f"libs.partial-{os.getpid()}"
        (libs.parent / COMPLETE_MARKER).unlink(missing_ok=True)
        cmd = [
            mvn, "-B", "-q", "-f", str(pom), MAVEN_COPY_GOAL,
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]  # fmt: skip
        print(f"kafkactl: fetching Kafka {version} jars into {libs} ...", file=sys.stderr)
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            output = _tail_text(proc.stdout + proc.stderr, 40)
            raise KafkaCtlError(
                f"fetching the Kafka jars failed (mvn exit {proc.returncode}):\n"
                f"  {' '.join(cmd)}\n{output}"
            )
        if not (staging / f"kafka_2.13-{version}.jar").is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise KafkaCtlError(f"mvn succeeded but kafka_2.13-{version}.jar is not in {staging}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        jars = sorted(p.name for p in libs.glob("*.jar"))
        size = sum(p.stat().st_size for p in libs.glob("*.jar"))
        # Written last: its presence is what says the fetch finished.
        (libs.parent / COMPLETE_MARKER).write_text(
            json.dumps(
                {
                    "kafka_version": version,
                    "pom_sha256": _pom_digest(pom),
                    "jars": len(jars),
                    "bytes": size,
                    "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
                indent=2,
            )
        )
        print(
            f"kafkactl: fetched {len(jars)} jars ({size / 2**20:.1f} MiB) "
            f"in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
        )
        return libs


# ------------------------------------------------------------------------ ports


def free_ports(count: int, host: str = "127.0.0.1") -> tuple[int, ...]:
    """``count`` distinct TCP ports that are free on ``host`` right now.

    All sockets stay open until every port is chosen, so the ports differ; a
    port can still be taken by someone else before the broker binds it.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return tuple(int(s.getsockname()[1]) for s in sockets)
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def _port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The JVM sets SO_REUSEADDR on server sockets too, so a port held only
        # by TIME_WAIT connections of an earlier broker counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listener_of(port: int) -> str | None:
    """Best effort 'pid N (command line)' of whoever listens on ``port`` (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            listening = len(fields) > 9 and fields[3] == "0A"  # 0A = LISTEN
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            for fd in (proc_dir / "fd").iterdir():
                if os.readlink(fd) in targets:
                    return f"pid {proc_dir.name} ({_cmdline(int(proc_dir.name), 120)})"
        except OSError:
            continue  # processes of other users, or gone meanwhile
    return None


def check_ports_free(ports: Mapping[str, int]) -> None:
    taken = []
    for label, port in ports.items():
        if not _port_is_free(port):
            owner = _listener_of(port)
            by = f" by {owner}" if owner else " (owner unknown)"
            taken.append(f"{label} 127.0.0.1:{port} is already in use{by}")
    if taken:
        raise KafkaCtlError(
            "cannot start Kafka: " + "; ".join(taken) + ". Stop that process or pick other "
            "ports (--port/--controller-port)."
        )


# -------------------------------------------------------------------- processes


def _cmdline(pid: int, limit: int | None = None) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _pid_alive(pid: int) -> bool:
    # A zombie (exited, not yet reaped by its parent) still answers kill(0);
    # reap it when it is our child, and treat it as dead otherwise.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_our_broker(pid: int, props: Path) -> bool:
    """Guards against a recycled pid: is ``pid`` a kafka.Kafka started on ``props``?"""
    if not Path("/proc").is_dir():
        return True
    cmd = _cmdline(pid)
    return "kafka.Kafka" in cmd and str(props) in cmd


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _tail_file(path: Path, lines: int = LOG_TAIL_LINES, start: int = 0) -> str:
    """The last ``lines`` lines of ``path``, ignoring anything before byte ``start``."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            if end < start:  # rolled over since: all of it is new
                start = 0
            # Only the end matters and server.log can be tens of MiB.
            fh.seek(max(start, end - 256 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return _tail_text(data, lines)


def _signal_and_wait(pid: int, timeout: float, wait: Callable[[float], bool] | None = None) -> str:
    """SIGTERM, then SIGKILL after ``timeout``. Returns how it ended."""

    def gone(deadline: float) -> bool:
        if wait is not None:
            return wait(max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.1)
        return not _pid_alive(pid)

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "already gone"
    if gone(time.monotonic() + timeout):
        return "stopped"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    gone(time.monotonic() + 10)
    return f"killed (SIGKILL after {timeout:g}s)"


# ------------------------------------------------------------------ readiness


def _aiokafka(module: str) -> Any:
    # Imported by name so that mypy --strict needs no stubs (aiokafka ships no
    # py.typed) and so that fetch/stop/status run without aiokafka installed.
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise KafkaCtlError(
            f"{module} is not importable ({exc}); install aiokafka (pip install aiokafka==0.14.0) "
            "in the Python that runs kafkactl.py"
        ) from exc


def _run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run, also when called from inside a running loop (async test fixtures)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    # While the broker boots every probe fails to connect and aiokafka logs each
    # failure at ERROR; those are expected, so hide them for the probe only.
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def _describe_cluster(bootstrap: str, timeout_s: float) -> dict[str, Any]:
    admin_mod = _aiokafka("aiokafka.admin")
    admin = admin_mod.AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout_s * 1000))
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        info: dict[str, Any] = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return info
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(admin.close(), 5)


async def wait_ready_async(
    bootstrap: str,
    timeout_s: float = 60.0,
    *,
    died: Callable[[], str | None] | None = None,
) -> dict[str, Any]:
    """Wait until an admin client gets cluster metadata listing a broker.

    ``died`` is polled between probes; when it returns a reason (the JVM
    exited), waiting stops with that reason instead of running into the timeout.
    Returns aiokafka's describe_cluster() result.
    """
    _aiokafka("aiokafka.admin")  # fail now, not after the timeout, when it is missing
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while True:
        if died is not None and (reason := died()) is not None:
            raise BrokerStartError(reason)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerStartError(
                f"Kafka at {bootstrap} not ready after {timeout_s:g}s (last probe: {last_error})"
            )
        try:
            with _quiet_aiokafka():
                info = await _describe_cluster(bootstrap, min(5.0, max(remaining, 0.5)))
        except Exception as exc:  # any failure only means "not ready yet"
            name, text = type(exc).__name__, str(exc)
            last_error = text if text.startswith(name) else f"{name}: {text}".rstrip(": ")
        else:
            if info.get("brokers"):
                return info
            last_error = "metadata lists no broker yet"
        await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def wait_ready(
    bootstrap: str,
    timeout: float = 60.0,
    *,
    died: Callable[[], str | None] | None = None,
) -> dict[str, Any]:
    return _run_sync(lambda: wait_ready_async(bootstrap, timeout, died=died))


# ----------------------------------------------------------------------- topics


_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
DLQ_SUFFIX = ".dlq"


@dataclasses.dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]
    doc: str

    @property
    def is_dlq(self) -> bool:
        return self.name.endswith(DLQ_SUFFIX)


@dataclasses.dataclass
class TopicsReport:
    created: list[str] = dataclasses.field(default_factory=list)
    existing: list[str] = dataclasses.field(default_factory=list)
    # Human-readable differences between existing topics and topics.toml.
    drift: list[str] = dataclasses.field(default_factory=list)


def _config_value(value: object, where: str) -> str:
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    raise KafkaCtlError(f"{where}: config values must be strings, integers or booleans")


def _positive_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KafkaCtlError(f"{where} must be a positive integer, got {value!r}")
    return value


def load_topics(path: Path | str = DEFAULT_TOPICS) -> list[TopicSpec]:
    """Parse and validate topics.toml (see the comments at its top)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise KafkaCtlError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise KafkaCtlError(f"{path} is not valid TOML: {exc}") from exc

    unknown = set(data) - {"defaults", "topics"}
    if unknown:
        raise KafkaCtlError(f"{path}: unknown top-level keys {sorted(unknown)}")
    defaults = data.get("defaults", {})
    if set(defaults) - {"partitions", "replication_factor", "config"}:
        raise KafkaCtlError(f"{path}: unknown keys in [defaults]: {sorted(defaults)}")
    default_partitions = _positive_int(defaults.get("partitions", 1), "defaults.partitions")
    default_rf = _positive_int(defaults.get("replication_factor", 1), "defaults.replication_factor")
    default_config = {
        str(k): _config_value(v, f"defaults.config.{k}")
        for k, v in defaults.get("config", {}).items()
    }

    specs: list[TopicSpec] = []
    for index, entry in enumerate(data.get("topics", [])):
        where = f"{path}: topics[{index}]"
        unknown = set(entry) - {"name", "doc", "partitions", "replication_factor", "config"}
        if unknown:
            raise KafkaCtlError(f"{where}: unknown keys {sorted(unknown)}")
        name = entry.get("name")
        if not isinstance(name, str) or not _TOPIC_NAME.match(name):
            raise KafkaCtlError(f"{where}: invalid or missing name {name!r}")
        doc = entry.get("doc")
        if not isinstance(doc, str) or not doc.strip():
            raise KafkaCtlError(f"{where} ({name}): a non-empty doc string is required")
        config = dict(default_config)
        for key, value in entry.get("config", {}).items():
            config[str(key)] = _config_value(value, f"{where} ({name}) config.{key}")
        specs.append(
            TopicSpec(
                name=name,
                partitions=_positive_int(
                    entry.get("partitions", default_partitions), f"{where} partitions"
                ),
                replication_factor=_positive_int(
                    entry.get("replication_factor", default_rf), f"{where} replication_factor"
                ),
                config=config,
                doc=doc.strip(),
            )
        )

    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise KafkaCtlError(f"{path}: duplicate topics {duplicates}")
    # Every topic is consumed, so every one needs somewhere to park poison messages.
    missing_dlq = [s.name for s in specs if not s.is_dlq and s.name + DLQ_SUFFIX not in names]
    if missing_dlq:
        raise KafkaCtlError(
            f"{path}: these topics have no dead-letter topic: "
            + ", ".join(f"{n} (add {n}{DLQ_SUFFIX})" for n in missing_dlq)
        )
    return specs


async def _wait_topics_writable(
    bootstrap: str, specs: Sequence[TopicSpec], timeout_s: float
) -> None:
    """Return once every partition of ``specs`` is served by its leader.

    CreateTopics, and even metadata that already names a leader, run ahead of
    the broker taking up leadership: a producer that starts at once gets
    NOT_LEADER_OR_FOLLOWER warnings and retries. ListOffsets is answered only
    by an acting leader, and aiokafka retries it until then.
    """
    if not specs:
        return
    aiokafka = _aiokafka("aiokafka")
    partitions = [aiokafka.TopicPartition(s.name, p) for s in specs for p in range(s.partitions)]
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        request_timeout_ms=int(timeout_s * 1000),
    )
    await asyncio.wait_for(consumer.start(), timeout_s)
    try:
        await asyncio.wait_for(consumer.end_offsets(partitions), timeout_s)
    except TimeoutError as exc:
        raise KafkaCtlError(
            f"partitions of the new topics have no acting leader after {timeout_s:g}s"
        ) from exc
    finally:
        await consumer.stop()


async def _warm_coordinators(admin: Any, timeout_s: float) -> None:
    """Make the broker create and load its group and transaction state topics.

    Kafka creates __consumer_offsets and __transaction_state on first use, so
    the first consumer group (or transactional producer) of a test run would
    otherwise wait through COORDINATOR_NOT_AVAILABLE retries.
    """
    deadline = time.monotonic() + timeout_s
    for coordinator_type in (0, 1):  # 0 = group, 1 = transaction
        while True:
            try:
                await admin.find_coordinator("kafkactl-warmup", coordinator_type)
                break
            except Exception:  # retriable until the state topic is loaded
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def _drift(admin: Any, specs: Sequence[TopicSpec], source: str) -> list[str]:
    """Differences between existing topics and their specs (reported, never fixed)."""
    if not specs:
        return []
    config_mod = _aiokafka("aiokafka.admin.config_resource")
    by_name = {s.name: s for s in specs}
    notes: list[str] = []
    for topic in await admin.describe_topics(list(by_name)):
        spec = by_name[topic["topic"]]
        if len(topic["partitions"]) != spec.partitions:
            notes.append(
                f"{spec.name}: {len(topic['partitions'])} partitions, {source} says "
                f"{spec.partitions}"
            )
    resources = [
        # aiokafka wants a dict here; only its keys are sent (as the filter).
        config_mod.ConfigResource(
            config_mod.ConfigResourceType.TOPIC, s.name, dict.fromkeys(s.config)
        )
        for s in specs
    ]
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            error_code, error_message, _type, name, entries = resource[:5]
            if error_code != 0:
                notes.append(f"{name}: cannot read configs ({error_code} {error_message})")
                continue
            actual = {entry[0]: entry[1] for entry in entries}
            for key, wanted in by_name[name].config.items():
                if actual.get(key) != wanted:
                    notes.append(f"{name}: {key}={actual.get(key)}, {source} says {wanted}")
    return notes


async def _create_missing(
    admin: Any, admin_mod: Any, specs: Sequence[TopicSpec], timeout_s: float
) -> TopicsReport:
    report = TopicsReport()
    present = set(await admin.list_topics())
    missing = [s for s in specs if s.name not in present]
    report.existing = [s.name for s in specs if s.name in present]
    if not missing:
        return report
    new_topics = [
        admin_mod.NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.config))
        for s in missing
    ]
    # One request for all topics: a single controller round trip however many
    # topics there are. aiokafka returns per-topic errors instead of raising.
    response = await admin.create_topics(new_topics, timeout_ms=int(timeout_s * 1000))
    failures = []
    for name, error_code, error_message, *_ in response.topic_errors:
        if error_code == 0:
            report.created.append(name)
        elif error_code == _TOPIC_ALREADY_EXISTS:  # created concurrently
            report.existing.append(name)
        else:
            failures.append(f"{name}: error {error_code} {error_message or ''}".strip())
    if failures:
        raise KafkaCtlError("creating topics failed: " + "; ".join(failures))
    return report


async def create_topics_async(
    bootstrap: str, path: Path | str = DEFAULT_TOPICS, timeout_s: float = 60.0
) -> TopicsReport:
    """Create the topics of ``path`` that are missing; leave existing ones alone."""
    specs = load_topics(path)
    admin_mod = _aiokafka("aiokafka.admin")
    admin = admin_mod.AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        report = await _create_missing(admin, admin_mod, specs, timeout_s)
        created = set(report.created)
        await _wait_topics_writable(bootstrap, [s for s in specs if s.name in created], timeout_s)
        await _warm_coordinators(admin, timeout_s)
        try:
            existing = [s for s in specs if s.name in report.existing]
            report.drift = await _drift(admin, existing, Path(path).name)
        except Exception as exc:  # the check is advice; the topics exist either way
            report.drift = [f"could not compare existing topics with {path}: {exc!r}"]
    except KafkaCtlError:
        raise
    except Exception as exc:  # aiokafka's connection and protocol errors
        raise KafkaCtlError(f"creating topics on {bootstrap} failed: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(admin.close(), 5)
    return report


def create_topics(
    bootstrap: str, path: Path | str = DEFAULT_TOPICS, timeout: float = 60.0
) -> TopicsReport:
    return _run_sync(lambda: create_topics_async(bootstrap, path, timeout))


# ----------------------------------------------------------------------- broker


_HEAP = re.compile(r"^([1-9][0-9]*)([kKmMgG]?)$")
_HEAP_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}
_MIN_INITIAL_HEAP = 256 * 2**20


def _heap_bytes(heap: str) -> int:
    match = _HEAP.match(heap)
    if match is None:
        raise KafkaCtlError(f"invalid heap size {heap!r}; use a JVM size such as 512m or 1g")
    return int(match.group(1)) * _HEAP_UNITS[match.group(2).lower()]


def _new_cluster_id() -> str:
    # Same format as `kafka-storage random-uuid`: a UUID in unpadded url-safe base64. Like
    # Kafka's own Uuid.randomUuid, never one starting with "-": the CLI would take it for a flag.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclasses.dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str | None
    data_dir: Path
    rss_mib: float | None = None
    note: str = ""


class EmbeddedBroker:
    """A single-node Kafka broker process rooted in ``data_dir``.

    ``port``/``controller_port`` of 0 pick free ports. ``overrides`` are extra
    broker properties appended to server.properties. ``detach`` starts the JVM
    in its own session (it outlives this process, as `kafkactl.py start` needs);
    without it, Ctrl-C in the terminal reaches the broker too, which suits tests,
    and the broker is stopped when this interpreter exits.
    """

    def __init__(
        self,
        data_dir: Path | str = DEFAULT_DATA_DIR,
        port: int = DEFAULT_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        heap: str = DEFAULT_HEAP,
        *,
        overrides: Mapping[str, str] | None = None,
        detach: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        if port == 0 or controller_port == 0:
            picked = iter(free_ports(2))
            port = port or next(picked)
            controller_port = controller_port or next(picked)
        for label, value in (("port", port), ("controller port", controller_port)):
            if not 0 < value < 65536:
                raise KafkaCtlError(f"{label} {value} is not a TCP port number")
        if port == controller_port:
            raise KafkaCtlError(f"port and controller port must differ (both {port})")
        self.port = port
        self.controller_port = controller_port
        _heap_bytes(heap)
        self.heap = heap
        self.overrides = dict(overrides or {})
        self.detach = detach
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_start: dict[Path, int] = {}

    # Paths inside the data dir.
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def props_path(self) -> Path:
        return self.data_dir / PROPS_FILE

    @property
    def pid_path(self) -> Path:
        return self.data_dir / PID_FILE

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / LOGS_DIR

    @property
    def server_log(self) -> Path:
        return self.logs_dir / SERVER_LOG

    @property
    def stdout_log(self) -> Path:
        return self.logs_dir / STDOUT_LOG

    # -- preparation

    def _render_properties(self) -> str:
        template = string.Template(SERVER_PROPERTIES_TEMPLATE.read_text())
        try:
            text = template.substitute(
                port=self.port,
                controller_port=self.controller_port,
                log_dir=self.data_dir / KRAFT_DIR,
            )
        except (KeyError, ValueError) as exc:
            raise KafkaCtlError(
                f"{SERVER_PROPERTIES_TEMPLATE}: bad placeholder {exc}; only ${{port}}, "
                "${controller_port} and ${log_dir} exist (write $$ for a literal $)"
            ) from exc
        if self.overrides:
            # java.util.Properties keeps the last value of a repeated key.
            text += "\n# --set overrides\n" + "".join(
                f"{k}={v}\n" for k, v in self.overrides.items()
            )
        return text

    def _cluster_id(self) -> str:
        path = self.data_dir / CLUSTER_ID_FILE
        if path.is_file():
            return path.read_text().strip()
        cluster_id = _new_cluster_id()
        path.write_text(cluster_id + "\n")
        return cluster_id

    def _java_command(self, java: str, libs: Path, console_level: str) -> list[str]:
        initial = "256m" if _heap_bytes(self.heap) >= _MIN_INITIAL_HEAP else self.heap
        return [
            java,
            f"-Xms{initial}",
            f"-Xmx{self.heap}",
            # GC flags of Kafka's own kafka-server-start.sh.
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            # A broker out of heap is in an unknown state; die and say so.
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dkafka.console.level={console_level}",
            "-cp",
            _classpath(libs),
            "kafka.Kafka",
            str(self.props_path),
        ]

    def _format_storage(self, java: str, libs: Path) -> None:
        if (self.data_dir / KRAFT_DIR / "meta.properties").is_file():
            return  # formatted before; skipping saves a JVM start (~1 s)
        cmd = [
            java, f"-Dlog4j2.configurationFile={TOOLS_LOG4J2_CONFIG}", "-cp", _classpath(libs),
            "kafka.tools.StorageTool", "format", "-t", self._cluster_id(),
            "-c", str(self.props_path), "--ignore-formatted",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise BrokerStartError(
                f"formatting Kafka storage in {self.data_dir / KRAFT_DIR} failed "
                f"(exit {proc.returncode})",
                _tail_text(proc.stdout + proc.stderr, LOG_TAIL_LINES),
            )

    def prepare(self) -> tuple[str, Path]:
        """Check Java and ports, fetch jars, write config, format storage.

        Returns the java executable and the libs directory.
        """
        status = self.status()
        if status.running:
            raise KafkaCtlError(
                f"Kafka is already running from {self.data_dir} (pid {status.pid}, "
                f"{status.bootstrap}); stop it first"
            )
        java = check_java()
        check_ports_free({"port": self.port, "controller port": self.controller_port})
        libs = fetch()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / KRAFT_DIR).mkdir(parents=True, exist_ok=True)
        self.props_path.write_text(self._render_properties())
        self._format_storage(java, libs)
        return java, libs

    def _write_state(self, pid: int) -> None:
        self.pid_path.write_text(f"{pid}\n")
        (self.data_dir / STATE_FILE).write_text(
            json.dumps(
                {
                    "pid": pid,
                    "bootstrap": self.bootstrap,
                    "port": self.port,
                    "controller_port": self.controller_port,
                    "heap": self.heap,
                    "kafka_version": kafka_version(),
                    "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
                indent=2,
            )
        )

    def _clear_state(self) -> None:
        self.pid_path.unlink(missing_ok=True)
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)

    def _log_sizes(self) -> dict[Path, int]:
        sizes = {}
        for path in (self.stdout_log, self.server_log):
            with contextlib.suppress(OSError):
                sizes[path] = path.stat().st_size
        return sizes

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The end of the broker's logs, from this start() on (the logs are appended to)."""
        parts = []
        for path in (self.stdout_log, self.server_log):
            tail = _tail_file(path, lines, self._log_start.get(path, 0))
            if tail.strip():
                parts.append(f"--- last lines of {path} ---\n{tail}")
        return "\n".join(parts) if parts else "(the broker wrote no log)"

    # -- lifecycle

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker and wait until it is ready; return the bootstrap address.

        On failure the JVM is stopped and BrokerStartError carries the reason
        and the end of the broker's logs.
        """
        _aiokafka("aiokafka.admin")  # readiness needs it: fail before starting a JVM
        java, libs = self.prepare()
        # Detached, stdout already goes to a file: echoing the log there too
        # would only duplicate it.
        cmd = self._java_command(java, libs, console_level="OFF")
        self._log_start = self._log_sizes()
        with self.stdout_log.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=self.detach,
            )
        self._write_state(self._proc.pid)
        if not self.detach:
            atexit.register(self._stop_at_exit)
        proc = self._proc

        def died() -> str | None:
            code = proc.poll()
            return None if code is None else f"the Kafka JVM exited early with code {code}"

        try:
            wait_ready(self.bootstrap, timeout, died=died)
        except BrokerStartError as exc:
            tail = self.log_tail()
            self.stop(timeout=10)
            raise BrokerStartError(exc.reason, tail) from None
        except BaseException:
            self.stop(timeout=10)  # Ctrl-C while waiting: leave nothing half-started
            raise
        return self.bootstrap

    def exec_foreground(self) -> NoReturn:
        """Prepare, then replace this process with the JVM (never returns).

        exec rather than a child process: a supervisor's SIGTERM/SIGINT goes
        straight to the JVM, its exit code is ours, and a SIGKILL of the
        supervisor's child cannot orphan the broker.
        """
        java, libs = self.prepare()
        # WARN and up on stdout keeps a supervisor's combined output readable;
        # everything is in server.log.
        cmd = self._java_command(java, libs, console_level="WARN")
        self._write_state(os.getpid())
        print(
            f"kafkactl: Kafka {kafka_version()} on {self.bootstrap}, full log in {self.server_log}",
            file=sys.stderr,
            flush=True,
        )
        os.chdir(self.data_dir)
        os.execv(cmd[0], cmd)

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if _pid_alive(pid) and _is_our_broker(pid, self.props_path):
            return pid
        return None

    def status(self) -> BrokerStatus:
        pid = self._running_pid()
        if pid is None:
            note = "stale pid file" if self.pid_path.exists() else ""
            return BrokerStatus(False, None, None, self.data_dir, note=note)
        bootstrap = self.bootstrap
        with contextlib.suppress(OSError, ValueError):
            bootstrap = json.loads((self.data_dir / STATE_FILE).read_text())["bootstrap"]
        return BrokerStatus(True, pid, bootstrap, self.data_dir, _rss_mib(pid))

    def stop(self, timeout: float = 30.0) -> str:
        """SIGTERM the broker, SIGKILL after ``timeout``; harmless if not running."""
        proc, self._proc = self._proc, None
        atexit.unregister(self._stop_at_exit)
        pid = proc.pid if proc is not None else self._running_pid()
        if pid is None or (proc is not None and proc.poll() is not None):
            self._clear_state()
            return "not running"

        def wait_child(limit: float) -> bool:
            assert proc is not None
            try:
                proc.wait(limit)
            except subprocess.TimeoutExpired:
                return False
            return True

        outcome = _signal_and_wait(pid, timeout, wait_child if proc is not None else None)
        self._clear_state()
        return outcome

    def _stop_at_exit(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.stop(timeout=10)

    def create_topics(self, path: Path | str = DEFAULT_TOPICS) -> TopicsReport:
        return create_topics(self.bootstrap, path)

    def __enter__(self) -> "EmbeddedBroker":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -------------------------------------------------------------------------- CLI


def _cmd_fetch(args: argparse.Namespace) -> int:
    print(fetch(force=args.force))
    return 0


def _parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise KafkaCtlError(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def _broker(args: argparse.Namespace, *, detach: bool = True) -> EmbeddedBroker:
    return EmbeddedBroker(
        args.data_dir,
        port=getattr(args, "port", DEFAULT_PORT),
        controller_port=getattr(args, "controller_port", DEFAULT_CONTROLLER_PORT),
        heap=getattr(args, "heap", DEFAULT_HEAP),
        overrides=_parse_overrides(getattr(args, "set", None) or []),
        detach=detach,
    )


def _cmd_start(args: argparse.Namespace) -> int:
    broker = _broker(args)
    if args.foreground:
        broker.exec_foreground()
    status = broker.status()
    if status.running:
        # Idempotent for `make kafka-up`, but only for the same address.
        if status.bootstrap != broker.bootstrap:
            raise KafkaCtlError(
                f"Kafka already runs from {broker.data_dir} on {status.bootstrap}, "
                f"not {broker.bootstrap}; stop it first"
            )
        wait_ready(broker.bootstrap, args.timeout)
        print(f"kafkactl: already running (pid {status.pid})", file=sys.stderr)
        print(broker.bootstrap)
        return 0
    started = time.monotonic()
    try:
        bootstrap = broker.start(timeout=args.timeout)
    except BrokerStartError as exc:
        print(f"kafkactl: Kafka did not start: {exc.reason}", file=sys.stderr)
        print(exc.log_tail, file=sys.stderr)
        return 1
    pid = broker.status().pid
    print(
        f"kafkactl: Kafka {kafka_version()} ready in {time.monotonic() - started:.1f}s "
        f"(pid {pid}, data {broker.data_dir}, log {broker.server_log})",
        file=sys.stderr,
    )
    print(bootstrap)
    return 0


def _cmd_wait(args: argparse.Namespace) -> int:
    started = time.monotonic()
    info = wait_ready(args.bootstrap, args.timeout)
    print(
        f"kafkactl: {args.bootstrap} ready in {time.monotonic() - started:.1f}s "
        f"(cluster {info.get('cluster_id')}, brokers {[b['node_id'] for b in info['brokers']]})",
        file=sys.stderr,
    )
    return 0


def _cmd_create_topics(args: argparse.Namespace) -> int:
    report = create_topics(args.bootstrap, args.topics, args.timeout)
    for name in report.created:
        print(f"created  {name}")
    for name in report.existing:
        print(f"exists   {name} (left unchanged)")
    for note in report.drift:
        print(f"kafkactl: warning: {note} (not altered; change it by hand)", file=sys.stderr)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    broker = _broker(args)
    status = broker.status()
    outcome = broker.stop(timeout=args.timeout)
    where = f"pid {status.pid}" if status.pid else str(broker.data_dir)
    print(f"kafkactl: {outcome} ({where})", file=sys.stderr)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    status = _broker(args).status()
    if not status.running:
        note = f" ({status.note})" if status.note else ""
        print(f"not running{note}: {status.data_dir}")
        return 3  # LSB "program is not running"
    try:
        _aiokafka("aiokafka.admin")
    except KafkaCtlError:
        ready = "readiness not checked (aiokafka is not installed)"
    else:
        try:
            wait_ready(status.bootstrap or "", 3.0)
            ready = "ready"
        except KafkaCtlError as exc:
            ready = f"not ready: {exc}"
    rss = f", rss {status.rss_mib:.0f} MiB" if status.rss_mib is not None else ""
    print(f"running: pid {status.pid}, {status.bootstrap}, {ready}{rss}, data {status.data_dir}")
    return 0


def _cmd_run_class(args: argparse.Namespace) -> NoReturn:
    java = check_java()
    cmd = [
        java, f"-Dlog4j2.configurationFile={TOOLS_LOG4J2_CONFIG}", "-cp", _classpath(fetch()),
        args.main_class, *args.args,
    ]  # fmt: skip
    os.execv(java, cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafkactl.py",
        description="Run a single-node Kafka broker from Maven Central jars (no Docker).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir", type=Path, default=DEFAULT_DATA_DIR,
            help=f"broker state, config and logs (default {DEFAULT_DATA_DIR})",
        )  # fmt: skip

    def bootstrap_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bootstrap", default=f"127.0.0.1:{DEFAULT_PORT}")

    p = sub.add_parser("fetch", help="download the Kafka jars into the cache if needed")
    p.add_argument("--force", action="store_true", help="fetch even if the cache is complete")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("start", help="start the broker and wait until it is ready")
    data_dir_arg(p)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--controller-port", type=int, default=DEFAULT_CONTROLLER_PORT)
    p.add_argument("--heap", default=DEFAULT_HEAP, help="JVM -Xmx (default %(default)s)")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="extra broker property (repeatable), overrides server.properties",
    )  # fmt: skip
    p.add_argument(
        "--foreground", action="store_true",
        help="run the JVM in place of this process (for a process supervisor)",
    )  # fmt: skip
    p.set_defaults(func=_cmd_start)

    p = sub.add_parser("wait", help="wait until a broker answers metadata requests")
    bootstrap_arg(p)
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(func=_cmd_wait)

    p = sub.add_parser("create-topics", help="create the missing topics of topics.toml")
    bootstrap_arg(p)
    p.add_argument("--topics", type=Path, default=DEFAULT_TOPICS)
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(func=_cmd_create_topics)

    p = sub.add_parser("stop", help="stop the broker (SIGTERM, then SIGKILL)")
    data_dir_arg(p)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    p.set_defaults(func=_cmd_stop)

    p = sub.add_parser("status", help="is the broker running and ready (exit 3 if not running)")
    data_dir_arg(p)
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser(
        "run-class", help="run a Kafka main class (e.g. a perf tool) with the cached jars"
    )
    p.add_argument("main_class", help="e.g. org.apache.kafka.tools.ProducerPerformance")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_run_class)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The CLI reports aiokafka's failures itself; its ERROR lines while a broker
    # boots (connection refused) would only be noise.
    logging.basicConfig(level=logging.WARNING, format="kafkactl: %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        result: int = args.func(args)
    except KafkaCtlError as exc:
        print(f"kafkactl: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
