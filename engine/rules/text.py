"""Text as the rules see it: case- and accent-insensitive words, and a phrase index that
finds every rule phrase in one pass over the words, whatever the number of rules."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

_NON_WORD = re.compile(r"[^0-9a-z]+")

Words = tuple[str, ...]


def words(text: str) -> Words:
    """Lowercase words without accents.

    "¿La Central está CAÍDA?" -> ("la", "central", "esta", "caida")
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return tuple(word for word in _NON_WORD.split(plain) if word)


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

    def find(self, text: Words) -> dict[int, list[Words]]:
        """Every owner whose phrase occurs in ``text``, with the phrases found."""
        found: dict[int, list[Words]] = defaultdict(list)
        for start, word in enumerate(text):
            entry = self._by_first.get(word)
            if entry is None:
                continue
            lengths, group = entry
            for length in lengths:
                candidate = text[start : start + length]
                owners = group.get(candidate)
                if owners is None:
                    continue
                for owner in owners:
                    if candidate not in found[owner]:
                        found[owner].append(candidate)
        return found


def build_index(phrases_by_owner: Iterable[tuple[int, Iterable[str]]]) -> PhraseIndex:
    table: dict[Words, list[int]] = defaultdict(list)
    for owner, phrases in phrases_by_owner:
        for phrase in phrases:
            table[words(phrase)].append(owner)
    return PhraseIndex(table)
