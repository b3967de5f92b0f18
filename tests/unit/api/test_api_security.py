"""Who may call the API and how much: tokens, scopes, rate limits, body limits, Origins."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine import passwords
from engine.api.security import (
    ApiSecurityError,
    Scope,
    TokenVerifier,
    load_integrations,
    new_token,
)
from engine.settings import Settings
from tests.unit.api.api_support import (
    CHAT,
    CHAT_PATH,
    CONVERSATION,
    TOKENS,
    Api,
    with_api,
)


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


def test_bad_tokens_sent_all_at_once_are_counted_before_their_checks() -> None:
    async def check(api: Api) -> None:
        # Tokens of a known integration: each waits for a PBKDF2 check in a thread.
        calls = [api.call("GET", "/tickets", f"agent.guess{n}") for n in range(10)]
        statuses = sorted(status for status, _, _ in await asyncio.gather(*calls))

        assert statuses == [401] * 3 + [429] * 7

    with_api(check)


def test_a_good_token_does_not_spend_the_addresses_invalid_token_budget() -> None:
    async def check(api: Api) -> None:
        good = [(await api.call("GET", "/tickets", who))[0] for who in ("agent", "dashboard")]
        bad = [(await api.call("GET", "/tickets", f"agent.guess{n}"))[0] for n in range(4)]

        assert good == [200, 200]
        assert bad == [401, 401, 401, 429]

    with_api(check)


def test_an_address_that_keeps_presenting_bad_tokens_is_slowed_down() -> None:
    async def check(api: Api) -> None:
        statuses = [(await api.call("GET", "/tickets", f"agent.guess{n}"))[0] for n in range(4)]
        status, _, headers = await api.call("GET", "/tickets", "agent")  # never verified yet

        assert statuses == [401, 401, 401, 429]
        assert status == 429 and int(headers["Retry-After"]) >= 1

    with_api(check)


def test_a_websocket_without_a_token_is_refused_before_the_upgrade() -> None:
    async def check(api: Api) -> None:
        status, body, _ = await api.call("GET", f"/chat/conversations/{CONVERSATION}/ws")
        assert status == 401 and body["error"]
        url = f"/chat/conversations/{CONVERSATION}/ws?access_token={TOKENS['dashboard']}"
        async with api.client.get(url, headers={"Upgrade": "websocket"}) as answer:
            assert answer.status == 403

    with_api(check)


def test_engine_api_token_prints_the_token_once_and_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli.main import main

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


def test_the_origin_allowlist_holds_origins_only() -> None:
    allowed = Settings(api_allowed_origins="https://www.acme.example, http://127.0.0.1:3000")
    assert allowed.api_allowed_origins == ["https://www.acme.example", "http://127.0.0.1:3000"]
    with pytest.raises(ValidationError, match="api_allowed_origins"):
        Settings(api_allowed_origins="https://www.acme.example/chat")


def test_concurrent_requests_with_a_new_token_share_one_hash_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every chat widget of a site presents the same token; after a restart they must not
    each cost a PBKDF2 check. Nor may a wrong token ride on a right one's check."""
    token, line = new_token("chat-widget", [Scope.CHAT_WRITE])
    path = tmp_path / "tokens"
    path.write_text(line + "\n")
    integration = load_integrations(path)["chat-widget"]
    verifier = TokenVerifier({"chat-widget": integration})
    checked: list[bytes] = []
    matches = passwords.password_matches

    def counted(password: bytes, stored: str) -> bool:
        checked.append(password)
        return matches(password, stored)

    monkeypatch.setattr("engine.api.security.password_matches", counted)

    async def main() -> list[object]:
        return list(await asyncio.gather(
            *(verifier.verify(token) for _ in range(8)), verifier.verify(token + "x"),
        ))  # fmt: skip

    *right, wrong = asyncio.run(main())

    assert right == [integration] * 8 and wrong is None
    assert sorted(checked) == sorted([token.encode(), (token + "x").encode()])
    assert asyncio.run(verifier.verify(token)) == integration  # remembered: no third check
    assert len(checked) == 2
    assert verifier.known(token + "x") is None  # a failed token is not remembered


def test_a_verified_token_is_remembered_by_a_digest_keyed_per_process(tmp_path: Path) -> None:
    token, line = new_token("chat-widget", [Scope.CHAT_WRITE])
    path = tmp_path / "tokens"
    path.write_text(line + "\n")
    integrations = load_integrations(path)
    first, second = TokenVerifier(integrations), TokenVerifier(integrations)

    assert first.known(token) is None
    asyncio.run(first.verify(token))
    asyncio.run(second.verify(token))

    assert first.known(token) == second.known(token) == integrations["chat-widget"]
    remembered = [*first._verified, *second._verified]
    assert len(remembered) == 2 and remembered[0] != remembered[1]
    assert all(token.encode() not in key for key in remembered)
    assert hashlib.sha256(token.encode()).digest() not in remembered


def chat_path(conversation: str) -> str:
    return f"/chat/conversations/{conversation}/messages"


async def chat_statuses(api: Api, conversation: str, count: int, first: int = 0) -> list[int]:
    statuses = []
    for n in range(first, first + count):
        message = {**CHAT, "message_id": f"m{n}"}
        status, _, _ = await api.call("POST", chat_path(conversation), "widget", json=message)
        statuses.append(status)
    return statuses


def test_one_conversation_over_its_limit_does_not_spend_the_shared_widget_token() -> None:
    async def check(api: Api) -> None:
        one_visitor = await chat_statuses(api, "visitor-one-0123456789", 5)
        next_visitor = await chat_statuses(api, "visitor-two-0123456789", 1, first=5)

        assert one_visitor == [202, 202, 429, 429, 429]
        assert next_visitor == [202]

    with_api(check, burst=3, chat_per_conversation=2)


def test_one_client_address_is_limited_across_its_conversations() -> None:
    async def check(api: Api) -> None:
        statuses = [
            (await chat_statuses(api, f"conversation-{n}-0123456789", 1, first=n))[0]
            for n in range(3)
        ]

        assert statuses == [202, 202, 429]

    with_api(check, chat_per_address=2)


def test_websocket_messages_count_against_their_conversations_limit() -> None:
    async def check(api: Api) -> None:
        path = f"/chat/conversations/{CONVERSATION}/ws?access_token={TOKENS['widget']}"
        async with api.client.ws_connect(path) as ws:  # the upgrade counts as one
            replies = []
            for n in range(3):
                await ws.send_json({**CHAT, "message_id": f"m{n}"})
                replies.append(await ws.receive_json(timeout=10))
        statuses = [reply.get("status") for reply in replies if reply["type"] == "refused"]

        assert [reply["type"] for reply in replies] == ["accepted", "accepted", "refused"]
        assert statuses == [429]

    with_api(check, chat_per_conversation=3)
