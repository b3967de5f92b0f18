"""The rules measured like a classifier (``engine rules test --report``).

``measure(outcomes) -> ClassifierReport`` is pure: each outcome is one labelled case's
expectation and the decision's summary. ``render`` prints the report as plain text,
``as_json`` as plain data. The definitions:

- accuracy per field: the cases whose decision matches the label (``field_mismatches``:
  a priority among the case's ``acceptable_priorities`` is right, routes must be exactly
  the labelled ones, tags compare the version and end-of-life tags only), over the cases
  that label the field; ``priority exact`` ignores the alternatives.
- P1 recall: of the cases labelled P1, those decided P1 (an outage decided P2 is missed,
  even when P2 is listed as acceptable). P1 precision: of the cases decided P1, those
  whose label or acceptable alternatives include P1 (a page is justified when P1 was
  defensible).
- special routes: each (case, route) pair counts once; micro recall and precision over all
  routes, then per route.
- macro F1 over categories: the mean of the per-category F1 (2TP / (2TP + FP + FN)) over
  every category labelled or decided, so a category decided but never labelled counts,
  with F1 0.
- confusion matrices: rows the label, columns the decision, counted as decided (an
  accepted alternative is off the diagonal for priority, and said so under the matrix).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.rules.cases import COMPARED, CaseResult, Expectation, field_mismatches, language_of

PRIORITIES = ("P1", "P2", "P3", "P4")
TIERS = ("L1", "L2", "L3")
UNKNOWN_LANGUAGE = "?"


@dataclass(frozen=True)
class Outcome:
    """One labelled case and what the rules decided (``Decision.summary()``); ``got`` is
    None when the case's input could not be read."""

    name: str
    language: str | None
    expect: Expectation
    got: Mapping[str, Any] | None


@dataclass(frozen=True)
class Ratio:
    right: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.right / self.total if self.total else None

    def __str__(self) -> str:
        rate = self.rate
        return f"{self.right}/{self.total} = " + ("n/a" if rate is None else f"{100 * rate:.1f} %")


@dataclass(frozen=True)
class RecallPrecision:
    recall: Ratio
    precision: Ratio


@dataclass(frozen=True)
class CategoryScore:
    category: str
    true_positives: int
    labelled: int
    decided: int

    @property
    def f1(self) -> float:
        wrong = (self.labelled - self.true_positives) + (self.decided - self.true_positives)
        denominator = 2 * self.true_positives + wrong
        return 2 * self.true_positives / denominator if denominator else 0.0


@dataclass(frozen=True)
class Figures:
    """The figures of one group of cases (all of them, or one language)."""

    cases: int
    accuracy: dict[str, Ratio]
    p1: RecallPrecision
    special_routes: RecallPrecision


@dataclass(frozen=True)
class ClassifierReport:
    cases: int
    unreadable: list[str]
    overall: Figures
    by_language: dict[str, Figures]
    routes: dict[str, RecallPrecision]
    categories: list[CategoryScore]
    macro_f1: float
    priority_confusion: dict[tuple[str, str], int]
    priority_accepted_off_diagonal: int
    tier_confusion: dict[tuple[str, str], int]
    priorities: tuple[str, ...] = PRIORITIES
    tiers: tuple[str, ...] = TIERS


def outcome_of(result: CaseResult) -> Outcome:
    got = result.decision.summary() if result.decision is not None else None
    return Outcome(result.case.name, language_of(result.case), result.case.expect, got)


def _read(outcomes: Iterable[Outcome]) -> list[tuple[Outcome, Mapping[str, Any]]]:
    return [(outcome, outcome.got) for outcome in outcomes if outcome.got is not None]


def _accuracy(read: Sequence[tuple[Outcome, Mapping[str, Any]]]) -> dict[str, Ratio]:
    found: dict[str, Ratio] = {}
    for name in COMPARED:
        labelled = [(o, got) for o, got in read if getattr(o.expect, name) is not None]
        right = sum(name not in field_mismatches(got, o.expect) for o, got in labelled)
        found[name] = Ratio(right, len(labelled))
        if name == "priority":
            exact = sum(got["priority"] == o.expect.priority for o, got in labelled)
            found["priority exact"] = Ratio(exact, len(labelled))
    return found


