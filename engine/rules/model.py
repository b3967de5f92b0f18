"""What every model of a rule file shares: strict, frozen, unknown fields refused; ids,
phrases and regexes checked the same way wherever they appear."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from engine.rules.text import words

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def with_words(phrases: tuple[str, ...]) -> tuple[str, ...]:
    """The phrases, each with something to match (letters or digits)."""
    for phrase in phrases:
        if not words(phrase):
            raise ValueError(f"phrase {phrase!r} has no letters or digits to match")
    return phrases


def compiling(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """The regular expressions, each compiled once to check it."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"bad regular expression {pattern!r}: {error}") from error
    return patterns


Phrases = Annotated[tuple[str, ...], AfterValidator(with_words)]
"""Phrases of a rule file: each must have letters or digits to match."""
Regexes = Annotated[tuple[str, ...], AfterValidator(compiling)]
"""Regular expressions of a rule file: each must compile."""
