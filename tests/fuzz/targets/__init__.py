"""The fuzz targets: each calls one of the engine's edge functions the way the engine
calls it, on bytes a fuzzer makes, and lets through only what is a crash.

A target returns when the function took its input or refused it the documented way (each
target's ``refusal`` names that way); any other exception escapes, and that input is a
crash. Seeds are the files of ``tests/corpus/``.

A target's module is imported only when the target is asked for, so that a fuzzing
process loads (and instruments) only what its target uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
RECEIVED_AT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    refusal: str
    """What the function may raise or return for an input it refuses: not a crash."""
    seeds: Callable[[], Iterator[bytes]]
    max_len: int
    """The largest input the fuzzer makes (a seed may be larger)."""
    tokens: tuple[bytes, ...] = ()
    """Pieces of input that matter to this function, spliced in by the fuzzer."""


@dataclass(frozen=True)
class TargetModule:
    module: str
    instrumented: tuple[str, ...]
    """The packages whose branches guide the fuzzer: the engine's, and those of the library
    its edge function hands the input to."""


_MAIL = TargetModule("mail", ("engine", "email"))
_SNMP = TargetModule("snmp", ("engine", "pyasn1"))
_API = TargetModule("api", ("engine", "pydantic"))
_RULES = TargetModule("rules", ("engine", "re"))
MODULES = {
    "mail_parser": _MAIL,
    "mail_identity": _MAIL,
    "snmp_fast_path": _SNMP,
    "snmp_pysnmp": _SNMP,
    "api_models": _API,
    "chat_websocket": _API,
    "classify": _RULES,
}
NAMES = tuple(MODULES)


def target(name: str) -> Target:
    """The target called ``name`` (one of ``NAMES``), its module imported."""
    module = importlib.import_module(f"{__name__}.{MODULES[name].module}")
    found: Target = module.TARGETS[name]
    return found


def corpus_files(folder: str, pattern: str) -> Iterator[bytes]:
    for path in sorted((CORPUS / folder).glob(pattern)):
        yield path.read_bytes()
