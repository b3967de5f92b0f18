"""Text as the rules see it: clauses of case- and accent-insensitive words, and a phrase
index that finds every rule phrase in one pass over the words, whatever the number of
rules, telling which occurrences are negated ("la central NO está caída")."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

_NON_WORD = re.compile(r"[^0-9a-z]+")
# A single line break is no clause end: plain-text mail is wrapped near 72 columns, and
# "todas\nlas llamadas" is one phrase. A blank line, or a line that starts a list item, is.
_CLAUSE_END = re.compile(
    r"[.,;:!?¿¡()\[\]]+|\r?\n\s*\r?\n|\r?\n(?=\s*[-*•>#\d])|\s-\s|\bbut\b|\bpero\b|\bsino\b"
)

Words = tuple[str, ...]

# A phrase is negated when one of these stands in the NEGATION_WINDOW words before it,
# in the same clause, unless the phrase itself starts with one ("no entran llamadas").
NEGATORS = frozenset(
    {"no", "not", "sin", "nunca", "never", "ni", "nor", "without", "tampoco",
     "isn", "aren", "wasn", "weren", "doesn", "don", "didn", "hasn", "haven"}
)  # fmt: skip
NEGATION_WINDOW = 3
# Negative words that agree with a "no" instead of cancelling it, Spanish negative concord:
# "no entra ninguna llamada" says that no call comes in. A phrase starting with one of
# these is never negated, like a phrase starting with a negator.
NEGATIVE_WORDS = frozenset(
    {"ninguna", "ninguno", "ningun", "nadie", "nada", "none", "nobody", "nothing", "zero"}
)

# Words that, just after a phrase, say it is fine: "most calls are fine", "las demás
# llamadas funcionan bien". Such a phrase reads as negated.
REASSURANCES = frozenset({"fine", "ok", "okay", "normally", "bien", "normales", "normalmente"})
REASSURANCE_WINDOW = 3


class _WithoutCombiningMarks(dict[int, str]):
    """A ``str.translate`` table that drops combining marks (accents once decomposed) and
    keeps every other character; each character is looked up in Unicode once."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        kept = "" if unicodedata.combining(char) else char
        self[code] = kept
        return kept


_DROP_COMBINING_MARKS = _WithoutCombiningMarks()
# Classification reads one message's subject and body several times (the rules, the impact
# matrix, the assistant): the last few texts are folded once.
_RECENT_TEXTS = 64
# The rules read at most this many characters of one text (a subject, a body: a mail's
# new text is up to 200,000). Folding can make one character up to 18 (NFKD of U+FDFA),
# so the folded text is cut to the same length: what one message costs to classify is
# bounded whatever characters it is written in.
MAX_FOLDED_CHARS = 20_000


@lru_cache(maxsize=_RECENT_TEXTS)
def fold(text: str) -> str:
    """Lowercase, without accents: "CAÍDA" -> "caida". At most ``MAX_FOLDED_CHARS``
    characters, from the start of ``text``."""
    text = text[:MAX_FOLDED_CHARS]
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKD", text.casefold()).translate(_DROP_COMBINING_MARKS)
    return folded[:MAX_FOLDED_CHARS]


def words(text: str) -> Words:
    """Lowercase words without accents.

    "¿La Central está CAÍDA?" -> ("la", "central", "esta", "caida")
    """
    return _words_of_folded(fold(text))


def _words_of_folded(folded: str) -> Words:
    return tuple(word for word in _NON_WORD.split(folded) if word)


@lru_cache(maxsize=_RECENT_TEXTS)
def clauses(text: str) -> tuple[Words, ...]:
    """The text's clauses (split at punctuation, blank lines, list items and at
    "but"/"pero"), each as words."""
    return tuple(
        found for part in _CLAUSE_END.split(fold(text)) if (found := _words_of_folded(part))
    )


@dataclass(frozen=True)
class PhraseHit:
    phrase: Words
    negated: bool


class PhraseIndex:
    """Maps phrases (word tuples) to the ids that want them.

    ``find`` looks up, at each word position, only the phrase lengths that start with that
    word, so its cost depends on the text and not on how many rules there are.
    """

    def __init__(self, phrases: Mapping[Words, Sequence[int]]) -> None:
        by_first: dict[str, dict[Words, tuple[int, ...]]] = defaultdict(dict)
        for phrase, owners in phrases.items():
            if phrase:
                by_first[phrase[0]][phrase] = tuple(owners)
        self._by_first = {
            first: (sorted({len(phrase) for phrase in group}), group)
            for first, group in by_first.items()
        }

    def find(self, text: Sequence[Words]) -> dict[int, list[PhraseHit]]:
        """Every owner whose phrase occurs in ``text`` (its clauses), with the hits; a
        phrase found both negated and not counts once, as not negated."""
        found: dict[int, dict[Words, bool]] = defaultdict(dict)
        for clause in text:
            for start, word in enumerate(clause):
                entry = self._by_first.get(word)
                if entry is None:
                    continue
                lengths, group = entry
                for length in lengths:
                    candidate = clause[start : start + length]
                    owners = group.get(candidate)
                    if owners is None:
                        continue
                    end = start + length
                    negated = candidate[0] not in NEGATORS | NEGATIVE_WORDS and (
                        any(
                            before in NEGATORS
                            for before in clause[max(0, start - NEGATION_WINDOW) : start]
                        )
                        or any(
                            after in REASSURANCES
                            for after in clause[end : end + REASSURANCE_WINDOW]
                        )
                    )
                    for owner in owners:
                        seen = found[owner]
                        seen[candidate] = seen.get(candidate, True) and negated
        return {
            owner: [PhraseHit(phrase, negated) for phrase, negated in hits.items()]
            for owner, hits in found.items()
        }


def build_index(phrases_by_owner: Iterable[tuple[int, Iterable[str]]]) -> PhraseIndex:
    table: dict[Words, list[int]] = defaultdict(list)
    for owner, phrases in phrases_by_owner:
        for phrase in phrases:
            table[words(phrase)].append(owner)
    return PhraseIndex(table)
