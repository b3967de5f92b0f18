"""The impact matrix: facts stated by the text, the first holding row, and its checks."""

from __future__ import annotations

import pytest

from engine.contract import Channel, Priority, TicketMessage
from engine.errors import RulesError
from engine.rules.classify import classify
from engine.rules.ruleset import load_ruleset, parse_ruleset

MATRIX = """
version: "t"
defaults: {priority: P3, category: other}
rules: []
routes: {id: root, tier: L1}
impact:
  facts:
    - id: state
      values:
        - {value: down, phrases: [no funciona, is down, no entran]}
        - {value: request, phrases: [como agrego, how do i]}
    - id: reach
      values:
        - {value: one, phrases: [mi telefono, my phone]}
        - {value: everyone, phrases: [nadie, everyone], regex: ['somos \\d{2,}']}
  matrix:
    - {id: outage, domain_rule: P1, when: {state: [down], reach: [everyone, unknown]}, priority: P1}
    - {id: one-user, when: {state: [down], reach: [one]}, priority: P3}
    - {id: question, domain_rule: P4, when: {state: [request]}, priority: P4}
    - {id: damaged, priority: P3}
"""


def message(body: str) -> TicketMessage:
    return TicketMessage(channel=Channel.EMAIL, body=body)


@pytest.mark.parametrize(
    ("body", "priority", "row"),
    [
        ("no entran llamadas, somos 40 en la oficina", Priority.P1, "outage"),
        ("the PBX is down", Priority.P1, "outage"),
        ("mi telefono no funciona, los demas si", Priority.P3, "one-user"),
        ("como agrego una extension?", Priority.P4, "question"),
        ("gracias por todo", Priority.P3, "damaged"),
    ],
)  # fmt: skip
def test_the_first_row_whose_facts_hold_gives_the_priority(
    body: str, priority: Priority, row: str
) -> None:
    decided = classify(message(body), parse_ruleset(MATRIX, "matrix.yaml"))
    assert (decided.priority, decided.impact_row) == (priority, row)


def test_the_explanation_names_the_row_and_the_words_behind_each_fact() -> None:
    decided = classify(message("no entran llamadas, somos 40"), parse_ruleset(MATRIX, "m"))
    facts = {fact.fact: fact for fact in decided.impact}
    assert facts["state"].value == "down" and facts["state"].evidence == ("no entran",)
    assert facts["reach"].value == "everyone" and facts["reach"].evidence == ("somos 40",)
    assert (
        "priority P1 from the impact matrix, row outage (P1): state=down (no entran), "
        "reach=everyone (somos 40)"
    ) in decided.explanation


def test_a_follow_up_the_catch_all_decides_counts_as_no_priority_stated() -> None:
    decided = classify(message("gracias"), parse_ruleset(MATRIX, "m"))
    assert decided.priority_by_default and decided.impact_row == "damaged"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("when: {state: [request]}", "when: {state: [requested]}"),
         "impact.matrix[2].when.state: 'state' has no value 'requested'"),
        (("when: {state: [request]}", "when: {urgency: [high]}"),
         "impact.matrix[2].when.urgency: no fact 'urgency' is declared"),
        (("- {id: damaged, priority: P3}", "- {id: damaged, when: {state: [down]}, priority: P3}"),
         "impact.matrix[3].when: the last row must hold always"),
        (("{value: one, phrases", "{value: unknown, phrases"),
         "impact.facts[1].values: values of 'reach' repeat or use 'unknown'"),
        (("regex: ['somos \\d{2,}']", "regex: ['somos (']"),
         "bad regular expression"),
    ],
)  # fmt: skip
def test_a_bad_matrix_is_refused_naming_the_path(edit: tuple[str, str], problem: str) -> None:
    assert edit[0] in MATRIX
    with pytest.raises(RulesError, match=None) as refused:
        parse_ruleset(MATRIX.replace(*edit), "matrix.yaml")
    assert problem in str(refused.value)


def test_the_shipped_matrix_reads_an_understated_outage_as_p1() -> None:
    quiet = message(
        "Hola, no es urgente, una consulta cuando puedan: desde que abrimos no nos ha entrado "
        "ni una llamada al numero principal."
    )
    decided = classify(quiet, load_ruleset())
    assert decided.priority is Priority.P1
