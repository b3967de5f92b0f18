"""Accepted mails per second and p99 time to ``250``: the engine's SMTP ingestor (every
250 after Kafka's ack of the spooled mail), against a bare aiosmtpd sink that stores
nothing, in one run, same client, same messages. Target (issue 4): at least half the bare
sink's rate.

The mail parser runs beside the ingestor, as in production, on the same cores; the run
also reports when it had turned the last mail into its ``email.received`` event, so the
rate a ticket-opening pipeline sustains is printed too, not only the rate of 250s.

    python -m bench.smtp_ingest [--mails 2000] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from engine.contract.topics import declared_topics
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.settings import Settings
from tests.integration.harness import free_port, port_open, wait_until

WARM_UP_MAILS = 1000
SINK = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 OK"
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: SMTP(Sink(), loop=loop), "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()
asyncio.run(main())
"""


def mails(count: int) -> list[bytes]:
    made = []
    for n in range(count):
        message = EmailMessage()
        message["From"] = f"cliente{n % 50}@acme.example"
        message["To"] = "soporte@support.example.com"
        message["Subject"] = "Urgente: central caída" if n % 2 else "How do I add an extension?"
        message["Message-ID"] = f"<bench-{os.getpid()}-{n}@acme.example>"
        message.set_content("La central está caída, no entran ni salen llamadas.\n" * 20)
        made.append(message.as_bytes(policy=SMTP_POLICY))
    return made


def run_client(port: int, batch: list[bytes]) -> list[float]:
    latencies = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.ehlo()
        for raw in batch:
            smtp.mail("cliente@acme.example")
            smtp.rcpt("soporte@support.example.com")
            started = time.perf_counter()
            code, reply = smtp.data(raw)
            latencies.append(time.perf_counter() - started)
            if code != 250:
                raise RuntimeError(f"{code} {reply!r}")
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    port: int, messages: list[bytes], clients: int, server_pids: list[int]
) -> tuple[float, float, float]:
    """(mails/s, p99 seconds to 250, server CPU ms per mail)."""
    batches = [messages[i::clients] for i in range(clients)]
    cpu_before = sum(cpu_seconds(pid) for pid in server_pids)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [x for part in pool.map(lambda b: run_client(port, b), batches) for x in part]
    elapsed = time.perf_counter() - started
    cpu = sum(cpu_seconds(pid) for pid in server_pids) - cpu_before
    p99 = statistics.quantiles(latencies, n=100)[98]
    return len(messages) / elapsed, p99, cpu / len(messages) * 1000


def mails_parsed(metrics_port: int) -> float:
    """What the mail parser has read so far, by its own /metrics."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ticketing_mails_parsed_total"
    )


@dataclass(frozen=True)
class Phase:
    name: str
    rate: float
    p99: float
    cpu_ms: float


def median_phase(phases: list[Phase]) -> Phase:
    """The round with the median rate."""
    return sorted(phases, key=lambda phase: phase.rate)[len(phases) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="sink/engine rounds (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-smtp-") as tmp:
        settings = Settings(
            state_dir=Path(tmp), broker_port=free_port(), controller_port=free_port()
        )
        broker.start(settings)
        sink_port, smtp_port, parser_metrics = free_port(), free_port(), free_port()
        env = {
            **os.environ, "ENGINE_BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
            "ENGINE_STATE_DIR": tmp, "ENGINE_SMTP_PORT": str(smtp_port),
            "ENGINE_SMTP_METRICS_PORT": str(free_port()),
            "ENGINE_MAIL_PARSER_METRICS_PORT": str(parser_metrics),
            "ENGINE_SMTP_SENDER_LIMIT_PER_MINUTE": str(10 * args.mails),
        }  # fmt: skip
        processes: list[subprocess.Popen[bytes]] = []
        try:
            provision(settings.kafka_bootstrap, declared_topics())
            processes.append(subprocess.Popen([sys.executable, "-c", SINK, str(sink_port)]))
            for component in ("smtp", "mail-parser"):
                processes.append(
                    subprocess.Popen([sys.executable, "-m", "engine", component], env=env)
                )
            sink, engine, mail_parser = processes
            wait_until(lambda: port_open(sink_port) and port_open(smtp_port), 60, "both servers")
            # Warm both paths up (the broker's JIT too) before anything is timed.
            expected = WARM_UP_MAILS
            run_client(sink_port, mails(WARM_UP_MAILS))
            run_client(smtp_port, mails(WARM_UP_MAILS))
            wait_until(lambda: mails_parsed(parser_metrics) >= expected, 120, "the parser")
            messages = mails(args.mails)

            def phase(name: str, port: int, pid: int) -> Phase:
                return Phase(name, *measure(port, messages, args.clients, [pid]))

            def parsed_all() -> bool:
                return mails_parsed(parser_metrics) >= expected

            # The ingestor alone (the parser paused), against the sink, rounds alternating.
            mail_parser.send_signal(signal.SIGSTOP)
            try:
                rounds = [
                    (
                        phase("bare aiosmtpd sink", sink_port, sink.pid),
                        phase("engine ingestor, parser paused", smtp_port, engine.pid),
                    )
                    for _ in range(args.rounds)
                ]
            finally:
                mail_parser.send_signal(signal.SIGCONT)
            sink_phase = median_phase([sink for sink, _ in rounds])
            alone = median_phase([engine for _, engine in rounds])
            # Then the parser drains what the rounds spooled.
            expected += args.rounds * args.mails
            started = time.perf_counter()
            wait_until(parsed_all, 600, "the parser")
            drain_rate = args.rounds * args.mails / (time.perf_counter() - started)
            # Both at once on the same cores, as `engine up` runs them.
            started = time.perf_counter()
            together = phase("engine ingestor, parser running", smtp_port, engine.pid)
            expected += args.mails
            wait_until(parsed_all, 600, "the parser")
            pipeline_rate = args.mails / (time.perf_counter() - started)
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
            broker.stop(settings)
    print(
        f"mails: {args.mails} of {len(messages[0])} bytes, {args.clients} concurrent clients; "
        f"median of {args.rounds} alternating rounds, after {WARM_UP_MAILS} mails to each"
    )
    for measured in (sink_phase, alone, together):
        print(
            f"{measured.name:32}: {measured.rate:6.0f} mails/s, p99 to 250 "
            f"{measured.p99 * 1000:6.1f} ms, server CPU {measured.cpu_ms:.2f} ms/mail, "
            f"ratio to the sink {measured.rate / sink_phase.rate:.3f}"
        )
    print(f"ratio engine/sink: {alone.rate / sink_phase.rate:.3f} (target >= 0.5)")
    print(f"mail parser draining the spool alone: {drain_rate:6.0f} mails/s")
    print(
        f"parser running: every mail an email.received event at {pipeline_rate:.0f} mails/s "
        f"from the first 250 (ratio to the sink {pipeline_rate / sink_phase.rate:.3f})"
    )


if __name__ == "__main__":
    main()
