"""The exception tree: every exception the engine defines derives from EngineError, is
named ...Error, and is drawn in engine/errors.py's docstring (read from the source, so a
new exception cannot hide in a module no test imports)."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import engine.errors

ENGINE = Path(engine.errors.__file__).parent
BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}


def _base_name(base: ast.expr) -> str:
    """``ValueError`` and ``errors.EngineError`` alike, by their last name."""
    if isinstance(base, ast.Attribute):
        return base.attr
    return base.id if isinstance(base, ast.Name) else ""


def defined_classes() -> dict[str, tuple[str, list[str]]]:
    """Every class of engine/: name -> (module file, base names)."""
    classes: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(ENGINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                where = str(path.relative_to(ENGINE.parent))
                classes[node.name] = (where, [_base_name(base) for base in node.bases])
    return classes


def ancestors(name: str, classes: dict[str, tuple[str, list[str]]]) -> set[str]:
    found: set[str] = set()
    todo = list(classes[name][1]) if name in classes else []
    while todo:
        base = todo.pop()
        if base not in found:
            found.add(base)
            todo.extend(classes[base][1] if base in classes else [])
    return found


def engine_exceptions() -> dict[str, str]:
    """Exception classes defined in engine/ (name -> module file), EngineError aside."""
    classes = defined_classes()
    return {
        name: where
        for name, (where, _) in classes.items()
        if name != "EngineError"
        and ancestors(name, classes) & (BUILTIN_EXCEPTIONS | {"EngineError"})
    }


def test_the_scan_finds_the_engines_exceptions() -> None:
    found = engine_exceptions()
    assert {"PublishError", "EmailParseError", "ApiError", "NoticeRefusedError"} <= set(found)


def test_every_exception_derives_from_engine_error_and_is_named_error() -> None:
    classes = defined_classes()
    outside = [f"{where}: {name}" for name, where in engine_exceptions().items()
               if "EngineError" not in ancestors(name, classes)]  # fmt: skip
    misnamed = [f"{where}: {name}" for name, where in engine_exceptions().items()
                if not name.endswith("Error")]  # fmt: skip
    assert outside == [], "outside the EngineError tree"
    assert misnamed == [], "not named ...Error"


def test_the_tree_in_errors_py_draws_every_exception() -> None:
    drawing = engine.errors.__doc__ or ""
    drawn = {line.split()[1] for line in drawing.splitlines() if line.startswith((" ├", " └"))}
    assert drawn == set(engine_exceptions())
