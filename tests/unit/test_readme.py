"""The README is the front door: it names every setting and every topic the code has."""

from __future__ import annotations

from pathlib import Path

from engine.contract.topics import declared_topics
from engine.settings import Settings

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
