"""The device directory: which monitored device (and customer) an SNMP address is.

A YAML file (``ENGINE_SNMP_DEVICES_FILE``, see deploy/devices.example.yaml)::

    devices:
      - address: 192.0.2.10          # one address, or a network: 192.0.2.0/28
        name: pbx-mty-1
        customer: acme               # an id of the customer directory
        role: pbx                    # what rules match on (trap.device_role)
        timezone: America/Monterrey  # the device's local time zone (IANA)

The most specific entry wins (an address before the network that holds it). Loaded and
validated once at start-up; errors name the entry and the field.

A trap may name another address than its sender's (``snmpTrapAddress.0``, a v1 trap's
agent-addr): that claim picks the device only when the sender is an entry with ``role:
forwarder`` (``attribute``); from anyone else it is kept as information, so a forged
linkUp cannot clear another device's alarm.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.contract import Device
from engine.errors import EngineError, describe_validation

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDER_ROLE = "forwarder"


class DeviceDirectoryError(EngineError):
    pass


class DeviceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(description="An IP address or a network in CIDR form")
    name: str = Field(min_length=1)
    customer: str | None = None
    role: str | None = None
    timezone: str | None = None

    @field_validator("address")
    @classmethod
    def _network(cls, value: str) -> str:
        try:
            ipaddress.ip_network(value.strip(), strict=True)
        except ValueError as error:
            raise ValueError(f"not an IP address or network: {value!r} ({error})") from error
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown IANA time zone {value!r}") from error
        return value

    @property
    def network(self) -> IpNetwork:
        return ipaddress.ip_network(self.address)

    def device(self) -> Device:
        return Device(
            name=self.name, role=self.role, customer_id=self.customer, timezone=self.timezone
        )


class DeviceDirectory:
    def __init__(self, entries: Iterable[DeviceEntry]) -> None:
        # Most specific first: longest prefix wins.
        self.entries = tuple(sorted(entries, key=lambda entry: -entry.network.prefixlen))
        seen: dict[str, str] = {}
        for entry in self.entries:
            other = seen.setdefault(str(entry.network), entry.name)
            if other != entry.name:
                raise DeviceDirectoryError(
                    f"{entry.address} is claimed by {other} and {entry.name}"
                )

        self.lookup = functools.lru_cache(maxsize=4096)(self._lookup)

    def _lookup(self, address: str) -> Device | None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for entry in self.entries:
            if ip.version == entry.network.version and ip in entry.network:
                return entry.device()
        return None


EMPTY_DEVICES = DeviceDirectory(())


@dataclass(frozen=True)
class Attribution:
    """Which device a notification is, and what became of the address it claims."""

    device: Device | None
    agent_address: str | None
    """The claimed address, trusted: the sender is a forwarder, or it is the sender's own."""
    claimed_agent_address: str | None = None
    """The claimed address, not trusted: the sender is not a forwarder."""


def attribute(sender: str, claimed: str | None, devices: DeviceDirectory) -> Attribution:
    """The device of a notification from ``sender`` that names ``claimed`` as its agent."""
    senders_device = devices.lookup(sender)
    if claimed is None:
        return Attribution(senders_device, None)
    if claimed == sender:
        return Attribution(senders_device, claimed)
    if senders_device is not None and senders_device.role == FORWARDER_ROLE:
        return Attribution(devices.lookup(claimed) or senders_device, claimed)
    return Attribution(senders_device, None, claimed)


def load_devices(path: Path | None) -> DeviceDirectory:
    if path is None:
        return EMPTY_DEVICES
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise DeviceDirectoryError(f"{path}: cannot read the device directory: {error}") from error
    rows = document.get("devices") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise DeviceDirectoryError(f"{path}: expected 'devices:' with a list")
    entries = []
    for index, row in enumerate(rows):
        try:
            entries.append(DeviceEntry.model_validate(row))
        except ValidationError as error:
            problems = describe_validation(error)
            raise DeviceDirectoryError(f"{path}: devices[{index}]: {problems}") from error
    return DeviceDirectory(entries)
