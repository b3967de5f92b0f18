"""Classification and routing with the shipped rules, and the rule set's validation."""

from __future__ import annotations

import pytest

from engine.errors import RulesError
from engine.models import Channel, Priority, SpecialRoute, TicketMessage, Tier
from engine.rules.classify import classify
from engine.rules.route import route
from engine.rules.ruleset import load_ruleset, parse_ruleset

RULES = load_ruleset()


def message(subject: str, body: str = "", channel: Channel = Channel.EMAIL) -> TicketMessage:
    return TicketMessage(channel=channel, subject=subject, body=body, sender="c@acme.example")


@pytest.mark.parametrize(
    ("subject", "body", "priority", "category", "tier"),
    [
        ("Urgente", "la central está caída, no entran ni salen llamadas", "P1", "pbx_down", "L3"),
        ("CENTRAL CAÍDA", "", "P1", "pbx_down", "L3"),
        ("Outage", "Our PBX is down since 9am, no calls", "P1", "pbx_down", "L3"),
        ("Question", "How do I add an extension?", "P4", "adding_extensions", "L1"),
        ("Consulta", "¿Cómo puedo agregar una extensión nueva?", "P4", "adding_extensions", "L1"),
        ("Info", "I would like information about the call center module", "P4",
         "information_request", "L1"),
        ("Problema", "Muchas extensiones con problemas, afecta gravemente", "P2", "other", "L2"),
        ("Hola", "Les escribo por un tema de facturación", "P3", "other", "L1"),
        ("Troncal", "la troncal SIP no registra", "P3", "trunk_problems", "L1"),
    ],
)  # fmt: skip
def test_shipped_rules_decide(
    subject: str, body: str, priority: str, category: str, tier: str
) -> None:
    classification = classify(message(subject, body), RULES)
    decision = route(classification, Channel.EMAIL, RULES.routes)

    assert classification.priority == Priority(priority)
    assert classification.category == category
    assert decision.tier == Tier(tier)


def test_most_severe_priority_wins_and_every_fired_rule_is_explained() -> None:
    classification = classify(
        message("How do I restart?", "how do I restart it, the PBX is down"), RULES
    )

    assert classification.priority is Priority.P1
    fired = {match.rule_id: match for match in classification.matches}
    assert set(fired) == {"outage-en", "howto-en"}
    assert fired["outage-en"].matched == ("pbx is down",)
    assert "most severe" in classification.explanation[0]
    assert classification.ruleset_version.startswith("2026.11.1+")


def test_matching_ignores_case_accents_and_needs_whole_words() -> None:
    assert classify(message("", "SISTEMA CAÍDO"), RULES).priority is Priority.P1
    # "outages" is not the word "outage"; "downtown" is not "down".
    assert classify(message("", "we discussed outages downtown"), RULES).priority is Priority.P3


RULESET_HEADER = """
version: "t1"
defaults: {priority: P3, category: other}
"""


def test_route_tree_children_inherit_and_continue_collects_special_routes() -> None:
    ruleset = parse_ruleset(
        RULESET_HEADER
        + """
rules:
  - id: bug
    match: {phrases: [crash]}
    set: {priority: P2, category: software_failure}
routes:
  id: root
  tier: L1
  routes:
    - id: software
      match: {category: [software_failure]}
      tier: L2
      special_routes: [bug_tracker]
      continue: true
      routes:
        - id: urgent-software
          match: {priority: [P1, P2]}
    - id: serious
      match: {priority: [P2]}
      tier: L3
""",
        "test",
    )
    classification = classify(message("", "the app crash again"), ruleset)

    decision = route(classification, Channel.EMAIL, ruleset.routes)

    assert decision.tier is Tier.L2  # first destination; inherited from "software"
    assert decision.special_routes == (SpecialRoute.BUG_TRACKER,)
    assert decision.route_path == ("root", "software", "urgent-software", "serious")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("rules: []\nroutes: {id: root}", "routes: the root route must set a tier"),
        (
            "rules:\n  - {id: a, match: {phrases: [x]}, set: {}}\n"
            "  - {id: a, match: {phrases: [y]}, set: {}}\nroutes: {id: root, tier: L1}",
            "duplicate rule ids: a",
        ),
        (
            "rules:\n  - {id: a, match: {phrases: [x]}, set: {priority: P9}}\n"
            "routes: {id: root, tier: L1}",
            "rules[0].set.priority",
        ),
        (
            "rules:\n  - {id: a, match: {phrases: [x], sender: y}, set: {}}\n"
            "routes: {id: root, tier: L1}",
            "rules[0].match.sender: Extra inputs are not permitted",
        ),
        (
            "rules: []\nroutes: {id: root, tier: L1, routes: [{id: c, tier: L7}]}",
            "routes.routes[0].tier",
        ),
        (
            "rules:\n  - {id: a, match: {phrases: ['¿?']}, set: {}}\nroutes: {id: root, tier: L1}",
            "has no letters or digits",
        ),
    ],
)
def test_invalid_rule_sets_are_refused_naming_the_path(document: str, expected: str) -> None:
    with pytest.raises(RulesError) as raised:
        parse_ruleset(RULESET_HEADER + document, "bad.yaml")

    assert "bad.yaml" in str(raised.value)
    assert expected in str(raised.value)


def test_not_yaml_is_refused() -> None:
    with pytest.raises(RulesError, match="not valid YAML"):
        parse_ruleset("rules: [unclosed", "broken.yaml")
