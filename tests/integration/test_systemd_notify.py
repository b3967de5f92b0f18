"""Every component as its systemd unit runs it (``Type=notify``, ``WatchdogSec=``, its
``SystemCallFilter=`` and ``RestrictAddressFamilies=``): READY=1 once it serves, WATCHDOG=1
while its loop runs, STOPPING=1 and a clean exit on SIGTERM, and no system call refused on
the way.

systemd is not PID 1 here, so the test plays its part: it holds the NOTIFY_SOCKET (a real
AF_UNIX datagram socket), gives the process WATCHDOG_USEC as systemd would, confines it to
the unit's system calls and socket families (``confined.py``, through libseccomp like
systemd), and checks at READY=1 that the component really serves (its listener bound, its
partitions owned, its /metrics up), against the session's real broker.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.supervisor import AGENTS_COMPONENTS, COMPONENTS, RELAY_COMPONENTS
from tests.integration.harness import (
    PROJECT_ROOT,
    EngineProcess,
    engine_env,
    free_port,
    port_open,
)
from tests.integration.mail_relay import RecordingRelay
from tests.notify_socket import NotifySocket

WATCHDOG_USEC = "1000000"  # a pet every half second
UNIT = PROJECT_ROOT / "deploy" / "systemd" / "ticketing-engine@.service"


class ConfinedComponent:
    """``engine COMPONENT`` with the unit's system calls only (tests/integration/confined.py)."""

    def __init__(self, component: str, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        engine = [sys.executable, "-m", "engine", component]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.confined", str(UNIT), *engine],
                env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def udp_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def owns_partitions(metric: str, port_setting: str) -> Callable[[dict[str, str]], bool]:
    def check(env: dict[str, str]) -> bool:
        metrics = EngineProcess(env, Path("/dev/null"))
        return metrics.metric(metric, port=int(env[port_setting])) > 0

    return check


def serves_metrics(port_setting: str) -> Callable[[dict[str, str]], bool]:
    return lambda env: port_open(int(env[port_setting]))


# What "it serves" means for each component, checked when its READY=1 has come.
SERVING: dict[str, Callable[[dict[str, str]], bool]] = {
    "smtp": lambda env: port_open(int(env["ENGINE_SMTP_PORT"])),
    "api": lambda env: port_open(int(env["ENGINE_API_PORT"])),
    "snmp": lambda env: udp_bound(int(env["ENGINE_SNMP_PORT"])),
    "processor": owns_partitions(
        "ticketing_processor_assigned_partitions", "ENGINE_PROCESSOR_METRICS_PORT"
    ),
    "sla": owns_partitions("ticketing_sla_assigned_partitions", "ENGINE_SLA_METRICS_PORT"),
    "mail-parser": serves_metrics("ENGINE_MAIL_PARSER_METRICS_PORT"),
    "entitlements": serves_metrics("ENGINE_ENTITLEMENTS_METRICS_PORT"),
    "notifier": serves_metrics("ENGINE_NOTIFIER_METRICS_PORT"),
    "workers": serves_metrics("ENGINE_WORKERS_METRICS_PORT"),
}


def test_every_component_a_unit_runs_is_checked() -> None:
    assert set(SERVING) == {*COMPONENTS, *RELAY_COMPONENTS, *AGENTS_COMPONENTS}


def until(systemd: NotifySocket, message: bytes, process: ConfinedComponent) -> list[bytes]:
    """The datagrams up to ``message`` (included); fails when the process exits first, or
    when ``message`` has not come within two minutes."""
    seen: list[bytes] = []
    deadline = time.monotonic() + 120
    while not seen or seen[-1] != message:
        if process.process.poll() is not None:
            raise AssertionError(
                f"exited with {process.process.returncode} after {seen[-20:]}\n"
                f"{process.log()[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"no {message!r} in {seen[-20:]}\n{process.log()[-4000:]}")
        datagram = systemd.next(timeout=1)
        if datagram is not None:
            seen.append(datagram)
    return seen


@pytest.mark.parametrize("component", list(SERVING))
def test_a_component_says_ready_once_it_serves_pets_the_watchdog_and_says_stopping(
    component: str,
    topics: str,
    topic_prefix: str,
    tmp_path: Path,
    relay: tuple[RecordingRelay, int],
) -> None:
    _, relay_port = relay
    with NotifySocket.in_temporary_folder() as systemd:
        env = engine_env(
            tmp_path / "state",
            topics,
            topic_prefix,
            NOTIFY_SOCKET=systemd.name,
            WATCHDOG_USEC=WATCHDOG_USEC,
            ENGINE_NOTIFY_RELAY=f"127.0.0.1:{relay_port}",
            ENGINE_NOTIFIER_METRICS_PORT=str(free_port()),
            ENGINE_AGENTS_FILE=str(PROJECT_ROOT / "deploy" / "agents.example.yaml"),
        )
        running = ConfinedComponent(component, env, tmp_path / f"{component}.log")
        try:
            before_ready = until(systemd, b"READY=1", running)
            assert SERVING[component](env), f"{component} said READY=1 before it served"
            assert set(before_ready[:-1]) <= {b"WATCHDOG=1"}, before_ready

            assert systemd.received(3) == [b"WATCHDOG=1"] * 3

            running.process.send_signal(signal.SIGTERM)
            before_stopping = until(systemd, b"STOPPING=1", running)
            assert set(before_stopping[:-1]) <= {b"WATCHDOG=1"}, before_stopping
            assert running.process.wait(timeout=60) == 0, running.log()[-4000:]
            log = running.log()
            assert log.startswith(f"confined as {UNIT.name}"), log[:400]
            assert "Operation not permitted" not in log, log[-4000:]
        finally:
            running.stop()
