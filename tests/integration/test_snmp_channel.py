"""The SNMP channel end to end: net-snmp's snmptrap/snmpinform and pysnmp as the devices,
``engine up`` as the receiver, the real broker behind it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.contract import Tier
from engine.contract.identity import ticket_id
from engine.contract.topics import SNMP_TRAPS, TICKET_EVENTS, TICKET_STATE, TIER_TOPICS
from tests.integration.harness import (
    PROJECT_ROOT,
    EngineProcess,
    TopicReader,
    engine_env,
    port_open,
    wait_until,
)
from tests.integration.snmp_peers import (
    COLD_START,
    LINK_DOWN,
    LINK_UP,
    NetSnmp,
    link_varbinds,
    pysnmp_v3_trap,
    rejected,
)

COMMUNITY = "it-community"
DEVICE = "pbx-it-1"
RECEIVER_ENGINE_ID = "80001f8880c0ffee0001"
NETSNMP_ENGINE_ID = "8000000001aa000001"
PYSNMP_ENGINE_ID = "8000000001bb000002"
AUTH, PRIV = "auth-secret-1", "priv-secret-1"
USERS = f"""
users:
  - {{name: nms-sha, auth: SHA, auth_key: {AUTH}, priv: AES, priv_key: {PRIV},
     engine_ids: ["{NETSNMP_ENGINE_ID}"]}}
  - {{name: nms-sha256, auth: SHA256, auth_key: {AUTH}, priv: AES, priv_key: {PRIV},
     engine_ids: ["{NETSNMP_ENGINE_ID}"]}}
  - {{name: nms-auth, auth: SHA256, auth_key: {AUTH}, engine_ids: ["{NETSNMP_ENGINE_ID}"]}}
  - {{name: nms-512, auth: SHA512, auth_key: {AUTH}, priv: AES256, priv_key: {PRIV},
     engine_ids: ["{PYSNMP_ENGINE_ID}"]}}
"""
OTHER_DEVICE = "pbx-it-2"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"
DEVICES = f"""
devices:
  - {{address: 127.0.0.1, name: {DEVICE}, customer: acme, role: pbx}}
  - {{address: 127.0.0.2, name: {OTHER_DEVICE}, customer: acme, role: pbx}}
