"""The HTTP API of a running ``engine up`` against the real broker: real HTTP on loopback and
a real WebSocket client (aiohttp's)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from engine.passwords import hash_password
from tests.integration.harness import EngineProcess, engine_env

T = TypeVar("T")
# The widget writes for one customer, named per run so its ticket list is this test's own.
WIDGET_CUSTOMER = f"acme-{uuid.uuid4().hex[:8]}"
TOKENS = {
    "widget": ("chat:write", "widget.live-widget-secret", WIDGET_CUSTOMER),
    "agent": ("phone:write,activity:write,tickets:read", "agent.live-agent-secret", None),
}


def write_tokens(path: Path) -> Path:
    lines = [
        f"{name}:{scopes}:{hash_password(token, 1000)}"
        + (f":customer={customer}" if customer else "")
        for name, (scopes, token, customer) in TOKENS.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who][1]}"}


@pytest.fixture(scope="module")
def api_engine(
    topics: str, topic_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineProcess]:
    state = tmp_path_factory.mktemp("api-engine")
    tokens = write_tokens(state / "tokens")
    env = engine_env(state, topics, topic_prefix, ENGINE_API_TOKENS_FILE=str(tokens))
    running = EngineProcess(env, state / "engine.log")
    try:
        running.start("--bootstrap-servers", topics)
        yield running
    finally:
        running.stop()


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, within: float = 90) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out after {within:g}s waiting for {what}")


async def receive(ws: aiohttp.ClientWebSocketResponse, kind: str, within: float = 90) -> Any:
    """The next message of type ``kind`` (others are skipped)."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        async with asyncio.timeout(left):
            message = await ws.receive_json()
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message on the WebSocket within {within:g}s")


class Client:
    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{port}"

    async def post(self, path: str, who: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with self.session.post(self.base + path, json=body, headers=auth(who)) as answer:
            return answer.status, await answer.json()

    async def get(self, path: str, who: str = "agent") -> tuple[int, Any]:
        async with self.session.get(self.base + path, headers=auth(who)) as answer:
            return answer.status, await answer.json()

    async def ticket_where(self, ticket_id: str, holds: Callable[[Any], bool]) -> Any:
        async def probe() -> Any:
            status, body = await self.get(f"/tickets/{ticket_id}")
            return body if status == 200 and holds(body) else None

        return await eventually(probe, f"ticket {ticket_id} in the state asked for")


def run(test: Callable[[Client], Awaitable[None]], port: int) -> None:
    async def main() -> None:
        async with asyncio.timeout(600), aiohttp.ClientSession() as session:
            await test(Client(session, port))

    asyncio.run(main())


def test_a_chat_conversation_becomes_one_ticket_moved_by_activity(
    api_engine: EngineProcess,
) -> None:
    conversation = uuid.uuid4().hex
    customer = WIDGET_CUSTOMER
    base = f"/chat/conversations/{conversation}"

    async def check(client: Client) -> None:
        url = f"ws://127.0.0.1:{api_engine.api_port}{base}/ws"
        async with client.session.ws_connect(url, headers=auth("widget")) as ws:
            claiming = {
                "message_id": "m0",
                "sender": "ana@acme.example",
                "customer_id": "globex",
                "text": "Hola, la central está caída, no entran ni salen llamadas",
            }
            await ws.send_str(json.dumps(claiming))
            refused = await receive(ws, "refused")
            assert refused["status"] == 422
            assert [problem["path"] for problem in refused["problems"]] == ["customer_id"]
            first = {key: value for key, value in claiming.items() if key != "customer_id"}
            first["message_id"] = "m1"  # the customer is the widget's, told by its token
            await ws.send_str(json.dumps(first))
            accepted = await receive(ws, "accepted")
            ticket_id = accepted["ticket_id"]
            assert (await receive(ws, "ticket"))["ticket_id"] == ticket_id

            second = {**first, "message_id": "m2", "text": "¿Alguna novedad?"}
            status, body = await client.post(f"{base}/messages", "widget", second)
            assert status == 202 and body["ticket_id"] == ticket_id
            state = await client.ticket_where(ticket_id, lambda t: t["ticket"]["event_count"] == 2)
            assert state["ticket"]["channel"] == "chat"
            assert state["ticket"]["customer_id"] == customer
            assert state["ticket"]["priority"] == "P1"
            assert state["decisions"] and state["decisions"][0]["classification"]["explanation"]
            status, found = await client.get(f"/tickets?customer={customer}")
            assert status == 200 and ticket_id in [t["ticket_id"] for t in found["tickets"]]

            activity = f"/tickets/{ticket_id}/activity"
            inform = {
                "activity_id": "a1",
                "activity": "customer_informed",
                "actor": "luis",
                "informed_via": "chat",
                "message": "Estamos revisando la central",
            }
            assert (await client.post(activity, "agent", inform))[0] == 202
            reply = await receive(ws, "reply")
            assert reply["text"] == "Estamos revisando la central" and reply["actor"] == "luis"

        resolve = {"activity_id": "a2", "activity": "resolved", "actor": "luis"}
        assert (await client.post(activity, "agent", resolve))[0] == 202
        state = await client.ticket_where(ticket_id, lambda t: t["ticket"]["status"] == "resolved")
        assert state["ticket"]["informed_count"] == 1
        status, found = await client.get(f"/tickets?customer={customer}&status=resolved")
        assert [t["ticket_id"] for t in found["tickets"]] == [ticket_id]
        again = {**resolve, "activity_id": "a3"}
        status, body = await client.post(activity, "agent", again)
        assert status == 409 and "already resolved" in body["error"]

    run(check, api_engine.api_port)


def test_a_development_request_in_chat_is_escalated_to_development(
    api_engine: EngineProcess,
) -> None:
    conversation = uuid.uuid4().hex

    async def check(client: Client) -> None:
        url = f"ws://127.0.0.1:{api_engine.api_port}/chat/conversations/{conversation}/ws"
        async with client.session.ws_connect(url, headers=auth("widget")) as ws:
            ask = {
                "message_id": "m1",
                "sender": "ana@acme.example",
                "text": "Quisiera una nueva funcionalidad: integración con nuestro CRM",
            }
            await ws.send_str(json.dumps(ask))
            await receive(ws, "accepted")
            escalated = await receive(ws, "escalated")
            assert escalated["route"] == "development"
            assert "equipo de desarrollo" in escalated["text"]

    run(check, api_engine.api_port)


def test_a_logged_phone_call_keeps_the_agents_priority_with_an_explanation(
    api_engine: EngineProcess,
) -> None:
    async def check(client: Client) -> None:
        call = {
            "call_id": f"call-{uuid.uuid4().hex}",
            "caller": "+52 55 1234 5678",
            "customer_id": "acme",
            "subject": "Consulta",
            "summary": "How do I add an extension?",
            "agent": "luis",
            "suggested_priority": "P2",
        }
        status, body = await client.post("/phone/calls", "agent", call)
        assert status == 202
        state = await client.ticket_where(body["ticket_id"], lambda t: bool(t["decisions"]))
        assert state["ticket"]["channel"] == "phone"
        assert state["ticket"]["priority"] == "P2"
        explanation = state["decisions"][-1]["classification"]["explanation"]
        assert "suggested priority P2 kept: the rules alone say P4" in " ".join(explanation)

    run(check, api_engine.api_port)
