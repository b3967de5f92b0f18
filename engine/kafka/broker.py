"""The local single-node Apache Kafka broker (KRaft, combined broker and controller).

Its jars come from Maven Central through ``deploy/kafka/pom.xml``; it runs on the
machine's Java, keeps its data under the engine's state directory, and is formatted
once, on first start. In production the engine connects to the user's cluster instead.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from engine.errors import BrokerError
from engine.kafka.admin import cluster_answers
from engine.settings import Settings

MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
READY_TIMEOUT_SECONDS = 90.0

# Brokers started by this process, kept so they are reaped (not left as zombies) on stop.
_spawned: dict[int, subprocess.Popen[bytes]] = {}
STOP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class BrokerPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.root / "log4j2.properties"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def console(self) -> Path:
        return self.root / "console.log"

    @property
    def pid(self) -> Path:
        return self.root / "broker.pid"

    @property
    def cluster_id(self) -> Path:
        return self.root / "cluster-id"

    @classmethod
    def of(cls, settings: Settings) -> BrokerPaths:
        return cls(settings.state_dir / "kafka")


def require_tool(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(
            f"'{name}' is not installed; the local Kafka broker needs it. {install_hint}"
        )
    return path


def lib_dir(settings: Settings) -> Path:
    return settings.kafka_deploy_dir / "lib"


def fetch_jars(settings: Settings) -> Path:
    """Copy Kafka's runtime jars from Maven Central into ``deploy/kafka/lib`` (once)."""
    lib = lib_dir(settings)
    pom = settings.kafka_deploy_dir / "pom.xml"
    stamp = lib / ".pom-sha"
    pom_digest = _digest(pom.read_bytes())
    if stamp.exists() and stamp.read_text() == pom_digest:
        return lib
    mvn = require_tool("mvn", "Install Maven: apt-get install maven")
    if lib.exists():
        shutil.rmtree(lib)
    result = subprocess.run(
        [
            mvn, "-B", "-q", "-f", str(pom),
            f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={lib}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise BrokerError(f"Maven could not fetch Kafka's jars:\n{result.stdout}{result.stderr}")
    stamp.write_text(pom_digest)
    return lib


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_cluster_id() -> str:
    """Kafka's own format: URL-safe base64 of a random UUID's 16 bytes, unpadded. Like
    Kafka's Uuid.randomUuid, never one starting with "-": the storage tool would read it
    as an option ("--cluster-id: expected one argument")."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


def server_properties(settings: Settings, paths: BrokerPaths) -> str:
    port, cport = settings.broker_port, settings.controller_port
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(paths.data),
        "num.partitions": str(settings.partitions),
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def log4j_properties(paths: BrokerPaths) -> str:
    return (
        "status = warn\n"
        "appender.file.type = RollingFile\n"
        "appender.file.name = file\n"
        f"appender.file.fileName = {paths.log}\n"
        f"appender.file.filePattern = {paths.log}.%i\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "appender.file.policies.type = Policies\n"
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy\n"
        "appender.file.policies.size.size = 20MB\n"
        "appender.file.strategy.type = DefaultRolloverStrategy\n"
        "appender.file.strategy.max = 3\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = file\n"
    )


def _java_command(settings: Settings, paths: BrokerPaths, *args: str) -> list[str]:
    java = require_tool("java", "Install Java 17 or newer: apt-get install openjdk-17-jre-headless")
    return [
        java,
        "-Xms256m",
        f"-Xmx{settings.broker_heap}",
        f"-Dlog4j2.configurationFile={paths.log4j}",
        "-cp",
        f"{lib_dir(settings)}/*",
        *args,
    ]


def running_pid(paths: BrokerPaths) -> int | None:
    try:
        pid = int(paths.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return None if _is_zombie(pid) else pid


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def start(settings: Settings) -> str:
    """Start the local broker unless it runs already; return once an admin client answers."""
    paths = BrokerPaths.of(settings)
    bootstrap = settings.kafka_bootstrap
    pid = running_pid(paths)
    if pid is not None:
        wait_ready(bootstrap, pid, paths)
        return f"Kafka broker already running (pid {pid}) on {bootstrap}"
    if cluster_answers(bootstrap, timeout_seconds=1.0):
        raise BrokerError(
            f"Something else already answers as Kafka on {bootstrap}; set ENGINE_BROKER_PORT "
            "to another port, or point ENGINE_BOOTSTRAP_SERVERS at that cluster."
        )
    fetch_jars(settings)
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.properties.write_text(server_properties(settings, paths))
    paths.log4j.write_text(log4j_properties(paths))
    if not (paths.data / "meta.properties").exists():
        _format_storage(settings, paths)
    with paths.console.open("ab") as console:
        process = subprocess.Popen(
            _java_command(settings, paths, "kafka.Kafka", str(paths.properties)),
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _spawned[process.pid] = process
    paths.pid.write_text(str(process.pid))
    wait_ready(bootstrap, process.pid, paths)
    return f"Kafka broker started (pid {process.pid}) on {bootstrap}; data in {paths.data}"


def _format_storage(settings: Settings, paths: BrokerPaths) -> None:
    if not paths.cluster_id.exists():
        paths.cluster_id.write_text(new_cluster_id())
    cluster_id = paths.cluster_id.read_text().strip()
    result = subprocess.run(
        _java_command(
            settings, paths, "kafka.tools.StorageTool", "format",
            "-t", cluster_id, "-c", str(paths.properties),
        ),
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise BrokerError(f"Formatting Kafka's storage failed:\n{result.stdout}{result.stderr}")


def wait_ready(bootstrap: str, pid: int, paths: BrokerPaths) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if running_pid(paths) != pid:
            raise BrokerError(f"The Kafka broker exited during start-up.\n{_log_tail(paths)}")
        if cluster_answers(bootstrap, timeout_seconds=2.0):
            return
        time.sleep(0.5)
    raise BrokerError(
        f"The Kafka broker did not answer on {bootstrap} within {READY_TIMEOUT_SECONDS:.0f}s.\n"
        f"{_log_tail(paths)}"
    )


def _log_tail(paths: BrokerPaths, lines: int = 30) -> str:
    text = ""
    for log in (paths.console, paths.log):
        if log.exists():
            text += "".join(log.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    return f"Last lines of the broker's logs ({paths.root}):\n{text}"


def stop(settings: Settings) -> str:
    paths = BrokerPaths.of(settings)
    pid = running_pid(paths)
    if pid is None:
        paths.pid.unlink(missing_ok=True)
        return "Kafka broker is not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not _exited(pid, paths):
        time.sleep(0.2)
    forced = not _exited(pid, paths)
    if forced:
        os.kill(pid, signal.SIGKILL)
    own_child = _spawned.pop(pid, None)
    if own_child is not None:
        own_child.wait(timeout=10)
    paths.pid.unlink(missing_ok=True)
    return f"Kafka broker {'killed' if forced else 'stopped'} (pid {pid})"


def _exited(pid: int, paths: BrokerPaths) -> bool:
    own_child = _spawned.get(pid)
    if own_child is not None:
        return own_child.poll() is not None
    return running_pid(paths) != pid


def status(settings: Settings) -> tuple[bool, str]:
    paths = BrokerPaths.of(settings)
    pid = running_pid(paths)
    bootstrap = settings.kafka_bootstrap
    answers = cluster_answers(bootstrap, timeout_seconds=2.0)
    if pid is None:
        return False, f"Kafka broker is not running (data in {paths.data})"
    state = "answering" if answers else "not answering yet"
    return (
        answers,
        f"Kafka broker running (pid {pid}) on {bootstrap}, {state}; data in {paths.data}",
    )
