"""A chat message's customer comes from its token's integration, never from the message;
a phone call's from the agent, unless the integration writes for one customer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.api.security import (
    CustomerClaimError,
    Integration,
    Scope,
    TokenVerifier,
    load_integrations,
    message_customer,
    new_token,
)
from engine.contract import ChatMessageReceived, PhoneCallLogged, parse_incoming
from tests.unit.api.api_support import CHAT, CHAT_PATH, CONVERSATION, TOKENS, Api, with_api


def customer_sent(value: bytes) -> str | None:
    event = parse_incoming(value)
    assert isinstance(event, ChatMessageReceived | PhoneCallLogged)
    return event.data.customer_id


BOUND = Integration("acme-widget", frozenset({Scope.CHAT_WRITE}), "h", customer_id="acme")
UNBOUND = Integration("widget", frozenset({Scope.CHAT_WRITE}), "h")


@pytest.mark.parametrize(
    ("integration", "claimed", "desk_may_name", "expected"),
    [
        (BOUND, None, False, "acme"),  # the widget's customer
        (BOUND, "acme", False, "acme"),  # saying so is fine
        (BOUND, "globex", False, CustomerClaimError),  # another customer: never
        (BOUND, "globex", True, CustomerClaimError),  # not even from a phone tool
        (UNBOUND, None, False, None),  # the sender's address will tell
        (UNBOUND, "globex", False, CustomerClaimError),  # a chat message cannot name one
        (UNBOUND, "globex", True, "globex"),  # the desk's agent says whose call it was
    ],
)
def test_the_customer_of_a_message_is_its_integrations(
    integration: Integration,
    claimed: str | None,
    desk_may_name: bool,
    expected: str | type[Exception] | None,
) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected):
            message_customer(integration, claimed, desk_may_name)
    else:
        assert message_customer(integration, claimed, desk_may_name) == expected


def test_a_tokens_file_line_may_bind_an_integration_to_a_customer(tmp_path: Path) -> None:
    token, line = new_token("acme-widget", [Scope.CHAT_WRITE], customer_id="acme")
    _, unbound = new_token("agent-tool", [Scope.PHONE_WRITE, Scope.ACTIVITY_WRITE])
    path = tmp_path / "tokens"
    path.write_text(f"{line}\n{unbound}\n")

    loaded = load_integrations(path)

    assert line.endswith(":customer=acme")
    assert loaded["acme-widget"].customer_id == "acme"
    assert loaded["acme-widget"].scopes == {Scope.CHAT_WRITE}
    assert loaded["agent-tool"].customer_id is None
    assert asyncio.run(TokenVerifier(loaded).verify(token)) == loaded["acme-widget"]


def test_a_message_claiming_another_customer_is_refused_naming_the_field() -> None:
    async def check(api: Api) -> None:
        for who in ("acme-widget", "widget"):
            claim = {**CHAT, "customer_id": "globex"}
            status, body, _ = await api.call("POST", CHAT_PATH, who, json=claim)

            assert status == 422, (who, body)
            assert [problem["path"] for problem in body["problems"]] == ["customer_id"]
        assert api.publisher.sent == []

    with_api(check)


def test_a_bound_widgets_message_is_its_customers_and_an_unbound_ones_nobodys() -> None:
    async def check(api: Api) -> None:
        bound = await api.call("POST", CHAT_PATH, "acme-widget", json=CHAT)
        other = CHAT_PATH.replace(CONVERSATION, CONVERSATION + "-2")
        unbound = await api.call("POST", other, "widget", json=CHAT)

        assert (bound[0], unbound[0]) == (202, 202)
        customers = [customer_sent(value) for _, _, value in api.publisher.sent]
        assert customers == ["acme", None]

    with_api(check)


def test_a_bound_integration_cannot_log_a_call_for_another_customer() -> None:
    call = {"call_id": "call-9", "caller": "+52 55 1234 5678", "summary": "Sin tono",
            "agent": "luis"}  # fmt: skip

    async def check(api: Api) -> None:
        refused = await api.call("POST", "/phone/calls", "acme-widget",
                                 json={**call, "customer_id": "globex"})  # fmt: skip
        accepted = await api.call("POST", "/phone/calls", "acme-widget", json=call)

        assert refused[0] == 422 and refused[1]["problems"][0]["path"] == "customer_id"
        assert accepted[0] == 202
        assert customer_sent(api.publisher.sent[0][2]) == "acme"

    with_api(check)


def test_a_websocket_message_claiming_another_customer_is_refused() -> None:
    async def check(api: Api) -> None:
        headers = {"Authorization": f"Bearer {TOKENS['acme-widget']}"}
        path = CHAT_PATH.replace("/messages", "/ws")
        async with api.client.ws_connect(path, headers=headers) as ws:
            await ws.send_json({**CHAT, "customer_id": "globex"})
            refused = await ws.receive_json(timeout=10)

        assert (refused["type"], refused["status"]) == ("refused", 422)
        assert [problem["path"] for problem in refused["problems"]] == ["customer_id"]
        assert api.publisher.sent == []

    with_api(check)
