"""The learned assistant: what it computes is what scikit-learn computed when it was
trained, its work is bounded, and it only proposes within the rules' limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.contract import Channel, Priority, TicketMessage, Tier, TrapFacts
from engine.rules import train_assistant
from engine.rules.assistant import (
    MAX_CHARACTERS,
    char_grams,
    parse_model,
    shipped_model,
    text_of,
    word_grams,
)
from engine.rules.cases import load_cases, message_from
from engine.rules.classify import classify
from engine.rules.decide import decide
from engine.rules.ruleset import load_ruleset, parse_ruleset

ROOT = Path(__file__).resolve().parents[3]


def test_the_features_are_scikit_learn_s() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    text = "la central no   recibe llamadas, ok? a b"
    words = TfidfVectorizer(ngram_range=(1, 2)).build_analyzer()(text)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).build_analyzer()(text)
    assert word_grams(text) == words
    assert char_grams(text) == chars


def test_a_retrained_model_proposes_what_scikit_learn_predicts() -> None:
    cases = load_cases(ROOT / "tests" / "rules" / "labelled.yaml")[:120]
    texts = [text_of(message_from(case.input)) for case in cases]
    labels = [str(case.expect.priority) for case in cases]
    fitted = train_assistant.pipeline().fit(texts, labels)
    model = parse_model(train_assistant.exported(fitted, "priority", "test"), "test")
    probes = [message_from(case.input) for case in cases[:25]]
    expected = fitted.predict_proba([text_of(m) for m in probes])
    for probe, probabilities in zip(probes, expected, strict=True):
        proposal = model.propose(probe)
        best = probabilities.argmax()
        assert proposal.value == fitted.classes_[best]
        assert proposal.confidence == pytest.approx(probabilities[best], abs=1e-3)


def test_a_held_out_part_not_yet_spent_is_never_trained_on(tmp_path: Path) -> None:
    out = str(tmp_path / "models")
    for name in ("heldout-12.yaml", "Heldout-12.yaml"):
        argv = [f"tests/rules/independent/{name}", "--version", "x", "--out", out]
        assert train_assistant.main(argv) == 2
    mixed = ["tests/rules/independent/tuning.yaml", "tests/rules/independent/heldout-12.yaml"]
    assert train_assistant.main([*mixed, "--version", "x", "--out", out]) == 2
    assert not (tmp_path / "models").exists()


def test_only_the_spent_held_out_parts_are_trained_on() -> None:
    spent = set(train_assistant.SPENT_HELD_OUT)
    parts = ("", "-2", "-3", "-4", "-5", "-6", "-7", "-8", "-9", "-10", "-11")
    assert spent == {f"heldout{part}.yaml" for part in parts}
    assert train_assistant.trainable("tests/rules/independent/heldout-11.yaml")
    assert not train_assistant.trainable("tests/rules/independent/heldout-12.yaml")
    assert all(train_assistant.trainable(name) for name in train_assistant.DEFAULT_TRAINING)


def test_a_huge_message_is_read_only_to_its_bound() -> None:
    huge = TicketMessage(channel=Channel.EMAIL, body="la central no funciona " * 200_000)
    assert len(text_of(huge)) == MAX_CHARACTERS
    assert shipped_model("category").propose(huge).value


def test_a_short_message_s_outage_is_not_lowered_by_the_model() -> None:
    outage = TicketMessage(channel=Channel.EMAIL, subject="Soporte", body="la central está caída")
    decided = classify(outage, load_ruleset())
    assert decided.priority is Priority.P1
    assert decided.impact_row == "outage"


def test_the_explanation_says_when_the_assistant_decided() -> None:
    unclear = TicketMessage(
        channel=Channel.CHAT,
        body="hola, queremos que la central mande un whatsapp cuando nadie contesta, "
        "cuanto saldria desarrollarlo?",
    )
    shipped = load_ruleset()
    assert shipped.assistant is not None
    said = f"proposed by the learned assistant (model {shipped.assistant.model_version}"
    decided = classify(unclear, shipped)
    assert any(said in line for line in decided.explanation)


def test_a_parsed_trap_is_left_to_the_rules_and_a_trap_told_in_words_is_read() -> None:
    subject = "ups-1: UPS-MIB::upsTrapOnBattery"
    parsed = TicketMessage(
        channel=Channel.SNMP,
        subject=subject,
        trap=TrapFacts(oid="1.3.6.1.2.1.33.2.1", name="UPS-MIB::upsTrapOnBattery"),
    )
    decided = classify(parsed, load_ruleset())
    assert decided.priority is Priority.P1
    assert not any("learned assistant" in line for line in decided.explanation)
    told = classify(TicketMessage(channel=Channel.SNMP, subject=subject), load_ruleset())
    assert any("learned assistant" in line for line in told.explanation)


def test_a_route_model_gives_each_route_scikit_learn_s_probability() -> None:
    cases = load_cases(ROOT / "tests" / "rules" / "labelled.yaml")[:150]
    texts = [text_of(message_from(case.input)) for case in cases]
    routes = [set(case.expect.routes or ()) for case in cases]
    model = parse_model(train_assistant.routes_exported(texts, routes, "test"), "test")
    assert model.multilabel
    probe = message_from(cases[3].input)
    for proposal in model.propose_each(probe):
        fitted = train_assistant.pipeline().fit(texts, [proposal.value in r for r in routes])
        expected = fitted.predict_proba([text_of(probe)])[0][1]
        assert proposal.confidence == pytest.approx(expected, abs=1e-3)


def test_a_proposed_route_is_explained_and_brings_the_rules_tags_for_it() -> None:
    version = shipped_model("routes").version
    no_route_rules = parse_ruleset(
        'version: "t"\n'
        "defaults: {priority: P3, category: other}\n"
        "rules: []\n"
        "routes: {id: root, tier: L1, routes: [\n"
        "  {id: development, match: {tags_any: [feature_request]}, tier: L2}]}\n"
        f"assistant: {{model_version: '{version}', routes_min_confidence: 0.5,\n"
        "  route_tags: {development: [feature_request]}}\n",
        "routes-only.yaml",
    )
    request = TicketMessage(
        channel=Channel.CHAT,
        body="hola, queremos que cuando nadie atiende la central le mande un whatsapp "
        "automatico al cliente, se los podemos pagar para que lo hagan?",
    )
    decided = decide(request, no_route_rules)
    assert decided.summary()["routes"] == ["development"]
    assert "feature_request" in decided.classification.tags
    assert decided.route.tier is Tier.L2
    assert any(line.startswith("special route development proposed by the learned assistant")
               for line in decided.classification.explanation)  # fmt: skip
