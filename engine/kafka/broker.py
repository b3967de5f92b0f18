"""The local Apache Kafka broker (KRaft, combined broker and controller nodes).

One node by default; ``ENGINE_BROKER_NODES=3`` (``--nodes 3``) runs a cluster of three
nodes, one quorum, each with its own ports, data and logs, to try replication and broker
failures on one machine. Its jars come from Maven Central through ``deploy/kafka/pom.xml``;
it runs on the machine's Java, keeps its data under the engine's state directory, and each
node is formatted once, on first start. In production the engine connects to the user's
cluster instead.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from engine.errors import BrokerError
from engine.kafka.admin import cluster_answers, partition_leaders
from engine.kafka.security import KafkaSecurity, SaslMechanism, SecurityProtocol
from engine.settings import NODE_PORT_STEP, Settings

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
        """The single node's folder (a cluster's nodes: ``cluster_nodes``)."""
        return cls(settings.state_dir / "kafka")


@dataclass(frozen=True)
class BrokerNode:
    node_id: int
    port: int
    controller_port: int
    paths: BrokerPaths

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def cluster_nodes(settings: Settings) -> tuple[BrokerNode, ...]:
    """The local broker's nodes: one in ``state_dir/kafka``, or a cluster's in
    ``state_dir/kafka-cluster/node-N``, node N on the ports plus 10 x (N - 1)."""
    if settings.broker_nodes == 1:
        return (
            BrokerNode(1, settings.broker_port, settings.controller_port, BrokerPaths.of(settings)),
        )
    root = _cluster_root(settings)
    return tuple(
        BrokerNode(
            node_id=number,
            port=settings.broker_port + NODE_PORT_STEP * (number - 1),
            controller_port=settings.controller_port + NODE_PORT_STEP * (number - 1),
            paths=BrokerPaths(root / f"node-{number}"),
        )
        for number in range(1, settings.broker_nodes + 1)
    )


def _cluster_root(settings: Settings) -> Path:
    return settings.state_dir / "kafka-cluster"


def _cluster_id_file(settings: Settings) -> Path:
    """One cluster id for every node of the cluster."""
    if settings.broker_nodes == 1:
        return BrokerPaths.of(settings).cluster_id
    return _cluster_root(settings) / "cluster-id"


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


# What a user name or password must look like to be written into the broker's JAAS line.
_JAAS_NAME = re.compile(r"[A-Za-z0-9._@-]+")


def listener_security(security: KafkaSecurity) -> dict[str, str]:
    """The client listener's settings for the engine's own security: PLAINTEXT, or
    SASL_PLAINTEXT with PLAIN whose one user is the engine's (the brokers talk to each
    other on it as that user too; the controllers stay on their PLAINTEXT listener). TLS
    and SCRAM need certificates or stored credentials: a cluster of the user's own."""
    if security.protocol is SecurityProtocol.PLAINTEXT:
        return {"listener": "PLAINTEXT"}
    if (
        security.protocol is not SecurityProtocol.SASL_PLAINTEXT
        or security.mechanism is not SaslMechanism.PLAIN
    ):
        raise BrokerError(
            f"The local broker serves PLAINTEXT or SASL_PLAINTEXT with PLAIN, not "
            f"{security.described()}: point ENGINE_BOOTSTRAP_SERVERS at a cluster that "
            "serves it, or change ENGINE_KAFKA_SECURITY_PROTOCOL / ENGINE_KAFKA_SASL_MECHANISM"
        )
    if not _JAAS_NAME.fullmatch(security.username):
        raise BrokerError(
            f"The local broker cannot take the SASL user {security.username!r} "
            "(ENGINE_KAFKA_SASL_USERNAME): letters, digits, '.', '_', '@', '-' only"
        )
    if any(character in security.password for character in '"\\\n\r'):
        raise BrokerError(
            "The local broker cannot take a SASL password with a quote, a backslash or a line "
            "break (ENGINE_KAFKA_SASL_PASSWORD)"
        )
    user, password = security.username, security.password
    return {
        "listener": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{user}" password="{password}" user_{user}="{password}";'
        ),
    }


