"""The kernel's UDP drop counters, so a trap flood's losses are never silent.

``/proc/net/snmp`` has the host-wide ``Udp: RcvbufErrors`` (datagrams dropped because a
socket's receive buffer was full); ``/proc/net/udp`` (and ``udp6``) the ``drops`` of
each socket, found by its local port.
"""

from __future__ import annotations

from pathlib import Path

PROC_NET_SNMP = Path("/proc/net/snmp")
PROC_NET_UDP = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


def rcvbuf_errors(proc_net_snmp: str) -> int | None:
    """``Udp: RcvbufErrors`` from the text of /proc/net/snmp; None when absent."""
    rows = [line.split()[1:] for line in proc_net_snmp.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2 or "RcvbufErrors" not in rows[0]:
        return None
    return int(rows[1][rows[0].index("RcvbufErrors")])


def socket_drops(proc_net_udp: str, local_port: int) -> int | None:
    """The ``drops`` column of the socket bound to ``local_port``; None when not listed."""
    lines = proc_net_udp.splitlines()
    if not lines:
        return None
    header = lines[0].split()
    if "drops" not in header:
        return None
    # The header names "tx_queue rx_queue" and "tr tm->when" as two columns each.
    drops_column = len(header) - 3
    wanted = f":{local_port:04X}"
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > drops_column and fields[1].endswith(wanted):
            return int(fields[drops_column])
    return None


def read_rcvbuf_errors() -> int | None:
    try:
        return rcvbuf_errors(PROC_NET_SNMP.read_text())
    except OSError:
        return None


def read_socket_drops(local_port: int) -> int | None:
    found = None
    for path in PROC_NET_UDP:
        try:
            drops = socket_drops(path.read_text(), local_port)
        except OSError:
            continue
        if drops is not None:
            found = (found or 0) + drops
    return found
