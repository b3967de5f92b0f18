"""Rule test cases (``engine rules test``): an input as a channel produces it, and the
decision expected, compared field by field, like ``amtool config routes test``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.contract import Priority, TicketMessage
from engine.contract.customers import CustomerDirectory
from engine.errors import RulesError
from engine.rules.decide import Decision, decide
from engine.rules.ruleset import RuleSet

COMPARED = ("priority", "category", "tier", "routes", "tags")
INLINE_CUSTOMER = "(inline)"
LANGUAGES = ("es", "en")


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    priority: str | None = None
    acceptable_priorities: list[Priority] = Field(
        default_factory=list, description="other defensible priorities, counted as right"
    )
    category: str | None = None
    tier: str | None = None
    routes: list[str] | None = Field(default=None, description="exactly these special routes")
    tags: list[str] | None = Field(default=None, description="these tags, among others")


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    writer: str | None = Field(default=None, description="who wrote and labelled the case")
    language: str | None = Field(default=None, description="the message's language: es, en")
    input: dict[str, Any]
    expect: Expectation


def language_of(case: Case) -> str | None:
    """The case's language, else the customer's, else its name's prefix ("es-...")."""
    if case.language:
        return case.language
    customer = case.input.get("customer")
    if isinstance(customer, dict) and customer.get("language"):
        return str(customer["language"])
    prefix = case.name.split("-", 1)[0]
    return prefix if prefix in LANGUAGES else None


def message_from(data: dict[str, Any], directory: CustomerDirectory | None = None) -> TicketMessage:
    """A classify input: TicketMessage's fields; a ``customer`` may omit its id, and with
    no ``customer`` the sender is looked up in the directory."""
    data = dict(data)
    customer = data.get("customer")
    if isinstance(customer, dict):
        data["customer"] = {"customer_id": INLINE_CUSTOMER, **customer}
    elif customer is None and directory is not None and data.get("sender"):
        profile = directory.profile_of(str(data["sender"]))
        if profile is not None:
            data["customer"] = profile.model_dump(mode="json")
    return TicketMessage.model_validate_json(json.dumps(data))


def load_cases(path: Path) -> list[Case]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise RulesError(f"{path}: cannot read the cases: {error}") from error
    raw = document.get("cases") if isinstance(document, dict) else None
    if not isinstance(raw, list):
        raise RulesError(f"{path}: expected 'cases:' with a list")
    cases = []
    for index, item in enumerate(raw):
        try:
            cases.append(Case.model_validate(item))
        except ValidationError as error:
            raise RulesError(f"{path}: cases[{index}]: {error}") from error
    return cases


def _tags_compared(tags: Sequence[str], expected: list[str]) -> list[str]:
    return sorted(tag for tag in tags if tag in expected or tag.startswith(("version-", "eol-")))


def field_mismatches(got: Mapping[str, Any], expect: Expectation) -> dict[str, tuple[Any, Any]]:
    """Field -> (expected, got) for each field of a decision's summary that differs; a
    priority among ``acceptable_priorities`` is right."""
    found: dict[str, tuple[Any, Any]] = {}
    for name in ("priority", "category", "tier"):
        wanted = getattr(expect, name)
        if wanted is None or got[name] == wanted:
            continue
        if name == "priority" and got[name] in expect.acceptable_priorities:
            continue
        found[name] = (wanted, got[name])
    if expect.routes is not None and sorted(got["routes"]) != sorted(expect.routes):
        found["routes"] = (sorted(expect.routes), sorted(got["routes"]))
    if expect.tags is not None:
        domain_tags = _tags_compared(got["tags"], expect.tags)
        if domain_tags != sorted(expect.tags):
            found["tags"] = (sorted(expect.tags), domain_tags)
    return found


def mismatches(decision: Decision, expect: Expectation) -> dict[str, tuple[Any, Any]]:
    """Field -> (expected, got) for each field that differs."""
    return field_mismatches(decision.summary(), expect)


@dataclass
class CaseResult:
    case: Case
    decision: Decision | None
    wrong: dict[str, tuple[Any, Any]]
    error: str | None = None


@dataclass
class Report:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.wrong or r.error]

    def accuracy(self, name: str) -> tuple[int, int]:
        compared = [
            r for r in self.results
            if r.error is None and getattr(r.case.expect, name) is not None
        ]  # fmt: skip
        return sum(name not in r.wrong for r in compared), len(compared)

    def recall(self, priority: str) -> tuple[int, int]:
        relevant = [r for r in self.results if r.case.expect.priority == priority]
        hit = sum(
            1 for r in relevant
            if r.decision is not None and r.decision.classification.priority.value == priority
        )  # fmt: skip
        return hit, len(relevant)

    def confusion(self, name: str) -> Counter[tuple[Any, Any]]:
        return Counter(
            (str(r.wrong[name][0]), str(r.wrong[name][1])) for r in self.results if name in r.wrong
        )


def run_cases(
    cases: Sequence[Case], ruleset: RuleSet, directory: CustomerDirectory | None = None
) -> Report:
    report = Report()
    for case in cases:
        try:
            message = message_from(case.input, directory)
        except ValidationError as error:
            report.results.append(CaseResult(case, None, {}, f"bad input: {error}"))
            continue
        decision = decide(message, ruleset)
        report.results.append(CaseResult(case, decision, mismatches(decision, case.expect)))
    return report


def render_report(report: Report, verbose: bool = False) -> str:
    lines = []
    for result in report.failures:
        lines.append(f"FAIL {result.case.name}")
        if result.error:
            lines.append(f"  {result.error}")
            continue
        for name, (wanted, got) in result.wrong.items():
            lines.append(f"  {name}: expected {wanted}, got {got}")
        assert result.decision is not None
        explanation = result.decision.explanation()
        for rule in explanation["rules"]:
            lines.append(
                f"  fired {rule['rule_id']} on {rule['field']}: {', '.join(rule['matched'])}"
            )
        for reason in explanation["reasons"]:
            lines.append(f"  - {reason}")
        lines.append(f"  route: {' > '.join(explanation['route_path'])}")
    if verbose or report.failures:
        lines.append("")
    total = len(report.results)
    lines.append(f"{total - len(report.failures)}/{total} cases pass")
    for name in COMPARED:
        right, compared = report.accuracy(name)
        if compared:
            lines.append(f"  {name:9} {right}/{compared} = {right / compared:.1%}")
    hit, relevant = report.recall("P1")
    if relevant:
        lines.append(f"  P1 recall {hit}/{relevant} = {hit / relevant:.1%}")
    return "\n".join(lines)
