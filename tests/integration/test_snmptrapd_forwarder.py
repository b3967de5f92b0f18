"""net-snmp's snmptrapd as a trap forwarder in front of ``engine up`` (docs/snmptrapd.md):
forwarded v1 and v2c traps reach the engine; where the trap carries the original agent's
address (a v1 trap's agent-addr, or ``snmpTrapAddress.0``) the device is that agent, and a
directory entry for the forwarder's own address attributes the rest as the user chose. The
claimed address is trusted only from the forwarder (``role: forwarder``)."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.contract.topics import TICKET_EVENTS, named
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    free_udp_port,
    port_open,
    wait_until,
)
from tests.integration.snmp_peers import LINK_DOWN, NetSnmp, link_varbinds

COMMUNITY = "fwd-community"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"
DEVICES = """
devices:
  - {address: 192.0.2.10, name: pbx-behind-forwarder, customer: acme, role: pbx}
  - {address: 192.0.2.11, name: gw-behind-forwarder, customer: acme, role: trunk-gateway}
  - {address: 127.0.0.1, name: trap-forwarder, customer: acme, role: forwarder}
"""
FORWARDER_CONF = """\
disableAuthorization yes
doNotRetainNotificationLogs yes
forward default udp:127.0.0.1:{engine_port}
"""
_if_indexes = itertools.count(300)


@pytest.fixture(scope="module")
def forwarded_engine(
    topics: str, topic_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineProcess]:
    state = tmp_path_factory.mktemp("forwarded-engine")
    (state / "devices.yaml").write_text(DEVICES)
    env = engine_env(
        state,
        topics,
        topic_prefix,
        ENGINE_SNMP_COMMUNITIES=COMMUNITY,
        ENGINE_SNMP_DEVICES_FILE=str(state / "devices.yaml"),
    )
    running = EngineProcess(env, state / "engine.log")
    running.start("--bootstrap-servers", topics)
    metrics_port = int(env["ENGINE_SNMP_METRICS_PORT"])
    wait_until(lambda: port_open(metrics_port), 60, "the SNMP receiver", on_timeout=running.log)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def forwarder(
    forwarded_engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NetSnmp]:
    """snmptrapd in the foreground on its own port, forwarding every trap to the engine."""
    folder = tmp_path_factory.mktemp("snmptrapd")
    conf = folder / "snmptrapd.conf"
    conf.write_text(FORWARDER_CONF.format(engine_port=forwarded_engine.env["ENGINE_SNMP_PORT"]))
    port = free_udp_port()
    log = folder / "snmptrapd.log"
    process = subprocess.Popen(
        ["/usr/sbin/snmptrapd", "-f", "-C", "-c", str(conf), "-n", "-On", "-Lf", str(log),
         f"udp:127.0.0.1:{port}"],
        env={"MIBS": "", "SNMPCONFPATH": str(folder), "SNMP_PERSISTENT_DIR": str(folder)},
    )  # fmt: skip
    wait_until(
        lambda: log.exists() and "NET-SNMP version" in log.read_text(errors="replace"),
        30,
        "snmptrapd to start",
        on_timeout=lambda: log.read_text(errors="replace") if log.exists() else "",
    )
    yield NetSnmp(port, folder / "client")
    process.terminate()
    process.wait(timeout=10)


def trap_event(reader: TopicReader, device: str, if_index: int) -> dict[str, Any]:
    """The trap.received event of interface ``if_index``'s link alarm on ``device``."""
    key = f"{device}|IF-MIB::link|{if_index}"
    return reader.wait_for(
        lambda _, value: value["kind"] == "trap.received" and value["data"]["alarm_key"] == key,
        timeout=60,
    )


@pytest.fixture
def events(topics: str, topic_prefix: str) -> Iterator[TopicReader]:
    reader = TopicReader(topics, named(TICKET_EVENTS, topic_prefix))
    yield reader
    reader.close()


def test_a_forwarded_v1_trap_is_its_original_agents(
    forwarder: NetSnmp, events: TopicReader
) -> None:
    if_index = next(_if_indexes)
    done = forwarder.run(
        "snmptrap", "-v", "1", "-c", COMMUNITY, forwarder.target,
        "1.3.6.1.4.1.8072.3.2.10", "192.0.2.10", "2", "0", "", *link_varbinds(if_index, up=False),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    event = trap_event(events, "pbx-behind-forwarder", if_index)["data"]
    assert event["sender"] == "127.0.0.1"  # it came through the forwarder
    assert event["agent_address"] == "192.0.2.10"
    assert event["device"]["name"] == "pbx-behind-forwarder"


def test_a_forwarded_v2c_trap_with_snmp_trap_address_is_its_original_agents(
    forwarder: NetSnmp, events: TopicReader
) -> None:
    if_index = next(_if_indexes)
    forwarder.trap_v2c(
        COMMUNITY,
        LINK_DOWN,
        *link_varbinds(if_index, up=False),
        SNMP_TRAP_ADDRESS, "a", "192.0.2.11",
    )  # fmt: skip

    event = trap_event(events, "gw-behind-forwarder", if_index)["data"]
    assert event["agent_address"] == "192.0.2.11"
    assert event["device"]["name"] == "gw-behind-forwarder"


def test_a_forwarded_v2c_trap_without_it_is_attributed_to_the_forwarders_entry(
    forwarder: NetSnmp, events: TopicReader
) -> None:
    if_index = next(_if_indexes)
    forwarder.trap_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(if_index, up=False))

    event = trap_event(events, "trap-forwarder", if_index)["data"]
    assert event["sender"] == "127.0.0.1"
    assert event["agent_address"] is None
    assert event["device"]["name"] == "trap-forwarder"


def test_the_same_trap_sent_directly_from_an_address_that_is_no_forwarder_is_the_senders(
    forwarded_engine: EngineProcess, events: TopicReader, tmp_path: Path
) -> None:
    direct = NetSnmp(int(forwarded_engine.env["ENGINE_SNMP_PORT"]), tmp_path / "net-snmp")
    if_index = next(_if_indexes)

    done = direct.run(
        "snmptrap", "--clientaddr=127.0.0.3", "-v", "2c", "-c", COMMUNITY, direct.target, "",
        LINK_DOWN, *link_varbinds(if_index, up=False), SNMP_TRAP_ADDRESS, "a", "192.0.2.11",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    event = trap_event(events, "127.0.0.3", if_index)["data"]
    assert event["sender"] == "127.0.0.3"
    assert (event["agent_address"], event["claimed_agent_address"]) == (None, "192.0.2.11")
    assert event["device"] is None  # not gw-behind-forwarder: nobody vouches for the claim


def test_the_forwarders_config_is_the_documented_one() -> None:
    documented = (Path(__file__).resolve().parents[2] / "docs" / "snmptrapd.md").read_text()
    for line in FORWARDER_CONF.format(engine_port="1162").splitlines():
        assert line in documented, line
