"""Classification and routing semantics, and the rule set's validation."""

from __future__ import annotations

from typing import Any

import pytest

from engine.contract import (
    Channel,
    CustomerProfile,
    Priority,
    SpecialRoute,
    SupportPlan,
    TicketMessage,
    Tier,
    TrapFacts,
    Varbind,
)
from engine.errors import RulesError
from engine.rules.classify import classify
from engine.rules.decide import decide
from engine.rules.route import route
from engine.rules.ruleset import load_ruleset, parse_ruleset

SHIPPED = load_ruleset()


def message(body: str = "", subject: str = "", **fields: Any) -> TicketMessage:
    fields.setdefault("channel", Channel.EMAIL)
    return TicketMessage(subject=subject, body=body, sender="c@acme.example", **fields)


def rules(body: str) -> Any:
    return parse_ruleset(
        'version: "t1"\ndefaults: {priority: P3, category: other}\n' + body, "test.yaml"
    )


TWO_RULES = rules(
    """
rules:
  - id: outage
    domain_rule: P1
    match: {phrases: [pbx down, caida]}
    set: {priority: P1, category: pbx_down, tags: [outage]}
  - id: howto
    match: {phrases: [how do i]}
    set: {priority: P4, category: information_request}
  - id: vip
    match: {customer: {plan: ["24x7"]}}
    set: {raise_priority: 1, tags: [vip]}
routes:
  id: root
  tier: L1
  routes:
    - {id: critical, match: {priority: [P1, P2]}, tier: L3}
"""
)


def test_the_most_severe_priority_wins_and_the_first_category_in_file_order() -> None:
    decided = classify(message("how do I restart it, the PBX down again?"), TWO_RULES)

    assert (decided.priority, decided.category) == (Priority.P1, "pbx_down")
    assert [m.rule_id for m in decided.matches] == ["outage", "howto"]
    assert decided.matches[0].matched == ("pbx down",)
    assert decided.explanation[0] == "priority P1 from rule outage (P1): the most severe candidate"


def test_no_rule_gives_the_defaults_and_says_so() -> None:
    decided = classify(message("hola"), TWO_RULES)

    assert (decided.priority, decided.category) == (Priority.P3, "other")
    assert "the default" in decided.explanation[0]


def test_a_negated_phrase_does_not_fire() -> None:
    assert classify(message("la central no está caída"), TWO_RULES).priority is Priority.P3


def test_a_message_of_many_expanding_characters_still_classifies() -> None:
    """NFKD makes U+FDFA 18 characters: 200,000 of them are read only up to the bound."""
    decided = classify(message("la central está caída " + "\ufdfa" * 200_000), TWO_RULES)

    assert decided.priority is Priority.P1 and decided.category == "pbx_down"


def test_a_suggested_priority_is_a_candidate_that_rules_may_exceed() -> None:
    suggested = message("how do I change the IVR", suggested_priority=Priority.P2)
    outage = message("PBX down", suggested_priority=Priority.P3)

    assert classify(suggested, TWO_RULES).priority is Priority.P2
    assert classify(outage, TWO_RULES).priority is Priority.P1


def test_raise_priority_applies_after_the_most_severe_candidate() -> None:
    vip = CustomerProfile(customer_id="acme", plan=SupportPlan.ALWAYS)

    decided = classify(message("how do I add a queue", customer=vip), TWO_RULES)

    assert decided.priority is Priority.P3
    assert decided.explanation[1] == "raised P4 -> P3 by rule vip"


RICH = rules(
    r"""
rules:
  - id: sip-error
    match: {regex: ['SIP/2\.0 5\d\d'], fields: [body]}
    set: {category: trunk_problems}
  - id: old-callcenter
    match: {customer: {version_below: "5", modules_any: [callcenter]}}
    set: {tags: [eol-callcenter]}
  - id: ups
    match:
      channels: [snmp]
      trap:
        name: ["UPS-MIB::upsTrapOnBattery"]
        varbinds: {"UPS-MIB::upsAlarmDescr": ["onBattery"]}
    set: {priority: P1, special_routes: [rma]}
  - id: but-not-on-test
    match: {phrases: [caida], not_phrases: [prueba, test]}
    set: {priority: P1}
routes: {id: root, tier: L1}
"""
)


def test_regexes_customer_fields_and_trap_fields_are_conditions() -> None:
    old = CustomerProfile(customer_id="a", version="4.0.2", modules=("callcenter",))
    trap = TrapFacts(
        oid="1.3.6.1.2.1.33.2.0.1",
        name="UPS-MIB::upsTrapOnBattery",
        varbinds=(Varbind(oid="1.3.6.1.2.1.33.1.6.3.1.2", name="UPS-MIB::upsAlarmDescr",
                          value="onBattery"),),
    )  # fmt: skip

    sip = classify(message("got SIP/2.0 503 Service Unavailable"), RICH)
    legacy = classify(message("x", customer=old), RICH)
    battery = decide(message(channel=Channel.SNMP, trap=trap), RICH)

    assert sip.category == "trunk_problems" and sip.matches[0].matched == ("SIP/2.0 503",)
    assert legacy.tags == ("eol-callcenter",)
    assert legacy.matches[0].matched == ("modules include callcenter", "version 4.0.2 < 5")
    assert battery.classification.priority is Priority.P1
    assert battery.route.special_routes == (SpecialRoute.RMA,)
    assert (
        classify(message("x", customer=old.model_copy(update={"version": "5.1"})), RICH).tags == ()
    )