"""
_if_indexes = itertools.count(100)


def v3(user: str, level: str, auth: str = "SHA", priv: str = "AES", **keys: str) -> list[str]:
    security = ["-u", user, "-l", level, "-a", auth, "-A", keys.get("auth_key", AUTH)]
    if level == "authPriv":
        security += ["-x", priv, "-X", keys.get("priv_key", PRIV)]
    return security


@pytest.fixture(scope="module")
def snmp_engine(
    topics: str, topic_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineProcess]:
    state = tmp_path_factory.mktemp("snmp-engine")
    (state / "users.yaml").write_text(USERS)
    (state / "devices.yaml").write_text(DEVICES)
    env = engine_env(
        state,
        topics,
        topic_prefix,
        ENGINE_SNMP_COMMUNITIES=COMMUNITY,
        ENGINE_SNMP_USERS_FILE=str(state / "users.yaml"),
        ENGINE_SNMP_DEVICES_FILE=str(state / "devices.yaml"),
        ENGINE_SNMP_ENGINE_ID=RECEIVER_ENGINE_ID,
        ENGINE_CUSTOMERS_FILE=str(PROJECT_ROOT / "deploy" / "customers.example.yaml"),
    )
    running = EngineProcess(env, state / "engine.log")
    running.start("--bootstrap-servers", topics)
    metrics_port = int(env["ENGINE_SNMP_METRICS_PORT"])
    wait_until(lambda: port_open(metrics_port), 60, "the SNMP receiver", on_timeout=running.log)
    yield running
    running.stop()


@pytest.fixture
def net(snmp_engine: EngineProcess, tmp_path: Path) -> NetSnmp:
    return NetSnmp(int(snmp_engine.env["ENGINE_SNMP_PORT"]), tmp_path / "net-snmp")


def metrics_port(engine: EngineProcess) -> int:
    return int(engine.env["ENGINE_SNMP_METRICS_PORT"])


def link_event(reader: TopicReader, if_index: int, timeout: float = 60) -> dict[str, Any]:
    key = f"{DEVICE}|IF-MIB::link|{if_index}"
    return reader.wait_for(
        lambda _, value: value["kind"] == "trap.received" and value["data"]["alarm_key"] == key,
        timeout=timeout,
    )


Sender = Callable[[NetSnmp, int], None]


def _ok(done: Any) -> None:
    assert done.returncode == 0, done.stderr


def v3_trap(user: str, level: str, auth: str = "SHA", **keys: str) -> Sender:
    security = ["-e", NETSNMP_ENGINE_ID, *v3(user, level, auth, **keys)]
    return lambda n, i: _ok(n.v3("snmptrap", security, LINK_DOWN, *link_varbinds(i, up=False)))


def v3_inform(user: str, level: str, auth: str = "SHA") -> Sender:
    return lambda n, i: _ok(
        n.v3("snmpinform", v3(user, level, auth), LINK_DOWN, *link_varbinds(i, up=False))
    )


def pysnmp_trap(n: NetSnmp, i: int) -> None:
    asyncio.run(pysnmp_v3_trap(n.port, PYSNMP_ENGINE_ID, "nms-512", AUTH, PRIV, i))


SENDERS: dict[str, tuple[Sender, str, str, str, str]] = {
    # name: (send, version, pdu, security name, level)
    "v1 trap": (
        lambda n, i: n.trap_v1(COMMUNITY, 2, *link_varbinds(i, up=False)[:3]),
        "v1", "trap", "community-1", "noAuthNoPriv",
    ),
    "v2c trap": (
        lambda n, i: n.trap_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(i, up=False)),
        "v2c", "trap", "community-1", "noAuthNoPriv",
    ),
    "v2c inform": (
        lambda n, i: _ok(n.inform_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(i, up=False))),
        "v2c", "inform", "community-1", "noAuthNoPriv",
    ),
    "v3 authNoPriv trap SHA-256": (
        v3_trap("nms-auth", "authNoPriv", "SHA-256"),
        "v3", "trap", "nms-auth", "authNoPriv",
    ),
    "v3 authPriv trap SHA/AES": (
        v3_trap("nms-sha", "authPriv"),
        "v3", "trap", "nms-sha", "authPriv",
    ),
    "v3 authPriv trap SHA-256/AES": (
        v3_trap("nms-sha256", "authPriv", "SHA-256"),
        "v3", "trap", "nms-sha256", "authPriv",
    ),
    "v3 authNoPriv inform": (
        v3_inform("nms-auth", "authNoPriv", "SHA-256"),
        "v3", "inform", "nms-auth", "authNoPriv",
    ),
    "v3 authPriv inform SHA-256/AES": (
        v3_inform("nms-sha256", "authPriv", "SHA-256"),
        "v3", "inform", "nms-sha256", "authPriv",
    ),
    "pysnmp v3 authPriv trap SHA-512/AES-256": (
        pysnmp_trap,
        "v3", "trap", "nms-512", "authPriv",
    ),
}  # fmt: skip


@pytest.mark.parametrize("sender", list(SENDERS))
def test_every_version_and_level_becomes_a_named_typed_event(
    net: NetSnmp, read_topic: Callable[[str], TopicReader], sender: str
) -> None:
    send, version, pdu, security_name, level = SENDERS[sender]
    if_index = next(_if_indexes)

    send(net, if_index)

    event = link_event(read_topic(TICKET_EVENTS), if_index)
    data = event["data"]
    assert (data["version"], data["pdu"], data["security_name"], data["security_level"]) == (
        version, pdu, security_name, level,
    )  # fmt: skip
    assert data["trap"]["oid"] == LINK_DOWN
    assert data["trap"]["name"] == "IF-MIB::linkDown"
    assert data["trap"]["device_role"] == "pbx"
    assert data["device"]["name"] == DEVICE and data["device"]["customer_id"] == "acme"
    assert data["sender"] == "127.0.0.1"
    assert data["ticket_id"] == ticket_id("snmp-alarm", f"{DEVICE}|IF-MIB::link|{if_index}")
    by_name = {v["name"]: v for v in data["trap"]["varbinds"]}
    assert by_name["IF-MIB::ifIndex"]["value"] == if_index
    assert by_name["IF-MIB::ifIndex"]["syntax"] == "Integer32"
    if version == "v1":
        assert data["agent_address"] == "127.0.0.1"
        assert "SNMPv2-MIB::snmpTrapEnterprise" in by_name
    else:
        assert by_name["IF-MIB::ifOperStatus"]["label"] == "down"
    if version == "v3":  # the sender's context engine id
        assert bytes.fromhex(data["engine_id"])
    else:
        assert data["engine_id"] is None
    assert COMMUNITY not in str(event)


BAD: dict[str, tuple[Sender, str]] = {
    "wrong community": (
        lambda n, i: n.trap_v2c("not-the-community", LINK_DOWN, *link_varbinds(i, up=False)),
        "bad_community",
    ),
    "unknown user": (
        v3_trap("mallory", "authPriv"),
        "unknown_user",
    ),
    "wrong auth key": (
        v3_trap("nms-sha", "authPriv", auth_key="not-the-key"),
        "wrong_digest",
    ),
    "wrong priv key": (
        v3_trap("nms-sha", "authPriv", priv_key="not-the-key"),
        "decryption_error",
    ),
    "level below the user's": (
        v3_trap("nms-sha", "authNoPriv"),
        "security_level_too_low",
    ),
    "level above the user's": (
        v3_trap("nms-auth", "authPriv", "SHA-256"),
        "decryption_error",  # pysnmp counts it so: the user has no privacy key
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_credentials_are_rejected_counted_and_never_an_event(
    snmp_engine: EngineProcess, net: NetSnmp, read_topic: Callable[[str], TopicReader], case: str
) -> None:
    send, reason = BAD[case]
    port = metrics_port(snmp_engine)
    before = rejected(port, reason)
    refused_index, good_index = next(_if_indexes), next(_if_indexes)

    send(net, refused_index)
    wait_until(lambda: rejected(port, reason) > before, 30, f"a {reason} rejection counted")

    # A good trap sent after the bad one is stored; the bad one never is.
    net.trap_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(good_index, up=False))
    reader = read_topic(TICKET_EVENTS)
    link_event(reader, good_index)
    refused_key = f"{DEVICE}|IF-MIB::link|{refused_index}"
    assert not reader.matching(lambda _, v: v["data"].get("alarm_key") == refused_key)


def ticket_state(
    reader: TopicReader, ticket: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    found = reader.wait_for(
        lambda key, value: key == ticket and condition(value["data"]["ticket"]), timeout=120
    )
    return found["data"]["ticket"]  # type: ignore[no-any-return]


def test_a_storm_of_200_link_downs_is_one_ticket_with_200_occurrences(
    net: NetSnmp, read_topic: Callable[[str], TopicReader]
) -> None:
    if_index = next(_if_indexes)
    ticket = ticket_id("snmp-alarm", f"{DEVICE}|IF-MIB::link|{if_index}")

    for _ in range(200):
        net.trap_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(if_index, up=False))

    state = ticket_state(
        read_topic(TICKET_STATE), ticket, lambda t: t["alarm"]["occurrences"] >= 200
    )
    assert state["alarm"]["occurrences"] == 200
    # Folded at the receiver: fewer ticket events than traps, each trap kept as received.
    events, audit = read_topic(TICKET_EVENTS), read_topic(SNMP_TRAPS)
    folded = wait_until(
        lambda: (found := events.matching(lambda key, _: key == ticket))
        and sum(event["data"]["occurrences"] for event in found) == 200 and found,
        60, "the storm's folded events",
    )  # fmt: skip
    assert state["event_count"] == len(folded) < 200
    wait_until(lambda: len(audit.matching(lambda key, _: key == ticket)) == 200, 60,
               "every trap of the storm on snmp.traps.v1")  # fmt: skip
    assert state["alarm"]["first_seen"] < state["alarm"]["last_seen"]
    assert (state["priority"], state["tier"], state["channel"]) == ("P1", "L3", "snmp")
    assert state["customer_id"] == "acme"
    routed = read_topic(TIER_TOPICS[Tier.L3]).matching(lambda key, _: key == ticket)
    assert len(routed) == 1  # one ticket routed once, not 200


def test_link_down_then_link_up_clears_the_alarm(
    net: NetSnmp, read_topic: Callable[[str], TopicReader]
) -> None:
    if_index = next(_if_indexes)
    ticket = ticket_id("snmp-alarm", f"{DEVICE}|IF-MIB::link|{if_index}")
    states = read_topic(TICKET_STATE)

    net.trap_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(if_index, up=False))
    raised = ticket_state(states, ticket, lambda t: t["alarm"] is not None)
    assert raised["alarm"]["cleared"] is False
    net.trap_v2c(COMMUNITY, LINK_UP, *link_varbinds(if_index, up=True))

    cleared = ticket_state(states, ticket, lambda t: t["alarm"]["cleared"])
    assert cleared["alarm"]["occurrences"] == 2
    assert cleared["alarm"]["cleared_at"] is not None
    assert cleared["priority"] == "P1"  # the link coming back does not lower the ticket


def test_a_link_up_claiming_another_devices_address_cannot_clear_its_alarm(
    net: NetSnmp, read_topic: Callable[[str], TopicReader]
) -> None:
    """127.0.0.1 is a PBX, not a forwarder: the snmpTrapAddress.0 it puts in its trap is
    kept as information, and the trap is the PBX's own."""
    if_index = next(_if_indexes)
    victim = ticket_id("snmp-alarm", f"{OTHER_DEVICE}|IF-MIB::link|{if_index}")
    states, events = read_topic(TICKET_STATE), read_topic(TICKET_EVENTS)
    _ok(
        net.run(
            "snmptrap", "--clientaddr=127.0.0.2", "-v", "2c", "-c", COMMUNITY, net.target, "",
            LINK_DOWN, *link_varbinds(if_index, up=False),
        )
    )  # fmt: skip
    assert (
        ticket_state(states, victim, lambda t: t["alarm"] is not None)["alarm"]["cleared"] is False
    )

    net.trap_v2c(
        COMMUNITY, LINK_UP, *link_varbinds(if_index, up=True), SNMP_TRAP_ADDRESS, "a", "127.0.0.2"
    )

    forged = link_event(events, if_index)["data"]  # the sender's own alarm key
    assert forged["transition"] == "cleared"
    assert (forged["device"]["name"], forged["agent_address"]) == (DEVICE, None)
    assert forged["claimed_agent_address"] == "127.0.0.2"
    ticket_state(states, forged["ticket_id"], lambda t: t["alarm"] is not None)  # applied
    victims = states.matching(lambda key, _: key == victim)
    assert {state["data"]["ticket"]["alarm"]["cleared"] for state in victims} == {False}


