"""The agents directory (``ENGINE_AGENTS_FILE``): who can take tickets, in which tiers, with
which skills and languages, in which working hours, how many at once, who leads them and
who is on call. Validated as a whole like a rule file: every problem named by file, line
and path (``engine agents check FILE``). Pure.

```yaml
agents:
  - id: ana
    name: Ana Ruiz
    email: ana.ruiz@desk.example.com
    tiers: [L3]
    skills: [pbx, trunks]
    languages: [es, en]
    timezone: America/Mexico_City
    calendar: business        # an SLA calendar (ENGINE_SLA_CALENDARS_FILE)
    capacity: 5               # open tickets at once
    lead: marta               # another agent's id
on_call:                      # 24x7: counts as present outside their hours
  - {agent: ana, tier: L3, from: 2026-12-05T18:00:00-06:00, until: 2026-12-07T09:00:00-06:00}
managers:                     # told when the escalation matrix names the manager
  - {id: rosa, name: Rosa Medina, email: rosa.medina@desk.example.com}
```
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.contract import Tier, TimeZoneName, UtcDatetime
from engine.documents import Problem, repeated_ids, validated_document
from engine.errors import EngineError
from engine.rules.ruleset import RuleSet, load_ruleset
from engine.sla.calendars import DEFAULT_CALENDARS, Calendars, ZonedCalendar, load_calendars

AGENT_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"
SKILL = r"^[a-z0-9_]{1,40}$"


class AgentsDirectoryError(EngineError):
    """The agents directory is not valid; the message names file, line and path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Agent(_Strict):
    id: str = Field(pattern=AGENT_ID)
    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    tiers: tuple[Tier, ...] = Field(min_length=1)
    skills: frozenset[str] = frozenset()
    languages: frozenset[str] = Field(min_length=1)
    timezone: TimeZoneName = "America/Mexico_City"
    calendar: str = Field(default="business", description="An SLA calendar's name")
    capacity: int = Field(default=5, ge=1, le=1000, description="Open tickets at once")
    lead: str | None = Field(default=None, description="The team lead's agent id")

    @field_validator("skills")
    @classmethod
    def _skill_names(cls, value: frozenset[str]) -> frozenset[str]:
        bad = sorted(skill for skill in value if not re.match(SKILL, skill))
        if bad:
            raise ValueError(f"skills are lower-case words with '_': {', '.join(bad)}")
        return value


class OnCall(_Strict):
    agent: str
    tier: Tier
    from_: UtcDatetime = Field(alias="from")
    until: UtcDatetime

    def covers(self, at: datetime) -> bool:
        return self.from_ <= at < self.until


class Manager(_Strict):
    """A support manager: not given tickets, told when the escalation matrix says so."""

    id: str = Field(pattern=AGENT_ID)
    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AgentsFile(_Strict):
    agents: tuple[Agent, ...] = Field(min_length=1)
    on_call: tuple[OnCall, ...] = ()
    managers: tuple[Manager, ...] = ()


class AgentsDirectory:
    """The validated directory, with each agent's calendar placed in their time zone."""

    def __init__(self, parsed: AgentsFile, calendars: Calendars) -> None:
        self.agents: dict[str, Agent] = {agent.id: agent for agent in parsed.agents}
        self.on_call = parsed.on_call
        self.managers = parsed.managers
        self._hours = {
            agent.id: ZonedCalendar(calendars.named(agent.calendar), ZoneInfo(agent.timezone))
            for agent in parsed.agents
        }

    def __len__(self) -> int:
        return len(self.agents)

    def working_hours(self, agent_id: str) -> ZonedCalendar:
        return self._hours[agent_id]

    def leads_of(self, tier: Tier) -> tuple[str, ...]:
        """The team leads of the agents of ``tier``, each once."""
        leads = (a.lead for a in self.agents.values() if tier in a.tiers and a.lead)
        return tuple(dict.fromkeys(leads))

    def in_working_hours(self, agent_id: str, at: datetime) -> bool:
        return self._hours[agent_id].is_open(at)

    def is_on_call(self, agent_id: str, at: datetime) -> bool:
        return any(entry.agent == agent_id and entry.covers(at) for entry in self.on_call)

    def on_call_for(self, tier: Tier, at: datetime) -> tuple[str, ...]:
        return tuple(
            entry.agent for entry in self.on_call if entry.tier is tier and entry.covers(at)
        )

    @cached_property
    def skills(self) -> frozenset[str]:
        return frozenset(skill for agent in self.agents.values() for skill in agent.skills)


