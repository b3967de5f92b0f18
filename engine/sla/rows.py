"""What the SLA worker does with a ticket's row in its table after a state record.

A row holds what the worker needs to time an obligation and to number the next one. A
resolved ticket owes no update, so its row is deleted (a tombstone on the compacted
``sla.clocks.v1``): the table and its changelog hold the open and waiting tickets, not
every ticket ever opened. Reopened, the ticket gets a fresh row, numbered from its event
count (``facts.counted_rearmings``) so no alert key of its earlier life comes back.
"""

from __future__ import annotations

from enum import StrEnum

from engine.contract import SlaFacts, TicketStatus


class RowChange(StrEnum):
    KEEP = "keep"
    WRITE = "write"
    DELETE = "delete"


def row_change(stored: SlaFacts | None, facts: SlaFacts, armed: bool) -> RowChange:
    """``stored``: the facts of the row the worker holds (None: no row); ``armed``: the
    state leaves an obligation to time. A paused wait keeps its row (its facts say when
    the cadence restarts); only a resolution, which owes nothing, deletes it."""
    if facts.status is TicketStatus.RESOLVED and not armed:
        return RowChange.KEEP if stored is None else RowChange.DELETE
    if stored == facts:
        return RowChange.KEEP
    return RowChange.WRITE
