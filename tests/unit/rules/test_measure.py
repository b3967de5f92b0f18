"""The classifier figures of ``engine rules test --report``, on small hand-made outcomes
whose numbers are checked by hand in the comments."""

from __future__ import annotations

from typing import Any

import pytest

from engine.contract import Priority
from engine.rules.cases import Case, Expectation, field_mismatches, language_of
from engine.rules.measure import Outcome, Ratio, as_json, measure, render


def outcome(
    name: str, language: str | None, expect: dict[str, Any], got: dict[str, Any] | None
) -> Outcome:
    summary = None if got is None else {"tags": [], "skills": [], **got}
    return Outcome(name, language, Expectation.model_validate(expect), summary)


def decided(priority: str, category: str, tier: str, routes: list[str]) -> dict[str, Any]:
    return {"priority": priority, "category": category, "tier": tier, "routes": routes}


# name, language, label, decision: the comments say which fields are wrong.
OUTCOMES = [
    # all right
    outcome("a", "es",
            {"priority": "P1", "category": "pbx_down", "tier": "L3", "routes": [], "tags": []},
            decided("P1", "pbx_down", "L3", [])),
    # priority wrong (an outage decided P2), routes wrong (vendor_report missed)
    outcome("b", "es",
            {"priority": "P1", "category": "incoming_calls", "tier": "L3",
             "routes": ["vendor_report"]},
            decided("P2", "incoming_calls", "L3", [])),
    # priority right (P1 is an acceptable alternative), category wrong, routes wrong (extra)
    outcome("c", "en",
            {"priority": "P2", "acceptable_priorities": ["P1"], "category": "choppy_voice",
             "tier": "L3", "routes": []},
            decided("P1", "echo_or_delay", "L3", ["vendor_report"])),
    # all right: only version and end-of-life tags are compared
    outcome("d", "en",
            {"priority": "P4", "category": "adding_extensions", "tier": "L1", "routes": [],
             "tags": ["version-limited"]},
            {**decided("P4", "adding_extensions", "L1", []), "tags": ["version-limited", "x"]}),
    # priority, tier, routes (upstream_bug missed) and tags wrong
    outcome("e", "en",
            {"priority": "P3", "category": "choppy_voice", "tier": "L2",
             "routes": ["bug_tracker", "upstream_bug"], "tags": []},
            {**decided("P1", "choppy_voice", "L3", ["bug_tracker"]), "tags": ["eol-callcenter"]}),
    # its input could not be read: listed, not counted
    outcome("f", None, {"priority": "P1"}, None),
]  # fmt: skip


def test_accuracy_per_field_counts_an_acceptable_priority_as_right() -> None:
    report = measure(OUTCOMES)

    assert (report.cases, report.unreadable) == (6, ["f"])
    assert report.overall.accuracy == {
        "priority": Ratio(3, 5),  # a, c (alternative), d
        "priority exact": Ratio(2, 5),  # a, d
        "category": Ratio(4, 5),  # all but c
        "tier": Ratio(4, 5),  # all but e
        "routes": Ratio(2, 5),  # a, d
        "tags": Ratio(2, 3),  # labelled on a, d, e; e is wrong
    }


def test_p1_recall_is_strict_and_p1_precision_accepts_a_defensible_p1() -> None:
    p1 = measure(OUTCOMES).overall.p1

    assert p1.recall == Ratio(1, 2)  # labelled P1: a, b; b was decided P2
    assert p1.precision == Ratio(2, 3)  # decided P1: a, c (P1 acceptable), e (labelled P3)


def test_special_routes_are_counted_per_case_and_route() -> None:
    report = measure(OUTCOMES)

    # b misses vendor_report, c adds it, e finds bug_tracker and misses upstream_bug
    assert report.overall.special_routes.recall == Ratio(1, 3)
    assert report.overall.special_routes.precision == Ratio(1, 2)
    assert {name: (s.recall, s.precision) for name, s in report.routes.items()} == {
        "bug_tracker": (Ratio(1, 1), Ratio(1, 1)),
        "upstream_bug": (Ratio(0, 1), Ratio(0, 0)),
        "vendor_report": (Ratio(0, 1), Ratio(0, 1)),
    }


