"""The README is the front door and docs/ the manual: together they name every setting,
topic, metric and command the code has, and every command they show is one the CLI takes.

Commands are read from fenced code blocks (shell lines: ``engine ...``, ``.venv/bin/engine
...``, after ``$ `` or ``VAR=value``; a pipe, ``&&``, ``;``, a redirection or a comment ends
a command, and another may follow) and from inline code spans that start with ``engine ``
(a synopsis: ``[...]`` is optional, ``a|b`` is a choice, ``...`` repeats; ``engine broker``
alone names the command). Words in capitals (``TOPIC``, ``FILE``, ``H:P``) or in angle
brackets are placeholders: any value, but never a command or an option name.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.cli.main import build_parser
from engine.contract.topics import declared_topics
from engine.settings import Settings
from engine.supervisor import COMPONENTS, RELAY_COMPONENTS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOC_FILES = sorted((ROOT / "docs").glob("*.md"))
PAGES = {"README.md": README} | {
    f"docs/{path.name}": path.read_text(encoding="utf-8") for path in DOC_FILES
}
MANUAL = "\n".join(PAGES.values())

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"(?<!`)`(engine [^`]+)`(?!`)")
PLACEHOLDER = re.compile(r"^(<[^>]+>|[A-Z][A-Z0-9_:.,-]*)$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SHELL_OPERATORS = {"|", "||", "&&", ";", ";;", ">", ">>", "<", "<<", "&", "(", ")"}


def is_placeholder(word: str) -> bool:
    return bool(PLACEHOLDER.match(word.removesuffix("...")))


def _without_fences(text: str) -> str:
    return FENCE.sub("", text)


def shell_commands(block: str) -> Iterator[list[str]]:
    """The ``engine`` commands of a shell code block, as argument lists (after ``engine``)."""
    joined = re.sub(r"\\\n", " ", block)
    for line in joined.splitlines():
        lexer = shlex.shlex(line.strip().removeprefix("$ "), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            words = list(lexer)
        except ValueError:
            continue
        groups = itertools.groupby(words, key=lambda word: word in SHELL_OPERATORS)
        for is_operator, group in groups:
            segment = [] if is_operator else list(group)
            while segment and ASSIGNMENT.match(segment[0]):
                segment = segment[1:]
            if segment[1:3] == ["-m", "engine"] and segment[0].endswith("python"):
                segment = ["engine", *segment[3:]]
            if segment and (segment[0] == "engine" or segment[0].endswith("/engine")):
                yield segment[1:]


def synopsis_commands(span: str) -> Iterator[list[str]]:
    """The argument lists a synopsis such as ``engine broker fetch|start [--x N]`` stands for."""
    text = span.replace("\\|", "|").replace("[", " ").replace("]", " ")
    words = [word.removesuffix("...") for word in text.split()[1:] if word not in {"...", "|"}]
    choices = [word.split("|") if "|" in word else [word] for word in words]
    for combination in itertools.product(*choices):
        yield list(combination)


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every command the README and docs/ show: (page, arguments after ``engine``). A command
    named alone in the text ("`engine broker` starts the broker") and not complete without
    arguments counts as ``[name, "--help"]``: its arguments are shown elsewhere."""
    found: list[tuple[str, list[str]]] = []
    for page, text in PAGES.items():
        for block in FENCE.findall(text):
            found.extend((page, arguments) for arguments in shell_commands(block))
        for span in INLINE.findall(_without_fences(text)):
            name = span.removeprefix("engine ")
            if re.fullmatch(r"[a-z][a-z-]*", name) and parse([name]) is None:
                found.append((page, [name, "--help"]))
                continue
            found.extend((page, arguments) for arguments in synopsis_commands(span))
    return found


