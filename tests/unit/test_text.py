from __future__ import annotations

from engine.rules.text import build_index, words


def test_words_fold_case_and_accents_and_split_on_punctuation() -> None:
    assert words("¿La Central está CAÍDA?") == ("la", "central", "esta", "caida")
    assert words("e-mail: soporte@x.mx") == ("e", "mail", "soporte", "x", "mx")
    assert words("") == ()


def test_phrase_index_finds_every_owner_once_per_phrase() -> None:
    index = build_index([(0, ["no calls", "down"]), (1, ["calls"]), (2, ["no calls at all"])])

    found = index.find(words("No calls at all, no calls. Down!"))

    assert found == {
        0: [("no", "calls"), ("down",)],
        1: [("calls",)],
        2: [("no", "calls", "at", "all")],
    }


def test_phrase_index_does_not_match_partial_phrases() -> None:
    index = build_index([(0, ["no entran ni salen llamadas"])])

    assert index.find(words("no entran llamadas")) == {}
