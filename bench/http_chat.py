"""Chat messages accepted per second end to end: ``engine api`` (every 202 after Kafka's ack,
with token check, rate limit and validation) against a bare aiohttp handler that answers
202 without Kafka, in one run, same client, same messages.

    python -m bench.http_chat [--messages 3000] [--clients 16] [--rounds 3] [--warmup N]
                              [--profile]

A third line, Kafka alone, is what the engine's side of Kafka costs without HTTP: as many
concurrent publishers as clients, in this process, each putting the engine's chat event on
``tickets.events.v1`` with the engine's producer and waiting for its ack, then the next.
Were the machine's CPU the only limit and the engine's HTTP side no dearer than the bare
handler, the two costs would add up and the engine would reach at most
kafka / (bare + kafka) of the bare handler: the run prints that ceiling too.

Both servers (and Kafka alone) first get ``--warmup`` messages (default: as many as a
round) from all the clients, untimed: connections, the producer, the token cache, and the
broker's JIT, which compiles its produce path during the first few thousand requests (a
cold broker spends about twice the CPU per message). Then the rounds alternate (bare
handler, engine, Kafka alone), so that the machine's other load, which moves within
seconds on a shared machine, weighs on all alike; each round prints the rates, p99 to the
202 (to the ack for Kafka alone) and the CPU per message of the server, the client (this
process) and the broker, and the run ends with the median ratio.

``--profile`` runs ``engine api`` under cProfile during its timed rounds only and prints
its top 25 functions by own time, and the time its socket writes took, answers to the
clients and requests to the broker apart (wall clock: a ``send`` that wakes another
process includes the time the scheduler gave that process meanwhile). The profiler slows
the API down: a profiled run's figures are not comparable with those of a run without it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from engine.contract import ChatMessageReceived, ChatMessageReceivedData, to_json
from engine.contract.identity import chat_ticket_id, event_id
from engine.contract.topics import TICKET_EVENTS, declared_topics
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.kafka.publisher import KafkaPublisher
from engine.passwords import hash_password
from engine.settings import Settings
from tests.integration.harness import free_port, port_open, wait_until

BARE = """
import sys
from aiohttp import web
async def accept(request):
    await request.read()
    return web.json_response({"ticket_id": "T-", "event_id": "e"}, status=202)
app = web.Application()
app.router.add_post("/chat/conversations/{conversation_id}/messages", accept)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
# ``engine api`` under cProfile: on while SIGUSR1 is the last signal, off after SIGUSR2;
# written to argv[1] when the API stops.
PROFILED = """
import cProfile, runpy, signal, sys
profiler, out = cProfile.Profile(), sys.argv.pop(1)
signal.signal(signal.SIGUSR1, lambda signum, frame: profiler.enable())
signal.signal(signal.SIGUSR2, lambda signum, frame: profiler.disable())
sys.argv = ["engine", "api"]
try:
    runpy.run_module("engine", run_name="__main__")
finally:
    profiler.disable()
    profiler.dump_stats(out)
"""
TOKEN = "bench.bench-token-secret"


@dataclass(frozen=True)
class Figures:
    rate: float  # messages per second
    p99: float  # seconds to the 202
    server_cpu: float  # CPU seconds per message: the server process,
    client_cpu: float  # this process (the clients),
    broker_cpu: float  # and the Kafka broker

    def line(self, name: str, answer: str = "202") -> str:
        return (
            f"{name}: {self.rate:6.0f} messages/s, p99 to {answer} {self.p99 * 1000:6.1f} ms; "
            f"CPU µs per message: server {self.server_cpu * 1e6:4.0f}, "
            f"client {self.client_cpu * 1e6:4.0f}, broker {self.broker_cpu * 1e6:4.0f}"
        )


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    port: int
    pid: int


