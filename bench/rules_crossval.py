"""The rules and the learned assistant measured on writers they have not read: each writer
of the independent corpus is left out in turn, the assistant is trained on the other writers and
``tests/rules/labelled.yaml``, and the engine's own ``decide`` runs on the writer left out
(the fold's models in place of the shipped ones). The outcomes are pooled and measured like
``engine rules test --report``, once per assistant policy.

    python -m bench.rules_crossval [--policy NAME=key:value,key:value ...] [--errors FILE]

A policy overrides the rule file's ``assistant`` section (``rules-alone`` drops it). It reads
the tuning parts, the spent held-out parts (``train_assistant.SPENT_HELD_OUT``, decision 66)
and ``labelled.yaml``; a held-out part not yet spent is never read.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import inspect
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.rules import classify as classify_module
from engine.rules import train_assistant
from engine.rules.assistant import TextModel, parse_model, text_of
from engine.rules.cases import Case, language_of, load_cases, message_from
from engine.rules.decide import decide
from engine.rules.measure import ClassifierReport, Outcome, measure
from engine.rules.ruleset import RuleSet, load_ruleset

ROOT = Path(__file__).resolve().parents[1]
TUNING = tuple(ROOT / name for name in train_assistant.INDEPENDENT)
ALWAYS_TRAINED = ROOT / "tests" / "rules" / "labelled.yaml"
SHIPPED = "shipped"
RULES_ALONE = "rules-alone"
_SEAM = "shipped_model"  # what engine.rules.classify calls for a model


@dataclass(frozen=True)
class Fold:
    writer: str
    cases: list[Case]
    models: dict[str, TextModel]


def _parsed(value: str) -> Any:
    if value in ("none", "None"):
        return None
    if "|" in value:  # a list: email|chat|phone
        return [_parsed(item) for item in value.split("|")]
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_policy(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=key:value,key:value`` -> (NAME, overrides of the ``assistant`` section)."""
    name, _, body = text.partition("=")
    overrides: dict[str, Any] = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition(":")
        overrides[key.strip()] = _parsed(value.strip())
    return name.strip(), overrides


def with_policy(ruleset: RuleSet, name: str, overrides: Mapping[str, Any]) -> RuleSet:
    if name == RULES_ALONE:
        return ruleset.model_copy(update={"assistant": None})
    if ruleset.assistant is None:
        raise SystemExit("the rule set has no assistant section to override")
    settings = ruleset.assistant.model_validate(
        {**ruleset.assistant.model_dump(), **dict(overrides)}
    )
    return ruleset.model_copy(update={"assistant": settings})


def trained(
    cases: Sequence[Case], settings: Mapping[str, Any], cache: Path | None = None
) -> dict[str, TextModel]:
    """The assistant's three models trained on ``cases``, as the engine would read them;
    kept in ``cache`` under a digest of the cases and the effective settings (the pipeline's
    defaults included, so a changed default is not read from an older fold), and read from it."""
    documents = _cached(cases, settings, cache)
    return {field: parse_model(document, f"fold {field}") for field, document in documents.items()}


