"""Group members named after their process, so that a process seen dying can be taken out of
its groups at once.

A member that dies without leaving its group (SIGKILL, a crash, ``os._exit``) keeps its
partitions until its session times out (``GROUP_SESSION_TIMEOUT_SECONDS``), and nothing of
them is processed meanwhile. Every group member of the engine names its Kafka client after
its component, host and process id (``member_client_id``); the coordinator makes the
member id from it. ``engine up``, which sees a component die the moment it does, then asks
the coordinator to remove that process's members (``end_memberships_of``, LeaveGroup v3 on
the dead member's behalf), and the group rebalances at once.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka.admin import MemberToRemove
from kafka.errors import NoError

from engine.kafka.admin import admin_client

log = logging.getLogger(__name__)

# How long the supervisor's requests may take: it is a shortcut, the session still ends
# the membership if they fail.
END_MEMBERSHIPS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class GroupMember:
    group: str
    member_id: str
    client_id: str


def _host_part(host: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", host)


def member_client_id(name: str, host: str | None = None, pid: int | None = None) -> str:
    """The Kafka client id of this process's members of ``name``'s group:
    ``<name>-<host>-<pid>``."""
    host_part = _host_part(host if host is not None else socket.gethostname())
    return f"{name}-{host_part}-{pid if pid is not None else os.getpid()}"


def members_of_process(members: Iterable[GroupMember], host: str, pid: int) -> list[GroupMember]:
    """The members whose client ``member_client_id`` named for process ``pid`` on ``host``."""
    suffix = f"-{_host_part(host)}-{pid}"
    return [member for member in members if member.client_id.endswith(suffix)]


def described_members(described: Mapping[str, Mapping[str, Any]]) -> list[GroupMember]:
    """The members of kafka-python's ``describe_groups`` answer, group by group."""
    return [
        GroupMember(group, str(member["member_id"]), str(member.get("client_id") or ""))
        for group, description in described.items()
        for member in description.get("members") or ()
    ]


def end_memberships_of(bootstrap: str, pid: int, host: str | None = None) -> list[GroupMember]:
    """Remove from every group of the cluster the members of process ``pid`` on ``host``
    (this host by default); return the members removed. Raises ``KafkaError`` or
    ``ProvisioningError`` when the cluster cannot be asked (the sessions end the
    memberships anyway)."""
    host = host if host is not None else socket.gethostname()
    timeout = END_MEMBERSHIPS_TIMEOUT_SECONDS
    with admin_client(bootstrap, timeout, bootstrap_timeout_seconds=timeout) as admin:
        groups = [str(group["group_id"]) for group in admin.list_groups()]
        if not groups:
            return []
        gone = members_of_process(described_members(admin.describe_groups(groups)), host, pid)
        removed = []
        for member in gone:
            answer = admin.remove_group_members(
                member.group, [MemberToRemove(member_id=member.member_id, reason="process died")]
            )
            errors = [error for error in answer.values() if error is not NoError]
            if errors:
                log.info("%s: member %s not removed: %s", member.group, member.member_id, errors)
            else:
                removed.append(member)
        return removed
