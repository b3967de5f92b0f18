"""deploy/Containerfile cannot be built here (no container engine), so what the workloads
rely on is read from it and checked against the code: the entry point is the package's
`engine` script, every workload's argument is one of its subcommands, the user is the
pods' non-root user, and the state folder and ports are the settings the pods use."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from engine.cli.main import build_parser
from engine.settings import Settings
from tests.unit.k8s.manifests import OVERLAYS, ROOT, Resource, container, pod, workloads

CONTAINERFILE = ROOT / "deploy" / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text(encoding="utf-8"))
    found = [
        (word.upper(), rest.strip())
        for word, _, rest in (
            line.strip().partition(" ")
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        )
    ]
    last_from = max(i for i, (word, _) in enumerate(found) if word == "FROM")
    return found[last_from:]


def one(instruction: str) -> str:
    (arguments,) = [rest for word, rest in instructions() if word == instruction]
    return arguments


def environment() -> dict[str, str]:
    pairs = re.findall(r"([A-Z_]+)=(\S+)", " ".join(r for w, r in instructions() if w == "ENV"))
    return dict(pairs)


def subcommand(arguments: list[str]) -> str | None:
    """The CLI's subcommand for these arguments, or None if it refuses them."""
    try:
        namespace = build_parser().parse_args(arguments)
    except SystemExit:
        return None
    command: str = namespace.command
    return command


def test_the_entry_point_is_the_packages_engine_script() -> None:
    assert json.loads(one("ENTRYPOINT")) == ["engine"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["engine"] == "engine.cli.main:main"
    assert subcommand(json.loads(one("CMD"))) is None  # --help: prints and exits
    text = CONTAINERFILE.read_text(encoding="utf-8")
    # the engine comes from this repository, not from an index
    assert "COPY engine ./engine" in text and "pip install --no-cache-dir ." in text


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_runs_a_subcommand_of_the_cli(
    overlay: str, rendered: dict[str, list[Resource]]
) -> None:
    for name, workload in workloads(rendered[overlay]).items():
        arguments = container(workload)["args"]
        assert subcommand(arguments) == name, f"`engine {' '.join(arguments)}` is not a command"


def test_a_command_the_cli_does_not_have_is_caught() -> None:
    assert subcommand(["scheduler"]) is None


def test_the_user_is_the_pods_non_root_user(rendered: dict[str, list[Resource]]) -> None:
    user, _, group = one("USER").partition(":")
    assert user.isdigit() and int(user) != 0, "a numeric user: runAsNonRoot checks numbers"
    for resources in rendered.values():
        for workload in workloads(resources).values():
            context = pod(workload)["securityContext"]
            assert (context["runAsUser"], context["runAsGroup"]) == (int(user), int(group))


def test_the_state_folder_and_ports_are_the_settings_the_pods_use(
    rendered: dict[str, list[Resource]],
) -> None:
    state = environment()["ENGINE_STATE_DIR"]
    assert one("WORKDIR") == state and json.loads(one("VOLUME")) == [state]
    exposed: set[tuple[int, str]] = set()
    for item in one("EXPOSE").split():
        ports, _, protocol = item.partition("/")
        first, _, last = ports.partition("-")
        exposed |= {(port, protocol) for port in range(int(first), int(last or first) + 1)}
    wanted: set[tuple[int, str]] = set()
    for resources in rendered.values():
        for workload in workloads(resources).values():
            engine: dict[str, Any] = container(workload)
            wanted |= {(p["containerPort"], p["protocol"].lower()) for p in engine["ports"]}
            mounts = {m["mountPath"] for m in engine["volumeMounts"]}
            assert state in mounts
    assert wanted <= exposed
    defaults = Settings.model_fields
    assert (defaults["snmp_port"].default, "udp") in exposed
    assert (defaults["smtp_port"].default, "tcp") in exposed
