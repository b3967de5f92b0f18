"""The wallboard: its snapshot of the view, who may read it, its live stream, its page."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse

from engine import metrics
from engine.api.board import STORM_OCCURRENCES
from engine.contract import (
    AlarmState,
    Channel,
    Priority,
    SlaAlertData,
    SlaBreached,
    SlaWarning,
    TicketStatus,
    Tier,
)
from engine.kafka.deadletter import dead_letter
from engine.workers.agents import parse_agents
from engine.workers.desk import Desk
from tests.unit.api.api_support import T0, TOKENS, Api, ticket, updated, with_api

OUTAGE = "T-OUTAGE000000A"
ASSIGNED = "T-ASSIGNED0000B"
WARNED = "T-WARNED000000C"
STORMY = "T-STORMY000000D"


def alert(kind: type[SlaWarning] | type[SlaBreached], ticket_id: str, minutes: int) -> Any:
    return kind(
        event_id=f"a-{ticket_id}", occurred_at=T0, source="sla",
        data=SlaAlertData(ticket_id=ticket_id, obligation="UPD-P1", instance=1, dedup_key="k",
                          deadline=T0 + timedelta(minutes=minutes), calendar="24x7",
                          explanation="P1: every 2 hours"),
    )  # fmt: skip


def storm_alarm(occurrences: int) -> AlarmState:
    return AlarmState(
        key="pbx-01|linkDown|ifIndex=3", occurrences=occurrences, first_seen=T0, last_seen=T0,
        cleared=False, cleared_at=None, flapping=False, transitions=(),
    )  # fmt: skip


def put(api: Api, ticket_id: str, **changes: Any) -> None:
    api.view.apply(updated(ticket(ticket_id, **changes)))


def feed(api: Api) -> None:
    """An outage nobody has on L3, a P1 Ana has on L1 (overdue), a P2 due soon on L2, an
    SNMP storm, a resolved P1 and a P4 opened two hours ago."""
    ago = T0 - timedelta(minutes=10)
    put(api, OUTAGE, priority=Priority.P1, tier=Tier.L3, channel=Channel.EMAIL,
        subject="Central caída", opened_at=ago)  # fmt: skip
    put(api, ASSIGNED, priority=Priority.P1, tier=Tier.L1, assignee="ana", subject="Sin tono",
        opened_at=T0 - timedelta(minutes=30))  # fmt: skip
    api.view.apply(alert(SlaBreached, ASSIGNED, -5))
    put(api, WARNED, priority=Priority.P2, tier=Tier.L2, channel=Channel.PHONE,
        opened_at=T0 - timedelta(minutes=50))  # fmt: skip
    api.view.apply(alert(SlaWarning, WARNED, 20))
    put(api, STORMY, priority=Priority.P2, tier=Tier.L3, channel=Channel.SNMP, assignee="tom",
        alarm=storm_alarm(STORM_OCCURRENCES + 40))  # fmt: skip
    put(api, "T-RESOLVED0000E", priority=Priority.P1, tier=Tier.L3, status=TicketStatus.RESOLVED)
    put(api, "T-OLDP40000000F", priority=Priority.P4, opened_at=T0 - timedelta(hours=2))
    for made_at in (T0 - timedelta(minutes=5), T0 - timedelta(hours=2)):  # the hour's, only
        api.view.apply(dead_letter(b"{", reason="not JSON", field=None, origin="tickets.events.v1",
                                   source="engine.processor", now=made_at))  # fmt: skip


def test_the_snapshot_shows_what_a_desk_watches() -> None:
    metrics.CONSUMER_LAG.clear()
    metrics.CONSUMER_LAG.labels(metrics.Component.PROCESSOR, metrics.TopicName("tickets.events.v1")
                                ).set(7)  # fmt: skip

    async def check(api: Api) -> None:
        feed(api)
        status, board, headers = await api.call("GET", "/wallboard/state", "dashboard")
        assert status == 200 and headers["Cache-Control"] == "no-store"
        assert board["generated_at"] == "2026-11-22T10:00:00Z" and board["ready"] is True

        tiers = {tier["tier"]: tier for tier in board["tiers"]}
        assert tiers["L3"]["open"] == {"P1": 1, "P2": 1, "P3": 0, "P4": 0}
        assert tiers["L3"]["total"] == 2 and tiers["L3"]["waiting"] == 1
        assert tiers["L3"]["oldest_waiting"]["ticket_id"] == OUTAGE
        assert tiers["L3"]["oldest_waiting"]["age_seconds"] == 600
        assert tiers["L1"]["open"]["P1"] == 1 and tiers["L1"]["waiting"] == 1  # the P4
        assert tiers["L1"]["oldest_waiting"]["ticket_id"] == "T-OLDP40000000F"

        assert [row["ticket_id"] for row in board["p1"]] == [ASSIGNED, OUTAGE]  # oldest first
        assigned, outage = board["p1"]
        assert (assigned["assignee"], assigned["sla"], assigned["age_seconds"]) == (
            "ana", "breached", 1800)  # fmt: skip
        assert (outage["assignee"], outage["sla"], outage["subject"]) == (
            None, "ok", "Central caída")  # fmt: skip
        assert board["p1_count"] == 2

        assert [(row["ticket_id"], row["state"]) for row in board["sla"]] == [
            (ASSIGNED, "breached"), (WARNED, "warning")]  # fmt: skip
        assert board["sla"][0]["deadline"] == "2026-11-22T09:55:00Z"
        assert board["sla_counts"] == {"warning": 1, "breached": 1}

        # Opened within the hour, per channel (the P4 of two hours ago is not counted).
        assert board["inflow_last_hour"] == {"email": 1, "snmp": 1, "chat": 2, "phone": 1}
        [storm] = board["storms"]
        assert (storm["ticket_id"], storm["occurrences"]) == (STORMY, STORM_OCCURRENCES + 40)
        assert board["pipeline"] == {
            "consumer_lag": [{"group": "processor", "topic": "tickets.events.v1", "records": 7}],
            "total_lag": 7,
            "dead_letters_last_hour": {"processor": 1},
        }

    with_api(check)
    metrics.CONSUMER_LAG.clear()


def test_a_resolution_or_an_assignment_leaves_the_lists() -> None:
    async def check(api: Api) -> None:
        feed(api)
        put(api, OUTAGE, priority=Priority.P1, tier=Tier.L3, channel=Channel.EMAIL,
            assignee="tom", event_count=2, opened_at=T0 - timedelta(minutes=10))  # fmt: skip
        put(api, ASSIGNED, priority=Priority.P1, tier=Tier.L1, status=TicketStatus.RESOLVED,
            event_count=2)  # fmt: skip
        _, board, _ = await api.call("GET", "/wallboard/state", "dashboard")
        assert [row["ticket_id"] for row in board["p1"]] == [OUTAGE]
        assert board["p1"][0]["assignee"] == "tom"
        assert [row["ticket_id"] for row in board["sla"]] == [WARNED]
        l3 = next(tier for tier in board["tiers"] if tier["tier"] == "L3")
        assert l3["waiting"] == 0 and l3["oldest_waiting"] is None
        assert board["pipeline"]["total_lag"] is None  # not read yet
        assert board["inflow_last_hour"]["email"] == 1  # an update is not a new ticket

    with_api(check)


def test_with_an_agents_directory_the_oldest_waiting_is_the_desks() -> None:
    agents = parse_agents(
        "agents:\n  - {id: ana, name: Ana, email: ana@d.example, tiers: [L1, L2, L3],"
        " languages: [es], calendar: 24x7}\n",
        "agents.yaml",
    )

    async def check(api: Api) -> None:
        feed(api)
        _, board, _ = await api.call("GET", "/wallboard/state", "dashboard")
        l3 = next(tier for tier in board["tiers"] if tier["tier"] == "L3")
        assert (l3["waiting"], l3["oldest_waiting"]["ticket_id"]) == (1, OUTAGE)

    with_api(check, desk=Desk(agents, T0))


@pytest.mark.parametrize("path", ["/wallboard/state", "/wallboard/events"])
def test_the_data_needs_a_tickets_read_token(path: str) -> None:
    async def check(api: Api) -> None:
        status, _, headers = await api.call("GET", path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert (await api.call("GET", path, "widget.wrong"))[0] == 401
        status, body, _ = await api.call("GET", path, "widget")  # chat:write only
        assert status == 403 and "tickets:read" in body["error"]
        # A token in the query string is not taken (it would end up in histories).
        assert (await api.call("GET", f"{path}?access_token={TOKENS['dashboard']}"))[0] == 401

    with_api(check)


def test_the_page_is_public_and_runs_only_its_own_script() -> None:
    async def check(api: Api) -> None:
        for path, kind in (
            ("/wallboard", "text/html"),
            ("/wallboard/wallboard.js", "text/javascript"),
            ("/wallboard/wallboard.css", "text/css"),
        ):
            async with api.client.get(path) as response:
                assert response.status == 200, path
                assert response.content_type == kind
                assert "script-src 'self'" in response.headers["Content-Security-Policy"]
                assert await response.text()
        async with api.client.get("/wallboard") as response:
            page = await response.text()
        assert 'src="/wallboard/wallboard.js"' in page and "http" not in page.split("<body")[1]
        assert 'type="password"' in page and "name=" not in page.split("<form")[1]

    with_api(check)


async def next_event(response: ClientResponse) -> tuple[str, dict[str, Any]]:
    """The next event of the stream (name and JSON data), skipping comments and fields
    other than event and data."""
    name, data = "message", ""
    while True:
        line = (await response.content.readline()).decode().rstrip("\n")
        if not line:
            if data:
                return name, json.loads(data)
            continue
        field, _, value = line.partition(": ")
        if field == "event":
            name = value
        elif field == "data":
            data += value


def test_the_stream_starts_with_a_snapshot_and_follows_the_view() -> None:
    async def check(api: Api) -> None:
        headers = {"Authorization": f"Bearer {TOKENS['dashboard']}"}
        async with api.client.get("/wallboard/events", headers=headers) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            name, board = await next_event(response)
            assert name == "snapshot" and board["p1"] == [] and board["ready"] is True

            put(api, OUTAGE, priority=Priority.P1, tier=Tier.L3)
            name, board = await next_event(response)
            assert name == "snapshot" and [row["ticket_id"] for row in board["p1"]] == [OUTAGE]

    with_api(check)


def test_the_token_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def check(api: Api) -> None:
        assert (await api.call("GET", "/wallboard/state", "dashboard"))[0] == 200
        assert (await api.call("GET", "/wallboard/state", "dashboard.wrong"))[0] == 401
        headers = {"Authorization": f"Bearer {TOKENS['dashboard']}"}
        async with api.client.get("/wallboard/events", headers=headers) as response:
            await next_event(response)

    with_api(check)
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    assert "GET /wallboard/state 200" in logged
    assert "s3cret" not in logged
