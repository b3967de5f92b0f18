"""SNMPv2c traps per second received with zero loss, and the largest burst absorbed
without loss: the engine's receiver (``engine snmp``: every trap on Kafka, acks=all)
against net-snmp's ``snmptrapd`` logging to a file, on this machine in the same run.
Target (issue 5): the engine sustains at least a quarter of snmptrapd's rate.

    python -m bench.snmp_traps [--seconds 4] [--max-rate 64000]

Each step sends ``rate x seconds`` distinct pre-encoded traps (paced every 5 ms) from one
UDP socket, waits until the receiver stops counting, and compares: a step passes when
every trap was counted (engine: acknowledged by Kafka, from its /metrics; snmptrapd: its
marker in the log file). The rate doubles until a step loses traps, then is bisected.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engine.contract.topics import declared_topics
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.settings import Settings
from tests.integration.harness import free_port, free_udp_port, port_open, wait_until
from tests.integration.snmp_peers import encoded_link_trap, scrape

COMMUNITY = "bench"
MARKER_OID = "1.3.6.1.4.1.99999.1.1.0"
RECEIVE_BUFFER = 16 * 1024 * 1024
_runs = itertools.count(1)


def encoded_traps(run: str, count: int) -> list[bytes]:
    """``count`` distinct v2c linkDown traps, each with its own request id and marker."""
    return [
        encoded_link_trap(
            COMMUNITY, n % 48 + 1, n + 1, uptime=n, markers=((MARKER_OID, f"{run}-{n}"),)
        )
        for n in range(count)
    ]


def send(port: int, datagrams: list[bytes], rate: float | None) -> float:
    """Send at ``rate`` per second (None: as fast as possible); returns the seconds taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    started = time.perf_counter()
    tick = 0.005
    chunk = len(datagrams) if rate is None else max(1, round(rate * tick))
    for index in range(0, len(datagrams), chunk):
        for datagram in datagrams[index : index + chunk]:
            sock.send(datagram)
        if rate is not None:
            due = started + (index + chunk) / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    sock.close()
    return time.perf_counter() - started


