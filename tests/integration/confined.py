"""Runs a program with the system calls its systemd unit allows, where PID 1 is not systemd:
``NoNewPrivileges=yes``, the unit's ``SystemCallFilter=`` lines (groups expanded by
``systemd-analyze syscall-filter``), any other call failing with the unit's
``SystemCallErrorNumber=``, and sockets of its ``RestrictAddressFamilies=`` only (others
fail with that errno too, where systemd answers EAFNOSUPPORT), installed through libseccomp
as systemd installs them.

    python -m tests.integration.confined UNIT_FILE PROGRAM [ARGUMENT...]
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
PR_SET_NO_NEW_PRIVS = 38


def syscall_group(name: str) -> set[str]:
    """The system calls of a ``@group`` (nested groups expanded), or the one call named."""
    if not name.startswith("@"):
        return {name}
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: run make bootstrap (Debian's systemd)"
    listing = subprocess.run(
        [analyze, "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout
    calls: set[str] = set()
    for line in listing.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            calls |= syscall_group(word)
    return calls


class ArgumentCheck(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


SCMP_CMP_EQ = 4


@dataclass(frozen=True)
class UnitFilter:
    calls: set[str]  # allowed
    families: set[int]  # of the sockets allowed
    error: int  # of what is refused


def unit_filter(unit: Path) -> UnitFilter:
    """What a unit's [Service] section allows. Like systemd: the first SystemCallFilter=
    line, without ``~``, starts an allow list; a later line adds to it, or with ``~`` takes
    away from it."""
    calls: set[str] = set()
    families: set[int] = set()
    error = errno.EPERM
    section = ""
    for raw in unit.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        if section != "[Service]" or "=" not in line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if key == "SystemCallErrorNumber":
            error = getattr(errno, value)
        elif key == "RestrictAddressFamilies":
            families |= {int(socket.AddressFamily[name]) for name in value.split()}
        elif key == "SystemCallFilter":
            named = set().union(*(syscall_group(word) for word in value.removeprefix("~").split()))
            calls = calls - named if value.startswith("~") else calls | named
    assert calls and families, f"{unit}: no SystemCallFilter= or RestrictAddressFamilies="
    return UnitFilter(calls, families, error)


def confine(allowed: UnitFilter) -> int:
    """Install the filter on this process (and what it executes); the calls allowed."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    seccomp = ctypes.CDLL("libseccomp.so.2")  # systemd's own dependency
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    seccomp.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
        ctypes.POINTER(ArgumentCheck),
    ]  # fmt: skip
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    context = seccomp.seccomp_init(SCMP_ACT_ERRNO | allowed.error)

    def allow(name: str, *checks: ArgumentCheck) -> int:
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number < 0:  # a call of another architecture
            return 0
        array = (ArgumentCheck * len(checks))(*checks)
        return int(
            seccomp.seccomp_rule_add_array(context, SCMP_ACT_ALLOW, number, len(checks), array) == 0
        )

    added = sum(allow(name) for name in sorted(allowed.calls - {"socket"}))
    if "socket" in allowed.calls:
        for family in sorted(allowed.families):
            allow("socket", ArgumentCheck(0, SCMP_CMP_EQ, family, 0))
        added += 1
    if seccomp.seccomp_load(context) != 0:
        raise OSError("seccomp_load refused the filter")
    return added


def main() -> None:
    unit, program, *arguments = sys.argv[1:]
    added = confine(unit_filter(Path(unit)))
    print(f"confined as {Path(unit).name}: {added} system calls allowed", flush=True)
    os.execv(program, [program, *arguments])


if __name__ == "__main__":
    main()
