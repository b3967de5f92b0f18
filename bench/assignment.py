"""Assignment decisions per second, small desk against a large one, in one run.

A decision cycle, as the tier workers see a busy desk: every agent is at capacity and
tickets wait; one assigned ticket is resolved (a slot frees), one new ticket arrives, and
the desk decides (the freed agent takes the best waiting ticket they can), and the
processor's state confirming the assignment is applied (with the time it was assigned: the
desk then keeps its acceptance deadline, by the shipped escalation matrix). The queue's
length stays the same.

The small desk is 10 agents with 100 waiting tickets, the large one 1,000 agents with
100,000 waiting (issue 15: the ratio large/small must stay at or above 0.5: a decision must
not cost more because more tickets wait or more agents work). Tickets vary over the rule
set's categories (their skills), both languages and the four priorities; agents over the
three tiers, the skills and the languages.

    python -m bench.assignment [--cycles 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from engine.contract import (
    Channel,
    CustomerProfile,
    Priority,
    TicketState,
    TicketStatus,
    Tier,
)
from engine.rules.ruleset import load_ruleset
from engine.workers.agents import AgentsDirectory, parse_agents
from engine.workers.desk import Desk
from engine.workers.escalation import load_escalation

NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
CAPACITY = 5
TIERS = (Tier.L1, Tier.L2, Tier.L3)
Kind = tuple[Tier, str, str, tuple[str, ...]]  # tier, language, category, skills


def directory_text(agents: int, rng: random.Random, skills: list[str]) -> str:
    lines = ["agents:"]
    for n in range(agents):
        tiers = [TIERS[n % 3]] + ([TIERS[(n + 1) % 3]] if n % 5 == 0 else [])
        known = sorted(set(rng.sample(skills, k=min(len(skills), 5))))
        languages = ["es", "en"] if n % 3 else [("es", "en")[n % 2]]
        lines.append(
            f"  - {{id: a{n:05}, name: Agent {n}, email: a{n}@desk.example, "
            f"tiers: [{', '.join(tiers)}], skills: [{', '.join(known)}], "
            f"languages: [{', '.join(languages)}], calendar: 24x7, capacity: {CAPACITY}}}"
        )
    return "\n".join(lines) + "\n"


def ticket(number: int, rng: random.Random, kinds: list[Kind]) -> TicketState:
    tier, language, category, skills = rng.choice(kinds)
    opened = NOW - timedelta(seconds=rng.randrange(86400))
    return TicketState(
        ticket_id=f"T-{number:013d}", status=TicketStatus.OPEN, channel=Channel.EMAIL,
        subject="", requester="x@acme.example", customer_id="acme", opened_at=opened,
        updated_at=opened, priority=rng.choice(tuple(Priority)), category=category,
        tier=tier, special_routes=(), tags=(), skills=skills,
        customer=CustomerProfile(customer_id="acme", language=language),
        event_count=1, recent_event_ids=("e",), ruleset_version="bench",
    )  # fmt: skip


def takeable_kinds(directory: AgentsDirectory) -> list[Kind]:
    """Tier, language and category of tickets that some agent can take (a ticket nobody
    can ever take would only wait, and stop measuring decisions)."""
    kinds = []
    for category, skills in load_ruleset().category_skills.items():
        for tier in TIERS:
            for language in ("es", "en"):
                if any(
                    tier in a.tiers and language in a.languages and set(skills) <= a.skills
                    for a in directory.agents.values()
                ):
                    kinds.append((tier, language, category, skills))
    return kinds


def cycles_per_second(
    agents: int, waiting: int, cycles: int, seed: int, profile: bool = False
) -> tuple[float, int]:
    rng = random.Random(seed)
    skills = sorted({skill for asked in load_ruleset().category_skills.values() for skill in asked})
    directory = parse_agents(directory_text(agents, rng, skills), "bench")
    desk = Desk(directory, NOW, load_escalation(None).acceptance)
    kinds = takeable_kinds(desk.directory)
    states: dict[str, TicketState] = {}
    owned: list[str] = []

    def arrive(number: int) -> None:
        state = ticket(number, rng, kinds)
        states[state.ticket_id] = state
        desk.apply_ticket(state)

    def settle() -> int:
        made = desk.decide(NOW)
        for assignment in made:
            state = states[assignment.ticket_id]
            assigned = state.model_copy(
                update={"assignee": assignment.agent_id, "assigned_at": NOW, "event_count": 2}
            )
            states[state.ticket_id] = assigned
            desk.apply_ticket(assigned)
            owned.append(state.ticket_id)
        return len(made)

    number = 0
    while sum(desk.waiting().values()) < waiting:
        arrive(number)
        number += 1
        settle()
    gc.freeze()  # as the tier workers do once they have read the desk (service.py)
    decisions = 0
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    for _ in range(cycles):
        if not owned:
            break
        done = owned.pop(rng.randrange(len(owned)))
        desk.apply_ticket(states.pop(done).model_copy(update={"status": TicketStatus.RESOLVED}))
        arrive(number)
        number += 1
        decisions += settle()
    elapsed = time.perf_counter() - started
    gc.unfreeze()
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    return decisions / elapsed, decisions


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.assignment")
    parser.add_argument("--cycles", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--profile", action="store_true", help="profile the large desk's cycles instead"
    )
    args = parser.parse_args()
    if args.profile:
        cycles_per_second(1000, 100_000, args.cycles, seed=0, profile=True)
        return
    small, large = [], []
    for repeat in range(args.repeats):
        rate, made = cycles_per_second(10, 100, args.cycles, seed=repeat)
        small.append(rate)
        print(f"10 agents, 100 waiting:        {rate:9,.0f} decisions/s ({made} decisions)")
        rate, made = cycles_per_second(1000, 100_000, args.cycles, seed=repeat)
        large.append(rate)
        print(f"1,000 agents, 100,000 waiting: {rate:9,.0f} decisions/s ({made} decisions)")
    ratio = statistics.median(large) / statistics.median(small)
    print(f"median ratio large/small: {ratio:.2f} (target: at least 0.5)")


if __name__ == "__main__":
    main()
