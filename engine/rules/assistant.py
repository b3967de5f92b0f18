"""The learned assistant: a linear text model that proposes a priority or a category.

It is trained on the labelled corpus (``python -m engine.rules.train_assistant``) and
shipped as a small JSON file beside this module: TF-IDF over word 1-2-grams and character
3-5-grams within words (the same features scikit-learn's ``TfidfVectorizer`` computes, so
the shipped weights mean here what they meant there), then a multinomial logistic regression.
Nothing is downloaded, and no learning library is needed to run it.

It only proposes: the rule set's ``assistant`` section says how confident a proposal must be
before the decision takes it, and the explanation names the model and its confidence.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from engine.contract import Channel, SpecialRoute, TicketMessage
from engine.errors import RulesError
from engine.rules.combiner import shipped_combiner
from engine.rules.model import Strict
from engine.rules.text import fold

MODELS = Path(__file__).with_name("assistant")
# Work on one message is bounded: a proposal reads the first this many characters.
MAX_CHARACTERS = 8000
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


Problem = tuple[tuple[int | str, ...], str]


class Assistant(Strict):
    """The learned assistant (engine/rules/assistant.py) proposes a priority, a category and
    special routes; the decision takes a proposal at least this confident, and says so."""

    model_version: str = Field(description="the shipped models' version; checked at load")
    channels: tuple[Channel, ...] = (Channel.EMAIL, Channel.CHAT, Channel.PHONE)
    priority_min_confidence: float | None = Field(default=None, gt=0, le=1)
    category_min_confidence: float | None = Field(default=None, gt=0, le=1)
    routes_min_confidence: float | None = Field(default=None, gt=0, le=1)
    priority_may: Literal["raise_to_p1", "raise", "decide"] = Field(
        default="raise_to_p1",
        description="which priorities the rules stated a confident proposal replaces: only to "
        "raise to P1, to raise to any, or any (never over a firm row)",
    )
    lower_min_words: int = Field(
        default=0,
        ge=0,
        description="a proposal lowers a priority only on a message of at least this many "
        "words (a short one gives the model too little to overrule the rules' reading)",
    )
    p1_min_confidence: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="a P1 probability this high raises to P1 even when another priority is "
        "likelier (a missed outage costs most); never over a firm row",
    )
    priority_reads_facts: bool = Field(
        default=False,
        description="the priority proposal reads the impact facts with the text model's "
        "probabilities (the shipped combiner, docs/decisions/0071); false: the text alone",
    )
    firm_min_confidence: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="a proposal this confident overrules even a firm row of the matrix "
        "(none: a firm row always stands)",
    )
    route_tags: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="special route -> the tags a proposed route brings (the rules' own words "
        "for it, so the route tree sends it where the rules would)",
    )


@dataclass(frozen=True)
class Proposal:
    field: str
    value: str
    confidence: float
    model_version: str

    def describe(self) -> str:
        return (
            f"{self.field} {self.value} proposed by the learned assistant "
            f"(model {self.model_version}, confidence {self.confidence:.2f})"
        )


@dataclass(frozen=True, eq=False)
class TextModel:
    field: str
    version: str
    classes: tuple[str, ...]
    intercepts: np.ndarray
    index: dict[str, int]
    """feature ("w:" word n-gram, "c:" character n-gram) -> its row in ``idf`` and ``weights``"""
    idf: np.ndarray
    weights: np.ndarray
    """one row per feature, one column per class"""

    multilabel: bool = False
    """one yes/no model per class (the special routes) instead of one choice among them"""

    def propose(self, message: TicketMessage) -> Proposal:
        probabilities = self.probabilities(message)
        best = max(probabilities, key=probabilities.__getitem__)
        return Proposal(self.field, best, probabilities[best], self.version)

    def probabilities(self, message: TicketMessage) -> dict[str, float]:
        """Each class's probability (softmax over the classes' scores)."""
        scores = self._scores(message)
        exp = np.exp(scores - scores.max())
        return dict(zip(self.classes, (exp / exp.sum()).tolist(), strict=True))

    def propose_each(self, message: TicketMessage) -> list[Proposal]:
        """A multi-label model's proposals (the special routes), each with its own
        probability."""
        probabilities = 1 / (1 + np.exp(-self._scores(message)))
        return [
            Proposal("special route", label, float(probability), self.version)
            for label, probability in zip(self.classes, probabilities, strict=True)
        ]

    def _scores(self, message: TicketMessage) -> np.ndarray:
        rows, values = _shared_vector(text_of(message), self)
        scores: np.ndarray = self.intercepts + values @ self.weights[rows]
        return scores


_last_vector: list[tuple[str, int, tuple[np.ndarray, np.ndarray]]] = []


def _shared_vector(text: str, model: TextModel) -> tuple[np.ndarray, np.ndarray]:
    """The priority and the category model share their features (trained on the same
    texts): the second proposal for a message reuses the first one's vector."""
    key = id(model.index)
    if _last_vector and _last_vector[0][0] == text and _last_vector[0][1] == key:
        return _last_vector[0][2]
    vector = _vector(text, _blocks(model.index), model.idf)
    _last_vector[:] = [(text, key, vector)]
    return vector


# Words seen lately, each with the rows of its character grams: a word's grams do not
# depend on its neighbours (``char_wb``), and a desk's vocabulary repeats.
_WORDS_REMEMBERED = 65536


