"""The assistant's priority read from the text and the impact facts together.

The text model alone knows words, and the impact matrix alone knows facts; each misses what
the other sees (a calm mail whose facts say outage; an outage row fired by a stray phrase).
The combiner is a multinomial logistic regression over both: the text model's log
probabilities, each impact fact's value, the matrix row, the rules' own priority, the
channel and whether the message is long. It is trained on text probabilities the text model
gave to cases it had not seen (out of fold, ``python -m engine.rules.train_assistant``), so
it learns how far to trust the text model on new words, and it ships as JSON beside the
text models (docs/decisions/0071). Its weights say which input moved a priority, and the
explanation names the strongest ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from engine.contract import ImpactFact, Priority, TicketMessage
from engine.errors import RulesError

# A message this long is read differently by the text model (more words, more noise).
LONG_MESSAGE_WORDS = 60
# A probability below this counts as this before its logarithm (log 0 is minus infinity).
PROBABILITY_FLOOR = 1e-4


def priority_inputs(
    text_probabilities: Mapping[str, float],
    facts: Sequence[ImpactFact],
    row: str | None,
    rules_priority: Priority,
    message: TicketMessage,
    words: int,
) -> dict[str, float]:
    """The combiner's inputs for one message, by name: ``text:P1`` .. the text model's log
    probabilities, ``state=down`` .. the impact facts, ``row=outage``, ``rules=P1``,
    ``channel=email``, ``suggested=P2`` and ``long``."""
    inputs = {
        f"text:{priority}": math.log(max(probability, PROBABILITY_FLOOR))
        for priority, probability in text_probabilities.items()
    }
    inputs.update({f"{fact.fact}={fact.value}": 1.0 for fact in facts})
    inputs[f"row={row}"] = 1.0
    inputs[f"rules={rules_priority.value}"] = 1.0
    inputs[f"channel={message.channel.value}"] = 1.0
    if message.suggested_priority is not None:
        inputs[f"suggested={message.suggested_priority.value}"] = 1.0
    if words >= LONG_MESSAGE_WORDS:
        inputs["long"] = 1.0
    return inputs


@dataclass(frozen=True)
class Reading:
    rows: np.ndarray
    values: np.ndarray


@dataclass(frozen=True, eq=False)
class Combiner:
    version: str
    classes: tuple[str, ...]
    intercepts: np.ndarray
    names: tuple[str, ...]
    index: dict[str, int]
    weights: np.ndarray
    """one row per input (``names``), one column per class"""
    lifts: np.ndarray
    """each weight less the mean of the input's weights for the other classes"""

    def read(self, inputs: Mapping[str, float]) -> Reading:
        """The inputs the combiner knows (the others count for nothing): their rows and
        values, read once for the probabilities and the explanation."""
        known = [(self.index[name], value) for name, value in inputs.items() if name in self.index]
        return Reading(
            np.fromiter((row for row, _ in known), dtype=np.intp, count=len(known)),
            np.fromiter((value for _, value in known), dtype=float, count=len(known)),
        )

    def probabilities(self, reading: Reading) -> dict[str, float]:
        """Each priority's probability (softmax)."""
        scores = self.intercepts + reading.values @ self.weights[reading.rows]
        exp = np.exp(scores - scores.max())
        return dict(zip(self.classes, (exp / exp.sum()).tolist(), strict=True))

    def strongest(self, reading: Reading, chosen: str, count: int = 3) -> list[tuple[str, float]]:
        """The inputs that moved ``chosen`` most against the other priorities: each input's
        weight for ``chosen`` less its mean weight for the others, times its value (for the
        text model's inputs, a log probability: an unlikely P1 pushes towards the others)."""
        rows, values = reading.rows, reading.values
        lifts = values * self.lifts[rows, self.classes.index(chosen)]
        order = np.argsort(-lifts)[:count]
        return [
            (_named(self.names[rows[at]], float(values[at])), float(lifts[at]))
            for at in order.tolist()
            if lifts[at] > 0
        ]


def _lifts(weights: np.ndarray) -> np.ndarray:
    classes = weights.shape[1]
    if classes < 2:
        return np.zeros_like(weights)
    others = (weights.sum(axis=1, keepdims=True) - weights) / (classes - 1)
    lifted: np.ndarray = weights - others
    return lifted


def _named(name: str, value: float) -> str:
    """An input as the explanation names it: the text model's inputs with the probability
    they stand for ("text:P1 0.02": an unlikely P1 moves a priority too)."""
    if name.startswith("text:"):
        return f"{name} {math.exp(value):.2f}"
    return name


def describe_strongest(pairs: Sequence[tuple[str, float]]) -> str:
    """ "text:P2 +1.31, state=down +0.72" for the explanation."""
    return ", ".join(f"{name} {lift:+.2f}" for name, lift in pairs)


def exported(
    classes: Sequence[str], intercepts: Sequence[float], weights: Mapping[str, Sequence[float]],
    version: str,
) -> dict[str, Any]:  # fmt: skip
    return {
        "field": "priority-combined",
        "version": version,
        "classes": list(classes),
        "intercepts": [round(float(b), 6) for b in intercepts],
        "weights": {name: [round(float(w), 6) for w in row] for name, row in weights.items()},
    }


def parse_combiner(document: dict[str, Any], origin: str) -> Combiner:
    try:
        classes = tuple(str(c) for c in document["classes"])
        names = list(document["weights"])
        weights = np.array([[float(w) for w in document["weights"][n]] for n in names])
        combiner = Combiner(
            version=str(document["version"]),
            classes=classes,
            intercepts=np.array([float(b) for b in document["intercepts"]]),
            names=tuple(names),
            index={name: row for row, name in enumerate(names)},
            weights=weights.reshape(len(names), len(classes)),
            lifts=_lifts(weights.reshape(len(names), len(classes))),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RulesError(f"{origin}: not a priority combiner: {error!r}") from error
    if combiner.intercepts.shape != (len(classes),):
        raise RulesError(f"{origin}: weights and classes disagree")
    unknown = set(classes) - {p.value for p in Priority}
    if unknown:
        raise RulesError(f"{origin}: unknown priorities {sorted(unknown)}")
    return combiner


@cache
def shipped_combiner(directory: Path) -> Combiner:
    path = directory / "combiner.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RulesError(f"{path}: cannot read the priority combiner: {error}") from error
    return parse_combiner(document, str(path))
