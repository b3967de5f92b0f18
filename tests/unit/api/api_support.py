"""A test API on loopback: the real aiohttp application with a fake publisher at the Kafka
seam, a frozen clock and a view fed by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from engine.api.app import build_app
from engine.api.chat import ChatHub
from engine.api.context import ApiContext
from engine.api.security import (
    ChatLimit,
    Integration,
    RateLimiter,
    Scope,
    TokenVerifier,
)
from engine.api.view import TicketView
from engine.clock import FrozenClock
from engine.contract import (
    Channel,
    Priority,
    TicketState,
    TicketStatus,
    TicketUpdated,
    TicketUpdatedData,
    Tier,
)
from engine.errors import PublishError
from engine.passwords import hash_password
from engine.workers.desk import Desk

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CONVERSATION = "c0nversation-0123456789"
TOKENS = {
    "widget": "widget.s3cret-widget",
    "acme-widget": "acme-widget.s3cret-acme",
    "agent": "agent.s3cret-agent",
    "dashboard": "dashboard.s3cret-dash",
    "lead": "lead.s3cret-lead",
}
SCOPES = {
    "widget": {Scope.CHAT_WRITE},
    "acme-widget": {Scope.CHAT_WRITE, Scope.PHONE_WRITE},
    "agent": {Scope.PHONE_WRITE, Scope.ACTIVITY_WRITE, Scope.TICKETS_READ},
    "dashboard": {Scope.TICKETS_READ},
    "lead": {Scope.PRESENCE_WRITE, Scope.TICKETS_READ},
}

CUSTOMERS = {"acme-widget": "acme"}  # the integrations that write for one customer


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
    desk: Desk | None = None,
    chat_per_conversation: int = 600,
    chat_per_address: int = 600,
) -> None:
    async def main() -> None:
        publisher = FakePublisher()
        view = TicketView(desk)
        integrations = {
            name: Integration(
                name, frozenset(SCOPES[name]), hash_password(token, 1000), CUSTOMERS.get(name)
            )
            for name, token in TOKENS.items()
        }
        clock = FrozenClock(T0)
        context = ApiContext(
            publisher=publisher, view=view, verifier=TokenVerifier(integrations),
            limiter=RateLimiter(per_minute, burst, clock), clock=clock, source="http://test",
            failed_logins=RateLimiter(3, 3, clock),
            chat_limit=ChatLimit(chat_per_conversation, chat_per_address, clock),
            allowed_origins=origins, max_body_bytes=4096, view_ready=lambda: api.ready,
        )  # fmt: skip
        async with TestClient(TestServer(build_app(context, ChatHub()))) as client:
            api = Api(client, publisher, view)
            await test(api)

    asyncio.run(main())


CHAT_PATH = f"/chat/conversations/{CONVERSATION}/messages"
CHAT = {"message_id": "m1", "sender": "ana@acme.example", "text": "no entran llamadas"}