def test_not_phrases_veto_a_rule() -> None:
    assert classify(message("central caída"), RICH).priority is Priority.P1
    assert classify(message("central caída en la prueba"), RICH).priority is Priority.P3


def test_route_tree_children_inherit_and_continue_collects_special_routes() -> None:
    ruleset = rules(
        """
rules:
  - id: bug
    match: {phrases: [crash]}
    set: {priority: P2, category: software_failure, tags: [software_bug]}
routes:
  id: root
  tier: L1
  routes:
    - id: software
      match: {tags_any: [software_bug]}
      tier: L2
      special_routes: [bug_tracker]
      continue: true
      routes:
        - id: urgent-software
          match: {priority: [P1, P2]}
    - id: serious
      match: {priority: [P2]}
      tier: L3
"""
    )
    classification = classify(message("the app crash again"), ruleset)

    decision = route(classification, message(), ruleset.routes)

    assert decision.tier is Tier.L2  # the first destination's, inherited from "software"
    assert decision.special_routes == (SpecialRoute.BUG_TRACKER,)
    assert decision.route_path == ("root", "software", "urgent-software", "serious")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            "rules: []\nroutes: {id: root}",
            "test.yaml:4: routes.tier: the root route must set a tier",
        ),
        (
            "rules:\n  - {id: a, match: {phrases: [x]}, set: {}}\n"
            "  - {id: a, match: {phrases: [y]}, set: {}}\nroutes: {id: root, tier: L1}",
            "test.yaml:5: rules[1].id: duplicate rule id 'a'",
        ),
        (
            "rules:\n  - {id: a, match: {phrases: [x]}, set: {priority: P9}}\n"
            "routes: {id: root, tier: L1}",
            "test.yaml:4: rules[0].set.priority: Input should be 'P1', 'P2', 'P3' or 'P4'",
        ),
        (
            "rules:\n  - {id: a, match: {phrases: [x], sender: y}, set: {}}\n"
            "routes: {id: root, tier: L1}",
            "rules[0].match.sender: Extra inputs are not permitted",
        ),
        (
            "rules: []\nroutes:\n  id: root\n  tier: L1\n  routes:\n    - {id: c, tier: L7}",
            "test.yaml:8: routes.routes[0].tier",
        ),
        (
            "rules:\n  - {id: a, match: {regex: ['(unclosed']}, set: {}}\n"
            "routes: {id: root, tier: L1}",
            "rules[0].match.regex: bad regular expression '(unclosed'",
        ),
        (
            "rules: []\nroutes:\n  id: root\n  tier: L1\n  routes:\n"
            "    - {id: all, tier: L2}\n    - {id: never, match: {priority: [P1]}, tier: L3}",
            "routes.routes[1]: unreachable: routes[0] (all) matches everything first",
        ),
        (
            "rules: []\nroutes:\n  id: root\n  tier: L1\n  routes:\n"
            "    - {id: bugs, match: {category: [software_bug]}, tier: L2}",
            "routes.routes[0].match.category: unreachable: no rule sets category 'software_bug'",
        ),
        (
            "rules: []\nroutes:\n  id: root\n  tier: L1\n  routes:\n"
            "    - id: p1\n      match: {priority: [P1]}\n      routes:\n"
            "        - {id: p4, match: {priority: [P4]}}",
            "routes.routes[0].routes[0].match.priority: unreachable: its parent only lets P1",
        ),
    ],
)
def test_invalid_rule_sets_are_refused_naming_file_line_and_path(
    document: str, expected: str
) -> None:
    with pytest.raises(RulesError) as raised:
        rules(document)

    assert expected in str(raised.value)


def test_not_yaml_is_refused() -> None:
    with pytest.raises(RulesError, match="not valid YAML"):
        parse_ruleset("rules: [unclosed", "broken.yaml")


@pytest.mark.parametrize(
    ("body", "priority", "tier"),
    [
        ("la central está caída, no entran ni salen llamadas", "P1", "L3"),
        ("Hello, how do I add an extension?", "P4", "L1"),
        ("After the update the web interface won't load, fatal error", "P3", "L2"),
    ],
)
def test_the_shipped_rules_cover_the_foundation_cases(body: str, priority: str, tier: str) -> None:
    decided = decide(message(body), SHIPPED)

    assert (decided.classification.priority.value, decided.route.tier.value) == (priority, tier)
