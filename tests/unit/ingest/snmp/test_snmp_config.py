"""The SNMP channel's files and kernel counters: device directory, v3 users, UDP drops."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.contract import NotificationPdu, SecurityLevel, SnmpVersion
from engine.ingest.snmp.devices import DeviceDirectoryError, load_devices
from engine.ingest.snmp.receiver import ReceiverPolicy
from engine.ingest.snmp.trap_event import Notification
from engine.ingest.snmp.udp_stats import rcvbuf_errors, socket_drops
from engine.ingest.snmp.users import SnmpUsersError, load_users
from tests.integration.harness import PROJECT_ROOT
from tests.unit.ingest.snmp.trap_samples import COLD_START, notification


def test_the_example_device_directory_loads() -> None:
    devices = load_devices(PROJECT_ROOT / "deploy" / "devices.example.yaml")

    pbx = devices.lookup("192.0.2.10")
    assert pbx is not None and (pbx.name, pbx.role, pbx.customer_id) == ("pbx-mty-1", "pbx", "acme")
    assert devices.lookup("203.0.113.250") is None
    assert devices.lookup("not an address") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("devices: [{address: 300.1.1.1, name: x}]", "devices[0]: address"),
        ("devices: [{address: 10.0.0.0/33, name: x}]", "devices[0]: address"),
        ("devices: [{address: 10.0.0.1, name: x, timezone: Mars/Olympus}]", "time zone"),
        ("devices: [{address: 10.0.0.1, name: x, colour: red}]", "devices[0]: colour"),
        ("devices: [{address: 10.0.0.1}]", "devices[0]: name"),
        ("devices: [{address: 10.0.0.1, name: a}, {address: 10.0.0.1, name: b}]", "claimed"),
        ("things: []", "expected 'devices:'"),
    ],
)
def test_a_bad_device_directory_names_entry_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(text)

    with pytest.raises(DeviceDirectoryError, match=re.escape(message)):
        load_devices(path)


USERS = """
users:
  - {name: nms, auth: SHA256, auth_key: authpass123, priv: AES, priv_key: privpass123,
     engine_ids: ["0x8000000001020304"]}
  - {name: old, auth: SHA, auth_key: authpass123}
"""


def test_v3_users_load_with_their_level(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(USERS)

    nms, old = load_users(path)

    assert nms.level is SecurityLevel.AUTH_PRIV and nms.engine_ids == ("8000000001020304",)
    assert old.level is SecurityLevel.AUTH_NO_PRIV
    assert "authpass123" not in repr(nms)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{name: a, auth: MD5, auth_key: authpass123}", "auth"),
        ("{name: a, auth: SHA, auth_key: short}", "auth_key"),
        ("{name: a, auth: SHA, auth_key: authpass123, priv: AES}", "priv and priv_key"),
        ("{name: a, auth: SHA, auth_key: authpass123, priv: DES, priv_key: privpass1}", "priv"),
        ("{name: a, auth: SHA, auth_key: authpass123, engine_ids: [xyz]}", "not hexadecimal"),
        ("{name: a, auth: SHA, auth_key: authpass123, engine_ids: ['0102']}", "5 to 32"),
    ],
)
def test_bad_v3_users_are_refused_at_start(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(f"users: [{row}]")

    with pytest.raises(SnmpUsersError, match=message):
        load_users(path)


def test_policy_refuses_below_the_users_level_and_non_authpriv_in_authpriv_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(USERS)
    users = load_users(path)
    v2 = notification(COLD_START)
    v3 = {**v2.__dict__, "version": SnmpVersion.V3, "pdu": NotificationPdu.TRAP}

    def at(level: SecurityLevel, name: str) -> Notification:
        return Notification(**{**v3, "security_level": level, "security_name": name})

    open_policy = ReceiverPolicy(("public",), users)
    strict = ReceiverPolicy(("public",), users, auth_priv_only=True)
    assert open_policy.refusal(v2) is None
    assert open_policy.refusal(at(SecurityLevel.AUTH_PRIV, "nms")) is None
    assert open_policy.refusal(at(SecurityLevel.AUTH_NO_PRIV, "nms")) == "security_level_too_low"
    assert open_policy.refusal(at(SecurityLevel.AUTH_NO_PRIV, "old")) is None
    assert strict.refusal(v2) == "auth_priv_required"
    assert strict.refusal(at(SecurityLevel.AUTH_NO_PRIV, "old")) == "auth_priv_required"
    assert strict.refusal(at(SecurityLevel.AUTH_PRIV, "nms")) is None


PROC_NET_SNMP = """Ip: Forwarding DefaultTTL
Ip: 1 64
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors
Udp: 288 0 12 290 12 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors
UdpLite: 0 0 0 0 0 0 0
"""
PROC_NET_UDP = "\n".join(
    [
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode ref pointer drops",
        " 5216: 0100007F:048A 00000000:0000 07 00000000:00000000 00:00000000 00000000     0  "
        "      0 185526 2 000000000f2dec3e 17",
        " 5217: 0100007F:A448 00000000:0000 07 00000000:00000000 00:00000000 00000000     0  "
        "      0 185527 2 000000000f2dec3f 0",
    ]
)


def test_kernel_drop_counters_are_read() -> None:
    assert rcvbuf_errors(PROC_NET_SNMP) == 12
    assert rcvbuf_errors("Ip: Forwarding\nIp: 1\n") is None
    assert socket_drops(PROC_NET_UDP, 1162) == 17
    assert socket_drops(PROC_NET_UDP, 42056) == 0
    assert socket_drops(PROC_NET_UDP, 9999) is None
