"""JSON Schemas of every record, generated from the models into ``schemas/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.contract import RECORD_TYPES, Envelope
from engine.contract.topics import declared_topics


def schema_of(record_type: type[Envelope]) -> dict[str, Any]:
    schema = record_type.model_json_schema(mode="serialization")
    topics = [spec.name for spec in declared_topics() if record_type in spec.records]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{schema_file_name(record_type)}"
    schema["x-topics"] = topics
    return schema


def schema_file_name(record_type: type[Envelope]) -> str:
    kind = record_type.model_fields["kind"].default
    return f"{kind.value}.v{record_type.model_fields['schema_version'].default}.schema.json"


def rendered_schemas() -> dict[str, str]:
    return {
        schema_file_name(record_type): json.dumps(schema_of(record_type), indent=2, sort_keys=True)
        + "\n"
        for record_type in RECORD_TYPES
    }


def export_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_schemas().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