def _cached(
    cases: Sequence[Case], settings: Mapping[str, Any], cache: Path | None
) -> dict[str, dict[str, Any]]:
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(train_assistant.pipeline).parameters.items()
    }
    effective = {**defaults, **dict(settings)}
    key = hashlib.sha256(
        json.dumps(
            [sorted(effective.items()), [case.model_dump(mode="json") for case in cases]],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    path = cache / f"{key}.json" if cache is not None else None
    if path is not None and path.exists():
        documents: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        return documents
    documents = _documents(cases, settings)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(documents), encoding="utf-8")
    return documents


def _documents(cases: Sequence[Case], settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    texts = [text_of(message_from(case.input)) for case in cases]
    documents: dict[str, dict[str, Any]] = {}
    for field in train_assistant.FIELDS:
        kept = [
            (text, getattr(case.expect, field))
            for text, case in zip(texts, cases, strict=True)
            if getattr(case.expect, field)
        ]
        fitted = train_assistant.pipeline(**settings).fit(
            [t for t, _ in kept], [label for _, label in kept]
        )
        documents[field] = train_assistant.exported(fitted, field, "fold")
    labelled = [
        (text, set(case.expect.routes))
        for text, case in zip(texts, cases, strict=True)
        if case.expect.routes is not None
    ]
    documents["routes"] = train_assistant.routes_exported(
        [t for t, _ in labelled], [r for _, r in labelled], "fold", **settings
    )
    return documents


@contextlib.contextmanager
def models_in_place(models: Mapping[str, TextModel]) -> Iterator[None]:
    """The engine's ``classify`` reads these models instead of the shipped ones."""
    shipped = getattr(classify_module, _SEAM)
    setattr(classify_module, _SEAM, models.__getitem__)
    try:
        yield
    finally:
        setattr(classify_module, _SEAM, shipped)


def folds(settings: Mapping[str, Any], cache: Path | None = None) -> list[Fold]:
    refused = [path.name for path in TUNING if not train_assistant.trainable(path)]
    if refused:
        raise SystemExit(f"refused: held-out parts not yet spent: {refused}")
    tuning = [case for path in TUNING for case in load_cases(path)]
    always = load_cases(ALWAYS_TRAINED)
    writers = sorted({case.writer or "" for case in tuning}, key=lambda w: (len(w), w))
    made = []
    for writer in writers:
        left_out = [case for case in tuning if case.writer == writer]
        others = [case for case in tuning if case.writer != writer] + always
        made.append(Fold(writer, left_out, trained(others, settings, cache)))
        print(f"  fold {writer}: {len(left_out)} left out, trained on {len(others)}", flush=True)
    return made


def outcomes(fold: Fold, ruleset: RuleSet) -> list[Outcome]:
    with models_in_place(fold.models):
        return [
            Outcome(
                case.name,
                language_of(case),
                case.expect,
                decide(message_from(case.input), ruleset).summary(),
            )
            for case in fold.cases
        ]


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def row(name: str, report: ClassifierReport) -> str:
    overall = report.overall
    accuracy = overall.accuracy
    languages = " / ".join(
        _rate(report.by_language[lang].accuracy["priority"].rate)
        for lang in ("es", "en")
        if lang in report.by_language
    )
    cells = [
        name,
        _rate(accuracy["priority"].rate),
        f"{overall.p1.recall.right}/{overall.p1.recall.total} = {_rate(overall.p1.recall.rate)}",
        _rate(overall.p1.precision.rate),
        f"{_rate(accuracy['category'].rate)} ({report.macro_f1:.3f})",
        _rate(accuracy["tier"].rate),
        f"{_rate(overall.special_routes.recall.rate)} / "
        f"{_rate(overall.special_routes.precision.rate)}",
        languages,
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| policy | priority | P1 recall | P1 precision | category (macro F1) | tier "
    "| routes recall / precision | priority es / en |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def error_lines(pooled: Sequence[Outcome]) -> list[str]:
    """One line per wrong field of a pooled outcome."""
    lines = []
    for outcome in pooled:
        got = outcome.got or {}
        for name in ("priority", "category", "tier"):
            wanted = getattr(outcome.expect, name)
            if name == "priority" and got.get(name) in outcome.expect.acceptable_priorities:
                continue
            if wanted is not None and got.get(name) != wanted:
                lines.append(f"{outcome.name}\t{name}\t{wanted}\t{got.get(name)}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rules_crossval")
    parser.add_argument("--rules", type=Path, default=None, help="rule file (default: shipped)")
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        help="NAME=key:value,... overrides of the assistant section (repeatable)",
    )
    parser.add_argument(
        "--model", default="", help="key:value,... training settings (e.g. c:3,char_features:8000)"
    )
    parser.add_argument("--cache", type=Path, help="keep the folds' models here, and reuse them")
    parser.add_argument("--errors", type=Path, help="write the shipped policy's errors here")
    args = parser.parse_args(argv)
    ruleset = load_ruleset(args.rules)
    policies: list[tuple[str, dict[str, Any]]] = [(RULES_ALONE, {}), (SHIPPED, {})]
    policies += [parse_policy(p) for p in args.policy]
    _, settings = parse_policy("model=" + args.model)
    print(f"leaving each writer out; model settings {settings or 'as shipped'}", flush=True)
    made = folds(settings, args.cache)
    print(HEADER)
    for name, overrides in policies:
        variant = with_policy(ruleset, name, overrides)
        pooled = [o for fold in made for o in outcomes(fold, variant)]
        print(row(name, measure(pooled)), flush=True)
        if args.errors is not None and name == SHIPPED:
            args.errors.write_text("\n".join(error_lines(pooled)) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