def _p1(read: Sequence[tuple[Outcome, Mapping[str, Any]]]) -> RecallPrecision:
    labelled = [got for o, got in read if o.expect.priority == "P1"]
    decided = [o.expect for o, got in read if got["priority"] == "P1"]
    defensible = sum(e.priority == "P1" or "P1" in e.acceptable_priorities for e in decided)
    return RecallPrecision(
        recall=Ratio(sum(got["priority"] == "P1" for got in labelled), len(labelled)),
        precision=Ratio(defensible, len(decided)),
    )


def _route_counts(
    read: Sequence[tuple[Outcome, Mapping[str, Any]]], only: str | None = None
) -> RecallPrecision:
    hits = labelled = decided = 0
    for outcome, got in read:
        if outcome.expect.routes is None:
            continue
        expected = {r for r in outcome.expect.routes if only in (None, r)}
        made = {r for r in got["routes"] if only in (None, r)}
        hits += len(expected & made)
        labelled += len(expected)
        decided += len(made)
    return RecallPrecision(Ratio(hits, labelled), Ratio(hits, decided))


def _figures(read: Sequence[tuple[Outcome, Mapping[str, Any]]]) -> Figures:
    return Figures(len(read), _accuracy(read), _p1(read), _route_counts(read))


def _confusion(
    read: Sequence[tuple[Outcome, Mapping[str, Any]]], name: str
) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter(
        (str(getattr(o.expect, name)), str(got[name]))
        for o, got in read
        if getattr(o.expect, name) is not None
    )
    return dict(counts)


def _categories(read: Sequence[tuple[Outcome, Mapping[str, Any]]]) -> list[CategoryScore]:
    pairs = [(o.expect.category, str(got["category"])) for o, got in read if o.expect.category]
    names = sorted({label for pair in pairs for label in pair if label is not None})
    return [
        CategoryScore(
            category=name,
            true_positives=sum(1 for want, got in pairs if want == got == name),
            labelled=sum(1 for want, _ in pairs if want == name),
            decided=sum(1 for _, got in pairs if got == name),
        )
        for name in names
    ]


def measure(outcomes: Iterable[Outcome]) -> ClassifierReport:
    every = list(outcomes)
    read = _read(every)
    languages: dict[str, list[tuple[Outcome, Mapping[str, Any]]]] = {}
    for outcome, got in read:
        languages.setdefault(outcome.language or UNKNOWN_LANGUAGE, []).append((outcome, got))
    routes = sorted(
        {r for o, got in read for r in (*(o.expect.routes or ()), *got["routes"])}
    )  # fmt: skip
    categories = _categories(read)
    accepted = sum(
        1
        for o, got in read
        if o.expect.priority is not None
        and got["priority"] != o.expect.priority
        and got["priority"] in o.expect.acceptable_priorities
    )
    return ClassifierReport(
        cases=len(every),
        unreadable=[o.name for o in every if o.got is None],
        overall=_figures(read),
        by_language={name: _figures(group) for name, group in sorted(languages.items())},
        routes={name: _route_counts(read, only=name) for name in routes},
        categories=categories,
        macro_f1=sum(c.f1 for c in categories) / len(categories) if categories else 0.0,
        priority_confusion=_confusion(read, "priority"),
        priority_accepted_off_diagonal=accepted,
        tier_confusion=_confusion(read, "tier"),
    )


# --- rendering ---------------------------------------------------------------------------


def _matrix(counts: Mapping[tuple[str, str], int], known: Sequence[str]) -> list[str]:
    labels = list(known) + sorted(
        {label for pair in counts for label in pair if label not in known}
    )  # fmt: skip
    width = max(5, *(len(label) + 1 for label in labels))
    lines = ["  expected \\ got".ljust(18) + "".join(f"{label:>{width}}" for label in labels)]
    lines[0] += f"{'total':>{width + 1}}"
    for want in labels:
        row = [counts.get((want, got), 0) for got in labels]
        if not sum(row):
            continue
        lines.append(
            f"  {want:16}" + "".join(f"{n:>{width}}" for n in row) + f"{sum(row):>{width + 1}}"
        )
    return lines


