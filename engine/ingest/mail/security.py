"""STARTTLS and SMTP AUTH for the ingestor.

TLS comes from a PEM certificate and key. AUTH (PLAIN, LOGIN) checks users against a
file of ``user:pbkdf2_sha256$iterations$salt$hash`` lines (``engine hash-password``
writes one) and is offered only after STARTTLS: passwords never cross in clear.
Support mail from customers' servers needs no AUTH; it is for relays that submit mail.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from engine.errors import EngineError
from engine.passwords import password_matches


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
    """aiosmtpd authenticator over the users file."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        stored = self._users.get(auth_data.login.decode(errors="replace"))
        if stored is None or not password_matches(auth_data.password, stored):
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data.login.decode())


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise SmtpSecurityError(f"cannot load the TLS certificate {cert}: {error}") from error
    return context