async def measure(
    server: Server,
    broker_pid: int,
    messages: int,
    clients: int,
    timed: Callable[[bool], None] = lambda on: None,
) -> Figures:
    """``messages`` posted to ``server`` by ``clients`` concurrent clients, each with its
    own conversation and connection; ``timed`` is told when the clock starts and stops."""
    base = f"http://127.0.0.1:{server.port}/chat/conversations"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    run = uuid.uuid4().hex
    latencies: list[float] = []

    async def client(session: aiohttp.ClientSession, number: int) -> None:
        conversation = f"{run}-{number:04d}"
        for n in range(number, messages, clients):
            body = {"message_id": f"m{n}", "sender": f"cliente{n % 50}@acme.example",
                    "text": "La central está caída, no entran ni salen llamadas."}  # fmt: skip
            started = time.perf_counter()
            async with session.post(f"{base}/{conversation}/messages", json=body,
                                    headers=headers) as answer:  # fmt: skip
                await answer.read()
                if answer.status != 202:
                    raise RuntimeError(f"{answer.status} {await answer.text()}")
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await client(session, 0)  # opens a connection
        latencies.clear()
        timed(True)
        cpu_started = cpu_seconds(server.pid), time.process_time(), cpu_seconds(broker_pid)
        started = time.perf_counter()
        await asyncio.gather(*(client(session, number) for number in range(clients)))
        elapsed = time.perf_counter() - started
        cpu_ended = cpu_seconds(server.pid), time.process_time(), cpu_seconds(broker_pid)
        timed(False)
    count = len(latencies)
    server_cpu, client_cpu, broker_cpu = (
        (end - start) / count for start, end in zip(cpu_started, cpu_ended, strict=True)
    )
    p99 = statistics.quantiles(latencies, n=100)[98]
    return Figures(count / elapsed, p99, server_cpu, client_cpu, broker_cpu)


async def measure_kafka(bootstrap: str, broker_pid: int, messages: int, clients: int) -> Figures:
    """``messages`` chat events published by ``clients`` concurrent publishers, each
    awaiting Kafka's ack before its next (p99: to the ack; no server, so no server CPU)."""
    publisher = KafkaPublisher(bootstrap, 30.0, "bench")
    run = uuid.uuid4().hex
    latencies: list[float] = []

    async def client(number: int) -> None:
        conversation = f"{run}-{number:04d}"
        ticket_id = chat_ticket_id(conversation)
        for n in range(number, messages, clients):
            record = ChatMessageReceived(
                event_id=event_id("chat", f"{conversation}:m{n}"),
                occurred_at=datetime.now(UTC),
                source="http://127.0.0.1",
                data=ChatMessageReceivedData(
                    ticket_id=ticket_id, conversation_id=conversation, message_id=f"m{n}",
                    sender=f"cliente{n % 50}@acme.example", customer_id=None,
                    text="La central está caída, no entran ni salen llamadas.",
                ),
            )  # fmt: skip
            started = time.perf_counter()
            await publisher.publish(TICKET_EVENTS, ticket_id.encode(), to_json(record))
            latencies.append(time.perf_counter() - started)

    try:
        await client(0)  # connects
        latencies.clear()
        cpu_started = time.process_time(), cpu_seconds(broker_pid)
        started = time.perf_counter()
        await asyncio.gather(*(client(number) for number in range(clients)))
        elapsed = time.perf_counter() - started
        cpu_ended = time.process_time(), cpu_seconds(broker_pid)
    finally:
        await publisher.stop()
    count = len(latencies)
    client_cpu, broker_cpu = (
        (end - start) / count for start, end in zip(cpu_started, cpu_ended, strict=True)
    )
    p99 = statistics.quantiles(latencies, n=100)[98]
    return Figures(count / elapsed, p99, 0.0, client_cpu, broker_cpu)


