"""A short fuzzing run of every target, in ``make test`` (``make fuzz`` runs the long one).
It fails on a crash only, whose input is then kept in ``tests/fuzz/regressions/``; the
slowest input is printed, never judged here."""

from __future__ import annotations

import pytest

from tests.fuzz.runner import fuzz, summary
from tests.fuzz.targets import NAMES

SHORT_RUN_SECONDS = 20  # and a few seconds to start each: about 30 s a target


@pytest.mark.parametrize("name", NAMES)
def test_a_short_fuzzing_run_finds_no_crash(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = fuzz(name, SHORT_RUN_SECONDS)
    with capsys.disabled():
        print(f"\n{summary(outcome)}")

    assert outcome.crash is None, summary(outcome)
    assert outcome.inputs > 0, summary(outcome)
