"""Presence, queues and an agent's tickets over HTTP, against a desk fed by hand."""

from datetime import timedelta

from engine.contract import (
    AgentPresenceChanged,
    Presence,
    Priority,
    ThirdPartyWait,
    ThirdPartyWaitKind,
    TicketStatus,
    Tier,
    parse_record,
)
from engine.contract.topics import AGENTS_PRESENCE
from engine.workers.agents import parse_agents
from engine.workers.desk import Desk
from tests.unit.api.api_support import T0, Api, ticket, updated, with_api

AGENTS = """\
agents:
  - {id: ana, name: Ana, email: ana@d.example, tiers: [L1, L2, L3], languages: [es],
     calendar: 24x7, capacity: 1}
  - {id: tom, name: Tom, email: tom@d.example, tiers: [L3], languages: [en], calendar: 24x7}
"""


def desk() -> Desk:
    return Desk(parse_agents(AGENTS, "agents.yaml"), T0)


def test_presence_is_published_keyed_by_the_agent() -> None:
    async def check(api: Api) -> None:
        body = {"presence": "away", "note": "lunch"}
        status, answer, _ = await api.call("POST", "/agents/ana/presence", "lead", json=body)
        assert status == 202 and answer["presence"] == "away"
        topic, key, value = api.publisher.sent[0]
        record = parse_record(value)
        assert (topic, key) == (AGENTS_PRESENCE, b"ana")
        assert isinstance(record, AgentPresenceChanged)
        assert (record.data.presence, record.data.actor) == (Presence.AWAY, "lead")

        assert (await api.call("POST", "/agents/nobody/presence", "lead", json=body))[0] == 404
        status, answer, _ = await api.call(
            "POST", "/agents/ana/presence", "lead", json={"presence": "asleep"}
        )
        assert status == 422 and answer["problems"][0]["path"] == "presence"
        assert (await api.call("POST", "/agents/ana/presence", "dashboard", json=body))[0] == 403
        api.publisher.down = True
        assert (await api.call("POST", "/agents/ana/presence", "lead", json=body))[0] == 503

    with_api(check, desk=desk())


def test_queues_show_what_waits_and_who_has_what() -> None:
    async def check(api: Api) -> None:
        api.view.apply(updated(ticket("T-AAAAAAAAAAAAA", tier=Tier.L3, assignee="ana")))
        api.view.apply(
            updated(ticket("T-BBBBBBBBBBBBB", tier=Tier.L3, priority=Priority.P1,
                           opened_at=T0 - timedelta(minutes=2)))
        )  # fmt: skip
        status, body, _ = await api.call("GET", "/queues", "dashboard")
        assert status == 200
        l3 = next(q for q in body["tiers"] if q["tier"] == "L3")
        assert l3["waiting"]["P1"] == 1 and l3["oldest_waiting_seconds"] == 120
        assert l3["assigned"] == 1 and l3["waiting_on_third_party"] == 0
        loads = {a["agent_id"]: (a["standing"], a["load"]) for a in l3["agents"]}
        assert loads == {"ana": ("at capacity", 1), "tom": ("able", 0)}
        status, body, _ = await api.call("GET", "/agents/ana/queue", "dashboard")
        assert status == 200 and [t["ticket_id"] for t in body["tickets"]] == ["T-AAAAAAAAAAAAA"]
        assert (await api.call("GET", "/agents/nobody/queue", "dashboard"))[0] == 404

        api.ready = False
        assert (await api.call("GET", "/queues", "dashboard"))[0] == 503

    with_api(check, desk=desk())


def test_the_queues_show_what_a_ticket_waits_on() -> None:
    async def check(api: Api) -> None:
        upstream = ThirdPartyWait(kind=ThirdPartyWaitKind.UPSTREAM_FIX, reference="ASTERISK-30123")
        api.view.apply(
            updated(ticket("T-AAAAAAAAAAAAA", tier=Tier.L3, assignee="ana", waiting_on=upstream,
                           status=TicketStatus.WAITING_ON_THIRD_PARTY))
        )  # fmt: skip
        status, body, _ = await api.call("GET", "/queues", "dashboard")
        assert status == 200
        counts = {q["tier"]: q["waiting_on_third_party"] for q in body["tiers"]}
        assert counts == {"L1": 0, "L2": 0, "L3": 1}
        status, body, _ = await api.call("GET", "/agents/ana/queue", "dashboard")
        assert status == 200 and body["agent"]["load"] == 1
        [listed] = body["tickets"]
        assert listed["status"] == "waiting_on_third_party"
        assert listed["waiting_on"] == {"kind": "upstream_fix", "reference": "ASTERISK-30123"}

    with_api(check, desk=desk())


def test_without_an_agents_directory_the_desk_endpoints_say_so() -> None:
    async def check(api: Api) -> None:
        status, body, _ = await api.call("GET", "/queues", "dashboard")
        assert status == 404 and "ENGINE_AGENTS_FILE" in body["error"]
        body = {"presence": "available"}
        assert (await api.call("POST", "/agents/ana/presence", "lead", json=body))[0] == 404

    with_api(check)


def test_an_agent_takes_a_ticket_only_if_nobody_has_it() -> None:
    async def check(api: Api) -> None:
        path = "/tickets/T-AAAAAAAAAAAAA/activity"
        api.view.apply(updated(ticket("T-AAAAAAAAAAAAA", assignee="tom")))
        take = {"activity_id": "take-1", "activity": "assigned", "actor": "ana",
                "assignee": "ana", "if_assignee": ""}  # fmt: skip
        status, body, _ = await api.call("POST", path, "agent", json=take)
        assert status == 409 and "assignee is tom, not nobody" in body["error"]
        api.view.apply(updated(ticket("T-AAAAAAAAAAAAA", updated_at=T0 + timedelta(seconds=1))))
        assert (await api.call("POST", path, "agent", json=take))[0] == 202

    with_api(check)
