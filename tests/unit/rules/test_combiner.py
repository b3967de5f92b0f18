"""The priority combiner (decision 71): its inputs are named as training named them, it
computes what scikit-learn computed, the explanation names what moved it, and a rule file
that asks for it is checked against the one shipped."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.contract import Channel, ImpactFact, Priority, TicketMessage
from engine.errors import RulesError
from engine.rules import train_assistant
from engine.rules.assistant import MODELS, assistant_problems
from engine.rules.classify import classify
from engine.rules.combiner import (
    LONG_MESSAGE_WORDS,
    PROBABILITY_FLOOR,
    Combiner,
    describe_strongest,
    exported,
    parse_combiner,
    priority_inputs,
    shipped_combiner,
)
from engine.rules.ruleset import load_ruleset

CHAT = TicketMessage(channel=Channel.CHAT, body="x", suggested_priority=Priority.P2)


def test_the_inputs_are_named_by_what_they_read() -> None:
    facts = (ImpactFact(fact="state", value="down"), ImpactFact(fact="reach", value="unknown"))
    chances = {"P1": 0.5, "P2": 0.5, "P3": 0.0, "P4": 0.0}
    inputs = priority_inputs(chances, facts, "outage", Priority.P1, CHAT, LONG_MESSAGE_WORDS)
    assert inputs == {
        "text:P1": pytest.approx(math.log(0.5)),
        "text:P2": pytest.approx(math.log(0.5)),
        "text:P3": pytest.approx(math.log(PROBABILITY_FLOOR)),
        "text:P4": pytest.approx(math.log(PROBABILITY_FLOOR)),
        "state=down": 1.0,
        "reach=unknown": 1.0,
        "row=outage": 1.0,
        "rules=P1": 1.0,
        "channel=chat": 1.0,
        "suggested=P2": 1.0,
        "long": 1.0,
    }
    short = priority_inputs(chances, (), None, Priority.P3, CHAT, LONG_MESSAGE_WORDS - 1)
    assert "long" not in short
    assert short["row=None"] == 1.0


def test_it_computes_what_scikit_learn_predicts() -> None:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = [
        {"text:P1": -0.1, "state=down": 1.0, "reach=everyone": 1.0},
        {"text:P1": -2.0, "state=down": 1.0, "reach=one": 1.0},
        {"text:P1": -3.0, "state=request": 1.0},
        {"text:P1": -0.5, "state=repeated": 1.0, "reach=everyone": 1.0},
        {"text:P1": -4.0, "state=degraded": 1.0, "reach=many": 1.0},
        {"text:P1": -3.5, "state=request": 1.0, "channel=chat": 1.0},
    ] * 3
    labels = ["P1", "P3", "P4", "P2", "P3", "P4"] * 3
    vectorizer = DictVectorizer()
    fitted = LogisticRegression(C=1.0, max_iter=1000).fit(vectorizer.fit_transform(rows), labels)
    weights = {
        str(name): fitted.coef_[:, column]
        for column, name in enumerate(vectorizer.get_feature_names_out())
    }
    document = exported(list(fitted.classes_), fitted.intercept_.tolist(), weights, "test")
    combiner = parse_combiner(document, "test")
    probe = {"text:P1": -1.0, "state=down": 1.0, "reach=everyone": 1.0, "never=seen": 1.0}
    expected = fitted.predict_proba(vectorizer.transform([probe]))[0]
    got = combiner.probabilities(combiner.read(probe))
    for label, probability in zip(fitted.classes_, expected, strict=True):
        assert got[label] == pytest.approx(probability, abs=1e-4)


def _known(weights: dict[str, list[float]]) -> Combiner:
    document = exported(["P1", "P2", "P3", "P4"], [0.0] * 4, weights, "test")
    return parse_combiner(document, "test")


def test_the_strongest_inputs_are_those_that_moved_the_priority_chosen() -> None:
    combiner = _known(
        {
            "state=down": [2.0, 1.0, 0.0, -3.0],
            "reach=everyone": [1.0, 0.0, 0.0, -1.0],
            "state=request": [-1.0, -1.0, -1.0, 3.0],
            "channel=chat": [0.0, 0.0, 0.0, 0.0],
        }
    )
    inputs = {"state=down": 1.0, "reach=everyone": 1.0, "channel=chat": 1.0}
    moved = combiner.strongest(combiner.read(inputs), "P1")
    assert [name for name, _ in moved] == ["state=down", "reach=everyone"]
    assert moved[0][1] == pytest.approx(2.0 - (1.0 + 0.0 - 3.0) / 3)
    assert describe_strongest(moved).startswith("state=down +2.67, reach=everyone +1.33")
    assert combiner.strongest(combiner.read({"state=request": 1.0}), "P1") == []
    text = _known({"text:P1": [1.0, 0.0, 0.0, 0.0]})
    assert [name for name, _ in text.strongest(text.read({"text:P1": math.log(0.02)}), "P3")] == [
        "text:P1 0.02"
    ]


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"version": "x", "classes": ["P1"], "intercepts": [0.0]}, "not a priority combiner"),
        (
            {"version": "x", "classes": ["P1", "P2"], "intercepts": [0.0], "weights": {}},
            "weights and classes disagree",
        ),
        (
            {"version": "x", "classes": ["P0"], "intercepts": [0.0], "weights": {"a": [1.0]}},
            "unknown priorities",
        ),
    ],
)
def test_a_broken_combiner_is_refused_by_name(document: dict[str, object], complaint: str) -> None:
    with pytest.raises(RulesError, match=complaint):
        parse_combiner(document, "combiner.json")


def test_the_shipped_combiner_is_the_rule_file_s() -> None:
    shipped = load_ruleset()
    assert shipped.assistant is not None and shipped.assistant.priority_reads_facts
    assert shipped_combiner(MODELS).version == shipped.assistant.model_version
    other = shipped.assistant.model_copy(update={"model_version": "1999.1.1"})
    problems = assistant_problems(other, {"pbx_down"})
    assert any(where == ("assistant", "priority_reads_facts") for where, _ in problems)


def test_a_missing_combiner_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the priority combiner"):
        shipped_combiner(tmp_path)


def test_the_explanation_names_what_the_assistant_read() -> None:
    outage = TicketMessage(
        channel=Channel.EMAIL,
        subject="Consulta",
        body="Buenos días, una consulta cuando puedan: desde que abrimos no ha entrado ni "
        "una sola llamada a la central, y las salientes tampoco funcionan para nadie.",
    )
    decided = classify(outage, load_ruleset())
    read = [line for line in decided.explanation if line.startswith("the assistant read for")]
    assert len(read) == 1
    assert "text:" in read[0] or "=" in read[0]


def test_the_combiner_learns_from_what_the_rules_read_without_the_assistant() -> None:
    rules = train_assistant.rules_without_assistant()
    assert rules.assistant is None
    assert rules.impact is not None
