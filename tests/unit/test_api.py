"""The HTTP API's refusals and answers over real HTTP on loopback, with a fake publisher at
the Kafka seam (tests/integration/test_api_live.py runs it against the real broker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.api.app import build_app
from engine.api.chat import ChatHub
from engine.api.context import ApiContext
from engine.api.security import (
    ApiSecurityError,
    Integration,
    RateLimiter,
    Scope,
    TokenVerifier,
    load_integrations,
    new_token,
)
from engine.api.view import TicketView
from engine.clock import FrozenClock
from engine.errors import PublishError
from engine.identity import chat_ticket_id, phone_ticket_id
from engine.ingest.smtp_security import hash_password
from engine.models import (
    Channel,
    EventKind,
    Priority,
    TicketState,
    TicketStatus,
    TicketUpdated,
    TicketUpdatedData,
    Tier,
    parse_incoming,
)
from engine.topics import TICKET_EVENTS

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CONVERSATION = "c0nversation-0123456789"
TOKENS = {
    "widget": "widget.s3cret-widget",
    "agent": "agent.s3cret-agent",
    "dashboard": "dashboard.s3cret-dash",
}
SCOPES = {
    "widget": {Scope.CHAT_WRITE},
    "agent": {Scope.PHONE_WRITE, Scope.ACTIVITY_WRITE, Scope.TICKETS_READ},
    "dashboard": {Scope.TICKETS_READ},
}


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.down = False

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self.down:
            raise PublishError("Kafka did not acknowledge within 1s")
        self.sent.append((topic, key, value))


def ticket(ticket_id: str = "T-AAAAAAAAAAAAA", **changes: Any) -> TicketState:
    fields: dict[str, Any] = dict(
        ticket_id=ticket_id, status=TicketStatus.OPEN, channel=Channel.CHAT, subject="",
        requester="ana@acme.example", customer_id="acme", opened_at=T0, updated_at=T0,
        priority=Priority.P3, category="general", tier=Tier.L1, special_routes=(), tags=(),
        event_count=1, recent_event_ids=("e1",), ruleset_version="v",
    )  # fmt: skip
    fields.update(changes)
    return TicketState(**fields)


def updated(state: TicketState) -> TicketUpdated:
    return TicketUpdated(
        event_id=f"u-{state.ticket_id}-{state.updated_at.isoformat()}",
        occurred_at=state.updated_at,
        source="test",
        data=TicketUpdatedData(ticket=state),
    )


class Api:
    def __init__(self, client: TestClient[Any, Any], publisher: FakePublisher, view: TicketView):
        self.client = client
        self.publisher = publisher
        self.view = view
        self.ready = True

    async def call(
        self, method: str, path: str, who: str | None = None, **kwargs: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {TOKENS.get(who, who)}"
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            text = await response.text()
            body = json.loads(text) if text else {}
            return response.status, body, dict(response.headers)


def with_api(
    test: Callable[[Api], Awaitable[None]],
    per_minute: int = 600,
    burst: int = 60,
    origins: frozenset[str] = frozenset(),
) -> None:
    async def main() -> None:
        publisher = FakePublisher()
        view = TicketView()
        integrations = {
            name: Integration(name, frozenset(SCOPES[name]), hash_password(token, 1000))
            for name, token in TOKENS.items()
        }
        clock = FrozenClock(T0)
        context = ApiContext(
            publisher=publisher, view=view, verifier=TokenVerifier(integrations),
            limiter=RateLimiter(per_minute, burst, clock), clock=clock, source="http://test",
            failed_logins=RateLimiter(3, 3, clock),
            allowed_origins=origins, max_body_bytes=4096, view_ready=lambda: api.ready,
        )  # fmt: skip
        async with TestClient(TestServer(build_app(context, ChatHub()))) as client:
            api = Api(client, publisher, view)
            await test(api)

    asyncio.run(main())


CHAT_PATH = f"/chat/conversations/{CONVERSATION}/messages"
CHAT = {"message_id": "m1", "sender": "ana@acme.example", "text": "no entran llamadas"}


def test_a_chat_message_is_answered_202_with_its_ticket_once_published() -> None:
    async def check(api: Api) -> None:
        status, body, _ = await api.call("POST", CHAT_PATH, "widget", json=CHAT)

        assert status == 202, body
        assert body["ticket_id"] == chat_ticket_id(CONVERSATION)
        ((topic, key, value),) = api.publisher.sent
        event = parse_incoming(value)
        assert topic == TICKET_EVENTS and key == body["ticket_id"].encode()
        assert event.kind is EventKind.CHAT_MESSAGE_RECEIVED and event.event_id == body["event_id"]

    with_api(check)


def test_the_same_message_resent_keeps_its_event_id() -> None:
    async def check(api: Api) -> None:
        first = await api.call("POST", CHAT_PATH, "widget", json=CHAT)
        again = await api.call("POST", CHAT_PATH, "widget", json=CHAT)
        other = await api.call("POST", CHAT_PATH, "widget", json={**CHAT, "message_id": "m2"})

        assert first[1]["event_id"] == again[1]["event_id"] != other[1]["event_id"]
        assert first[1]["ticket_id"] == other[1]["ticket_id"]

    with_api(check)


def test_broker_unavailable_is_503_with_retry_after() -> None:
    async def check(api: Api) -> None:
        api.publisher.down = True
        status, body, headers = await api.call("POST", CHAT_PATH, "widget", json=CHAT)

        assert status == 503 and headers["Retry-After"] == "5"
        assert "retry" in body["error"]

    with_api(check)


def test_validation_errors_are_422_naming_the_field() -> None:
    async def check(api: Api) -> None:
        bad = {**CHAT, "text": "", "colour": "red"}
        status, body, _ = await api.call("POST", CHAT_PATH, "widget", json=bad)
        assert status == 422
        assert {p["path"] for p in body["problems"]} == {"text", "colour"}

        status, body, _ = await api.call(
            "POST", "/chat/conversations/short/messages", "widget", json=CHAT
        )
        assert status == 422 and body["problems"][0]["path"] == "conversation_id"

        status, body, _ = await api.call("POST", CHAT_PATH, "widget", data=b"{not json")
        assert status == 422 and body["problems"][0]["path"] == "body"
        assert api.publisher.sent == []

    with_api(check)


def test_tokens_and_scopes() -> None:
    async def check(api: Api) -> None:
        assert (await api.call("POST", CHAT_PATH, json=CHAT))[0] == 401
        status, _, headers = await api.call("POST", CHAT_PATH, "widget.wrong", json=CHAT)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert (await api.call("POST", CHAT_PATH, "nobody.x", json=CHAT))[0] == 401
        # A chat widget posts chat messages and nothing else.
        assert (await api.call("GET", "/tickets", "widget"))[0] == 403
        status, body, _ = await api.call("POST", "/phone/calls", "widget", json={})
        assert status == 403 and "phone:write" in body["error"]
        assert (await api.call("POST", CHAT_PATH, "dashboard", json=CHAT))[0] == 403
        assert (await api.call("GET", "/tickets", "dashboard"))[0] == 200
        assert (await api.call("GET", "/openapi.json"))[0] == 200

    with_api(check)


def test_a_token_over_its_rate_is_told_when_to_retry() -> None:
    async def check(api: Api) -> None:
        statuses = [(await api.call("GET", "/tickets", "dashboard"))[0] for _ in range(3)]
        status, _, headers = await api.call("GET", "/tickets", "dashboard")

        assert statuses == [200, 200, 200]
        assert status == 429 and int(headers["Retry-After"]) >= 1
        assert (await api.call("GET", "/tickets", "agent"))[0] == 200  # its own budget

    with_api(check, per_minute=6, burst=3)


def test_bodies_over_the_limit_are_413() -> None:
    async def check(api: Api) -> None:
        status, body, _ = await api.call(
            "POST", CHAT_PATH, "widget", json={**CHAT, "text": "x" * 5000}
        )
        assert status == 413 and "4096" in body["error"]
        assert api.publisher.sent == []

    with_api(check)


def test_browsers_from_other_origins_are_refused() -> None:
    async def check(api: Api) -> None:
        allowed = {"Origin": "https://widget.acme.example"}
        status, _, headers = await api.call("POST", CHAT_PATH, "widget", json=CHAT,
                                            headers=allowed)  # fmt: skip
        assert status == 202
        assert headers["Access-Control-Allow-Origin"] == "https://widget.acme.example"
        status, _, headers = await api.call("OPTIONS", CHAT_PATH, headers=allowed)
        assert status == 204 and "Authorization" in headers["Access-Control-Allow-Headers"]
        evil = {"Origin": "https://evil.example"}
        assert (await api.call("POST", CHAT_PATH, "widget", json=CHAT, headers=evil))[0] == 403

    with_api(check, origins=frozenset({"https://widget.acme.example"}))


def test_a_phone_call_carries_the_agents_priority() -> None:
    async def check(api: Api) -> None:
        call = {"call_id": "call-7", "caller": "+52 55 1234 5678", "customer_id": "acme",
                "summary": "Extensions cannot register", "agent": "luis",
                "suggested_priority": "P2"}  # fmt: skip
        status, body, _ = await api.call("POST", "/phone/calls", "agent", json=call)

        assert status == 202 and body["ticket_id"] == phone_ticket_id("call-7")
        event = parse_incoming(api.publisher.sent[0][2])
        assert event.kind is EventKind.PHONE_CALL_LOGGED
        assert event.data.suggested_priority is Priority.P2

    with_api(check)


def test_activity_is_checked_against_the_view() -> None:
    async def check(api: Api) -> None:
        path = "/tickets/T-AAAAAAAAAAAAA/activity"
        resolve = {"activity_id": "a1", "activity": "resolved", "actor": "luis"}
        assert (await api.call("POST", path, "agent", json=resolve))[0] == 404

        api.view.apply(updated(ticket(status=TicketStatus.RESOLVED)))
        status, body, _ = await api.call("POST", path, "agent", json=resolve)
        assert status == 409 and "already resolved" in body["error"]
        inform = {"activity_id": "a2", "activity": "customer_informed", "actor": "luis",
                  "informed_via": "chat", "message": "Estamos en ello"}  # fmt: skip
        status, body, _ = await api.call("POST", path, "agent", json=inform)
        assert status == 409 and "resolved" in body["error"]

        reopen = {"activity_id": "a3", "activity": "reopened", "actor": "luis"}
        status, body, _ = await api.call("POST", path, "agent", json=reopen)
        assert status == 202
        event = parse_incoming(api.publisher.sent[0][2])
        assert event.kind is EventKind.TICKET_ACTIVITY and event.data.ticket_id == "T-AAAAAAAAAAAAA"

    with_api(check)


def test_queries_filter_by_every_index() -> None:
    async def check(api: Api) -> None:
        api.view.apply(updated(ticket("T-AAAAAAAAAAAAA")))
        api.view.apply(
            updated(ticket("T-BBBBBBBBBBBBB", priority=Priority.P1, tier=Tier.L3,
                           updated_at=T0 + timedelta(minutes=1)))
        )  # fmt: skip
        api.view.apply(updated(ticket("T-CCCCCCCCCCCCC", customer_id="other",
                                      status=TicketStatus.RESOLVED)))  # fmt: skip

        async def ids(query: str) -> list[str]:
            status, body, _ = await api.call("GET", f"/tickets?{query}", "dashboard")
            assert status == 200, body
            return [found["ticket_id"] for found in body["tickets"]]

        assert await ids("") == ["T-BBBBBBBBBBBBB", "T-AAAAAAAAAAAAA", "T-CCCCCCCCCCCCC"]
        assert await ids("status=open&customer=acme") == ["T-BBBBBBBBBBBBB", "T-AAAAAAAAAAAAA"]
        assert await ids("tier=L3&priority=P1") == ["T-BBBBBBBBBBBBB"]
        assert await ids("customer=other") == ["T-CCCCCCCCCCCCC"]
        assert await ids("sla=ok&limit=1") == ["T-BBBBBBBBBBBBB"]
        assert await ids("priority=P2") == []
        status, body, _ = await api.call("GET", "/tickets?tier=L9", "dashboard")
        assert status == 422 and body["problems"][0]["path"] == "tier"

        status, body, _ = await api.call("GET", "/tickets/T-BBBBBBBBBBBBB", "dashboard")
        assert status == 200 and body["ticket"]["priority"] == "P1"
        assert body["sla"]["state"] == "ok"
        assert (await api.call("GET", "/tickets/T-ZZZZZZZZZZZZZ", "dashboard"))[0] == 404

    with_api(check)


def test_a_moved_ticket_leaves_its_old_index_entries() -> None:
    view = TicketView()
    view.apply(updated(ticket()))
    view.apply(updated(ticket(status=TicketStatus.RESOLVED, updated_at=T0 + timedelta(1))))

    assert view.find({"status": "open"}, 10) == ([], 0)
    assert view.find({"status": "resolved"}, 10)[1] == 1


def test_the_tokens_file_holds_scopes_and_hashes_only(tmp_path: Path) -> None:
    token, line = new_token("chat-widget", [Scope.CHAT_WRITE, Scope.TICKETS_READ])
    path = tmp_path / "tokens"
    path.write_text(f"# integrations\n{line}\n")

    loaded = load_integrations(path)

    assert token not in path.read_text()
    assert loaded["chat-widget"].scopes == {Scope.CHAT_WRITE, Scope.TICKETS_READ}
    verifier = TokenVerifier(loaded)
    assert asyncio.run(verifier.verify(token)) == loaded["chat-widget"]
    assert asyncio.run(verifier.verify(token + "x")) is None
    path.write_text("chat-widget:chat:write,chat:nothing:pbkdf2_sha256$1$00$00\n")
    with pytest.raises(ApiSecurityError, match=r"tokens:1: .*scopes are chat:write"):
        load_integrations(path)


def test_unknown_routes_and_methods_are_json_refusals() -> None:
    async def check(api: Api) -> None:
        status, body, headers = await api.call("TRACE", CHAT_PATH, "widget", json=CHAT)
        assert status == 405 and headers["Allow"] == "POST" and body["error"]
        status, body, _ = await api.call("GET", "/nowhere", "widget")
        assert status == 404 and body["error"]

    with_api(check)


def test_an_address_that_keeps_presenting_bad_tokens_is_slowed_down() -> None:
    async def check(api: Api) -> None:
        statuses = [(await api.call("GET", "/tickets", f"agent.guess{n}"))[0] for n in range(4)]
        status, _, headers = await api.call("GET", "/tickets", "agent")  # never verified yet

        assert statuses == [401, 401, 401, 429]
        assert status == 429 and int(headers["Retry-After"]) >= 1

    with_api(check)


def test_the_websocket_takes_messages_and_answers_each() -> None:
    async def check(api: Api) -> None:
        ticket_id = chat_ticket_id(CONVERSATION)
        api.view.apply(updated(ticket(ticket_id)))
        path = f"/chat/conversations/{CONVERSATION}/ws?access_token={TOKENS['widget']}"
        async with api.client.ws_connect(path) as ws:
            assert await ws.receive_json() == {
                "type": "ticket", "ticket_id": ticket_id, "status": "open",
            }  # fmt: skip
            await ws.send_json({"message_id": "m9", "sender": "ana@acme.example", "text": ""})
            refused = await ws.receive_json()
            await ws.send_json(CHAT)
            accepted = await ws.receive_json()
            api.publisher.down = True
            await ws.send_json({**CHAT, "message_id": "m2"})
            retry = await ws.receive_json()

        assert refused["type"] == "refused" and refused["status"] == 422
        assert refused["message_id"] == "m9" and refused["problems"][0]["path"] == "text"
        assert accepted == {"type": "accepted", "message_id": "m1", "ticket_id": ticket_id,
                            "event_id": accepted["event_id"]}  # fmt: skip
        assert retry["status"] == 503 and retry["retry_after"] == 5
        assert len(api.publisher.sent) == 1

    with_api(check)


def test_a_websocket_without_a_token_is_refused_before_the_upgrade() -> None:
    async def check(api: Api) -> None:
        status, body, _ = await api.call("GET", f"/chat/conversations/{CONVERSATION}/ws")
        assert status == 401 and body["error"]
        url = f"/chat/conversations/{CONVERSATION}/ws?access_token={TOKENS['dashboard']}"
        async with api.client.get(url, headers={"Upgrade": "websocket"}) as answer:
            assert answer.status == 403

    with_api(check)


def test_reads_wait_for_the_view_to_load() -> None:
    async def check(api: Api) -> None:
        api.ready = False
        for method, path in (("GET", "/tickets"), ("GET", "/tickets/T-AAAAAAAAAAAAA")):
            status, _, headers = await api.call(method, path, "agent")
            assert status == 503 and headers["Retry-After"] == "5"
        api.ready = True
        assert (await api.call("GET", "/tickets/T-AAAAAAAAAAAAA", "agent"))[0] == 404

    with_api(check)


def test_engine_api_token_prints_the_token_once_and_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import main

    assert main(["api-token", "agent-tool", "activity:write", "tickets:read"]) == 0
    printed = capsys.readouterr()
    token = printed.err.rsplit(" ", 1)[-1].strip()
    path = tmp_path / "tokens"
    path.write_text(printed.out)

    assert token.startswith("agent-tool.") and token not in printed.out
    verifier = TokenVerifier(load_integrations(path))
    integration = asyncio.run(verifier.verify(token))
    assert integration is not None
    assert integration.scopes == {Scope.ACTIVITY_WRITE, Scope.TICKETS_READ}
