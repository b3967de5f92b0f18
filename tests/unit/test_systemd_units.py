"""deploy/systemd/ checked by systemd's own tools, on the units as they are installed, with
ExecStart pointing at this checkout's ``engine`` (``systemd-analyze verify`` checks that the
program exists; the shipped units start /opt/ticketing-engine/bin/engine):

- ``systemd-analyze verify`` accepts every unit and instance without a word: it exits 0 on
  warnings (an unknown key, a bad value), so anything on its stderr fails;
- ``systemd-analyze security --offline=yes`` rates every service at an exposure of 3.0 or
  less, with the low-ports drop-in too;
- ``systemd-sysusers`` makes the user the units run as;
- the target, the instances, the drop-ins and the environment file agree with the code.

systemd's tools missing fail these tests, never skip them (``make bootstrap`` installs
Debian's systemd). PID 1 here is not systemd: nothing is started; the integration test
test_systemd_notify.py plays systemd's part of the protocol instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli.main import build_parser
from engine.settings import Settings
from engine.supervisor import AGENTS_COMPONENTS, COMPONENTS, NICENESS, RELAY_COMPONENTS

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED_ENGINE = "/opt/ticketing-engine/bin/engine"
INSTANCES = [*COMPONENTS, *RELAY_COMPONENTS, *AGENTS_COMPONENTS]
TEMPLATE = "ticketing-engine@.service"
TOPICS = "ticketing-engine-topics.service"
TARGET = "ticketing-engine.target"
SERVICES = [TOPICS, *(f"ticketing-engine@{name}.service" for name in INSTANCES)]
MAX_EXPOSURE = 3.0


def tool(name: str) -> str:
    program = shutil.which(name)
    if program is None:
        pytest.fail(f"{name} is missing: run make bootstrap, which installs Debian's systemd")
    return program


def entries(path: Path) -> Iterator[tuple[str, str, str]]:
    """(section, key, value) of a unit file, in order; a key may repeat."""
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        yield section, key, value


def values(path: Path, section: str, key: str) -> list[str]:
    return [v for s, k, v in entries(path) if (s, k) == (section, key)]


def render(folder: Path, *drop_ins: tuple[str, str]) -> Path:
    """deploy/systemd/ copied to ``folder`` as installed, starting this checkout's engine;
    each (instance, file) of ``drop_ins`` installed as a drop-in of that instance."""
    engine = Path(sys.executable).with_name("engine")
    assert engine.is_file(), f"{engine}: the virtualenv's engine command is missing"
    shutil.copytree(UNITS, folder)
    for path in folder.rglob("*"):
        if path.suffix in {".service", ".conf"} and path.is_file():
            path.write_text(path.read_text().replace(INSTALLED_ENGINE, str(engine)))
    for instance, name in drop_ins:
        target = folder / f"ticketing-engine@{instance}.service.d" / name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(folder / name, target)
    return folder


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("systemd") / "units")


@pytest.fixture(scope="module")
def on_low_ports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("systemd") / "units"
    return render(folder, ("smtp", "low-ports.conf"), ("snmp", "low-ports.conf"))


def analyze(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("systemd-analyze"), *arguments], capture_output=True, text=True, check=False
    )


def verified(unit: Path) -> None:
    result = analyze("verify", str(unit))
    said = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and said == "", f"systemd-analyze verify {unit.name}:\n{said}"


def exposure(unit: Path) -> float:
    result = analyze("security", "--offline=yes", str(unit))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout
    return float(found.group(1))


@pytest.mark.parametrize("unit", [TARGET, TEMPLATE, *SERVICES])
def test_systemd_verifies_every_unit_without_a_word(installed: Path, unit: str) -> None:
    verified(installed / unit)


@pytest.mark.parametrize("unit", SERVICES)
def test_every_service_is_exposed_at_most_3(installed: Path, unit: str) -> None:
    assert exposure(installed / unit) <= MAX_EXPOSURE


@pytest.mark.parametrize("instance", ["smtp", "snmp"])
def test_the_low_ports_drop_in_keeps_the_checks(on_low_ports: Path, instance: str) -> None:
    unit = on_low_ports / f"ticketing-engine@{instance}.service"
    verified(unit)
    assert exposure(unit) <= MAX_EXPOSURE
    assert values(on_low_ports / "low-ports.conf", "Service", "AmbientCapabilities") == [
        "CAP_NET_BIND_SERVICE"
    ]


def test_a_warning_fails_the_check(tmp_path: Path) -> None:
    """systemd-analyze verify exits 0 here, having said why it ignores the line."""
    folder = render(tmp_path / "units")
    template = folder / TEMPLATE
    template.write_text(template.read_text() + "\n[Service]\nRestart=sometimes\n")
    with pytest.raises(AssertionError, match="ignoring: sometimes"):
        verified(folder / "ticketing-engine@smtp.service")


def test_the_target_starts_what_engine_up_always_runs() -> None:
    wanted = {unit for value in values(UNITS / TARGET, "Unit", "Wants") for unit in value.split()}
    assert wanted == {TOPICS, *(f"ticketing-engine@{name}.service" for name in COMPONENTS)}


def test_each_instance_runs_its_engine_command() -> None:
    assert values(UNITS / TEMPLATE, "Service", "ExecStart") == [f"{INSTALLED_ENGINE} %i"]
    assert values(UNITS / TOPICS, "Service", "ExecStart") == [f"{INSTALLED_ENGINE} topics create"]
    parser = build_parser()
    for instance in INSTANCES:
        assert parser.parse_args([instance]).command == instance


def test_the_service_is_told_the_engine_s_state_directory() -> None:
    assert values(UNITS / TEMPLATE, "Service", "StateDirectory") == ["ticketing-engine/%i"]
    [environment] = values(UNITS / TEMPLATE, "Service", "Environment")
    assert "ENGINE_STATE_DIR=%S/ticketing-engine/%i" in environment.split()
    assert values(UNITS / TEMPLATE, "Service", "Type") == ["notify"]
    assert values(UNITS / TEMPLATE, "Service", "NotifyAccess") == ["main"]


def test_drop_ins_are_for_instances_and_keep_engine_up_s_niceness() -> None:
    folders = UNITS.glob("ticketing-engine@*.service.d")
    instances = {path.name.split("@")[1].removesuffix(".service.d") for path in folders}
    assert instances <= set(INSTANCES)
    nice = {
        instance: int(value)
        for instance in instances
        for path in (UNITS / f"ticketing-engine@{instance}.service.d").glob("*.conf")
        for value in values(path, "Service", "Nice")
    }
    assert nice == NICENESS


def test_the_topics_job_is_hardened_as_the_components_are() -> None:
    template = [(k, v) for s, k, v in entries(UNITS / TEMPLATE) if s == "Service"]
    hardening = template[[k for k, _ in template].index("CapabilityBoundingSet") :]
    topics = [(k, v) for s, k, v in entries(UNITS / TOPICS) if s == "Service"]
    assert [entry for entry in hardening if entry not in topics] == []


def environment_example() -> dict[str, str]:
    """Every ENGINE_ line of the example, the commented ones too."""
    text = (UNITS / "engine.env.example").read_text(encoding="utf-8")
    lines = re.findall(r"^#?(ENGINE_[A-Z0-9_]+)=(.*)$", text, re.MULTILINE)
    assert len(lines) > 10
    return dict(lines)


def test_the_environment_example_names_settings_that_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    example = environment_example()
    assert "ENGINE_STATE_DIR" not in example  # the unit's own, the one writable place
    for name in [name for name in os.environ if name.startswith("ENGINE_")]:
        monkeypatch.delenv(name)
    for name, value in example.items():
        if name == "ENGINE_KAFKA_SASL_PASSWORD_FILE":
            value = str(tmp_path / Path(value).name)  # the file the operator provides
            Path(value).write_text("secret\n")
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENGINE_STATE_DIR", "/var/lib/ticketing-engine/smtp")

    settings = Settings()

    fields = {f"ENGINE_{name.upper()}" for name in Settings.model_fields}
    assert set(example) <= fields
    assert settings.smtp_archive_dir is not None
    assert settings.smtp_archive_dir.is_relative_to(settings.state_dir)
    assert settings.snmp_communities == [], "no v1/v2c community until the operator sets one"


def test_systemd_sysusers_makes_the_user_the_units_run_as(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        [tool("systemd-sysusers"), f"--root={tmp_path}", str(UNITS / "sysusers.conf")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [user] = values(UNITS / TEMPLATE, "Service", "User")
    assert values(UNITS / TEMPLATE, "Service", "Group") == [user]
    passwd = (tmp_path / "etc" / "passwd").read_text()
    assert re.search(rf"^{user}:x:\d+:\d+:[^:]*:/var/lib/{user}:/usr/sbin/nologin$", passwd, re.M)
