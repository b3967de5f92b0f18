"""The README is the front door: it names every setting and every topic the code has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from engine.cli.main import build_parser
from engine.contract.topics import declared_topics
from engine.settings import Settings
from engine.supervisor import COMPONENTS, RELAY_COMPONENTS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [
        f"ENGINE_{name.upper()}"
        for name in Settings.model_fields
        if f"`ENGINE_{name.upper()}`" not in README
    ]
    assert missing == []


def test_every_topic_is_in_the_topic_table() -> None:
    missing = [spec.name for spec in declared_topics() if f"| `{spec.name}` |" not in README]
    assert missing == []


def _words(text: str) -> str:
    return re.sub(r"-\s+", "-", " ".join(text.split()))


def test_the_up_help_names_every_component_it_runs() -> None:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    help_text = _words(action.choices["up"].format_help())
    listed = _words(parser.format_help())
    for component in (*COMPONENTS, *RELAY_COMPONENTS):
        word = re.compile(rf"(?<![\w-]){re.escape(component)}(?![\w-])")
        assert word.search(help_text), f"`engine up --help` does not name {component}"
        assert word.search(listed), f"`engine --help` does not name {component} under up"
