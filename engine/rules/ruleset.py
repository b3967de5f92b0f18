"""The rule set as data: strict models of the YAML, validated as a whole at load time.

How the rules that fire combine (``classify``):
- priority: the most severe of the priorities set by fired rules and the message's own
  suggested priority (an agent's or a device's); with none of them, ``defaults.priority``.
  Then every fired rule's ``raise_priority`` raises it by that many levels (up to P1).
- category: the first fired rule, in file order, that sets one; else ``defaults.category``.
- tags, skills, special routes: the union over fired rules, in file order.
A phrase occurrence that is negated ("no", "not", "sin"... in the three words before it,
same clause) does not count, unless the phrase starts with a negation itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator

from engine.contract import Channel, Priority, SpecialRoute, SupportPlan, Tier
from engine.documents import Problem, repeated_ids, validated_document
from engine.errors import RulesError
from engine.rules.assistant import Assistant, assistant_problems
from engine.rules.impact import Impact, impact_problems
from engine.rules.model import ID_PATTERN, Phrases, Regexes, Strict
from engine.rules.text import PhraseIndex, build_index

DEFAULT_RULES = Path(__file__).with_name("default.yaml")
_VERSION = re.compile(r"^\d+(\.\d+)*")


def version_key(version: str) -> tuple[int, ...]:
    """ "4.0.1-beta" -> (4, 0, 1); a version without leading digits is (0,)."""
    found = _VERSION.match(version.strip().lstrip("vV"))
    return tuple(int(part) for part in found.group(0).split(".")) if found else (0,)


class CustomerCondition(Strict):
    known: bool | None = Field(default=None, description="true: in the directory")
    plan: tuple[SupportPlan, ...] = ()
    language: tuple[str, ...] = ()
    version_below: str | None = None
    version_at_least: str | None = None
    modules_any: tuple[str, ...] = ()

    @field_validator("version_below", "version_at_least")
    @classmethod
    def _numeric(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.match(value):
            raise ValueError(f"{value!r} is not a version such as 5 or 4.0.2")
        return value


class TrapCondition(Strict):
    oid: tuple[str, ...] = Field(default=(), description="trap OID, exact or as a prefix.")
    name: tuple[str, ...] = Field(default=(), description="MIB name, e.g. IF-MIB::linkDown")
    device_role: tuple[str, ...] = ()
    varbinds: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="varbind (OID or MIB name) -> accepted values"
    )


class RuleMatcher(Strict):
    """All given conditions must hold. ``phrases``/``regex``: any one occurs."""

    phrases: Phrases = ()
    not_phrases: Phrases = Field(default=(), description="none of these may occur")
    regex: Regexes = Field(default=(), description="case-insensitive, on raw text")
    fields: tuple[str, ...] = Field(default=("subject", "body"), description="text to search")
    channels: tuple[Channel, ...] = ()
    customer: CustomerCondition | None = None
    trap: TrapCondition | None = None
    suggested_priority: tuple[Priority, ...] = ()

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - {"subject", "body"}
        if unknown or not value:
            raise ValueError("fields lists subject and/or body")
        return value


class RuleActions(Strict):
    priority: Priority | None = None
    raise_priority: int = Field(default=0, ge=0, le=3, description="levels to raise by")
    category: str | None = None
    tags: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    special_routes: tuple[SpecialRoute, ...] = ()


class Rule(Strict):
    id: str = Field(pattern=ID_PATTERN)
    description: str = ""
    domain_rule: str | None = Field(default=None, description="DOMAIN.md rule name, e.g. P1")
    match: RuleMatcher
    set: RuleActions

    @cached_property
    def compiled_regex(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(pattern, re.IGNORECASE) for pattern in self.match.regex)


class RouteMatcher(Strict):
    """All given fields must hold; each lists the values accepted."""

    priority: tuple[Priority, ...] = ()
    category: tuple[str, ...] = ()
    channel: tuple[Channel, ...] = ()
    tags: tuple[str, ...] = Field(default=(), description="all of these tags present")
    tags_any: tuple[str, ...] = Field(default=(), description="one of these tags present")
    customer_plan: tuple[SupportPlan, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not any(
            (
                self.priority,
                self.category,
                self.channel,
                self.tags,
                self.tags_any,
                self.customer_plan,
            )
        )


class Route(Strict):
    id: str = Field(pattern=ID_PATTERN)
    description: str = ""
    match: RouteMatcher = RouteMatcher()
    tier: Tier | None = Field(default=None, description="None: inherited from the parent")
    special_routes: tuple[SpecialRoute, ...] = ()
    continue_: bool = Field(default=False, alias="continue")
    routes: tuple[Route, ...] = ()


class Defaults(Strict):
    priority: Priority
    category: str


class RuleSet(Strict):
    version: str = Field(min_length=1)
    defaults: Defaults
    rules: tuple[Rule, ...]
    routes: Route
    impact: Impact | None = None
    assistant: Assistant | None = None
    category_skills: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="The skills a category asks of whoever takes the ticket (tier workers)",
    )

    @cached_property
    def impact_values(self) -> tuple[tuple[int, int], ...]:
        """(fact index, value index) of each owner of ``impact_index``."""
        if self.impact is None:
            return ()
        return tuple(
            (f, v) for f, fact in enumerate(self.impact.facts) for v in range(len(fact.values))
        )

    @cached_property
    def impact_index(self) -> PhraseIndex:
        """Owner ``k`` wants the phrases of ``impact_values[k]``."""
        facts = self.impact.facts if self.impact is not None else ()
        return build_index(
            (k, facts[f].values[v].phrases) for k, (f, v) in enumerate(self.impact_values)
        )

    @cached_property
    def phrase_index(self) -> PhraseIndex:
        """Owner ``2*i`` wants rule i's phrases; ``2*i+1`` its not_phrases."""
        return build_index(
            owner
            for i, rule in enumerate(self.rules)
            for owner in ((2 * i, rule.match.phrases), (2 * i + 1, rule.match.not_phrases))
        )

    @cached_property
    def always_checked(self) -> tuple[int, ...]:
        """Rules that a phrase hit cannot select: no phrases, or regexes to run."""
        return tuple(
            i for i, rule in enumerate(self.rules) if not rule.match.phrases or rule.match.regex
        )

    @cached_property
    def fingerprint(self) -> str:
        """``version`` plus a digest of the content, so an edit without a bump still shows."""
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]
        return f"{self.version}+{digest}"


