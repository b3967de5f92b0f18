"""SNMPv3 users of the receiver (``ENGINE_SNMP_USERS_FILE``), validated at start-up.

::

    users:
      - name: monitor
        auth: SHA256            # SHA, SHA224, SHA256, SHA384, SHA512
        auth_key: "at least 8 characters"
        priv: AES               # AES (128), AES192, AES256; omit for authNoPriv
        priv_key: "at least 8 characters"
        engine_ids: ["800000020109840301"]   # the senders' engine ids (hex), for traps

A trap is authenticated with the keys localised to its sender's engine id, so each
sender engine id is listed; INFORMs are localised to the receiver's own engine id and
need no listing. A user's level (authPriv when ``priv`` is set) is also the least it
accepts: an authPriv user's authNoPriv message is refused.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.contract import SecurityLevel
from engine.errors import EngineError, describe_validation


class SnmpUsersError(EngineError):
    pass


class AuthProtocol(StrEnum):
    SHA = "SHA"
    SHA224 = "SHA224"
    SHA256 = "SHA256"
    SHA384 = "SHA384"
    SHA512 = "SHA512"


class PrivProtocol(StrEnum):
    AES = "AES"
    AES192 = "AES192"
    AES256 = "AES256"


class SnmpUser(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=32)
    auth: AuthProtocol
    auth_key: str = Field(min_length=8, repr=False)
    priv: PrivProtocol | None = None
    priv_key: str | None = Field(default=None, min_length=8, repr=False)
    engine_ids: tuple[str, ...] = ()

    @field_validator("engine_ids")
    @classmethod
    def _hex_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = []
        for engine_id in value:
            text = engine_id.lower().removeprefix("0x")
            try:
                raw = bytes.fromhex(text)
            except ValueError as error:
                raise ValueError(f"engine id {engine_id!r} is not hexadecimal") from error
            if not 5 <= len(raw) <= 32:
                raise ValueError(f"engine id {engine_id!r} must be 5 to 32 octets")
            cleaned.append(text)
        return tuple(cleaned)

    @model_validator(mode="after")
    def _priv_needs_key(self) -> SnmpUser:
        if (self.priv is None) != (self.priv_key is None):
            raise ValueError("priv and priv_key go together")
        return self

    @property
    def level(self) -> SecurityLevel:
        return SecurityLevel.AUTH_PRIV if self.priv else SecurityLevel.AUTH_NO_PRIV


def load_users(path: Path | None) -> tuple[SnmpUser, ...]:
    if path is None:
        return ()
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SnmpUsersError(f"{path}: cannot read the SNMPv3 users: {error}") from error
    rows = document.get("users") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise SnmpUsersError(f"{path}: expected 'users:' with a list")
    users = []
    for index, row in enumerate(rows):
        try:
            users.append(SnmpUser.model_validate(row))
        except ValidationError as error:
            raise SnmpUsersError(f"{path}: users[{index}]: {describe_validation(error)}") from error
    names = [user.name for user in users]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SnmpUsersError(f"{path}: users named twice: {', '.join(duplicates)}")
    return tuple(users)
