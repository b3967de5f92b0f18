"""The development profile ``engine up`` runs with: what it fills in that production
(systemd, Kubernetes, ``engine <component>``) must configure itself.

Only the SNMPv1/v2c community so far: no community is accepted unless configured, and
``engine up`` accepts ``public`` when the user configured none, saying so once.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.settings import Settings

DEVELOPMENT_COMMUNITY = "public"


@dataclass(frozen=True)
class DevelopmentProfile:
    """Environment variables the components get on top of the user's, and why."""

    env: dict[str, str]
    warnings: tuple[str, ...]


def development_profile(settings: Settings) -> DevelopmentProfile:
    """What ``engine up`` adds to ``settings``: ``public`` as the SNMP community when
    ENGINE_SNMP_COMMUNITIES was not set at all (set empty, it stays empty)."""
    if "snmp_communities" in settings.model_fields_set:
        return DevelopmentProfile(env={}, warnings=())
    return DevelopmentProfile(
        env={"ENGINE_SNMP_COMMUNITIES": DEVELOPMENT_COMMUNITY},
        warnings=(
            f"the SNMP receiver accepts v1/v2c traps with the community "
            f"{DEVELOPMENT_COMMUNITY!r} (engine up's development default: anyone who can "
            "reach its port can open tickets); set ENGINE_SNMP_COMMUNITIES to your "
            "communities (comma-separated; empty: v3 only), or snmp_communities in the "
            "config file",
        ),
    )
