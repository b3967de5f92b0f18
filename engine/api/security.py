"""Who may call the API, and how often.

Every integration (a chat widget, an agent tool, a dashboard) has its own bearer token
``<integration>.<secret>`` and the scopes it needs. The tokens file holds one line per
integration, ``integration:scope,scope:pbkdf2_sha256$...``, and ``:customer=<id>`` after
it for an integration that writes for one customer, e.g. that customer's chat widget
(``engine api-token`` prints a new token and its line); only the hash is stored. The
slow PBKDF2 check runs once per token and process, in a thread: a token that passed it is
remembered by a digest keyed with a secret the process draws at start (BLAKE2b), never by
the token itself, and what a copy of that table shows cannot be checked against guessed
tokens without the process's key. A token that failed is not remembered: it pays the
PBKDF2 check again, behind the limit on invalid tokens per address.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from engine.clock import Clock
from engine.errors import EngineError
from engine.passwords import hash_password, password_matches

MAX_TRACKED_KEYS = 100_000


class ApiSecurityError(EngineError):
    pass


class Scope(StrEnum):
    CHAT_WRITE = "chat:write"
    PHONE_WRITE = "phone:write"
    ACTIVITY_WRITE = "activity:write"
    TICKETS_READ = "tickets:read"
    PRESENCE_WRITE = "presence:write"


CUSTOMER_FIELD = "customer="


@dataclass(frozen=True)
class Integration:
    name: str
    scopes: frozenset[Scope]
    stored_hash: str
    customer_id: str | None = None
    """The customer every chat message and phone call of this integration is for."""


class CustomerClaimError(EngineError):
    """A message naming a customer its integration may not write for."""

    field = "customer_id"


def message_customer(
    integration: Integration, claimed: str | None, desk_may_name: bool
) -> str | None:
    """The customer of a message sent with ``integration``'s token. A bound integration's
    messages are its customer's; a message may not claim another one. An unbound one's
    chat messages name none (the sender's address tells the customer); the desk's own
    tools (``desk_may_name``: a logged phone call) name the customer the agent says."""
    bound = integration.customer_id
    if bound is not None:
        if claimed is not None and claimed != bound:
            raise CustomerClaimError(
                f"integration {integration.name} writes for customer {bound}, not {claimed}"
            )
        return bound
    if claimed is not None and not desk_may_name:
        raise CustomerClaimError(
            f"integration {integration.name} is bound to no customer, so it names none: the "
            "customer is the one the sender's address belongs to"
        )
    return claimed


def _valid_name(name: str) -> bool:
    return bool(name) and name.replace("-", "").replace("_", "").isalnum()


def new_token(name: str, scopes: list[Scope], customer_id: str | None = None) -> tuple[str, str]:
    """A fresh token for ``name`` and the tokens-file line that admits it."""
    if not _valid_name(name):
        raise ApiSecurityError(f"integration name {name!r}: letters, digits, - and _ only")
    if customer_id is not None and (not customer_id or ":" in customer_id):
        raise ApiSecurityError(f"customer id {customer_id!r}: not empty, without ':'")
    token = f"{name}.{secrets.token_urlsafe(32)}"
    scope_list = ",".join(scope.value for scope in scopes)
    bound = f":{CUSTOMER_FIELD}{customer_id}" if customer_id is not None else ""
    return token, f"{name}:{scope_list}:{hash_password(token)}{bound}"


def load_integrations(path: Path) -> dict[str, Integration]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ApiSecurityError(f"{path}: cannot read the API tokens: {error}") from error
    found: dict[str, Integration] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # Scopes contain colons themselves; the hash and the customer field contain none.
        name, _, rest = line.strip().partition(":")
        customer_id = None
        head, _, last = rest.rpartition(":")
        if last.startswith(CUSTOMER_FIELD):
            customer_id, rest = last.removeprefix(CUSTOMER_FIELD), head
        scope_list, _, stored = rest.rpartition(":")
        if not name or not stored.startswith("pbkdf2_sha256$") or customer_id == "":
            raise ApiSecurityError(
                f"{path}:{number}: expected integration:scopes:pbkdf2_sha256$..."
                "[:customer=<id>] (see engine api-token)"
            )
        try:
            scopes = frozenset(Scope(s.strip()) for s in scope_list.split(",") if s.strip())
        except ValueError as error:
            known = ", ".join(scope.value for scope in Scope)
            raise ApiSecurityError(f"{path}:{number}: {error}; scopes are {known}") from error
        found[name] = Integration(name, scopes, stored, customer_id)
    return found


class TokenVerifier:
    """Maps a presented bearer token to its integration, or None."""

    def __init__(self, integrations: Mapping[str, Integration]) -> None:
        self._integrations = dict(integrations)
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, Integration] = {}
        self._checking: dict[bytes, asyncio.Future[bool]] = {}

    @property
    def configured(self) -> bool:
        return bool(self._integrations)

    def _fingerprint(self, token: str) -> bytes:
        return hashlib.blake2b(token.encode(), key=self._key, digest_size=32).digest()

    def known(self, token: str) -> Integration | None:
        """The integration of a token verified before (cheap: one keyed digest)."""
        return self._verified.get(self._fingerprint(token))

    async def verify(self, token: str) -> Integration | None:
        fingerprint = self._fingerprint(token)
        known = self._verified.get(fingerprint)
        if known is not None:
            return known
        integration = self._integrations.get(token.partition(".")[0])
        if integration is None:
            return None
        # One check per token at a time: the requests that present it meanwhile (every
        # chat widget of a site shares one token, and they all come back after a restart)
        # wait for that check instead of each running its own.
        check = self._checking.get(fingerprint)
        if check is None:
            check = asyncio.ensure_future(
                asyncio.to_thread(password_matches, token.encode(), integration.stored_hash)
            )
            self._checking[fingerprint] = check
            check.add_done_callback(lambda _: self._checking.pop(fingerprint, None))
        if not await asyncio.shield(check):
            return None
        if len(self._verified) < MAX_TRACKED_KEYS:
            self._verified[fingerprint] = integration
        return integration


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, in bursts of ``burst``."""

    def __init__(self, per_minute: int, burst: int, clock: Clock) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def retry_after(self, key: str) -> int:
        """0 when the request may go ahead (and is counted); else seconds to wait."""
        tokens, now = self._refilled(key)
        if tokens >= 1.0:
            if len(self._buckets) >= MAX_TRACKED_KEYS and key not in self._buckets:
                self._buckets.clear()  # only idle integrations are forgotten in practice
            self._buckets[key] = (tokens - 1.0, now)
            return 0
        self._buckets[key] = (tokens, now)
        return self._wait(tokens)

    def give_back(self, key: str) -> None:
        """Return a request ``retry_after`` counted: it turned out not to count."""
        tokens, now = self._refilled(key)
        self._buckets[key] = (min(self._burst, tokens + 1.0), now)

    def _refilled(self, key: str) -> tuple[float, float]:
        now = self._clock.now().timestamp()
        tokens, since = self._buckets.get(key, (self._burst, now))
        return min(self._burst, tokens + (now - since) * self._rate), now

    def _wait(self, tokens: float) -> int:
        return max(1, math.ceil((1.0 - tokens) / self._rate))


class ChatLimit:
    """Chat messages per conversation and per client address, checked before the token's
    own limit: the widgets of a site share one token, and one visitor must not spend the
    other visitors' allowance. A message is counted by both, or by neither."""

    def __init__(self, per_conversation: int, per_address: int, clock: Clock) -> None:
        self._conversations = RateLimiter(per_conversation, per_conversation, clock)
        self._addresses = RateLimiter(per_address, per_address, clock)

    def retry_after(self, conversation: str, address: str) -> int:
        """0 when the message may go ahead (and is counted); else seconds to wait."""
        wait = self._conversations.retry_after(conversation)
        if wait:
            return wait
        wait = self._addresses.retry_after(address)
        if wait:
            self._conversations.give_back(conversation)
        return wait