def server_properties(settings: Settings, node: BrokerNode, nodes: tuple[BrokerNode, ...]) -> str:
    """One node's configuration: all nodes vote in the one quorum, and the internal topics
    are replicated as widely as the cluster allows (3 at most, 2 in sync). Its client
    listener asks for the engine's own SASL credentials when the engine uses SASL."""
    voters = ",".join(f"{peer.node_id}@127.0.0.1:{peer.controller_port}" for peer in nodes)
    replicas = str(min(3, len(nodes)))
    in_sync = str(min(2, len(nodes)))
    sasl = listener_security(settings.kafka_security)
    name = sasl.pop("listener")
    listeners = f"{name}://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": listeners,
        "advertised.listeners": f"{name}://127.0.0.1:{node.port}",
        "listener.security.protocol.map": f"{name}:{name},CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": name,
        **sasl,
        "log.dirs": str(node.paths.data),
        "num.partitions": str(settings.partitions),
        "default.replication.factor": replicas,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    if len(nodes) > 1:
        # A killed node is fenced, and its partitions and groups move, after 3 s instead
        # of 9: the nodes share one machine, so a missed heartbeat means a dead node.
        lines["broker.session.timeout.ms"] = "3000"
        lines["broker.heartbeat.interval.ms"] = "1000"
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
    """Start the local broker's nodes that are not running; return once each answers."""
    nodes = cluster_nodes(settings)
    bootstrap = settings.kafka_bootstrap
    security = settings.kafka_security
    listener_security(security)  # refused before anything starts
    running = {node.node_id: running_pid(node.paths) for node in nodes}
    if all(pid is not None for pid in running.values()):
        for node in nodes:
            wait_ready(node.bootstrap, running[node.node_id] or 0, node.paths, security)
        pids = ", ".join(str(pid) for pid in running.values())
        return f"Kafka {_described(nodes)} already running (pid {pids}) on {bootstrap}"
    for node in nodes:
        if running[node.node_id] is None and cluster_answers(
            node.bootstrap, 1.0, security=security
        ):
            raise BrokerError(
                f"Something else already answers as Kafka on {node.bootstrap}; set "
                "ENGINE_BROKER_PORT to another port, or point ENGINE_BOOTSTRAP_SERVERS at "
                "that cluster."
            )
    fetch_jars(settings)
    started = []
    for node in nodes:
        if running[node.node_id] is None:
            pid = _start_node(settings, node, nodes)
            running[node.node_id] = pid
            started.append(str(pid))
    for node in nodes:
        wait_ready(node.bootstrap, running[node.node_id] or 0, node.paths, security)
    if len(nodes) > 1:
        _wait_all_registered(bootstrap, nodes, security)
    data = nodes[0].paths.data if len(nodes) == 1 else _cluster_root(settings)
    return (
        f"Kafka {_described(nodes)} started (pid {', '.join(started)}) on {bootstrap}; "
        f"data in {data}"
    )


def _described(nodes: tuple[BrokerNode, ...]) -> str:
    return "broker" if len(nodes) == 1 else f"cluster of {len(nodes)} nodes"


def _start_node(settings: Settings, node: BrokerNode, nodes: tuple[BrokerNode, ...]) -> int:
    paths = node.paths
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.properties.touch(mode=0o600)  # it may hold the engine's SASL password
    paths.properties.chmod(0o600)
    paths.properties.write_text(server_properties(settings, node, nodes))
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
    return process.pid


