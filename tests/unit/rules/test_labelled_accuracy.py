"""The shipped rules against the labelled support messages (tests/rules/labelled.yaml).

Floors, not targets: they fail a change that makes the rules worse. A missed outage is the
worst error, so P1 recall must stay complete.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.rules.cases import Report, load_cases, run_cases
from engine.rules.ruleset import load_ruleset

LABELLED = Path(__file__).resolve().parents[2] / "rules" / "labelled.yaml"


@pytest.fixture(scope="module")
def report() -> Report:
    return run_cases(load_cases(LABELLED), load_ruleset())


def test_the_labelled_set_is_broad_enough(report: Report) -> None:
    cases = [result.case for result in report.results]
    assert len(cases) >= 150
    assert {case.input["channel"] for case in cases} == {"email", "chat", "phone"}
    assert {case.expect.priority for case in cases} == {"P1", "P2", "P3", "P4"}
    assert len({case.expect.category for case in cases}) == 22
    assert all(result.error is None for result in report.results)


def test_no_outage_is_missed(report: Report) -> None:
    hit, relevant = report.recall("P1")
    assert hit == relevant


@pytest.mark.parametrize(
    ("field", "floor"),
    [("priority", 0.82), ("category", 0.75), ("tier", 0.88), ("routes", 0.85), ("tags", 0.98)],
)
def test_accuracy_stays_above_its_floor(report: Report, field: str, floor: float) -> None:
    right, compared = report.accuracy(field)
    assert right / compared >= floor, f"{field}: {right}/{compared}"