def directory_problems(
    parsed: AgentsFile, calendars: Calendars, asked_skills: Iterable[tuple[str, str]] = ()
) -> list[Problem]:
    """What the models alone cannot see: repeated ids, unknown calendars and leads, a tier
    nobody works in, on-call entries for someone else, skills the rules ask that nobody has
    (``asked_skills``: (category, skill) pairs from the rule set)."""
    problems = repeated_ids([agent.id for agent in parsed.agents], "agents", "agent")
    problems += repeated_ids([manager.id for manager in parsed.managers], "managers", "manager")
    agent_ids = {agent.id for agent in parsed.agents}
    for index, agent in enumerate(parsed.agents):
        if agent.calendar not in calendars.by_name:
            known = ", ".join(sorted(calendars.by_name))
            problems.append(
                (
                    ("agents", index, "calendar"),
                    f"unknown calendar {agent.calendar!r} (known: {known})",
                )
            )
    for index, agent in enumerate(parsed.agents):
        if agent.lead is not None and agent.lead not in agent_ids:
            problems.append((("agents", index, "lead"), f"no agent {agent.lead!r} to lead"))
        if agent.lead == agent.id:
            problems.append((("agents", index, "lead"), "an agent cannot lead themselves"))
    staffed = {tier for agent in parsed.agents for tier in agent.tiers}
    for tier in Tier:
        if tier not in staffed:
            problems.append((("agents",), f"tier {tier} has nobody in it"))
    tiers_of = {agent.id: agent.tiers for agent in parsed.agents}
    for index, entry in enumerate(parsed.on_call):
        if entry.agent not in tiers_of:
            problems.append((("on_call", index, "agent"), f"no agent {entry.agent!r}"))
        elif entry.tier not in tiers_of[entry.agent]:
            problems.append(
                (("on_call", index, "tier"), f"{entry.agent} does not work in {entry.tier}")
            )
        if entry.until <= entry.from_:
            problems.append((("on_call", index, "until"), "ends before it begins"))
    skills = {skill for agent in parsed.agents for skill in agent.skills}
    for category, skill in asked_skills:
        if skill not in skills:
            problems.append(
                (("agents",), f"category {category} asks for skill {skill!r}: nobody has it")
            )
    return problems


def parse_agents(
    text: str,
    origin: str,
    calendars: Calendars = DEFAULT_CALENDARS,
    asked_skills: Iterable[tuple[str, str]] = (),
) -> AgentsDirectory:
    asked = tuple(asked_skills)
    parsed = validated_document(
        text,
        origin,
        AgentsFile,
        lambda parsed: directory_problems(parsed, calendars, asked),
        AgentsDirectoryError,
        "agents directory",
    )
    return AgentsDirectory(parsed, calendars)


def load_agents(
    path: Path,
    calendars: Calendars = DEFAULT_CALENDARS,
    asked_skills: Iterable[tuple[str, str]] = (),
) -> AgentsDirectory:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AgentsDirectoryError(f"{path}: cannot read the agents directory: {error}") from error
    return parse_agents(text, str(path), calendars, asked_skills)


def asked_skills(ruleset: RuleSet) -> list[tuple[str, str]]:
    """(category, skill) for every skill the rule set's categories ask for."""
    return [(c, skill) for c, skills in ruleset.category_skills.items() for skill in skills]


def load_configured(
    agents_file: Path, calendars_file: Path | None, rules_file: Path | None
) -> AgentsDirectory:
    """The directory as a process runs it: with the SLA calendars and the rule set's
    category skills (ENGINE_AGENTS_FILE, ENGINE_SLA_CALENDARS_FILE, ENGINE_RULES_FILE)."""
    return load_agents(
        agents_file, load_calendars(calendars_file), asked_skills(load_ruleset(rules_file))
    )
