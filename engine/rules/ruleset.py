"""The rule set as data: strict models of the YAML, validated as a whole at load time.

Combining rules that fire together:
- priority: the most severe priority set by any fired rule wins; none: ``defaults.priority``;
- category: the first fired rule (in file order) that sets one wins; none: ``defaults.category``;
- tags: the union, in file order.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import RulesError
from engine.models import Channel, Priority, SpecialRoute, Tier
from engine.rules.text import PhraseIndex, build_index, words

DEFAULT_RULES = Path(__file__).with_name("default.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleMatcher(_Strict):
    """All given conditions must hold; ``phrases`` holds when any one phrase occurs."""

    phrases: tuple[str, ...] = ()
    channels: tuple[Channel, ...] = ()

    @field_validator("phrases")
    @classmethod
    def _phrases_have_words(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for phrase in value:
            if not words(phrase):
                raise ValueError(f"phrase {phrase!r} has no letters or digits to match")
        return value


class RuleActions(_Strict):
    priority: Priority | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    domain_rule: str | None = Field(default=None, description="DOMAIN.md rule name, e.g. P1")
    match: RuleMatcher
    set: RuleActions


class RouteMatcher(_Strict):
    """All given fields must hold; each lists the values accepted."""

    priority: tuple[Priority, ...] = ()
    category: tuple[str, ...] = ()
    channel: tuple[Channel, ...] = ()
    tags: tuple[str, ...] = Field(default=(), description="all of these tags present")


class Route(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    match: RouteMatcher = RouteMatcher()
    tier: Tier | None = Field(default=None, description="None: inherited from the parent")
    special_routes: tuple[SpecialRoute, ...] = ()
    continue_: bool = Field(default=False, alias="continue")
    routes: tuple[Route, ...] = ()


class Defaults(_Strict):
    priority: Priority
    category: str


class RuleSet(_Strict):
    version: str = Field(min_length=1)
    defaults: Defaults
    rules: tuple[Rule, ...]
    routes: Route

    @field_validator("rules")
    @classmethod
    def _unique_rule_ids(cls, value: tuple[Rule, ...]) -> tuple[Rule, ...]:
        duplicated = [rule_id for rule_id, n in Counter(r.id for r in value).items() if n > 1]
        if duplicated:
            raise ValueError(f"duplicate rule ids: {', '.join(duplicated)}")
        return value

    @field_validator("routes")
    @classmethod
    def _root_has_tier(cls, value: Route) -> Route:
        if value.tier is None:
            raise ValueError("the root route must set a tier: every ticket needs one")
        duplicated = [rid for rid, n in Counter(r.id for r in walk(value)).items() if n > 1]
        if duplicated:
            raise ValueError(f"duplicate route ids: {', '.join(duplicated)}")
        return value

    @cached_property
    def phrase_index(self) -> PhraseIndex:
        return build_index((i, rule.match.phrases) for i, rule in enumerate(self.rules))

    @cached_property
    def fingerprint(self) -> str:
        """``version`` plus a digest of the content, so an edit without a bump still shows."""
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]
        return f"{self.version}+{digest}"


def walk(route: Route) -> Iterator[Route]:
    yield route
    for child in route.routes:
        yield from walk(child)


def parse_ruleset(text: str, origin: str) -> RuleSet:
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RulesError(f"{origin}: not valid YAML: {error}") from error
    try:
        return RuleSet.model_validate(document)
    except ValidationError as error:
        problems = "\n".join(
            f"  {_path(issue['loc'])}: {issue['msg'].removeprefix('Value error, ')}"
            for issue in error.errors()
        )
        raise RulesError(f"{origin}: invalid rule set:\n{problems}") from error


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(document)"


def load_ruleset(path: Path | None = None) -> RuleSet:
    source = path or DEFAULT_RULES
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise RulesError(f"{source}: cannot read the rule set: {error}") from error
    return parse_ruleset(text, str(source))
