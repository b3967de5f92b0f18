from __future__ import annotations

import pytest

from engine.rules.text import MAX_FOLDED_CHARS, PhraseHit, build_index, clauses, fold, words


def test_words_fold_case_and_accents_and_split_on_punctuation() -> None:
    assert words("¿La Central está CAÍDA?") == ("la", "central", "esta", "caida")
    assert words("e-mail: soporte@x.mx") == ("e", "mail", "soporte", "x", "mx")
    assert words("") == ()


def test_clauses_split_at_punctuation_and_but() -> None:
    assert clauses("No hay eco, pero la central está caída.") == (
        ("no", "hay", "eco"),
        ("la", "central", "esta", "caida"),
    )


def test_phrase_index_finds_every_owner_once_per_phrase() -> None:
    index = build_index([(0, ["no calls", "down"]), (1, ["calls"]), (2, ["no calls at all"])])

    found = index.find(clauses("No calls at all, no calls. Down!"))

    assert found == {
        0: [PhraseHit(("no", "calls"), False), PhraseHit(("down",), False)],
        1: [PhraseHit(("calls",), True)],  # "no" stands before it, each time
        2: [PhraseHit(("no", "calls", "at", "all"), False)],
    }


def test_a_phrase_after_a_negation_in_its_clause_is_negated() -> None:
    index = build_index([(0, ["caida", "outage"])])

    assert index.find(clauses("la central no está caída")) == {0: [PhraseHit(("caida",), True)]}
    assert index.find(clauses("this is not an outage")) == {0: [PhraseHit(("outage",), True)]}
    # The negation belongs to another clause: the phrase counts.
    assert index.find(clauses("no hay tono. Central caída")) == {0: [PhraseHit(("caida",), False)]}


def test_a_phrase_that_starts_with_a_negation_is_never_negated() -> None:
    index = build_index([(0, ["no entran llamadas"])])

    assert index.find(clauses("ya no, no entran llamadas")) == {
        0: [PhraseHit(("no", "entran", "llamadas"), False)]
    }


def test_phrase_index_does_not_match_partial_phrases() -> None:
    index = build_index([(0, ["no entran ni salen llamadas"])])

    assert index.find(clauses("no entran llamadas")) == {}


def test_a_phrase_followed_by_a_reassurance_reads_as_negated() -> None:
    index = build_index([(1, ["most calls"])])

    [fine] = index.find(clauses("Most calls are fine for everyone in the office."))[1]
    [bad] = index.find(clauses("Most calls drop after 30 seconds."))[1]

    assert fine.negated and not bad.negated


def test_a_line_break_inside_a_sentence_does_not_end_the_clause() -> None:
    wrapped = "Desde la mañana se cortan todas\nlas llamadas en curso.\n\n- Sucursal norte"

    assert clauses(wrapped) == (
        ("desde", "la", "manana", "se", "cortan", "todas", "las", "llamadas", "en", "curso"),
        ("sucursal", "norte"),
    )


@pytest.mark.parametrize("expanding", ["\ufdfa", "\u3316", "\u1e9e", "x"])
def test_folding_reads_and_gives_at_most_its_bound(expanding: str) -> None:
    """U+FDFA folds to 18 characters, U+3316 to 6, U+1E9E to "ss": a long run of them is
    folded only as far as the bound, the words before it kept."""
    text = "La central está CAÍDA " + expanding * 200_000

    folded = fold(text)

    assert len(folded) <= MAX_FOLDED_CHARS
    assert folded.startswith("la central esta caida ")
