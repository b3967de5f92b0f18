"""STARTTLS and AUTH through a real aiosmtpd server and smtplib on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import smtplib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.clock import SystemClock
from engine.ingest.mail.security import (
    FileAuthenticator,
    SmtpSecurityError,
    load_users,
    tls_context,
)
from engine.ingest.mail.smtp import SupportMailHandler, serve_smtp
from engine.passwords import hash_password, password_matches
from engine.settings import Settings
from tests.unit.ingest.mail.test_smtp_handler import MAIL, RecordingPublisher


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    return context


def with_secure_server(
    certificate: tuple[Path, Path], client: Callable[[int], Any], require_tls: bool = False
) -> Any:
    publisher = RecordingPublisher()
    users = {"relay": hash_password("s3cret", iterations=1000)}

    async def main() -> Any:
        handler = SupportMailHandler(
            publisher, ["support.example.com"], SystemClock(), "smtp://test"
        )
        server = await serve_smtp(
            handler, "127.0.0.1", 0, 64 * 1024,
            tls=tls_context(*certificate), require_tls=require_tls,
            authenticator=FileAuthenticator(users),
        )  # fmt: skip
        try:
            return await asyncio.to_thread(client, server.sockets[0].getsockname()[1])
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def test_auth_is_offered_only_after_starttls_and_checks_the_password(
    certificate: tuple[Path, Path],
) -> None:
    def client(port: int) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            seen["auth_before_tls"] = smtp.has_extn("auth")
            smtp.starttls(context=client_tls())
            smtp.ehlo()
            seen["auth_after_tls"] = smtp.has_extn("auth")
            try:
                smtp.login("relay", "wrong")
            except smtplib.SMTPAuthenticationError as error:
                seen["wrong_password"] = error.smtp_code
            seen["login"] = smtp.login("relay", "s3cret")[0]
            seen["mail"] = smtp.sendmail("c@acme.example", ["soporte@support.example.com"], MAIL)
        return seen

    seen = with_secure_server(certificate, client)

    assert seen["auth_before_tls"] is False
    assert seen["auth_after_tls"] is True
    assert seen["wrong_password"] == 535
    assert seen["login"] == 235
    assert seen["mail"] == {}


def test_required_tls_refuses_mail_in_clear(certificate: tuple[Path, Path]) -> None:
    def client(port: int) -> int:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            code, _ = smtp.mail("c@acme.example")
            return code

    assert with_secure_server(certificate, client, require_tls=True) == 530


def test_passwords_are_stored_hashed_and_bad_files_are_refused(tmp_path: Path) -> None:
    stored = hash_password("s3cret", iterations=1000)
    assert "s3cret" not in stored
    assert password_matches(b"s3cret", stored)
    assert not password_matches(b"other", stored)

    users = tmp_path / "users"
    users.write_text(f"# relays\nrelay:{stored}\nbroken line\n", encoding="utf-8")
    with pytest.raises(SmtpSecurityError, match=r"users:3: expected user:pbkdf2_sha256"):
        load_users(users)


def test_tls_settings_must_come_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        Settings(smtp_tls_cert=tmp_path / "cert.pem")
    with pytest.raises(ValueError, match="need smtp_tls_cert"):
        Settings(smtp_require_tls=True)


def test_engine_hash_password_prints_a_users_file_line() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "engine", "hash-password", "relay"],
        input="s3cret\n", capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip

    user, _, stored = result.stdout.strip().partition(":")
    assert user == "relay"
    assert password_matches(b"s3cret", stored)
