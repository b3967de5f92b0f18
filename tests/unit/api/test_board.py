"""The wallboard's board: what it keeps as ticket states arrive, without a clock or Kafka."""

from __future__ import annotations

from datetime import timedelta

from engine.api.board import Board, Inflow
from engine.api.contract import SlaState
from engine.contract import Channel, TicketStatus, Tier
from tests.unit.api.api_support import T0, ticket

OK = SlaState(state="ok")


def test_inflow_counts_the_last_hour_per_channel() -> None:
    inflow = Inflow()
    inflow.add(Channel.EMAIL, T0 - timedelta(minutes=70))  # read from the history: too old
    inflow.add(Channel.EMAIL, T0 - timedelta(minutes=59))
    inflow.add(Channel.SNMP, T0)
    inflow.add(Channel.SNMP, T0)

    assert inflow.last_hour(T0) == {"email": 1, "snmp": 2, "chat": 0, "phone": 0}
    assert inflow.last_hour(T0 + timedelta(minutes=2))[Channel.EMAIL] == 0  # the hour moved on


def test_the_oldest_waiting_ticket_survives_tickets_taken_around_it() -> None:
    board = Board()
    told: list[str] = []
    board.listeners.append(lambda: told.append("changed"))
    for n in range(200):
        board.apply(ticket(f"T-{n:013d}", opened_at=T0 + timedelta(seconds=n)), OK, True)
    for n in range(1, 200):  # all taken but the first, many times the heap's live entries
        taken = ticket(f"T-{n:013d}", opened_at=T0 + timedelta(seconds=n), assignee="ana")
        board.apply(taken, OK, False)

    oldest = board.oldest_waiting(Tier.L1)
    assert oldest is not None and oldest.ticket_id == f"T-{0:013d}"
    assert board.waiting(Tier.L1) == 1 and len(told) == 399

    board.apply(ticket(f"T-{0:013d}", status=TicketStatus.RESOLVED), OK, False)
    assert board.oldest_waiting(Tier.L1) is None and board.waiting(Tier.L1) == 0
    moved = ticket(f"T-{5:013d}", opened_at=T0 + timedelta(seconds=5), tier=Tier.L2)
    board.apply(moved, OK, False)  # given back to the queue, on another tier
    assert board.oldest_waiting(Tier.L2) == moved and board.oldest_waiting(Tier.L1) is None
