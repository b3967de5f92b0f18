"""Train the learned assistant's models and write them beside ``engine.rules.assistant``.

    python -m engine.rules.train_assistant [--version V] CASES.yaml...

Trains on the independent corpus (the tuning parts of all four batches and the spent
held-out parts of the first three) and on ``tests/rules/labelled.yaml`` by default. A
held-out part is refused by name unless it is listed in ``SPENT_HELD_OUT``: a part measured
once as unseen data and then released for training (decision 66). ``heldout-12.yaml`` and
any later one are refused until a change was measured on them and they are added there.
Needs scikit-learn, a test dependency: the engine itself only reads the JSON it writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from engine.rules import combiner
from engine.rules.assistant import MODELS, text_of
from engine.rules.cases import Case, load_cases, message_from
from engine.rules.classify import classify
from engine.rules.ruleset import DEFAULT_RULES, RuleSet, parse_ruleset

# Held-out parts already measured once as unseen data, then released for training and
# tuning (decision 66). Only add a part here after its one unseen measurement is recorded.
SPENT_HELD_OUT = frozenset(
    {f"heldout{part}.yaml" for part in ("", *(f"-{n}" for n in range(2, 12)))}
)
INDEPENDENT = (
    "tests/rules/independent/tuning.yaml",
    "tests/rules/independent/heldout.yaml",
    "tests/rules/independent/tuning-2.yaml",
    "tests/rules/independent/heldout-2.yaml",
    "tests/rules/independent/tuning-3.yaml",
    "tests/rules/independent/heldout-3.yaml",
    "tests/rules/independent/tuning-4.yaml",
    "tests/rules/independent/tuning-5.yaml",
    "tests/rules/independent/heldout-4.yaml",
    "tests/rules/independent/heldout-5.yaml",
    "tests/rules/independent/tuning-6.yaml",
    "tests/rules/independent/heldout-6.yaml",
    "tests/rules/independent/tuning-7.yaml",
    "tests/rules/independent/heldout-7.yaml",
    "tests/rules/independent/tuning-8.yaml",
    "tests/rules/independent/heldout-8.yaml",
)
DEFAULT_TRAINING = (*INDEPENDENT, "tests/rules/labelled.yaml")
FIELDS = ("priority", "category")
# The combiner (decision 71): a logistic regression this regularised, over text
# probabilities each fold's model gave the writers it was not trained on.
COMBINER_C = 0.1
COMBINER_FOLDS = 5
WORD_FEATURES = 2000
CHAR_FEATURES = 5000


def pipeline(
    c: float = 10,
    word_features: int | None = WORD_FEATURES,
    char_features: int | None = CHAR_FEATURES,
    class_weight: str | None = "balanced",
) -> Any:
    """TF-IDF over word 1-2-grams and character 3-5-grams within words, then a logistic
    regression (the settings are what ``bench.rules_crossval`` varies)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    return make_pipeline(
        make_union(
            TfidfVectorizer(
                ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=word_features
            ),
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(3, 5),
                min_df=2,
                sublinear_tf=True,
                max_features=char_features,
            ),
        ),
        LogisticRegression(C=c, max_iter=5000, class_weight=class_weight),
    )


def trainable(name: str | Path) -> bool:
    """A file may be trained on unless it is a held-out part not yet spent."""
    file = Path(name).name
    return "heldout" not in file.lower() or file in SPENT_HELD_OUT