class _Blocks:
    """The feature index split by analyzer, without the block prefix (looking a gram up
    needs no string built for it), and each word's character-gram rows, remembered."""

    def __init__(self, words: dict[str, int], chars: dict[str, int]) -> None:
        self.words = words
        self.chars = chars
        self.char_rows_of_word = lru_cache(maxsize=_WORDS_REMEMBERED)(self._char_rows_of_word)

    def _char_rows_of_word(self, word: str) -> tuple[int, ...]:
        found = map(self.chars.get, char_grams(word))
        return tuple(row for row in found if row is not None)


_blocks_of: dict[int, tuple[dict[str, int], _Blocks]] = {}


def _blocks(index: dict[str, int]) -> _Blocks:
    cached = _blocks_of.get(id(index))
    if cached is not None and cached[0] is index:
        return cached[1]
    words = {name[2:]: row for name, row in index.items() if name.startswith("w:")}
    chars = {name[2:]: row for name, row in index.items() if name.startswith("c:")}
    blocks = _Blocks(words, chars)
    _blocks_of[id(index)] = (index, blocks)
    return blocks


def _vector(text: str, blocks: _Blocks, idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The text's TF-IDF (sublinear TF, L2-normalised per block, as the training pipeline
    did): the rows of the features it has, and their values."""
    word_counts: Counter[int | None] = Counter(map(blocks.words.get, word_grams(text)))
    word_counts.pop(None, None)  # grams the model does not know
    char_counts: Counter[int | None] = Counter(
        itertools.chain.from_iterable(map(blocks.char_rows_of_word, text.split()))
    )
    rows: list[int] = []
    values: list[float] = []
    for counts in (word_counts, char_counts):
        found = [row for row in counts if row is not None]
        raw = (1 + np.log(np.fromiter(counts.values(), float, len(found)))) * idf[found]
        norm = float(np.sqrt(raw @ raw))
        rows.extend(found)
        values.extend((raw / norm).tolist() if norm else [])
    return np.asarray(rows, dtype=np.intp), np.asarray(values)


def text_of(message: TicketMessage) -> str:
    return fold(f"{message.subject} \n {message.body}"[:MAX_CHARACTERS])


def word_grams(text: str) -> list[str]:
    """scikit-learn's word analyzer: tokens of two or more word characters, 1- and 2-grams."""
    tokens = _TOKEN.findall(text)
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def char_grams(text: str) -> list[str]:
    """scikit-learn's ``char_wb`` analyzer, 3- to 5-grams: each word padded with a space."""
    grams: list[str] = []
    for word in text.split():
        padded = f" {word} "
        length = len(padded)
        for size in (3, 4, 5):
            if length <= size:  # a word no longer than the gram counts once
                grams.append(padded)
                break
            grams.extend([padded[start : start + size] for start in range(length - size + 1)])
    return grams


def parse_model(document: dict[str, Any], origin: str) -> TextModel:
    try:
        classes = tuple(str(c) for c in document["classes"])
        names = list(document["features"])
        idf = np.array([float(document["features"][n][0]) for n in names])
        weights = np.array([[float(w) for w in document["features"][n][1]] for n in names])
        model = TextModel(
            field=str(document["field"]),
            version=str(document["version"]),
            classes=classes,
            intercepts=np.array([float(b) for b in document["intercepts"]]),
            index={name: row for row, name in enumerate(names)},
            idf=idf,
            weights=weights.reshape(len(names), len(classes)),
            multilabel=bool(document.get("multilabel", False)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RulesError(f"{origin}: not a text model: {error!r}") from error
    if model.intercepts.shape != (len(classes),):
        raise RulesError(f"{origin}: weights and classes disagree")
    return model


@cache
def shipped_model(field: str) -> TextModel:
    """The model shipped for ``field`` (priority, category, routes), read once."""
    path = MODELS / f"{field}.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RulesError(f"{path}: cannot read the assistant's model: {error}") from error
    model = parse_model(document, str(path))
    for other in _loaded:
        if other.index == model.index and np.array_equal(other.idf, model.idf):
            model = dataclasses.replace(model, index=other.index, idf=other.idf)
            break
    _loaded.append(model)
    return model


_loaded: list[TextModel] = []


def assistant_problems(assistant: Assistant, categories: set[str]) -> list[Problem]:
    """The rule set's assistant section against the shipped models."""
    problems: list[Problem] = []
    for field in ("priority", "category", "routes"):
        if getattr(assistant, f"{field}_min_confidence") is None:
            continue
        try:
            model = shipped_model(field)
        except RulesError as error:
            problems.append((("assistant", f"{field}_min_confidence"), str(error)))
            continue
        if model.version != assistant.model_version:
            problems.append(
                (
                    ("assistant", "model_version"),
                    f"the shipped {field} model is {model.version!r}, "
                    f"not {assistant.model_version!r}",
                )
            )
        if field == "priority" and assistant.priority_reads_facts:
            problems.extend(_combiner_problems(assistant))
        if field == "routes" and not set(model.classes) <= {r.value for r in SpecialRoute}:
            problems.append((("assistant",), "the routes model proposes unknown routes"))
        if field == "category" and not set(model.classes) <= categories:
            unknown = ", ".join(sorted(set(model.classes) - categories))
            problems.append((("assistant",), f"the category model proposes unknown {unknown}"))
    return problems


def _combiner_problems(assistant: Assistant) -> list[Problem]:
    where = ("assistant", "priority_reads_facts")
    try:
        combiner = shipped_combiner(MODELS)
    except RulesError as error:
        return [(where, str(error))]
    if combiner.version != assistant.model_version:
        return [(where, f"the shipped combiner is {combiner.version!r}, "
                        f"not {assistant.model_version!r}")]  # fmt: skip
    return []