def settled(count: Callable[[], int], expected: int, quiet: float = 2.0, limit: float = 60) -> int:
    """The count once it reached ``expected`` or stopped moving for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    last, last_change = count(), time.monotonic()
    while time.monotonic() < deadline and last < expected:
        time.sleep(0.2)
        now = count()
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > quiet:
            break
    return last


class Receiver:
    name = ""

    def received(self, run: str) -> int:
        raise NotImplementedError


class EngineReceiver(Receiver):
    name = "engine snmp (Kafka acks=all)"

    def __init__(self, metrics_port: int) -> None:
        self.metrics_port = metrics_port
        self._base: dict[str, float] = {}
        self._last = 0.0

    def _accepted(self) -> float:
        key = frozenset({("source", "snmp"), ("outcome", "accepted"), ("reason", "trap")})
        return scrape(self.metrics_port).get(("ticketing_events_ingested_total", key), 0.0)

    def received(self, run: str) -> int:
        if run not in self._base:
            self._base[run] = self._last
        self._last = self._accepted()
        return int(self._last - self._base[run])

    def start_run(self, run: str) -> None:
        self._last = self._accepted()
        self._base[run] = self._last


class TrapdReceiver(Receiver):
    name = "net-snmp snmptrapd (-Lf file)"

    def __init__(self, log: Path) -> None:
        self.log = log

    def received(self, run: str) -> int:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return len(re.findall(rf'"?{re.escape(run)}-\d+', text))

    def start_run(self, run: str) -> None:
        pass


def step(
    receiver: EngineReceiver | TrapdReceiver, port: int, count: int, rate: float | None
) -> tuple[int, float]:
    run = f"r{os.getpid()}x{next(_runs)}"
    datagrams = encoded_traps(run, count)
    receiver.start_run(run)
    took = send(port, datagrams, rate)
    got = settled(lambda: receiver.received(run), count)
    return got, took


def sustained(
    receiver: EngineReceiver | TrapdReceiver, port: int, seconds: float, max_rate: int
) -> int:
    good, bad, rate = 0, 0, 1000
    while rate <= max_rate:
        got, _ = step(receiver, port, int(rate * seconds), rate)
        print(
            f"  {receiver.name}: {rate:6d}/s for {seconds:g}s -> {got}/{int(rate * seconds)}",
            flush=True,
        )
        if got < int(rate * seconds):
            bad = rate
            break
        good, rate = rate, rate * 2
    if not bad:
        return good
    for _ in range(3):
        middle = (good + bad) // 2
        got, _ = step(receiver, port, int(middle * seconds), middle)
        print(
            f"  {receiver.name}: {middle:6d}/s for {seconds:g}s -> {got}/{int(middle * seconds)}",
            flush=True,
        )
        if got < int(middle * seconds):
            bad = middle
        else:
            good = middle
    return good


def burst(receiver: EngineReceiver | TrapdReceiver, port: int, max_burst: int) -> int:
    good, size = 0, 250
    while size <= max_burst:
        got, took = step(receiver, port, size, None)
        print(
            f"  {receiver.name}: burst {size} in {took * 1000:.0f} ms -> {got}/{size}", flush=True
        )
        if got < size:
            break
        good, size = size, size * 2
    return good


def receive_buffer(port: int) -> str:
    """The receive buffer the kernel gave the socket on ``port`` (ss's skmem rb)."""
    shown = subprocess.run(["ss", "-ulmn", f"sport = :{port}"], capture_output=True, text=True)
    found = re.search(r"rb(\d+)", shown.stdout)
    return f"{int(found.group(1)) // 1024} KiB" if found else "unknown"


TRAPD_CONF = f"""
disableAuthorization yes
authCommunity log {COMMUNITY}
doNotRetainNotificationLogs yes
[snmp] serverRecvBuf {RECEIVE_BUFFER}
"""


def trapd_command(folder: Path, port: int) -> list[str]:
    """snmptrapd in the foreground, its own config only, logging every trap to a file."""
    return [
        "/usr/sbin/snmptrapd", "-f", "-C", "-c", str(folder / "snmptrapd.conf"), "-n", "-On",
        "-Lf", str(folder / "traps.log"), f"udp:127.0.0.1:{port}",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--max-rate", type=int, default=64000)
    parser.add_argument("--max-burst", type=int, default=64000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-snmp-") as tmp:
        folder = Path(tmp)
        settings = Settings(state_dir=folder, broker_port=free_port(), controller_port=free_port())
        broker.start(settings)
        engine_port, trapd_port, metrics_port = free_udp_port(), free_udp_port(), free_port()
        env = {
            **os.environ, "ENGINE_BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
            "ENGINE_STATE_DIR": tmp, "ENGINE_SNMP_PORT": str(engine_port),
            "ENGINE_SNMP_METRICS_PORT": str(metrics_port), "ENGINE_SNMP_COMMUNITIES": COMMUNITY,
            "ENGINE_SNMP_RECEIVE_BUFFER_BYTES": str(RECEIVE_BUFFER),
        }  # fmt: skip
        (folder / "snmptrapd.conf").write_text(TRAPD_CONF)
        trapd_env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(folder / "trapd")}
        processes = []
        try:
            provision(settings.kafka_bootstrap, declared_topics())
            processes.append(subprocess.Popen([sys.executable, "-m", "engine", "snmp"], env=env))
            processes.append(subprocess.Popen(trapd_command(folder, trapd_port), env=trapd_env))
            wait_until(lambda: port_open(metrics_port), 60, "the engine's SNMP receiver")
            engine = EngineReceiver(metrics_port)
            trapd = TrapdReceiver(folder / "traps.log")
            warm = step(engine, engine_port, 200, 1000)  # connect the producer first
            assert warm[0] == 200, f"warm-up lost traps: {warm}"
            wait_until(
                lambda: step(trapd, trapd_port, 10, 100)[0] == 10,
                30,
                "snmptrapd",
            )
            buffers = (receive_buffer(engine_port), receive_buffer(trapd_port))
            print("sustained (zero loss):", flush=True)
            trapd_rate = sustained(trapd, trapd_port, args.seconds, args.max_rate)
            engine_rate = sustained(engine, engine_port, args.seconds, args.max_rate)
            print("bursts (zero loss):", flush=True)
            trapd_burst = burst(trapd, trapd_port, args.max_burst)
            engine_burst = burst(engine, engine_port, args.max_burst)
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
            broker.stop(settings)
    print(f"receive buffers: engine {buffers[0]}, snmptrapd {buffers[1]}")
    print(f"snmptrapd  : sustained {trapd_rate:6d} traps/s, largest burst {trapd_burst}")
    print(f"engine     : sustained {engine_rate:6d} traps/s, largest burst {engine_burst}")
    print(f"ratio engine/snmptrapd: {engine_rate / max(1, trapd_rate):.3f} (target >= 0.5)")


if __name__ == "__main__":
    main()
