"""Real SNMP peers for the integration tests: net-snmp's ``snmptrap``/``snmpinform``
(Debian's ``snmp`` package) and pysnmp's own notification sender."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from pyasn1.codec.ber import encoder
from pysnmp.hlapi.v3arch.asyncio import (
    ContextData,
    Integer32,
    NotificationType,
    ObjectIdentity,
    OctetString,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    send_notification,
    usmAesCfb256Protocol,
    usmHMAC384SHA512AuthProtocol,
)
from pysnmp.proto import api

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"


def encoded_link_trap(
    community: str,
    if_index: int,
    request_id: int,
    up: bool = False,
    uptime: int = 0,
    markers: tuple[tuple[str, str], ...] = (),
    inform: bool = False,
) -> bytes:
    """A v2c linkDown (linkUp) trap datagram as a device sends it: ifIndex, ifAdminStatus
    up, ifOperStatus down (up), and any ``markers`` (OID, text) after them; with
    ``inform``, the same notification as an INFORM, which the receiver answers."""
    v2c = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = v2c.InformRequestPDU() if inform else v2c.SNMPv2TrapPDU()
    v2c.apiTrapPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiTrapPDU.set_varbinds(
        pdu,
        [
            (SYS_UPTIME, v2c.TimeTicks(uptime)),
            (SNMP_TRAP_OID, v2c.ObjectIdentifier(LINK_UP if up else LINK_DOWN)),
            (f"{IF_INDEX}.{if_index}", v2c.Integer(if_index)),
            (f"{IF_ADMIN_STATUS}.{if_index}", v2c.Integer(1)),
            (f"{IF_OPER_STATUS}.{if_index}", v2c.Integer(1 if up else 2)),
            *((oid, v2c.OctetString(text)) for oid, text in markers),
        ],
    )
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, community)
    v2c.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def link_varbinds(if_index: int, up: bool) -> list[str]:
    """net-snmp varbind arguments of linkDown/linkUp (numeric: Debian ships no IETF MIBs)."""
    status = "1" if up else "2"
    return [
        f"{IF_INDEX}.{if_index}", "i", str(if_index),
        f"{IF_ADMIN_STATUS}.{if_index}", "i", "1",
        f"{IF_OPER_STATUS}.{if_index}", "i", status,
        f"{IF_DESCR}.{if_index}", "s", f"port {if_index}",
    ]  # fmt: skip


@dataclass(frozen=True)
class NetSnmp:
    """net-snmp's command line tools, with their state and config in a private folder."""

    port: int
    state_dir: Path

    def _env(self) -> dict[str, str]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "MIBS": "",
            "SNMP_PERSISTENT_DIR": str(self.state_dir),
            "SNMPCONFPATH": str(self.state_dir),
        }

    def run(self, tool: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @property
    def target(self) -> str:
        return f"udp:127.0.0.1:{self.port}"

    def trap_v1(self, community: str, generic: int, *varbinds: str) -> None:
        done = self.run(
            "snmptrap", "-v", "1", "-c", community, self.target,
            "1.3.6.1.4.1.8072.3.2.10", "127.0.0.1", str(generic), "0", "", *varbinds,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def trap_v2c(self, community: str, trap_oid: str, *varbinds: str) -> None:
        done = self.run(
            "snmptrap", "-v", "2c", "-c", community, self.target, "", trap_oid, *varbinds
        )
        assert done.returncode == 0, done.stderr

    def inform_v2c(
        self, community: str, trap_oid: str, *varbinds: str, retries: int = 2
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "snmpinform", "-v", "2c", "-c", community, "-t", "2", "-r", str(retries),
            self.target, "", trap_oid, *varbinds,
        )  # fmt: skip

    def v3(
        self, tool: str, security: list[str], trap_oid: str, *varbinds: str
    ) -> subprocess.CompletedProcess[str]:
        timing = ["-t", "2", "-r", "2"] if tool == "snmpinform" else []
        return self.run(tool, "-v", "3", *security, *timing, self.target, "", trap_oid, *varbinds)


async def pysnmp_v3_trap(
    port: int,
    engine_id: str,
    user: str,
    auth_key: str,
    priv_key: str,
    if_index: int,
) -> None:
    """A v3 authPriv linkDown from pysnmp (SHA-512, AES-256), from engine ``engine_id``."""
    with warnings.catch_warnings():
        # pysnmp leaves the engine-boots file it reads for a given engine id unclosed.
        warnings.simplefilter("ignore", ResourceWarning)
        sender = SnmpEngine(snmpEngineID=OctetString(hexValue=engine_id))
        gc.collect()
    try:
        error, *_ = await send_notification(
            sender,
            UsmUserData(
                user,
                auth_key,
                priv_key,
                authProtocol=usmHMAC384SHA512AuthProtocol,
                privProtocol=usmAesCfb256Protocol,
            ),
            await UdpTransportTarget.create(("127.0.0.1", port)),
            ContextData(),
            "trap",
            NotificationType(ObjectIdentity(LINK_DOWN)).add_varbinds(
                (f"{IF_INDEX}.{if_index}", Integer32(if_index)),
                (f"{IF_OPER_STATUS}.{if_index}", Integer32(2)),
            ),
        )
        assert error is None, error
        await asyncio.sleep(0.2)  # the datagram leaves from the engine's loop
    finally:
        sender.close_dispatcher()


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page, by name and label set."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None or line.startswith("#"):
            continue
        labels = frozenset(_LABEL.findall(found.group("labels") or ""))
        samples[(found.group("name"), labels)] = float(found.group("value"))
    return samples


def rejected(port: int, reason: str) -> float:
    key = frozenset({("source", "snmp"), ("outcome", "rejected"), ("reason", reason)})
    return scrape(port).get(("ticketing_events_ingested_total", key), 0.0)
