"""Every input fuzzing found (a crash, or one over the time limit), replayed through its
target as an ordinary test: the engine takes it or refuses it the documented way."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.child import REGRESSIONS
from tests.fuzz.targets import NAMES, target

FOUND = sorted(path for path in REGRESSIONS.glob("*/*") if path.is_file())


def test_inputs_found_are_kept_under_their_target() -> None:
    assert FOUND, "the inputs fuzzing found are kept in tests/fuzz/regressions/"
    assert {path.parent.name for path in FOUND} <= set(NAMES)


@pytest.mark.parametrize("path", FOUND, ids=lambda path: f"{path.parent.name}/{path.name[:14]}")
def test_an_input_fuzzing_found_is_taken_or_refused_as_documented(path: Path) -> None:
    target(path.parent.name).run(path.read_bytes())