def test_an_unknown_trap_is_still_an_event_with_numeric_oids(
    net: NetSnmp, read_topic: Callable[[str], TopicReader]
) -> None:
    marker = f"unknown-{next(_if_indexes)}"

    net.trap_v2c(COMMUNITY, "1.3.6.1.4.1.99999.0.7", "1.3.6.1.4.1.99999.1.1.0", "s", marker)

    event = read_topic(TICKET_EVENTS).wait_for(
        lambda _, v: (
            v["kind"] == "trap.received"
            and any(b["value"] == marker for b in v["data"]["trap"]["varbinds"])
        ),
        timeout=60,
    )
    trap = event["data"]["trap"]
    assert (trap["oid"], trap["name"]) == ("1.3.6.1.4.1.99999.0.7", None)
    assert trap["varbinds"][0]["name"] is None
    assert trap["varbinds"][0]["oid"] == "1.3.6.1.4.1.99999.1.1.0"


def test_a_pbx_cold_start_is_routed_as_p2(
    net: NetSnmp, read_topic: Callable[[str], TopicReader]
) -> None:
    ticket = ticket_id("snmp-alarm", f"{DEVICE}|SNMPv2-MIB::restart|")

    _ok(net.inform_v2c(COMMUNITY, COLD_START))

    routed = read_topic(TIER_TOPICS[Tier.L3]).wait_for(lambda key, _: key == ticket, timeout=120)
    assert routed["data"]["ticket"]["priority"] == "P2"
    rules = [m["rule_id"] for m in routed["data"]["classification"]["matches"]]
    assert "trap-pbx-cold-start" in rules
