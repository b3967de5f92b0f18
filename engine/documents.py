"""Validating a YAML document whole: every problem at once, each named by file, line and
path (``rules.yaml:42: rules[3].match.regex: ...``), like the rule files and the agents
directory. Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from engine.errors import EngineError

Location = tuple[int | str, ...]
Problem = tuple[Location, str]
Model = TypeVar("Model", bound=BaseModel)


def format_path(location: Location) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(document)"


def line_of(root: yaml.Node | None, location: Location) -> int | None:
    """The YAML line of the value at ``location`` (or of its nearest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in location:
        if isinstance(node, yaml.MappingNode):
            match = next(
                (value for key, value in node.value if getattr(key, "value", None) == part),
                None,
            )
            if match is None:
                key = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def repeated_ids(ids: list[str], section: str, what: str) -> list[Problem]:
    """An id given twice in ``section`` (a list of the document), named at its second place."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, given in enumerate(ids):
        if given in seen:
            problems.append(
                (
                    (section, index, "id"),
                    f"duplicate {what} id {given!r} ({section}[{seen[given]}])",
                )
            )
        seen.setdefault(given, index)
    return problems


def validated_document(
    text: str,
    origin: str,
    model: type[Model],
    semantic_problems: Callable[[Model], list[Problem]],
    error: type[EngineError],
    what: str,
) -> Model:
    """``text`` as ``model``, or ``error`` listing every problem, structural or semantic."""
    try:
        document: Any = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as bad_yaml:
        raise error(f"{origin}: not valid YAML: {bad_yaml}") from bad_yaml
    try:
        parsed = model.model_validate(document)
    except ValidationError as invalid:
        problems: list[Problem] = [
            (tuple(issue["loc"]), issue["msg"].removeprefix("Value error, "))
            for issue in invalid.errors()
        ]
    else:
        problems = semantic_problems(parsed)
        if not problems:
            return parsed
    lines = [
        f"  {origin}:{line_of(tree, location) or '?'}: {format_path(location)}: {message}"
        for location, message in problems
    ]
    raise error(f"{origin}: invalid {what} ({len(lines)} problems):\n" + "\n".join(lines))