def _wait_all_registered(
    bootstrap: str, nodes: tuple[BrokerNode, ...], security: KafkaSecurity
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        leaders = partition_leaders(bootstrap, security=security)
        if leaders is not None and len(leaders.brokers) == len(nodes):
            return
        time.sleep(0.5)
    raise BrokerError(
        f"Not all {len(nodes)} nodes joined the cluster within {READY_TIMEOUT_SECONDS:.0f}s.\n"
        + "".join(_log_tail(node.paths, 10) for node in nodes)
    )


def _format_storage(settings: Settings, paths: BrokerPaths) -> None:
    cluster_id_file = _cluster_id_file(settings)
    if not cluster_id_file.exists():
        cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
        cluster_id_file.write_text(new_cluster_id())
    cluster_id = cluster_id_file.read_text().strip()
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


def wait_ready(bootstrap: str, pid: int, paths: BrokerPaths, security: KafkaSecurity) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if running_pid(paths) != pid:
            raise BrokerError(f"The Kafka broker exited during start-up.\n{_log_tail(paths)}")
        if cluster_answers(bootstrap, 2.0, security=security):
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
    """Stop every node of the local broker (SIGTERM, SIGKILL after 30 s)."""
    for spawned, child in list(_spawned.items()):  # nodes started here that another stopped
        if child.poll() is not None:
            del _spawned[spawned]
    nodes = cluster_nodes(settings)
    stopped: list[tuple[BrokerNode, int]] = []
    for node in nodes:
        pid = running_pid(node.paths)
        if pid is None:
            node.paths.pid.unlink(missing_ok=True)
            continue
        os.kill(pid, signal.SIGTERM)
        stopped.append((node, pid))
    if not stopped:
        return f"Kafka {_described(nodes)} is not running"
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not all(_exited(pid, n.paths) for n, pid in stopped):
        time.sleep(0.2)
    outcomes = [_reaped(node, pid) for node, pid in stopped]
    if len(nodes) == 1:
        return f"Kafka broker {outcomes[0]}"
    return "Kafka cluster: " + "; ".join(
        f"node {node.node_id} {outcome}"
        for (node, _), outcome in zip(stopped, outcomes, strict=True)
    )


def _reaped(node: BrokerNode, pid: int) -> str:
    forced = not _exited(pid, node.paths)
    if forced:
        os.kill(pid, signal.SIGKILL)
    own_child = _spawned.pop(pid, None)
    if own_child is not None:
        own_child.wait(timeout=10)
    node.paths.pid.unlink(missing_ok=True)
    return f"{'killed' if forced else 'stopped'} (pid {pid})"


def _exited(pid: int, paths: BrokerPaths) -> bool:
    own_child = _spawned.get(pid)
    if own_child is not None:
        return own_child.poll() is not None
    return running_pid(paths) != pid


def status(settings: Settings) -> tuple[bool, str]:
    """(every node answers, what each node is doing); a cluster's status also says which
    partitions each node leads, which moves when a node stops."""
    nodes = cluster_nodes(settings)
    if len(nodes) == 1:
        node = nodes[0]
        pid = running_pid(node.paths)
        if pid is None:
            return False, f"Kafka broker is not running (data in {node.paths.data})"
        answers = cluster_answers(node.bootstrap, 2.0, security=settings.kafka_security)
        state = "answering" if answers else "not answering yet"
        return (
            answers,
            f"Kafka broker running (pid {pid}) on {node.bootstrap}, {state}; "
            f"data in {node.paths.data}",
        )
    leaders = partition_leaders(settings.kafka_bootstrap, security=settings.kafka_security)
    lines, all_answer = [], True
    for node in nodes:
        pid = running_pid(node.paths)
        answers = pid is not None and cluster_answers(
            node.bootstrap, 2.0, security=settings.kafka_security
        )
        all_answer = all_answer and answers
        state = (
            "not running" if pid is None
            else f"running (pid {pid}), {'answering' if answers else 'not answering yet'}"
        )  # fmt: skip
        led = leaders.led_by(node.node_id) if leaders is not None else []
        lines.append(
            f"node {node.node_id} on {node.bootstrap}: {state}; leads {len(led)} partitions"
            + (f": {_summary(led)}" if led else "")
        )
    if leaders is not None and leaders.leaderless:
        lines.append(f"without a leader: {_summary(leaders.leaderless)}")
    header = f"Kafka cluster of {len(nodes)} nodes, data in {_cluster_root(settings)}"
    return all_answer, "\n".join([header, *lines])


def _summary(partitions: list[tuple[str, int]]) -> str:
    """``tickets.events.v1 [0, 3], mail.spool.v1 [1]``: partitions grouped by topic."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return ", ".join(
        f"{topic} [{', '.join(map(str, sorted(numbers)))}]"
        for topic, numbers in sorted(by_topic.items())
    )