def walk(
    route: Route, path: tuple[int | str, ...] = ("routes",)
) -> Iterator[tuple[Route, tuple[int | str, ...]]]:
    yield route, path
    for index, child in enumerate(route.routes):
        yield from walk(child, (*path, "routes", index))


# --- whole-set checks, each naming the path of the bad value ---------------------------


def semantic_problems(ruleset: RuleSet) -> list[Problem]:
    problems = repeated_ids([rule.id for rule in ruleset.rules], "rules", "rule")
    if ruleset.routes.tier is None:
        problems.append(
            (("routes", "tier"), "the root route must set a tier: every ticket needs one")
        )
    categories = {ruleset.defaults.category} | {
        rule.set.category for rule in ruleset.rules if rule.set.category
    }
    for category in ruleset.category_skills:
        if category not in categories:
            problems.append(
                (("category_skills", category), f"unknown category {category!r}: no rule sets it")
            )
    tags = {tag for rule in ruleset.rules for tag in rule.set.tags}
    if ruleset.assistant is not None:
        tags |= {tag for added in ruleset.assistant.route_tags.values() for tag in added}
    seen_routes: dict[str, tuple[int | str, ...]] = {}
    for route, path in walk(ruleset.routes):
        if route.id in seen_routes:
            problems.append(((*path, "id"), f"duplicate route id {route.id!r}"))
        seen_routes.setdefault(route.id, path)
        for value in route.match.category:
            if value not in categories:
                problems.append(
                    (
                        (*path, "match", "category"),
                        f"unreachable: no rule sets category {value!r}, nor is it the default",
                    )
                )
        for value in (*route.match.tags, *route.match.tags_any):
            if value not in tags:
                problems.append(
                    ((*path, "match", "tags"), f"unreachable: no rule adds tag {value!r}")
                )
        problems.extend(_shadowed_children(route, path))
    problems.extend(
        _narrowing_violations(ruleset.routes, ruleset.routes.match.priority, ("routes",))
    )
    if ruleset.impact is not None:
        problems.extend(impact_problems(ruleset.impact))
    if ruleset.assistant is not None:
        problems.extend(assistant_problems(ruleset.assistant, categories))
    return problems


def _shadowed_children(route: Route, path: tuple[int | str, ...]) -> list[Problem]:
    problems: list[Problem] = []
    for index, child in enumerate(route.routes):
        if child.match.is_empty and not child.continue_:
            for later in range(index + 1, len(route.routes)):
                problems.append(
                    (
                        (*path, "routes", later),
                        f"unreachable: routes[{index}] ({child.id}) matches everything first "
                        "and has no 'continue'",
                    )
                )
            break
    return problems


def _narrowing_violations(
    route: Route, allowed: tuple[Priority, ...], path: tuple[int | str, ...]
) -> list[Problem]:
    problems: list[Problem] = []
    for index, child in enumerate(route.routes):
        child_path = (*path, "routes", index)
        wanted = child.match.priority
        if allowed and wanted and not set(wanted) & set(allowed):
            problems.append(
                (
                    (*child_path, "match", "priority"),
                    f"unreachable: its parent only lets {', '.join(allowed)} through",
                )
            )
        narrowed = tuple(p for p in wanted if not allowed or p in allowed) or allowed
        problems.extend(_narrowing_violations(child, narrowed, child_path))
    return problems


# --- loading, with line numbers -------------------------------------------------------


def parse_ruleset(text: str, origin: str) -> RuleSet:
    return validated_document(text, origin, RuleSet, semantic_problems, RulesError, "rule set")


def load_ruleset(path: Path | None = None) -> RuleSet:
    source = path or DEFAULT_RULES
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise RulesError(f"{source}: cannot read the rule set: {error}") from error
    return parse_ruleset(text, str(source))
