"""The shipped rules decide SNMP notifications as tests/rules/snmp_traps.yaml says."""

from __future__ import annotations

from pathlib import Path

from engine.rules.cases import load_cases, render_report, run_cases
from engine.rules.ruleset import load_ruleset

CASES = Path(__file__).resolve().parents[2] / "rules" / "snmp_traps.yaml"


def test_every_trap_case_is_decided_as_labelled() -> None:
    report = run_cases(load_cases(CASES), load_ruleset())

    assert len(report.results) >= 9
    assert report.failures == [], render_report(report, verbose=True)
