"""No SNMPv1/v2c community unless configured; ``engine up``'s development profile accepts
``public`` when none is, and says so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.development import DEVELOPMENT_COMMUNITY, development_profile
from engine.settings import Settings


@pytest.fixture(autouse=True)
def no_engine_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("ENGINE_")]:
        monkeypatch.delenv(name)


def test_settings_without_configuration_accept_no_community() -> None:
    assert Settings().snmp_communities == []


def test_engine_up_accepts_public_when_no_community_is_configured_and_warns() -> None:
    profile = development_profile(Settings())

    assert (
        profile.env
        == {"ENGINE_SNMP_COMMUNITIES": "public"}
        == {"ENGINE_SNMP_COMMUNITIES": DEVELOPMENT_COMMUNITY}
    )
    [warning] = profile.warnings
    assert "'public'" in warning and "ENGINE_SNMP_COMMUNITIES" in warning


@pytest.mark.parametrize("configured", ["it-community", ""])
def test_engine_up_keeps_configured_communities_even_none(
    monkeypatch: pytest.MonkeyPatch, configured: str
) -> None:
    monkeypatch.setenv("ENGINE_SNMP_COMMUNITIES", configured)

    profile = development_profile(Settings())

    assert (profile.env, profile.warnings) == ({}, ())


def test_a_community_in_the_config_file_counts_as_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "engine.toml"
    config.write_text('snmp_communities = ["noc"]\n', encoding="utf-8")
    monkeypatch.setenv("ENGINE_CONFIG_FILE", str(config))

    settings = Settings()

    assert settings.snmp_communities == ["noc"]
    assert development_profile(settings).env == {}
