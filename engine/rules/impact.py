"""The impact matrix: DOMAIN.md's priorities decided from facts the text states.

The seeds define priority by impact on the production system and the operation (P1 down,
critical; P2 gravely damaged; P3 damaged, most operations continue; P4 working, the customer
needs information or help), as an ITIL desk does with impact x urgency. A rule set's
``impact`` section declares the facts (what is hit, how widely, how badly, business impact
stated, a workaround), each value with phrases as its evidence, and a matrix whose first
holding row gives the priority. ``assess`` is pure: message and matrix in, facts and row out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from pydantic import Field, model_validator

from engine.contract import Channel, ImpactFact, Priority, TicketMessage
from engine.rules.model import ID_PATTERN, Phrases, Regexes, Strict
from engine.rules.text import PhraseHit, PhraseIndex, clauses, fold

Problem = tuple[tuple[int | str, ...], str]


UNKNOWN = "unknown"


class FactValue(Strict):
    value: str = Field(pattern=ID_PATTERN)
    description: str = ""
    phrases: Phrases = Field(default=(), description="evidence: any one occurs")
    regex: Regexes = Field(
        default=(), description="evidence too: case-insensitive, on the folded text"
    )

    @model_validator(mode="after")
    def _has_evidence(self) -> FactValue:
        if not self.phrases and not self.regex:
            raise ValueError(f"value {self.value!r} needs phrases or regex as its evidence")
        return self

    @cached_property
    def compiled_regex(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(pattern, re.IGNORECASE) for pattern in self.regex)


class Fact(Strict):
    """One question the impact matrix asks of the text (what is hit, how widely ...). Its
    value is the first of ``values``, in file order, whose evidence occurs (not negated);
    ``unknown`` when none does."""

    id: str = Field(pattern=ID_PATTERN)
    description: str = ""
    fields: tuple[str, ...] = ("subject", "body")
    negatable: bool = Field(
        default=True,
        description="false: a phrase counts even when a negation or 'fine' surrounds it, "
        "as contrasts do ('the other phones are fine')",
    )
    values: tuple[FactValue, ...] = Field(min_length=1)


class MatrixRow(Strict):
    """Gives ``priority`` when every listed fact has one of its listed values."""

    id: str = Field(pattern=ID_PATTERN)
    description: str = ""
    domain_rule: str | None = None
    when: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="fact id -> values accepted (unknown: not stated)"
    )
    priority: Priority
    firm: bool = Field(
        default=False,
        description="the facts limit the impact (the others work, only some destinations): "
        "the learned assistant may not raise it",
    )


class Impact(Strict):
    """DOMAIN.md's P1-P4 as an impact x urgency matrix: facts stated by the text, then the
    first row whose conditions hold. The last row must hold always (no ``when``)."""

    facts: tuple[Fact, ...] = Field(min_length=1)
    matrix: tuple[MatrixRow, ...] = Field(min_length=1)


def impact_problems(impact: Impact) -> list[Problem]:
    """Whole-matrix checks, each naming the path of the bad value."""
    problems: list[Problem] = []
    values: dict[str, set[str]] = {}
    for index, fact in enumerate(impact.facts):
        if fact.id in values:
            problems.append((("impact", "facts", index, "id"), f"duplicate fact {fact.id!r}"))
        declared = [value.value for value in fact.values]
        if UNKNOWN in declared or len(set(declared)) != len(declared):
            problems.append(
                (
                    ("impact", "facts", index, "values"),
                    f"values of {fact.id!r} repeat or use {UNKNOWN!r} (it means: none stated)",
                )
            )
        unknown_fields = set(fact.fields) - {"subject", "body"}
        if unknown_fields or not fact.fields:
            problems.append((("impact", "facts", index, "fields"), "lists subject and/or body"))
        values[fact.id] = {*declared, UNKNOWN}
    seen: set[str] = set()
    for index, row in enumerate(impact.matrix):
        path: tuple[int | str, ...] = ("impact", "matrix", index)
        if row.id in seen:
            problems.append(((*path, "id"), f"duplicate matrix row {row.id!r}"))
        seen.add(row.id)
        for fact_id, accepted in row.when.items():
            if fact_id not in values:
                problems.append(((*path, "when", fact_id), f"no fact {fact_id!r} is declared"))
                continue
            for value in accepted:
                if value not in values[fact_id]:
                    problems.append(
                        ((*path, "when", fact_id), f"{fact_id!r} has no value {value!r}")
                    )
    if impact.matrix[-1].when:
        problems.append(
            (
                ("impact", "matrix", len(impact.matrix) - 1, "when"),
                "the last row must hold always (no 'when'): every ticket needs a priority",
            )
        )
    for index, row in enumerate(impact.matrix[:-1]):
        if not row.when:
            problems.append(
                (
                    ("impact", "matrix", index + 1),
                    f"unreachable: matrix[{index}] ({row.id}) holds always and comes first",
                )
            )
            break
    return problems


@dataclass(frozen=True)
class Assessment:
    facts: tuple[ImpactFact, ...]
    row: MatrixRow

    def holds(self, fact: str, value: str) -> bool:
        return any(found.fact == fact and found.value == value for found in self.facts)


def stated_impact(
    message: TicketMessage,
    impact: Impact,
    index: PhraseIndex,
    owners: Sequence[tuple[int, int]],
) -> tuple[ImpactFact, ...]:
    """Each fact's value: the first of its values whose evidence occurs, not negated, in
    the fact's fields (``owners[k]`` is the (fact, value) that index owner ``k`` stands for)."""
    texts = {field: _readable(message, getattr(message, field)) for field in ("subject", "body")}
    folded = {field: fold(text) for field, text in texts.items()}
    hits: dict[str, dict[int, list[PhraseHit]]] = {
        field: index.find(clauses(text)) for field, text in texts.items()
    }
    found: dict[tuple[int, int], list[str]] = {}
    for f, fact in enumerate(impact.facts):
        for v, value in enumerate(fact.values):
            for pattern in value.compiled_regex:
                for field in fact.fields:
                    matched = pattern.search(folded[field])
                    if matched:
                        found.setdefault((f, v), []).append(matched.group(0))
    for field, by_owner in hits.items():
        for owner, phrase_hits in by_owner.items():
            at = owners[owner]
            if field not in impact.facts[at[0]].fields:
                continue
            negatable = impact.facts[at[0]].negatable
            for hit in phrase_hits:
                if not (hit.negated and negatable):
                    found.setdefault(at, []).append(" ".join(hit.phrase))
    stated = []
    for f, fact in enumerate(impact.facts):
        first = next((v for v in range(len(fact.values)) if (f, v) in found), None)
        if first is None:
            stated.append(ImpactFact(fact=fact.id, value=UNKNOWN))
        else:
            evidence = tuple(dict.fromkeys(found[(f, first)]))
            stated.append(
                ImpactFact(fact=fact.id, value=fact.values[first].value, evidence=evidence)
            )
    return tuple(stated)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _readable(message: TicketMessage, text: str) -> str:
    """A trap's names are camelCase (``e1PortRedAlarm``, ``lowBattery``): as words, they
    read like the words a person writes (``e1 port red alarm``, ``low battery``)."""
    return _CAMEL.sub(" ", text) if message.channel is Channel.SNMP else text


def assess(facts: tuple[ImpactFact, ...], impact: Impact) -> Assessment:
    """The first matrix row whose conditions all hold (the last row always does)."""
    value_of = {fact.fact: fact.value for fact in facts}
    row = next(
        row
        for row in impact.matrix
        if all(value_of.get(name, UNKNOWN) in accepted for name, accepted in row.when.items())
    )
    return Assessment(facts, row)


def describe(assessment: Assessment) -> str:
    """One line for the explanation: the row, and the facts it read with their words."""
    row = assessment.row
    read = [fact for fact in assessment.facts if fact.fact in row.when]
    stated = ", ".join(
        f"{fact.fact}={fact.value}" + (f" ({'; '.join(fact.evidence)})" if fact.evidence else "")
        for fact in read
    )
    cited = f" ({row.domain_rule})" if row.domain_rule else ""
    because = f": {stated}" if stated else ": no fact the earlier rows need is stated"
    return f"priority {row.priority} from the impact matrix, row {row.id}{cited}{because}"
