"""Chat messages accepted per second end to end: ``engine api`` (every 202 after Kafka's ack,
with token check, rate limit and validation) against a bare aiohttp handler that answers
202 without Kafka, in one run, same client, same messages.

    python -m bench.http_chat [--messages 3000] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from engine.contract.topics import declared_topics
from engine.kafka import broker
from engine.kafka.admin import provision
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
TOKEN = "bench.bench-token-secret"


async def measure(port: int, messages: int, clients: int) -> tuple[float, float]:
    """Messages per second, and p99 seconds to the 202."""
    base = f"http://127.0.0.1:{port}/chat/conversations"
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
        await client(session, 0)  # warm up: connections, the producer, the token cache
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(client(session, number) for number in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, statistics.quantiles(latencies, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        settings = Settings(
            state_dir=Path(tmp), broker_port=free_port(), controller_port=free_port()
        )
        tokens = Path(tmp) / "tokens"
        tokens.write_text(f"bench:chat:write:{hash_password(TOKEN)}\n")
        broker.start(settings)
        bare_port, api_port = free_port(), free_port()
        env = {
            **os.environ, "ENGINE_BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
            "ENGINE_STATE_DIR": tmp, "ENGINE_API_PORT": str(api_port),
            "ENGINE_API_METRICS_PORT": str(free_port()), "ENGINE_API_TOKENS_FILE": str(tokens),
            "ENGINE_API_RATE_LIMIT_PER_MINUTE": str(100 * args.messages),
            "ENGINE_API_RATE_LIMIT_BURST": str(10 * args.messages),
        }  # fmt: skip
        processes = []
        try:
            provision(settings.kafka_bootstrap, declared_topics())
            processes.append(subprocess.Popen([sys.executable, "-c", BARE, str(bare_port)]))
            processes.append(subprocess.Popen([sys.executable, "-m", "engine", "api"], env=env))
            wait_until(lambda: port_open(bare_port) and port_open(api_port), 60, "both servers")
            bare_rate, bare_p99 = asyncio.run(measure(bare_port, args.messages, args.clients))
            api_rate, api_p99 = asyncio.run(measure(api_port, args.messages, args.clients))
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
            broker.stop(settings)
    print(f"chat messages: {args.messages}, {args.clients} concurrent clients")
    print(f"bare aiohttp 202   : {bare_rate:7.0f} messages/s, p99 to 202 {bare_p99 * 1000:6.1f} ms")
    print(f"engine api (Kafka) : {api_rate:7.0f} messages/s, p99 to 202 {api_p99 * 1000:6.1f} ms")
    print(f"ratio engine/bare: {api_rate / bare_rate:.3f}")


if __name__ == "__main__":
    main()