def print_profile(profile: Path) -> None:
    stats = pstats.Stats(str(profile))
    print(f"engine api under cProfile, its timed rounds: {stats.total_tt:.2f} s")  # type: ignore[attr-defined]
    stats.sort_stats(pstats.SortKey.TIME).print_stats(25)
    # Who sends: aiohttp's answers to the clients, or aiokafka's requests to the broker
    # (asyncio streams); the time includes whatever the scheduler ran meanwhile.
    writers = {
        "answers to the clients": ("aiohttp/http_writer.py", ("_write", "_writelines")),
        "requests to the broker": ("asyncio/streams.py", ("write",)),
    }
    table = stats.stats  # type: ignore[attr-defined]
    for name, (module, functions) in writers.items():
        found = [(table[key][1], table[key][3]) for key in table
                 if key[0].endswith(module) and key[2] in functions]  # fmt: skip
        calls, seconds = sum(n for n, _ in found), sum(t for _, t in found)
        print(f"socket writes, {name}: {calls} calls, {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="per round and server")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, help="untimed messages first (default: --messages)")
    parser.add_argument("--profile", action="store_true", help="cProfile the API process")
    args = parser.parse_args()
    warmup = args.messages if args.warmup is None else args.warmup
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        settings = Settings(
            state_dir=Path(tmp), broker_port=free_port(), controller_port=free_port()
        )
        tokens = Path(tmp) / "tokens"
        tokens.write_text(f"bench:chat:write:{hash_password(TOKEN)}\n")
        broker.start(settings)
        bare_port, api_port = free_port(), free_port()
        total = warmup + args.rounds * args.messages
        env = {
            **os.environ, "ENGINE_BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
            "ENGINE_STATE_DIR": tmp, "ENGINE_API_PORT": str(api_port),
            "ENGINE_API_METRICS_PORT": str(free_port()), "ENGINE_API_TOKENS_FILE": str(tokens),
            "ENGINE_API_RATE_LIMIT_PER_MINUTE": str(100 * total),
            "ENGINE_API_RATE_LIMIT_BURST": str(10 * total),
            # one conversation per client, all from this machine: the conversation and
            # address limits would measure themselves, not the API
            "ENGINE_API_CHAT_LIMIT_PER_CONVERSATION": str(100 * total),
            "ENGINE_API_CHAT_LIMIT_PER_ADDRESS": str(100 * total),
        }  # fmt: skip
        profile = Path(tmp) / "api.prof"
        api_command = [sys.executable, "-m", "engine", "api"]
        if args.profile:
            api_command = [sys.executable, "-c", PROFILED, str(profile)]
        processes: list[subprocess.Popen[bytes]] = []

        def profiled(on: bool) -> None:
            if args.profile:
                processes[1].send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

        rounds: list[tuple[Figures, Figures, Figures]] = []
        try:
            provision(settings.kafka_bootstrap, declared_topics())
            processes.append(subprocess.Popen([sys.executable, "-c", BARE, str(bare_port)]))
            processes.append(subprocess.Popen(api_command, env=env))
            wait_until(lambda: port_open(bare_port) and port_open(api_port), 60, "both servers")
            broker_pid = broker.running_pid(broker.BrokerPaths.of(settings))
            if broker_pid is None:
                raise RuntimeError("the broker stopped")
            bare = Server(bare_port, processes[0].pid)
            api = Server(api_port, processes[1].pid)
            bootstrap = settings.kafka_bootstrap
            if warmup:
                asyncio.run(measure(bare, broker_pid, warmup, args.clients))
                asyncio.run(measure(api, broker_pid, warmup, args.clients))
                asyncio.run(measure_kafka(bootstrap, broker_pid, warmup, args.clients))
            print(f"chat messages: {args.messages} a round, {args.clients} concurrent clients, "
                  f"after {warmup} untimed; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
            for number in range(1, args.rounds + 1):
                figures = (
                    asyncio.run(measure(bare, broker_pid, args.messages, args.clients)),
                    asyncio.run(measure(api, broker_pid, args.messages, args.clients, profiled)),
                    asyncio.run(measure_kafka(bootstrap, broker_pid, args.messages, args.clients)),
                )
                rounds.append(figures)
                bare_rate, api_rate, kafka_rate = (figure.rate for figure in figures)
                print(f"round {number}, load average {os.getloadavg()[0]:.2f}")
                print(figures[0].line("  bare aiohttp 202  "))
                print(figures[1].line("  engine api (Kafka)"))
                print(figures[2].line("  Kafka alone       ", "ack"))
                print(f"  ratio engine/bare: {api_rate / bare_rate:.3f}; ceiling "
                      f"kafka/(bare+kafka): {kafka_rate / (bare_rate + kafka_rate):.3f}",
                      flush=True)  # fmt: skip
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
            broker.stop(settings)
        if args.profile:
            print_profile(profile)
    ratios = [engine.rate / handler.rate for handler, engine, _ in rounds]
    ceilings = [kafka.rate / (handler.rate + kafka.rate) for handler, _, kafka in rounds]
    print(f"ratio engine/bare: median {statistics.median(ratios):.3f} "
          f"(rounds: {', '.join(f'{ratio:.3f}' for ratio in ratios)}); ceiling: median "
          f"{statistics.median(ceilings):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
