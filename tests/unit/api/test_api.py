"""Chat, phone, activity and queries over real HTTP on loopback, with a fake publisher at
the Kafka seam (tests/integration/test_api_live.py runs it against the real broker)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from aiohttp import WSCloseCode, WSMsgType
from prometheus_client import REGISTRY

from engine.api.chat import MAX_JSON_DEPTH, nested_deeper_than
from engine.api.view import TicketView
from engine.contract import (
    EventKind,
    Priority,
    ThirdPartyWait,
    ThirdPartyWaitKind,
    TicketActivity,
    TicketStatus,
    Tier,
    parse_incoming,
)
from engine.contract.identity import chat_ticket_id, phone_ticket_id
from engine.contract.topics import TICKET_EVENTS
from tests.unit.api.api_support import (
    CHAT,
    CHAT_PATH,
    CONVERSATION,
    T0,
    TOKENS,
    Api,
    ticket,
    updated,
    with_api,
)


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


CONTROL_CHARACTERS = ["\r", "\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("character", CONTROL_CHARACTERS)
def test_a_name_address_or_subject_with_a_control_character_is_422_naming_the_field(
    character: str,
) -> None:
    call = {"call_id": "call-8", "caller": "Ana", "subject": "central", "summary": "caida",
            "agent": "luis"}  # fmt: skip

    async def check(api: Api) -> None:
        for field in ("caller", "subject", "agent"):
            bad = {**call, field: f"Ana{character}Bcc: x@evil.example"}
            status, body, _ = await api.call("POST", "/phone/calls", "agent", json=bad)
            assert status == 422 and [p["path"] for p in body["problems"]] == [field]
        for sender in (f"ana@acme.example{character}", f"ana{character}@acme.example"):
            bad = {**CHAT, "sender": sender}
            status, body, _ = await api.call("POST", CHAT_PATH, "widget", json=bad)
            assert status == 422 and [p["path"] for p in body["problems"]] == ["sender"]
        assert api.publisher.sent == []

    with_api(check)


@pytest.mark.parametrize(
    "sender", ["a@x.example, v1@y.example", "a@x.example;v1@y.example", "Ana <a@x.example>", "Ana"]
)
def test_a_chat_sender_must_be_exactly_one_address(sender: str) -> None:
    async def check(api: Api) -> None:
        bad = {**CHAT, "sender": sender}
        status, body, _ = await api.call("POST", CHAT_PATH, "widget", json=bad)

        assert status == 422 and [p["path"] for p in body["problems"]] == ["sender"]
        assert api.publisher.sent == []

    with_api(check)


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


def test_parties_are_added_by_activity_and_a_bad_one_is_named() -> None:
    async def check(api: Api) -> None:
        path = "/tickets/T-AAAAAAAAAAAAA/activity"
        api.view.apply(updated(ticket()))
        add = {"activity_id": "p1", "activity": "party_added", "actor": "luis",
               "party": "Eva <eva@acme.example>"}  # fmt: skip
        status, body, _ = await api.call("POST", path, "agent", json=add)
        assert status == 422 and [p["path"] for p in body["problems"]] == ["party"]
        assert "not an e-mail address" in body["error"]

        missing = {"activity_id": "p2", "activity": "party_removed", "actor": "luis",
                   "party": "eva@acme.example"}  # fmt: skip
        status, body, _ = await api.call("POST", path, "agent", json=missing)
        assert status == 409 and "eva@acme.example is not a party" in body["error"]

        status, body, _ = await api.call(
            "POST", path, "agent", json={**add, "party": "eva@acme.example"}
        )
        assert status == 202, body
        event = parse_incoming(api.publisher.sent[0][2])
        assert event.kind is EventKind.TICKET_ACTIVITY and event.data.party == "eva@acme.example"


def test_a_ticket_is_set_waiting_on_a_third_party_and_bad_input_names_its_field() -> None:
    async def check(api: Api) -> None:
        path = "/tickets/T-AAAAAAAAAAAAA/activity"
        api.view.apply(updated(ticket()))
        wait = {"activity_id": "w1", "activity": "waiting_on_third_party", "actor": "luis",
                "waiting_on": {"kind": "rma", "reference": "RMA-2026-0042"}}  # fmt: skip
        assert (await api.call("POST", path, "agent", json=wait))[0] == 202
        event = parse_incoming(api.publisher.sent[0][2])
        assert isinstance(event, TicketActivity) and event.data.waiting_on == ThirdPartyWait(
            kind=ThirdPartyWaitKind.RMA, reference="RMA-2026-0042"
        )

        for waiting_on, field in (
            ({"kind": "courier", "reference": "X"}, "waiting_on.kind"),
            ({"kind": "vendor", "reference": ""}, "waiting_on.reference"),
            ({"kind": "vendor"}, "waiting_on.reference"),
        ):
            status, body, _ = await api.call("POST", path, "agent", json={**wait,
                                             "waiting_on": waiting_on})  # fmt: skip
            assert status == 422 and [p["path"] for p in body["problems"]] == [field], body
        without = {key: value for key, value in wait.items() if key != "waiting_on"}
        status, body, _ = await api.call("POST", path, "agent", json=without)
        assert status == 409 and "'waiting_on' (its kind and" in body["error"]
        answered = {"activity_id": "w2", "activity": "third_party_answered", "actor": "luis"}
        status, body, _ = await api.call("POST", path, "agent", json=answered)
        assert status == 409 and "waits on no third party" in body["error"]

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


def test_unknown_routes_and_methods_are_json_refusals() -> None:
    async def check(api: Api) -> None:
        status, body, headers = await api.call("TRACE", CHAT_PATH, "widget", json=CHAT)
        assert status == 405 and headers["Allow"] == "POST" and body["error"]
        status, body, _ = await api.call("GET", "/nowhere", "widget")
        assert status == 404 and body["error"]

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


WS_PATH = f"/chat/conversations/{CONVERSATION}/ws?access_token={TOKENS['widget']}"


@pytest.mark.parametrize(
    "bomb", ["[" * 4000, '{"a":' * 800, '{"message_id": "m7", "x":' + "[" * 3000]
)
def test_a_websocket_message_nested_too_deep_is_refused_and_the_socket_goes_on(
    bomb: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    async def check(api: Api) -> None:
        async with api.client.ws_connect(WS_PATH) as ws:
            await ws.send_str(bomb)
            refused = await ws.receive_json(timeout=10)
            await ws.send_json(CHAT)
            accepted = await ws.receive_json(timeout=10)

        assert refused["type"] == "refused" and refused["status"] == 422
        assert "nested deeper" in refused["error"]
        assert accepted["type"] == "accepted"

    with_api(check)

    assert not [record for record in caplog.records if record.exc_info]


def test_binary_websocket_frames_are_refused_and_count_against_the_rate_limit() -> None:
    async def check(api: Api) -> None:
        async with api.client.ws_connect(WS_PATH) as ws:  # the upgrade is one request
            await ws.send_bytes(b"\x00" * 100)
            binary = await ws.receive_json(timeout=10)
            await ws.send_bytes(b"[" * 3000)
            await ws.receive_json(timeout=10)
            await ws.send_json(CHAT)
            limited = await ws.receive_json(timeout=10)

        assert binary["type"] == "refused" and binary["status"] == 415
        assert limited["status"] == 429 and limited["message_id"] == "m1"
        assert api.publisher.sent == []

    with_api(check, burst=3)


def test_a_websocket_message_over_the_body_limit_closes_the_socket_as_too_big() -> None:
    async def check(api: Api) -> None:
        async with api.client.ws_connect(WS_PATH) as ws:
            await ws.send_str("x" * 5000)  # the tests' limit is 4096 bytes
            closed = await ws.receive(timeout=10)

        assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert ws.close_code == WSCloseCode.MESSAGE_TOO_BIG

    with_api(check)


@pytest.mark.parametrize(
    ("text", "deeper"),
    [
        ('{"a": [[1]]}', False),
        ('{"a": "' + "[" * 100 + '"}', False),  # brackets inside a string do not nest
        ('{"a": "\\"' + "[" * 100 + '"}', False),  # an escaped quote does not end it
        ('{"a": "\\\\", "b": ' + "[" * 100, True),  # an escaped backslash does
        ("[" * (MAX_JSON_DEPTH + 1), True),
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, False),
        ("[]" * 10_000, False),
    ],
)
def test_nesting_is_measured_outside_strings(text: str, deeper: bool) -> None:
    assert nested_deeper_than(text, MAX_JSON_DEPTH) is deeper


def test_reads_wait_for_the_view_to_load() -> None:
    async def check(api: Api) -> None:
        api.ready = False
        for method, path in (("GET", "/tickets"), ("GET", "/tickets/T-AAAAAAAAAAAAA")):
            status, _, headers = await api.call(method, path, "agent")
            assert status == 503 and headers["Retry-After"] == "5"
        api.ready = True
        assert (await api.call("GET", "/tickets/T-AAAAAAAAAAAAA", "agent"))[0] == 404

    with_api(check)


def test_a_method_outside_http_s_own_counts_as_other_in_the_request_metric() -> None:
    """The method label stays bounded: WebDAV's and any other extension methods are one
    value, ``other``, however many a client tries."""

    def count(method: str) -> float:
        labels = {"method": method, "route": "unmatched", "status": "405"}
        return REGISTRY.get_sample_value("ticketing_api_requests_total", labels) or 0.0

    others = count("other")

    async def check(api: Api) -> None:
        status, _, _ = await api.call("PROPFIND", "/tickets", "dashboard")
        assert status == 405

    with_api(check)

    assert count("PROPFIND") == 0
    assert count("other") == others + 1


def test_every_request_and_every_chat_event_is_counted_by_its_outcome() -> None:
    """The metric children are looked up once per label set and then reused: each request
    still counts under its own labels, accepted and refused apart."""

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    def requests(status: str) -> float:
        route = "/chat/conversations/{conversation_id}/messages"
        return sample("ticketing_api_requests_total", method="POST", route=route, status=status)

    def events(outcome: str, reason: str) -> float:
        labels = {"source": "chat", "outcome": outcome, "reason": reason}
        return sample("ticketing_events_ingested_total", **labels)

    before = {
        "202": requests("202"), "401": requests("401"), "503": requests("503"),
        "accepted": events("accepted", ""),
        "refused": events("rejected", "kafka_unavailable"),
        "acks": sample("ticketing_ingest_kafka_ack_seconds_count", source="chat"),
    }  # fmt: skip

    async def check(api: Api) -> None:
        for number in range(3):
            message = {**CHAT, "message_id": f"m{number}"}
            assert (await api.call("POST", CHAT_PATH, "widget", json=message))[0] == 202
        assert (await api.call("POST", CHAT_PATH, "widget.wrong", json=CHAT))[0] == 401
        api.publisher.down = True
        assert (await api.call("POST", CHAT_PATH, "widget", json=CHAT))[0] == 503

    with_api(check)

    assert requests("202") == before["202"] + 3
    assert requests("401") == before["401"] + 1
    assert requests("503") == before["503"] + 1
    assert events("accepted", "") == before["accepted"] + 3
    assert events("rejected", "kafka_unavailable") == before["refused"] + 1
    assert sample("ticketing_ingest_kafka_ack_seconds_count", source="chat") == before["acks"] + 3