def _accuracy_lines(figures: Figures, indent: str) -> list[str]:
    return [
        f"{indent}{name:15} {ratio}"
        for name, ratio in figures.accuracy.items()
        if ratio.total or name == "priority"
    ]


def render(report: ClassifierReport, title: str = "") -> str:
    overall = report.overall
    lines = [
        f"{title}{': ' if title else ''}{report.cases} cases"
        + (f", {len(report.unreadable)} unreadable (not counted)" if report.unreadable else "")
    ]
    lines += [f"  unreadable: {name}" for name in report.unreadable]
    lines += ["", "accuracy (priority: an acceptable alternative counts)"]
    lines += _accuracy_lines(overall, "  ")
    lines += [
        "",
        f"P1 recall       {overall.p1.recall}",
        f"P1 precision    {overall.p1.precision}",
        "",
        f"special routes  recall {overall.special_routes.recall}, "
        f"precision {overall.special_routes.precision}",
    ]
    lines += [
        f"  {name:14}  recall {scores.recall}, precision {scores.precision}"
        for name, scores in report.routes.items()
    ]
    lines += ["", f"categories: macro F1 {report.macro_f1:.3f} over {len(report.categories)}"]
    lines.append(f"  {'category':26} {'labelled':>8} {'decided':>8} {'right':>6} {'F1':>6}")
    lines += [
        f"  {c.category:26} {c.labelled:>8} {c.decided:>8} {c.true_positives:>6} {c.f1:>6.3f}"
        for c in report.categories
    ]
    lines += ["", "priority confusion (rows expected, columns got)"]
    lines += _matrix(report.priority_confusion, report.priorities)
    if report.priority_accepted_off_diagonal:
        lines.append(
            f"  ({report.priority_accepted_off_diagonal} off the diagonal are acceptable "
            "alternatives, counted right)"
        )
    lines += ["", "tier confusion (rows expected, columns got)"]
    lines += _matrix(report.tier_confusion, report.tiers)
    for language, figures in report.by_language.items():
        lines += ["", f"language {language}: {figures.cases} cases"]
        lines += _accuracy_lines(figures, "  ")
        lines.append(f"  {'P1 recall':15} {figures.p1.recall}")
        lines.append(f"  {'P1 precision':15} {figures.p1.precision}")
        lines.append(f"  {'route recall':15} {figures.special_routes.recall}")
        lines.append(f"  {'route precision':15} {figures.special_routes.precision}")
    return "\n".join(lines)


def _ratio_data(ratio: Ratio) -> dict[str, Any]:
    return {"right": ratio.right, "total": ratio.total, "rate": ratio.rate}


def _pair_data(pair: RecallPrecision) -> dict[str, Any]:
    return {"recall": _ratio_data(pair.recall), "precision": _ratio_data(pair.precision)}


def _figures_data(figures: Figures) -> dict[str, Any]:
    return {
        "cases": figures.cases,
        "accuracy": {name: _ratio_data(ratio) for name, ratio in figures.accuracy.items()},
        "p1": _pair_data(figures.p1),
        "special_routes": _pair_data(figures.special_routes),
    }


def _matrix_data(counts: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    rows: dict[str, dict[str, int]] = {}
    for (want, got), n in sorted(counts.items()):
        rows.setdefault(want, {})[got] = n
    return rows


def as_json(report: ClassifierReport) -> dict[str, Any]:
    """The report as plain data: ratios as {right, total, rate}, matrices as
    {expected: {got: count}}."""
    return {
        "cases": report.cases,
        "unreadable": report.unreadable,
        **_figures_data(report.overall),
        "routes": {name: _pair_data(pair) for name, pair in report.routes.items()},
        "macro_f1": report.macro_f1,
        "categories": {
            c.category: {
                "labelled": c.labelled,
                "decided": c.decided,
                "right": c.true_positives,
                "f1": c.f1,
            }
            for c in report.categories
        },
        "confusion": {
            "priority": _matrix_data(report.priority_confusion),
            "tier": _matrix_data(report.tier_confusion),
        },
        "priority_accepted_off_diagonal": report.priority_accepted_off_diagonal,
        "by_language": {name: _figures_data(f) for name, f in report.by_language.items()},
    }