def exported(fitted: Any, field: str, version: str) -> dict[str, Any]:
    union, model = fitted.steps[0][1], fitted.steps[1][1]
    features: dict[str, list[Any]] = {}
    column = 0
    for (_, vectorizer), block in zip(union.transformer_list, ("w:", "c:"), strict=True):
        vocabulary = vectorizer.vocabulary_
        for gram, index in vocabulary.items():
            weights = [round(float(w), 5) for w in model.coef_[:, column + index]]
            features[block + gram] = [round(float(vectorizer.idf_[index]), 6), weights]
        column += len(vocabulary)
    return {
        "field": field,
        "version": version,
        "classes": [str(c) for c in model.classes_],
        "intercepts": [round(float(b), 6) for b in model.intercept_],
        "features": features,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.rules.train_assistant")
    parser.add_argument("files", nargs="*", default=list(DEFAULT_TRAINING))
    parser.add_argument("--version", required=True, help="e.g. 2026.12.1")
    parser.add_argument("--out", default=str(MODELS))
    args = parser.parse_args(argv)
    refused = [name for name in args.files if not trainable(name)]
    if refused:
        print(f"refused: a held-out part not yet spent is never trained on: {refused}",
              file=sys.stderr)  # fmt: skip
        return 2
    cases = [case for name in args.files for case in load_cases(Path(name))]
    texts = [text_of(message_from(case.input)) for case in cases]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for field in FIELDS:
        labels = [getattr(case.expect, field) for case in cases]
        kept = [(t, label) for t, label in zip(texts, labels, strict=True) if label]
        fitted = pipeline().fit([t for t, _ in kept], [label for _, label in kept])
        path = out / f"{field}.json"
        path.write_text(json.dumps(exported(fitted, field, args.version), separators=(",", ":")))
        print(f"{path}: {len(kept)} cases, {len(fitted.classes_)} classes")
    path = out / "combiner.json"
    path.write_text(
        json.dumps(combiner_exported(cases, texts, args.version), separators=(",", ":"))
    )
    print(f"{path}: {len(cases)} cases, {COMBINER_FOLDS} folds by writer")
    labelled = [(t, set(c.expect.routes)) for t, c in zip(texts, cases, strict=True)
                if c.expect.routes is not None]  # fmt: skip
    document = routes_exported([t for t, _ in labelled], [r for _, r in labelled], args.version)
    path = out / "routes.json"
    path.write_text(json.dumps(document, separators=(",", ":")))
    print(f"{path}: {len(labelled)} cases, {len(document['classes'])} routes")
    return 0


def combiner_exported(cases: Sequence[Case], texts: Sequence[str], version: str) -> dict[str, Any]:
    """The priority combiner, trained on what the rules read of each case (the shipped
    rule file, its assistant left out) and on the text probabilities a text model trained
    without the case's writer gave it: the trust it learns in the text model is the trust
    new words deserve."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    kept = [(case, text) for case, text in zip(cases, texts, strict=True) if case.expect.priority]
    labels = [str(case.expect.priority) for case, _ in kept]
    writers = [case.writer or case.name.split("-", 1)[0] for case, _ in kept]
    unseen: list[dict[str, float]] = [{} for _ in kept]
    for train, test in GroupKFold(COMBINER_FOLDS).split(kept, labels, writers):
        fitted = pipeline().fit([kept[i][1] for i in train], [labels[i] for i in train])
        chances = fitted.predict_proba([kept[i][1] for i in test])
        for i, row in zip(test, chances, strict=True):
            unseen[i] = {str(c): float(p) for c, p in zip(fitted.classes_, row, strict=True)}
    rules_alone = rules_without_assistant()
    inputs = []
    for (case, text), probabilities in zip(kept, unseen, strict=True):
        message = message_from(case.input)
        read = classify(message, rules_alone)
        inputs.append(
            combiner.priority_inputs(
                probabilities, read.impact, read.impact_row, read.priority, message,
                len(text.split()),
            )
        )  # fmt: skip
    vectorizer = DictVectorizer()
    model = LogisticRegression(C=COMBINER_C, max_iter=5000).fit(
        vectorizer.fit_transform(inputs), labels
    )
    weights = {
        str(name): model.coef_[:, column]
        for column, name in enumerate(vectorizer.get_feature_names_out())
    }
    return combiner.exported(
        [str(c) for c in model.classes_], model.intercept_.tolist(), weights, version
    )


def rules_without_assistant() -> RuleSet:
    """The shipped rule file, its ``assistant`` section left out: what the rules alone read,
    checked without the models being retrained."""
    document = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    document.pop("assistant", None)
    return parse_ruleset(yaml.safe_dump(document, allow_unicode=True), str(DEFAULT_RULES))


def routes_exported(
    texts: list[str], routes: list[set[str]], version: str, **settings: Any
) -> dict[str, Any]:
    """One yes/no model per special route over the same features, as one multi-label model."""
    names = sorted({route for wanted in routes for route in wanted})
    columns = []
    for name in names:
        fitted = pipeline(**settings).fit(texts, [name in wanted for wanted in routes])
        columns.append(exported(fitted, "routes", version))
    features = {
        gram: [idf, [column["features"][gram][1][-1] for column in columns]]
        for gram, (idf, _) in columns[0]["features"].items()
    }
    return {
        "field": "routes",
        "version": version,
        "multilabel": True,
        "classes": names,
        "intercepts": [column["intercepts"][-1] for column in columns],
        "features": features,
    }


if __name__ == "__main__":
    sys.exit(main())
