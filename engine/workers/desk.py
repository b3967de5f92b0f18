"""The desk: who can take work now, what waits for someone, and who takes what next. Pure.

Fed one record at a time (ticket states, presence changes) and asked for decisions
(``decide``); nothing here touches Kafka, so the tier workers, the API's ``GET /queues`` and
the tests share it.

- A ticket is **open** until resolved, whatever it waits on (the customer, a third party):
  it keeps its assignee and counts in their load.
- A ticket **waits** while it is open (not resolved) and nobody has it. Waiting tickets sit
  in heaps keyed by what they need (tier, language, skills), ordered by priority, then age:
  a P1 overtakes every P4.
- An agent is **able** when present (signed in; or, without a word from them, in their
  working hours or on call) and under capacity. Load counts the open tickets they have,
  including assignments decided but not yet applied by the processor (``pending``).
- **Who takes a ticket**: an able agent of its tier, with the skills its category asks,
  speaking the customer's language; the least loaded, then the longest without a new
  ticket, then by id. Every decision says why, and who was passed over and why.
- **Acceptance**: an assignee has the priority's time to accept (the escalation matrix).
  Not accepted by then, the ticket goes to the next best agent (``Lapse``, told to the
  escalation matrix as ``not_accepted``); an agent who goes away or signs out gives back
  what they had not accepted, to the next best agent or to the queue (``Release``).
- Invariant: no waiting ticket has an able agent who could take it. So a new ticket looks
  for an agent; an agent who becomes able looks for the best waiting ticket they can take;
  the cost of a decision depends on the kinds of tickets (buckets), not on how many wait.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from engine.contract import Presence, Priority, Standing, TicketState, TicketStatus, Tier
from engine.contract.escalation import Handover
from engine.workers.agents import Agent, AgentsDirectory
from engine.workers.escalation import AcceptanceTime

PENDING_FOR = timedelta(seconds=60)
PASSED_OVER_NAMED = 8

Bucket = tuple[Tier, str, frozenset[str]]  # tier, language ("" for any), skills
# -severity, opened (POSIX seconds: numbers compare faster than datetimes in a large heap),
# ticket id
Rank = tuple[int, float, str]


@dataclass(frozen=True)
class Assignment:
    ticket_id: str
    agent_id: str
    tier: Tier
    priority: Priority
    state_version: int  # the ticket state's event_count the decision read
    waited: timedelta
    explanation: tuple[str, ...]
    previous: str | None = None  # the assignee it is taken from
    handover: Handover = Handover.NEW


@dataclass(frozen=True)
class Release:
    """A ticket given back to the queue: its assignee left before accepting it and nobody
    else can take it now."""

    ticket_id: str
    agent_id: str
    state_version: int
    explanation: tuple[str, ...]


@dataclass(frozen=True)
class Lapse:
    """An assignee who did not accept in time: for the escalation matrix."""

    state: TicketState
    agent_id: str
    deadline: datetime
    acceptance: str  # the matrix's words: "15 minutes"
    reassigned_to: str | None


@dataclass(frozen=True)
class Acceptance:
    priority: Priority
    seconds: float


Decision = Assignment | Release


@dataclass
class _Ticket:
    state: TicketState
    bucket: Bucket
    rank: Rank
    pending: str | None = None
    current: bool = True  # False once a newer state of the ticket replaced this one

    @property
    def owner(self) -> str | None:
        return self.pending or self.state.assignee

    @property
    def is_open(self) -> bool:
        return self.state.status is not TicketStatus.RESOLVED


@dataclass
class TierQueue:
    """What ``GET /queues`` and the metrics show of one tier."""

    waiting: dict[Priority, int]
    oldest_waiting_seconds: float
    assigned: int
    waiting_on_third_party: int
    agent_ids: tuple[str, ...]


def _still_pending(old: _Ticket | None, state: TicketState) -> bool:
    """A decided assignment the new state does not show yet, and can still apply."""
    return (
        old is not None
        and old.pending is not None
        and state.assignee == old.state.assignee
        and state.accepted_at is None
    )


def _bucket_of(state: TicketState) -> Bucket:
    language = (state.customer.language or "") if state.customer is not None else ""
    return state.tier, language, frozenset(state.skills)


def _rank_of(state: TicketState) -> Rank:
    return -state.priority.severity, state.opened_at.timestamp(), state.ticket_id


def _opened_at(state: TicketState) -> datetime:
    return state.opened_at


def _can_take(agent: Agent, bucket: Bucket) -> bool:
    tier, language, skills = bucket
    return (
        tier in agent.tiers
        and (not language or language in agent.languages)
        and skills <= agent.skills
    )


def _lacks(agent: Agent, bucket: Bucket) -> str | None:
    _, language, skills = bucket
    missing = sorted(skills - agent.skills)
    if missing:
        return f"lacks skill {', '.join(missing)}"
    if language and language not in agent.languages:
        return f"does not speak {language}"
    return None


class Desk:
    def __init__(
        self,
        directory: AgentsDirectory,
        now: datetime,
        acceptance: Mapping[Priority, AcceptanceTime] | None = None,
    ) -> None:
        self.directory = directory
        self._acceptance = acceptance or {}
        # Assignments not accepted yet: (deadline, ticket, assigned at) in a heap, checked
        # against the ticket when due (it may have been accepted or reassigned since).
        self._accept_by: list[tuple[datetime, str, datetime]] = []
        self._awaiting: dict[str, tuple[datetime, datetime]] = {}  # ticket -> assigned, deadline
        self._declined: dict[str, set[str]] = defaultdict(set)  # ticket -> who let it lapse
        self._leaving: set[str] = set()  # agents who went away or signed out
        self._unaccepted: dict[str, set[str]] = defaultdict(set)  # agent -> tickets
        self._lapses: list[Lapse] = []
        self._accepted: list[Acceptance] = []
        self._presence: dict[str, Presence] = {}
        self._tickets: dict[str, _Ticket] = {}
        self._pending: dict[str, datetime] = {}  # ticket -> when its assignment was decided
        self._load: Counter[str] = Counter()
        self._last_assigned: dict[str, datetime] = {}
        self._standing: dict[str, Standing] = {}
        self._able: dict[Tier, set[str]] = defaultdict(set)
        self._tier_standing: dict[Tier, Counter[Standing]] = defaultdict(Counter)
        self._by_tier: dict[Tier, tuple[str, ...]] = {
            tier: tuple(a.id for a in directory.agents.values() if tier in a.tiers) for tier in Tier
        }
        # Entries (rank, push number, ticket): ranks are unique per ticket id, the push
        # number orders the same ticket pushed twice, so tickets are never compared.
        self._heaps: dict[Bucket, list[tuple[Rank, int, _Ticket]]] = {}
        self._pushes = itertools.count()
        self._takers: dict[str, list[Bucket]] = defaultdict(list)  # agent -> buckets they can take
        self._waiting: Counter[tuple[Tier, Priority]] = Counter()
        self._on_third_party: Counter[Tier] = Counter()
        self._new_tickets: set[str] = set()
        self._new_able: set[str] = set()
        self._now = now
        self._at_work: dict[str, bool] = {}
        self._read_the_clock(now)

    # --- what the records say -------------------------------------------------------------

    def apply_ticket(self, state: TicketState) -> None:
        old = self._tickets.get(state.ticket_id)
        if old is not None:
            old.current = False
            self._leave(old)
            if old.state.accepted_at is None and state.accepted_at is not None:
                self._count_acceptance(state)
            self._count_third_party_wait(old.state, -1)
        if state.status is TicketStatus.RESOLVED:
            self._drop(state.ticket_id)
            return
        self._count_third_party_wait(state, +1)
        ticket = _Ticket(state, _bucket_of(state), _rank_of(state))
        if _still_pending(old, state):
            ticket.pending = old.pending if old is not None else None
        else:
            self._pending.pop(state.ticket_id, None)
        self._tickets[state.ticket_id] = ticket
        self._enter(ticket)
        self._await_acceptance(state)

    def forget(self, ticket_id: str) -> None:
        """The ticket's state was deleted: as if it were resolved."""
        old = self._tickets.get(ticket_id)
        if old is not None:
            old.current = False
            self._leave(old)
            self._count_third_party_wait(old.state, -1)
        self._drop(ticket_id)

    def _drop(self, ticket_id: str) -> None:
        self._tickets.pop(ticket_id, None)
        self._pending.pop(ticket_id, None)
        self._awaiting.pop(ticket_id, None)
        self._declined.pop(ticket_id, None)

    def _await_acceptance(self, state: TicketState) -> None:
        assignee, assigned_at = state.assignee, state.assigned_at
        if assignee is None or assigned_at is None or state.accepted_at is not None:
            self._awaiting.pop(state.ticket_id, None)
            return
        acceptance = self._acceptance.get(state.priority)
        if acceptance is None or assignee not in self.directory.agents:
            return
        known = self._awaiting.get(state.ticket_id)
        if known is not None and known[0] == assigned_at:
            return
        deadline = acceptance.deadline(assigned_at, self.directory.working_hours(assignee))
        self._awaiting[state.ticket_id] = (assigned_at, deadline)
        heapq.heappush(self._accept_by, (deadline, state.ticket_id, assigned_at))

    def _count_acceptance(self, state: TicketState) -> None:
        if state.assigned_at is not None and state.accepted_at is not None:
            seconds = (state.accepted_at - state.assigned_at).total_seconds()
            self._accepted.append(Acceptance(state.priority, max(0.0, seconds)))

    def apply_presence(self, agent_id: str, presence: Presence) -> None:
        if agent_id not in self.directory.agents:
            return
        self._presence[agent_id] = presence
        self._restand(agent_id)
        if presence in (Presence.AWAY, Presence.SIGNED_OUT):
            self._leaving.add(agent_id)

    def forget_presence(self, agent_id: str) -> None:
        """The agent's presence was deleted: without a word from them again."""
        if self._presence.pop(agent_id, None) is not None:
            self._restand(agent_id)

    def tick(self, now: datetime) -> None:
        """Time moved: working hours and on-call rotas may have turned; assignments the
        processor never applied are given up, so their tickets wait again."""
        self._now = now
        expired = [t for t, since in self._pending.items() if now - since > PENDING_FOR]
        for ticket_id in expired:
            del self._pending[ticket_id]
            ticket = self._tickets[ticket_id]
            self._leave(ticket)
            ticket.pending = None
            self._enter(ticket)
        self._read_the_clock(now)

    def _read_the_clock(self, now: datetime) -> None:
        """Who is in their working hours or on call: it changes only as time passes."""
        for agent_id in self.directory.agents:
            self._at_work[agent_id] = self.directory.in_working_hours(
                agent_id, now
            ) or self.directory.is_on_call(agent_id, now)
            self._restand(agent_id)

    # --- decisions --------------------------------------------------------------------------

    def decide(self, now: datetime) -> list[Decision]:
        """Decisions for what changed since the last call: tickets not accepted in time and
        tickets their assignee left, then new tickets in priority order, then agents who
        became able, least loaded first."""
        self._now = now
        decided: list[Decision] = [*self._lapsed(now), *self._given_back()]
        for ticket_id in sorted(self._new_tickets, key=self._rank_or_last):
            ticket = self._tickets.get(ticket_id)
            if ticket is not None and ticket.is_open and ticket.owner is None:
                agent = self._best_agent(ticket.bucket)
                if agent is not None:
                    decided.append(self._assign(ticket, agent))
        self._new_tickets.clear()
        while self._new_able:
            agent_id = min(self._new_able, key=self._preference)
            self._new_able.discard(agent_id)
            while self._standing[agent_id] is Standing.ABLE:
                ticket = self._best_waiting(agent_id)
                if ticket is None:
                    break
                decided.append(self._assign(ticket, agent_id))
        return decided

    def _lapsed(self, now: datetime) -> list[Assignment]:
        decided: list[Assignment] = []
        while self._accept_by and self._accept_by[0][0] <= now:
            deadline, ticket_id, assigned_at = heapq.heappop(self._accept_by)
            if self._awaiting.get(ticket_id) != (assigned_at, deadline):
                continue  # accepted, reassigned or resolved since
            del self._awaiting[ticket_id]
            ticket = self._tickets[ticket_id]
            agent_id = ticket.state.assignee
            if agent_id is None or ticket.pending is not None:
                continue
            self._declined[ticket_id].add(agent_id)
            acceptance = self._acceptance[ticket.state.priority].text
            why = f"not accepted by {agent_id} within {acceptance} (due {deadline:%Y-%m-%d %H:%M}Z)"
            taken = self._hand_over(ticket, agent_id, Handover.NOT_ACCEPTED, why)
            if taken is not None:
                decided.append(taken)
            self._lapses.append(
                Lapse(
                    ticket.state, agent_id, deadline, acceptance, taken.agent_id if taken else None
                )
            )
        return decided

    def _given_back(self) -> list[Decision]:
        decided: list[Decision] = []
        leaving, self._leaving = self._leaving, set()
        for agent_id in sorted(leaving):
            if self._standing[agent_id] not in (Standing.AWAY, Standing.SIGNED_OUT):
                continue
            held = [self._tickets[ticket_id] for ticket_id in self._unaccepted[agent_id]]
            for ticket in sorted(held, key=lambda t: t.rank):
                why = f"{agent_id} is {self._standing[agent_id].value} and had not accepted it"
                taken = self._hand_over(ticket, agent_id, Handover.GIVEN_BACK, why)
                if taken is not None:
                    decided.append(taken)
                    continue
                self._awaiting.pop(ticket.state.ticket_id, None)
                gone = (
                    f"given back to the {ticket.state.tier} queue: {why}; nobody else can take it"
                )
                decided.append(
                    Release(ticket.state.ticket_id, agent_id, ticket.state.event_count, (gone,))
                )
        return decided

    def _hand_over(
        self, ticket: _Ticket, agent_id: str, handover: Handover, why: str
    ) -> Assignment | None:
        excluded = self._declined[ticket.state.ticket_id] | {agent_id}
        successor = self._best_agent(ticket.bucket, excluded)
        if successor is None:
            return None
        assignment = self._assign(ticket, successor, excluded)
        return replace(
            assignment,
            previous=agent_id,
            handover=handover,
            explanation=(why, *assignment.explanation),
        )

    def take_lapses(self) -> list[Lapse]:
        """The lapses decided since the last call, for the escalation matrix."""
        lapses, self._lapses = self._lapses, []
        return lapses

    def take_acceptances(self) -> list[Acceptance]:
        """Acceptances read since the last call (time to accept, for the metrics)."""
        accepted, self._accepted = self._accepted, []
        return accepted

    def _rank_or_last(self, ticket_id: str) -> Rank:
        ticket = self._tickets.get(ticket_id)
        return ticket.rank if ticket is not None else (9, float("inf"), ticket_id)

    def _preference(self, agent_id: str) -> tuple[int, datetime, str]:
        return (
            self._load[agent_id],
            self._last_assigned.get(agent_id, datetime.min.replace(tzinfo=self._now.tzinfo)),
            agent_id,
        )

    def _best_agent(
        self, bucket: Bucket, excluded: frozenset[str] | set[str] = frozenset()
    ) -> str | None:
        takers = [
            agent_id
            for agent_id in self._able[bucket[0]]
            if agent_id not in excluded and _can_take(self.directory.agents[agent_id], bucket)
        ]
        return min(takers, key=self._preference) if takers else None

    def _best_waiting(self, agent_id: str) -> _Ticket | None:
        best: _Ticket | None = None
        for bucket in self._takers[agent_id]:
            heap = self._heaps.get(bucket)
            head = self._head(heap) if heap else None
            if head is not None and (best is None or head.rank < best.rank):
                best = head
        return best

    def _head(self, heap: list[tuple[Rank, int, _Ticket]]) -> _Ticket | None:
        while heap:
            ticket = heap[0][2]
            if ticket.current and ticket.owner is None:
                return ticket
            heapq.heappop(heap)  # stale: taken, resolved or replaced since it was pushed
        return None

    def _assign(
        self, ticket: _Ticket, agent_id: str, excluded: frozenset[str] | set[str] = frozenset()
    ) -> Assignment:
        explanation = self._explain(ticket, agent_id, excluded)
        self._leave(ticket)
        ticket.pending = agent_id
        self._pending[ticket.state.ticket_id] = self._now
        self._enter(ticket)
        self._last_assigned[agent_id] = self._now
        state = ticket.state
        return Assignment(
            ticket_id=state.ticket_id,
            agent_id=agent_id,
            tier=state.tier,
            priority=state.priority,
            state_version=state.event_count,
            waited=max(timedelta(0), self._now - state.opened_at),
            explanation=explanation,
        )

    def _explain(
        self, ticket: _Ticket, chosen: str, excluded: frozenset[str] | set[str]
    ) -> tuple[str, ...]:
        tier, language, skills = ticket.bucket
        agent = self.directory.agents[chosen]
        why = [f"{tier}"]
        if skills:
            why.append(f"skills {', '.join(sorted(skills))}")
        if language:
            why.append(f"speaks {language}")
        why.append(f"load {self._load[chosen]}/{agent.capacity}")
        lines = [f"assigned to {chosen} ({agent.name}): {', '.join(why)}"]
        named = list(
            itertools.islice((a for a in self._by_tier[tier] if a != chosen), PASSED_OVER_NAMED)
        )
        passed = [
            f"{agent_id} ("
            + (
                "did not accept it in time"
                if agent_id in excluded
                else self._passed_because(agent_id, chosen, ticket)
            )
            + ")"
            for agent_id in named
        ]
        # The rest are counted by standing (kept as they change), so a decision costs the
        # same with 10 agents in a tier as with 1,000.
        rest = Counter(self._tier_standing[tier])
        rest[Standing.ABLE] -= 1  # the chosen one
        rest.subtract(self._standing[agent_id] for agent_id in named)
        if passed:
            more = ", ".join(f"{n} {standing.value}" for standing, n in rest.items() if n > 0)
            lines.append(f"passed over: {', '.join(passed)}" + (f"; and {more}" if more else ""))
        return tuple(lines)

    def _passed_because(self, agent_id: str, chosen: str, ticket: _Ticket) -> str:
        other = self.directory.agents[agent_id]
        standing = self._standing[agent_id]
        if standing is Standing.ABLE:
            return _lacks(other, ticket.bucket) or self._behind(agent_id, chosen)
        if standing is Standing.AT_CAPACITY:
            return f"at capacity ({self._load[agent_id]}/{other.capacity})"
        return standing.value

    def _behind(self, agent_id: str, chosen: str) -> str:
        """Why an able, qualified agent came after the chosen one."""
        load, capacity = self._load[agent_id], self.directory.agents[agent_id].capacity
        if load > self._load[chosen]:
            return f"more loaded ({load}/{capacity})"
        if self._preference(agent_id)[1] > self._preference(chosen)[1]:
            return f"had a new ticket more recently ({load}/{capacity})"
        return f"as loaded and as idle ({load}/{capacity}); taken in id order"

    # --- bookkeeping ------------------------------------------------------------------------

    def _enter(self, ticket: _Ticket) -> None:
        owner = ticket.owner
        if owner is None:
            self._waiting[(ticket.state.tier, ticket.state.priority)] += 1
            self._push(ticket)
            self._new_tickets.add(ticket.state.ticket_id)
        elif owner in self.directory.agents:
            self._load[owner] += 1
            if ticket.state.accepted_at is None:
                self._unaccepted[owner].add(ticket.state.ticket_id)
            self._restand(owner)

    def _leave(self, ticket: _Ticket) -> None:
        owner = ticket.owner
        if owner is None:
            self._waiting[(ticket.state.tier, ticket.state.priority)] -= 1
        elif owner in self.directory.agents:
            self._load[owner] -= 1
            self._unaccepted[owner].discard(ticket.state.ticket_id)
            self._restand(owner)

    def _count_third_party_wait(self, state: TicketState, by: int) -> None:
        if state.status is TicketStatus.WAITING_ON_THIRD_PARTY:
            self._on_third_party[state.tier] += by

    def _push(self, ticket: _Ticket) -> None:
        heap = self._heaps.get(ticket.bucket)
        if heap is None:
            heap = self._heaps[ticket.bucket] = []
            for agent in self.directory.agents.values():
                if _can_take(agent, ticket.bucket):
                    self._takers[agent.id].append(ticket.bucket)
        heapq.heappush(heap, (ticket.rank, next(self._pushes), ticket))

    def _restand(self, agent_id: str) -> None:
        agent = self.directory.agents[agent_id]
        standing = self._standing_now(agent)
        before = self._standing.get(agent_id)
        if standing is before:
            return
        self._standing[agent_id] = standing
        for tier in agent.tiers:
            if before is not None:
                self._tier_standing[tier][before] -= 1
            self._tier_standing[tier][standing] += 1
            if standing is Standing.ABLE:
                self._able[tier].add(agent_id)
            else:
                self._able[tier].discard(agent_id)
        if standing is Standing.ABLE:
            self._new_able.add(agent_id)

    def _standing_now(self, agent: Agent) -> Standing:
        presence = self._presence.get(agent.id)
        if presence is Presence.AWAY:
            return Standing.AWAY
        if presence is Presence.SIGNED_OUT:
            return Standing.SIGNED_OUT
        if presence is None and not self._at_work[agent.id]:
            return Standing.OFF_HOURS
        if self._load[agent.id] >= agent.capacity:
            return Standing.AT_CAPACITY
        return Standing.ABLE

    # --- what a person asks -----------------------------------------------------------------

    def standing(self, agent_id: str) -> Standing:
        return self._standing[agent_id]

    def load(self, agent_id: str) -> int:
        return self._load[agent_id]

    def state_of(self, ticket_id: str) -> TicketState | None:
        """The open ticket's state as read; None when resolved or unknown."""
        ticket = self._tickets.get(ticket_id)
        return ticket.state if ticket is not None else None

    def owner(self, ticket_id: str) -> str | None:
        ticket = self._tickets.get(ticket_id)
        return ticket.owner if ticket is not None else None

    def waiting(self) -> dict[tuple[Tier, Priority], int]:
        return {key: n for key, n in self._waiting.items() if n}

    def oldest_waiting(self, tier: Tier) -> datetime | None:
        oldest = self.oldest_waiting_ticket(tier)
        return oldest.opened_at if oldest is not None else None

    def oldest_waiting_ticket(self, tier: Tier) -> TicketState | None:
        """The tier's waiting ticket opened first (the heads of its buckets' heaps)."""
        heads = [
            head.state
            for bucket, heap in self._heaps.items()
            if bucket[0] is tier and (head := self._head(heap)) is not None
        ]
        return min(heads, key=_opened_at, default=None)

    def queue(self, tier: Tier, now: datetime) -> TierQueue:
        oldest = self.oldest_waiting(tier)
        return TierQueue(
            waiting={p: self._waiting[(tier, p)] for p in Priority},
            oldest_waiting_seconds=(now - oldest).total_seconds() if oldest else 0.0,
            assigned=sum(
                1 for t in self._tickets.values() if t.state.tier is tier and t.owner is not None
            ),
            waiting_on_third_party=self._on_third_party[tier],
            agent_ids=self._by_tier[tier],
        )

    def tickets_of(self, agent_id: str) -> list[TicketState]:
        return sorted(
            (t.state for t in self._tickets.values() if t.owner == agent_id),
            key=_rank_of,
        )
