"""How the rule set's ``assistant`` section weighs a priority proposal against the rules:
with a model of known probabilities in place of the shipped one (the policy is what is
tested here; test_assistant.py checks the shipped models themselves)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.contract import Channel, Priority, TicketMessage
from engine.rules import classify as classify_module
from engine.rules.classify import classify
from engine.rules.ruleset import RuleSet, load_ruleset

LONG = " Llevamos toda la mañana revisando con el proveedor y con nuestro equipo de sistemas."


@dataclass(frozen=True)
class KnownModel:
    chances: dict[str, float]
    version: str = "known"

    def probabilities(self, message: TicketMessage) -> dict[str, float]:
        return self.chances


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    chances = {"P1": 0.0, "P2": 0.0, "P3": 0.0, "P4": 1.0}
    monkeypatch.setattr(classify_module, "shipped_model", lambda field: KnownModel(chances))
    return chances


def rules(**policy: object) -> RuleSet:
    shipped = load_ruleset()
    assert shipped.assistant is not None
    quiet = {
        "routes_min_confidence": None,
        "category_min_confidence": None,
        "priority_reads_facts": False,  # the known model's chances are the proposal's
    }
    assistant = shipped.assistant.model_copy(update={**quiet, **policy})
    return shipped.model_copy(update={"assistant": assistant})


def decided(body: str, ruleset: RuleSet, **fields: object) -> tuple[Priority, tuple[str, ...]]:
    message = TicketMessage(channel=Channel.EMAIL, subject="Consulta", body=body, **fields)  # type: ignore[arg-type]
    classification = classify(message, ruleset)
    return classification.priority, classification.explanation


def test_a_likely_enough_p1_raises_even_when_another_priority_is_likelier(
    model: dict[str, float],
) -> None:
    model.update(P1=0.45, P3=0.55, P4=0.0)
    priority, why = decided("El menú de voz dice mal el horario de atención." + LONG, rules())
    assert priority is Priority.P1
    assert any("priority P1 proposed by the learned assistant (model known, confidence 0.45)"
               in line and "the rules alone said" in line for line in why)  # fmt: skip


def test_a_confident_proposal_decides_where_the_policy_lets_it(model: dict[str, float]) -> None:
    model.update(P2=0.6, P4=0.4)
    body = "Queremos saber cómo cambiar la música en espera de la central." + LONG
    assert decided(body, rules(p1_min_confidence=None))[0] is Priority.P2
    priority, why = decided(body, rules(p1_min_confidence=None, priority_may="raise_to_p1"))
    assert priority is Priority.P4
    assert any("not taken: it may raise to p1" in line for line in why)


def test_it_lowers_only_a_long_enough_message_and_never_below_a_suggestion(
    model: dict[str, float],
) -> None:
    outage = "La central está caída, no entran ni salen llamadas en toda la empresa."
    priority, why = decided(outage, rules())
    assert priority is Priority.P1
    assert any("not taken: it lowers a priority only on a message of 20 words" in line
               for line in why)  # fmt: skip
    assert decided(outage + LONG + LONG, rules())[0] is Priority.P4
    priority, why = decided(outage + LONG + LONG, rules(), suggested_priority=Priority.P2)
    assert priority is Priority.P1
    assert any("not taken: the suggested P2 stands" in line for line in why)


def test_a_firm_row_stands_unless_the_proposal_is_sure_enough(model: dict[str, float]) -> None:
    body = "Solo la extensión de recepción no tiene tono; las demás están bien." + LONG
    model.update(P1=0.6, P4=0.4)
    priority, why = decided(body, rules(firm_min_confidence=0.7))
    assert priority is Priority.P3
    assert any("is firm" in line for line in why)
    model.update(P1=0.9, P4=0.1)
    assert decided(body, rules(firm_min_confidence=0.7))[0] is Priority.P1
    assert decided(body, rules(firm_min_confidence=None))[0] is Priority.P3