def _accept_placeholders(parser: argparse.ArgumentParser) -> None:
    """Let a placeholder stand wherever an argument's value goes (typed or with choices)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_parser in action.choices.values():
                _accept_placeholders(sub_parser)
            continue
        convert: Callable[[str], Any] = action.type if callable(action.type) else str

        def typed(value: str, convert: Callable[[str], Any] = convert) -> Any:
            return value if is_placeholder(value) else convert(value)

        action.type = typed
        if action.choices is not None:
            action.choices = _OrPlaceholder(action.choices)


class _OrPlaceholder(list[Any]):
    def __contains__(self, value: object) -> bool:
        return (isinstance(value, str) and is_placeholder(value)) or super().__contains__(value)


def parse(arguments: list[str]) -> str | None:
    """The subcommand these arguments run, or None when the CLI refuses them."""
    parser = build_parser()
    _accept_placeholders(parser)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            namespace = parser.parse_args(arguments)
        except SystemExit as exit_:  # --help exits 0 after printing the help
            return arguments[0] if exit_.code == 0 else None
    command: str = namespace.command
    return command


def subcommands() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_setting_is_documented() -> None:
    missing = [
        f"ENGINE_{name.upper()}"
        for name in Settings.model_fields
        if f"`ENGINE_{name.upper()}`" not in MANUAL
    ]
    assert missing == []


def test_every_topic_is_in_the_readme_topic_table() -> None:
    missing = [spec.name for spec in declared_topics() if f"| `{spec.name}` |" not in README]
    assert missing == []


def test_every_metric_is_in_the_metrics_table() -> None:
    declared = {
        name
        for path in (ROOT / "engine").rglob("*.py")
        for name in re.findall(r"[\"'](ticketing_[a-z0-9_]+)[\"']", path.read_text("utf-8"))
    }
    operations = PAGES["docs/operations.md"]
    assert declared, "no metric found in engine/: the pattern is out of date"
    assert sorted(name for name in declared if f"| `{name}` |" not in operations) == []


def test_the_readme_and_docs_show_commands() -> None:
    pages = {page for page, _ in documented_commands()}
    assert "README.md" in pages
    assert len(documented_commands()) > len(subcommands())


@pytest.mark.parametrize(
    ("page", "arguments"),
    documented_commands(),
    ids=[f"{page}: engine {' '.join(arguments)}" for page, arguments in documented_commands()],
)
def test_every_documented_command_is_one_the_cli_accepts(page: str, arguments: list[str]) -> None:
    assert parse(arguments) is not None, f"{page} shows `engine {' '.join(arguments)}`"


def test_every_subcommand_is_documented() -> None:
    shown = {parse(args) for _, args in documented_commands() if "--help" not in args}
    assert sorted(set(subcommands()) - shown) == []


@pytest.mark.parametrize(
    "line",
    [
        "engine frobnicate --now",
        "engine tail",
        "engine broker restart",
        "engine rules check --no-such-option",
        "engine TOPIC",
        "engine tail TOPIC -n many",
    ],
)
def test_a_command_the_cli_refuses_is_caught(line: str) -> None:
    (arguments,) = shell_commands(line)
    assert parse(arguments) is None


def test_placeholders_and_synopses_are_read_as_commands() -> None:
    (arguments,) = shell_commands("$ ENGINE_X=1 .venv/bin/engine tail TOPIC -n N | head  # hi")
    assert arguments == ["tail", "TOPIC", "-n", "N"]
    assert parse(arguments) == "tail"
    assert list(shell_commands("echo '{}' \\\n  | engine classify >> out && engine up")) == [
        ["classify"],
        ["up"],
    ]
    assert [parse(a) for a in synopsis_commands("engine broker fetch\\|start [--x]")] == [
        None,
        None,
    ]
    assert list(synopsis_commands("engine broker fetch\\|stop")) == [
        ["broker", "fetch"],
        ["broker", "stop"],
    ]
    assert parse(["api-token", "NAME", "SCOPE", "tickets:read"]) == "api-token"
    assert parse(["api-token", "NAME", "everything"]) is None


def _words(text: str) -> str:
    return re.sub(r"-\s+", "-", " ".join(text.split()))


def test_the_up_help_names_every_component_it_runs() -> None:
    up = subcommands()["up"]
    help_text = _words(up.format_help())
    listed = _words(build_parser().format_help())
    for component in (*COMPONENTS, *RELAY_COMPONENTS):
        word = re.compile(rf"(?<![\w-]){re.escape(component)}(?![\w-])")
        assert word.search(help_text), f"`engine up --help` does not name {component}"
        assert word.search(listed), f"`engine --help` does not name {component} under up"


def _anchors(text: str) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", _without_fences(text), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_path_and_link_of_the_readme_and_docs_exists() -> None:
    broken: list[str] = []
    for page, text in PAGES.items():
        folder = (ROOT / page).parent
        for path in re.findall(r"`((?:engine|tests|deploy|bench|docs|schemas)/[\w./-]*)", text):
            if not (ROOT / path).exists():
                broken.append(f"{page}: {path}")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", text):
            if target.startswith(("http://", "https://")):
                continue
            linked = (folder / target).resolve() if target else ROOT / page
            if not linked.exists():
                broken.append(f"{page}: link {target}")
            elif anchor and anchor not in _anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{page}: link {target}#{anchor}")
    assert broken == []