def test_macro_f1_averages_over_every_category_labelled_or_decided() -> None:
    report = measure(OUTCOMES)

    f1 = {score.category: score.f1 for score in report.categories}
    assert f1 == {
        "adding_extensions": 1.0,
        "choppy_voice": pytest.approx(2 / 3),  # 2*1 / (2*1 + 0 FP + 1 FN)
        "echo_or_delay": 0.0,  # decided once, never labelled
        "incoming_calls": 1.0,
        "pbx_down": 1.0,
    }
    assert report.macro_f1 == pytest.approx(11 / 15)  # (1 + 2/3 + 0 + 1 + 1) / 5


def test_confusion_matrices_have_the_label_in_rows_and_the_decision_in_columns() -> None:
    report = measure(OUTCOMES)

    assert report.priority_confusion == {
        ("P1", "P1"): 1, ("P1", "P2"): 1, ("P2", "P1"): 1, ("P4", "P4"): 1, ("P3", "P1"): 1,
    }  # fmt: skip
    assert report.priority_accepted_off_diagonal == 1  # c
    assert report.tier_confusion == {("L3", "L3"): 3, ("L1", "L1"): 1, ("L2", "L3"): 1}

    text = render(report).splitlines()
    start = text.index("priority confusion (rows expected, columns got)")
    assert text[start + 1].split() == ["expected", "\\", "got", "P1", "P2", "P3", "P4", "total"]
    assert [line.split() for line in text[start + 2 : start + 6]] == [
        ["P1", "1", "1", "0", "0", "2"],
        ["P2", "1", "0", "0", "0", "1"],
        ["P3", "1", "0", "0", "0", "1"],
        ["P4", "0", "0", "0", "1", "1"],
    ]
    assert as_json(report)["confusion"]["tier"] == {
        "L1": {"L1": 1},
        "L2": {"L3": 1},
        "L3": {"L3": 3},
    }


def test_figures_per_language() -> None:
    by_language = measure(OUTCOMES).by_language

    assert list(by_language) == ["en", "es"]
    assert (by_language["es"].cases, by_language["es"].accuracy["priority"]) == (2, Ratio(1, 2))
    assert (by_language["en"].cases, by_language["en"].accuracy["priority"]) == (3, Ratio(2, 3))
    assert by_language["en"].p1.precision == Ratio(1, 2)  # c right, e wrong


def test_counts_are_printed_with_their_rate() -> None:
    text = render(measure(OUTCOMES), title="cases.yaml")

    assert text.startswith("cases.yaml: 6 cases, 1 unreadable (not counted)")
    assert "  priority        3/5 = 60.0 %" in text
    assert "P1 precision    2/3 = 66.7 %" in text
    assert "upstream_bug    recall 0/1 = 0.0 %, precision 0/0 = n/a" in text
    assert "categories: macro F1 0.733 over 5" in text


@pytest.mark.parametrize(
    ("expect", "got", "wrong"),
    [
        ({"priority": "P2"}, "P2", {}),
        ({"priority": "P2", "acceptable_priorities": ["P1"]}, "P1", {}),
        ({"priority": "P2", "acceptable_priorities": ["P1"]}, "P3", {"priority": ("P2", "P3")}),
    ],
)
def test_a_listed_alternative_is_no_mismatch(
    expect: dict[str, Any], got: str, wrong: dict[str, Any]
) -> None:
    summary = {**decided(got, "other", "L1", []), "tags": []}
    assert field_mismatches(summary, Expectation.model_validate(expect)) == wrong


@pytest.mark.parametrize(
    ("case", "language"),
    [
        ({"name": "w1-en-x", "language": "en", "input": {"customer": {"language": "es"}}}, "en"),
        ({"name": "w1-x", "input": {"customer": {"language": "es"}}}, "es"),
        ({"name": "en-mail-x", "input": {}}, "en"),
        ({"name": "snmp-x", "input": {}}, None),
    ],
)
def test_the_language_of_a_case(case: dict[str, Any], language: str | None) -> None:
    assert language_of(Case.model_validate({**case, "expect": {}})) == language


def test_a_case_carries_its_writer_language_and_alternatives() -> None:
    case = Case.model_validate(
        {"name": "n", "writer": "w3", "language": "es", "input": {},
         "expect": {"priority": "P1", "acceptable_priorities": ["P2"]}}
    )  # fmt: skip

    assert case.expect.acceptable_priorities == [Priority.P2]
