"""The committed JSON Schemas are what the models generate: a drift fails here."""

from __future__ import annotations

from pathlib import Path

from engine.contract import RECORD_TYPES
from engine.contract.schema_export import rendered_schemas
from engine.contract.topics import declared_topics

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def test_committed_schemas_match_the_models() -> None:
    expected = rendered_schemas()
    committed = {path.name: path.read_text(encoding="utf-8") for path in SCHEMAS.glob("*.json")}

    assert sorted(committed) == sorted(expected), "run: engine schemas export"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} is stale: run 'engine schemas export'"


def test_every_record_type_has_a_topic_and_every_topic_its_records() -> None:
    on_topics = {record for spec in declared_topics() for record in spec.records}

    assert on_topics == set(RECORD_TYPES)
