"""Storm folding: consecutive notifications of one alarm become one ticket event.

A device that floods the receiver with the same alarm (a flapping port, a link down on
every interface) would otherwise cost the processor one triage and one ticket state per
trap. The receiver keeps every notification as received (``snmp.traps.v1``) and hands
:class:`StormFolder` the ``trap.received`` events meant for the tickets:

- the first event of an alarm goes out at once: a new alarm opens its ticket without delay;
- further events of that alarm and the same transition within ``window`` seconds of what
  was last sent for it are folded into one event, sent when the window ends, that counts
  them (``occurrences``) and says when the first of them arrived;
- an event whose transition differs from the alarm's last (the link came back up) closes
  the fold before it, if any, and goes out at once, so raise/clear order and flapping stay
  exact and a clearing is never held back.

Pure: the caller passes the time (monotonic seconds) and publishes what comes back, in
that order. Decision 53 says why folding happens here and not in the processor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from engine.contract import AlarmTransition, TrapReceived
from engine.contract.identity import event_id

Member = TypeVar("Member")


@dataclass
class Fold(Generic[Member]):
    """Consecutive events of one alarm and transition, with what the caller attached to
    each (the receiver: what it must answer once the fold is on Kafka)."""

    events: list[TrapReceived]
    members: list[Member]
    due: float = 0.0

    @property
    def occurrences(self) -> int:
        return len(self.events)

    def event(self) -> TrapReceived:
        """The ticket event for the fold: one event alone is itself; several are the last
        one, counting them all, under an id derived from the first and the last."""
        first, last = self.events[0], self.events[-1]
        if len(self.events) == 1:
            return first
        data = last.data.model_copy(
            update={"occurrences": len(self.events), "first_received_at": first.occurred_at}
        )
        folded_id = event_id("trap.folded", f"{first.event_id}|{last.event_id}|{len(self.events)}")
        return last.model_copy(update={"event_id": folded_id, "data": data})


@dataclass
class StormFolder(Generic[Member]):
    """Folds consecutive events per alarm (ticket) within ``window`` seconds."""

    window: float
    _open: dict[str, Fold[Member]] = field(default_factory=dict)
    _last_sent: dict[str, tuple[float, AlarmTransition]] = field(default_factory=dict)
    """Per alarm lately sent: until when it folds, and the transition sent last."""

    @property
    def open_folds(self) -> int:
        return len(self._open)

    def add(self, event: TrapReceived, member: Member, now: float) -> list[Fold[Member]]:
        """Take one event; the folds to send now, in order."""
        key = event.data.ticket_id
        transition = event.data.transition
        current = self._open.get(key)
        if current is not None:
            if current.events[-1].data.transition is transition:
                current.events.append(event)
                current.members.append(member)
                return []
            del self._open[key]
            return [current, self._sent(Fold([event], [member]), now)]
        quiet_until, last = self._last_sent.get(key, (now, transition))
        if self.window > 0 and now < quiet_until and last is transition:
            self._open[key] = Fold([event], [member], due=quiet_until)
            return []
        return [self._sent(Fold([event], [member]), now)]

    def _sent(self, fold: Fold[Member], now: float) -> Fold[Member]:
        last = fold.events[-1].data
        self._last_sent[last.ticket_id] = (now + self.window, last.transition)
        return fold

    def due(self, now: float) -> list[Fold[Member]]:
        """The folds whose window has ended; their alarms fold again for one more window."""
        ready = [self._sent(fold, now) for fold in self._open.values() if fold.due <= now]
        for fold in ready:
            del self._open[fold.events[0].data.ticket_id]
        quiet = [key for key, (until, _) in self._last_sent.items() if until <= now]
        for key in quiet:
            if key not in self._open:
                del self._last_sent[key]
        return ready

    def next_due(self) -> float | None:
        """When the earliest open fold is due, or None when none is open."""
        return min((fold.due for fold in self._open.values()), default=None)

    def drain(self) -> list[Fold[Member]]:
        """Every open fold, now (the receiver is stopping)."""
        ready = list(self._open.values())
        self._open.clear()
        self._last_sent.clear()
        return ready
