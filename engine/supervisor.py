"""``engine up``: the whole engine on one machine, until Ctrl-C.

Starts the local broker (unless ``--bootstrap-servers`` names a cluster), provisions the
topics, then runs each component as its own process (each with its own /metrics) and
restarts one that dies, with backoff. Ctrl-C or SIGTERM stops them, then the broker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from kafka.errors import KafkaError

from engine.contract.topics import declared_topics
from engine.development import development_profile
from engine.errors import ProvisioningError
from engine.kafka import broker
from engine.kafka.admin import TopicAction, provision
from engine.kafka.membership import end_memberships_of
from engine.monitoring import prometheus_command, write_config
from engine.process import configure_logging
from engine.settings import Settings
from engine.workers.service import load_directory_for, load_policy_for

COMPONENTS = ("smtp", "mail-parser", "api", "processor", "sla", "entitlements", "snmp")
# Run as well when ENGINE_NOTIFY_RELAY names an SMTP relay.
RELAY_COMPONENTS = ("notifier",)
# Run as well when ENGINE_AGENTS_FILE names an agents directory.
AGENTS_COMPONENTS = ("workers",)
# Humans first: in a trap storm the CPU goes to the mail, chat and phone path before the
# SNMP receiver, whose kernel buffer (ENGINE_SNMP_RECEIVE_BUFFER_BYTES) holds the traps
# meanwhile (decision 53). A positive niceness needs no privilege.
NICENESS = {"snmp": 10}
# What ENGINE_REPLICAS (engine up --replicas) runs several of: the components that share
# their work through Kafka's groups, take turns by a lease (workers, the entitlements
# ledger), or are stateless behind a shared port. The SNMP receiver keeps an alarm's traps
# in order in one process.
REPLICATED = frozenset(
    {"smtp", "mail-parser", "api", "processor", "sla", "entitlements", "notifier", "workers"}
)
# Replica K (from 0) serves /metrics on its component's port plus 10 x K.
REPLICA_PORT_STEP = 10
MAX_BACKOFF_SECONDS = 30.0
STOP_GRACE_SECONDS = 20.0

log = logging.getLogger(__name__)


@dataclass
class Component:
    name: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    command: list[str] | None = None  # not an engine component: this command
    replica: int = 0
    # Called with the label and pid of a process that exited by itself.
    on_exit: Callable[[str, int], None] | None = None

    @property
    def label(self) -> str:
        return self.name if self.replica == 0 else f"{self.name}#{self.replica + 1}"

    def start(self) -> None:
        argv = self.command or [sys.executable, "-m", "engine", self.name]
        self.process = subprocess.Popen(argv, env=self.env)
        niceness = NICENESS.get(self.name, 0)
        if niceness:
            os.setpriority(os.PRIO_PROCESS, self.process.pid, niceness)
        self.started_at = time.monotonic()

    def check(self, now: float) -> None:
        """Restart a component that exited, after a backoff that grows while it keeps dying."""
        if self.process is None:
            if now >= self.next_start:
                self.start()
            return
        code = self.process.poll()
        if code is None:
            return
        if now - self.started_at > 60:
            self.restarts = 0
        self.restarts += 1
        delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (self.restarts - 1))
        print(f"up: {self.label} exited with {code}; restarting in {delay:g}s", flush=True)
        if self.on_exit is not None:
            self.on_exit(self.label, self.process.pid)
        self.process = None
        self.next_start = now + delay

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def ending_memberships(bootstrap: str) -> Callable[[str, int], None]:
    """What ``engine up`` does when a component's process dies: takes it out of its Kafka
    groups at once (``engine.kafka.membership``), in a thread of its own so that the other
    components are watched meanwhile; otherwise its partitions wait for its session to end."""

    def end(label: str, pid: int) -> None:
        threading.Thread(
            target=end_memberships_quietly, args=(bootstrap, pid, label), daemon=True
        ).start()

    return end


def end_memberships_quietly(bootstrap: str, pid: int, label: str) -> None:
    """``end_memberships_of``, said on stdout; a failure is said too and otherwise ignored
    (the sessions end the memberships)."""
    try:
        removed = end_memberships_of(bootstrap, pid)
    except (KafkaError, ProvisioningError, OSError) as error:
        print(f"up: {label}'s group memberships not ended at once ({error}); "
              "its sessions will end them", flush=True)  # fmt: skip
        return
    if removed:
        groups = ", ".join(sorted({member.group for member in removed}))
        print(f"up: {label}'s group memberships ended at once: {groups}", flush=True)


def replica_env(settings: Settings, env: dict[str, str], name: str, replica: int) -> dict[str, str]:
    """The environment of ``name``'s replica ``replica``: the first one keeps the settings;
    the others their own state folder (local stores) and /metrics port. With several
    replicas the listeners share their ports (ENGINE_LISTEN_REUSE_PORT)."""
    if settings.replicas == 1:
        return env
    own = {**env, "ENGINE_LISTEN_REUSE_PORT": "true"}
    if replica > 0:
        setting = f"{name.replace('-', '_')}_metrics_port"
        port = getattr(settings, setting)
        own[f"ENGINE_{setting.upper()}"] = str(port + REPLICA_PORT_STEP * replica if port else 0)
        own["ENGINE_STATE_DIR"] = str(settings.state_dir / f"replica-{replica + 1}")
    return own


def check_configuration(settings: Settings) -> None:
    """Refuse to start with a directory or a matrix a component would refuse: the error
    names the file, line and path once, instead of a component restarting on it."""
    if settings.agents_file is not None:
        load_policy_for(settings, load_directory_for(settings))


def run_up(settings: Settings) -> int:
    configure_logging(settings)
    check_configuration(settings)
    started_broker = False
    if settings.uses_local_broker:
        print(f"up: {broker.start(settings)}", flush=True)
        started_broker = True
    outcomes = provision(
        settings.kafka_bootstrap,
        declared_topics(settings.partitions, settings.topic_replication_factor),
    )
    created = sum(outcome.action is TopicAction.CREATED for outcome in outcomes)
    for outcome in outcomes:
        if outcome.action is TopicAction.DIFFERS:
            print(f"up: warning: {outcome.name} differs: {outcome.detail}", flush=True)
    print(f"up: topics ready ({created} created, {len(outcomes) - created} existing)", flush=True)

    profile = development_profile(settings)
    for warning in profile.warnings:
        log.warning("up: %s", warning)
    env = {**os.environ, **profile.env, "ENGINE_BOOTSTRAP_SERVERS": settings.kafka_bootstrap}
    names = [
        *COMPONENTS,
        *(RELAY_COMPONENTS if settings.notify_relay else ()),
        *(AGENTS_COMPONENTS if settings.agents_file else ()),
    ]
    components = [
        Component(
            name,
            replica_env(settings, env, name, replica),
            replica=replica,
            on_exit=ending_memberships(settings.kafka_bootstrap),
        )
        for name in names
        for replica in range(settings.replicas if name in REPLICATED else 1)
    ]
    if settings.replicas > 1:
        print(f"up: {settings.replicas} processes of {', '.join(sorted(REPLICATED & set(names)))}",
              flush=True)  # fmt: skip
    if settings.monitoring:
        config = write_config(settings, set(names))
        components.append(
            Component("prometheus", env, command=prometheus_command(settings, config))
        )
        print(f"up: Prometheus on http://{settings.metrics_host}:{settings.prometheus_port} "
              f"({config})", flush=True)  # fmt: skip
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stopping:
            now = time.monotonic()
            for component in components:
                component.check(now)
            time.sleep(0.2)
    finally:
        print("up: stopping", flush=True)
        for component in components:
            component.stop()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for component in components:
            component.wait_stopped(deadline)
        if started_broker:
            print(f"up: {broker.stop(settings)}", flush=True)
    return 0
