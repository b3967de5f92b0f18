"""Runs a program with the system calls its systemd unit allows, where PID 1 is not systemd:
``NoNewPrivileges=yes`` and the unit's ``SystemCallFilter=`` lines (groups expanded by
``systemd-analyze syscall-filter``), any other call failing with the unit's
``SystemCallErrorNumber=``, installed through libseccomp as systemd installs them.

    python -m tests.integration.confined UNIT_FILE PROGRAM [ARGUMENT...]
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import subprocess
import sys
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


def unit_filter(unit: Path) -> tuple[set[str], int]:
    """The allowed system calls of a unit's [Service] section, and the errno of the others.
    Like systemd: the first line, without ``~``, starts an allow list; a later line adds
    to it, or with ``~`` takes away from it."""
    allowed: set[str] = set()
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
        if key != "SystemCallFilter":
            continue
        removing = value.startswith("~")
        calls = set().union(*(syscall_group(word) for word in value.removeprefix("~").split()))
        if removing:
            allowed -= calls
        else:
            allowed |= calls
    assert allowed, f"{unit}: no SystemCallFilter= allow list"
    return allowed, error


def confine(allowed: set[str], error: int) -> int:
    """Install the filter on this process (and what it executes); the calls allowed."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    seccomp = ctypes.CDLL("libseccomp.so.2")  # systemd's own dependency
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    seccomp.seccomp_rule_add.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
    ]  # fmt: skip
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    context = seccomp.seccomp_init(SCMP_ACT_ERRNO | error)
    added = 0
    for name in sorted(allowed):
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number >= 0:  # a call of another architecture
            added += seccomp.seccomp_rule_add(context, SCMP_ACT_ALLOW, number, 0) == 0
    if seccomp.seccomp_load(context) != 0:
        raise OSError("seccomp_load refused the filter")
    return added


def main() -> None:
    unit, program, *arguments = sys.argv[1:]
    added = confine(*unit_filter(Path(unit)))
    print(f"confined as {Path(unit).name}: {added} system calls allowed", flush=True)
    os.execv(program, [program, *arguments])


if __name__ == "__main__":
    main()
