from pathlib import Path

import pytest

from engine.contract import Tier
from engine.rules.ruleset import load_ruleset
from engine.workers.agents import AgentsDirectoryError, asked_skills, load_agents, parse_agents

EXAMPLE = Path(__file__).parents[3] / "deploy" / "agents.example.yaml"

VALID = """\
agents:
  - {id: ana, name: Ana, email: ana@desk.example, tiers: [L1, L2, L3], languages: [es]}
"""


def test_the_example_directory_passes_with_the_shipped_rules() -> None:
    directory = load_agents(EXAMPLE, asked_skills=asked_skills(load_ruleset()))
    assert len(directory) == 6
    assert {"pbx", "trunks", "dialer", "campaigns"} <= directory.skills


def test_every_problem_is_named_with_its_line_and_path() -> None:
    text = """\
agents:
  - id: ana
    name: Ana
    email: ana@desk.example
    tiers: [L1]
    languages: [es]
    calendar: lunar
    lead: nobody
  - {id: ana, name: Ana 2, email: ana2@desk.example, tiers: [L1], languages: [en]}
on_call:
  - {agent: ana, tier: L3, from: "2026-12-05T18:00:00Z", until: "2026-12-05T09:00:00Z"}
"""
    with pytest.raises(AgentsDirectoryError) as raised:
        parse_agents(text, "agents.yaml", asked_skills=[("trunk_problems", "trunks")])
    message = str(raised.value)
    assert "agents.yaml:7: agents[0].calendar: unknown calendar 'lunar'" in message
    assert "agents.yaml:8: agents[0].lead: no agent 'nobody' to lead" in message
    assert "agents.yaml:9: agents[1].id: duplicate agent id 'ana' (agents[0])" in message
    assert "tier L2 has nobody in it" in message and "tier L3 has nobody in it" in message
    assert "on_call[0].tier: ana does not work in L3" in message
    assert "on_call[0].until: ends before it begins" in message
    assert "category trunk_problems asks for skill 'trunks': nobody has it" in message


def test_a_field_the_model_refuses_is_named_too() -> None:
    text = VALID.replace("languages: [es]", "languages: [es], capacity: 0, timezone: Mars/Base")
    with pytest.raises(AgentsDirectoryError) as raised:
        parse_agents(text, "a.yaml")
    assert "a.yaml:2: agents[0].capacity" in str(raised.value)
    assert "unknown IANA time zone 'Mars/Base'" in str(raised.value)


def test_a_valid_directory_places_each_agent_in_their_hours() -> None:
    directory = parse_agents(VALID, "a.yaml")
    assert directory.agents["ana"].tiers == (Tier.L1, Tier.L2, Tier.L3)
    assert directory.agents["ana"].capacity == 5
