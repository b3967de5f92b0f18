"""STARTTLS and SMTP AUTH for the ingestor.

TLS comes from a PEM certificate and key. AUTH (PLAIN, LOGIN) checks users against a
file of ``user:pbkdf2_sha256$iterations$salt$hash`` lines (``engine hash-password``
writes one) and is offered only after STARTTLS: passwords never cross in clear.
Support mail from customers' servers needs no AUTH; it is for relays that submit mail.

Each check (PBKDF2, ~0.1 s) runs in a worker thread, never on the event loop that serves
every other connection; an unknown user is checked against a dummy hash of the same cost,
so the answer's timing does not tell which users exist.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from pathlib import Path

from aiosmtpd.smtp import LoginPassword

from engine.errors import EngineError
from engine.passwords import ITERATIONS, hash_password, iterations_of, password_matches


class SmtpSecurityError(EngineError):
    pass


def load_users(path: Path) -> dict[str, str]:
    users: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SmtpSecurityError(f"{path}: cannot read the SMTP users: {error}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, separator, stored = line.strip().partition(":")
        if not separator or not stored.startswith("pbkdf2_sha256$"):
            raise SmtpSecurityError(
                f"{path}:{number}: expected user:pbkdf2_sha256$... (see engine hash-password)"
            )
        users[user] = stored
    return users


class FileAuthenticator:
    """The users file's check, run off the event loop (``SupportSMTP`` awaits ``check``)."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users
        # As costly as the dearest stored hash: an unknown user takes as long as a known one.
        cost = max((iterations_of(stored) or 0 for stored in users.values()), default=0)
        self._dummy = hash_password(secrets.token_hex(16), iterations=cost or ITERATIONS)

    async def check(self, credentials: LoginPassword) -> bool:
        return await asyncio.to_thread(self._matches, credentials)

    def _matches(self, credentials: LoginPassword) -> bool:
        stored = self._users.get(credentials.login.decode(errors="replace"))
        matches = password_matches(credentials.password, stored or self._dummy)
        return matches and stored is not None


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise SmtpSecurityError(f"cannot load the TLS certificate {cert}: {error}") from error
    return context
