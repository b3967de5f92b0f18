"""STARTTLS and AUTH through a real aiosmtpd server and smtplib on loopback."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import smtplib
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

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


RELAY_HASH = hash_password("s3cret", iterations=1000)


def with_secure_server(
    certificate: tuple[Path, Path],
    client: Callable[[int], Any],
    require_tls: bool = False,
    loop_thread: list[threading.Thread] | None = None,
) -> Any:
    publisher = RecordingPublisher()
    users = {"relay": RELAY_HASH}

    async def main() -> Any:
        if loop_thread is not None:
            loop_thread.append(threading.current_thread())
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


def plain(login: str, password: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{login}\0{password}".encode()).decode()


def auth_attempts(*credentials: tuple[str, str]) -> Callable[[int], list[int]]:
    """Each AUTH PLAIN's reply code on one connection, then -1 if the server hung up."""

    def client(port: int) -> list[int]:
        codes = []
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            smtp.starttls(context=client_tls())
            smtp.ehlo()
            for login, password in credentials:
                codes.append(smtp.docmd("AUTH", plain(login, password))[0])
            try:
                smtp.noop()
            except smtplib.SMTPServerDisconnected:
                codes.append(-1)
        return codes

    return client


def test_the_password_check_runs_in_a_thread_not_on_the_event_loop(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked_in: list[threading.Thread] = []

    def recording(password: bytes, stored: str) -> bool:
        checked_in.append(threading.current_thread())
        return password_matches(password, stored)

    monkeypatch.setattr("engine.ingest.mail.security.password_matches", recording)
    loop_thread: list[threading.Thread] = []

    codes = with_secure_server(
        certificate, auth_attempts(("relay", "wrong"), ("relay", "s3cret")),
        loop_thread=loop_thread,
    )  # fmt: skip

    assert codes == [535, 235]
    assert len(checked_in) == 2
    assert loop_thread and all(thread is not loop_thread[0] for thread in checked_in)


def test_an_unknown_user_costs_a_hash_check_like_a_known_one(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []

    def recording(password: bytes, stored: str) -> bool:
        checked.append(stored)
        return password_matches(password, stored)

    monkeypatch.setattr("engine.ingest.mail.security.password_matches", recording)

    codes = with_secure_server(certificate, auth_attempts(("nobody", "s3cret")))

    assert codes == [535]
    (dummy,) = checked
    assert dummy != RELAY_HASH
    assert dummy.split("$")[:2] == RELAY_HASH.split("$")[:2]  # same scheme, same cost


def test_the_third_failed_auth_on_a_connection_is_421_and_closes_it(
    certificate: tuple[Path, Path],
) -> None:
    labels = {"source": "email", "outcome": "rejected", "reason": "auth_failed"}

    def closed() -> float:
        return REGISTRY.get_sample_value("ticketing_events_ingested_total", labels) or 0.0

    before = closed()

    codes = with_secure_server(
        certificate, auth_attempts(("relay", "a"), ("nobody", "b"), ("relay", "c"))
    )

    assert codes == [535, 535, 421, -1]
    assert closed() == before + 1


def test_two_failures_then_the_right_password_still_signs_in(
    certificate: tuple[Path, Path],
) -> None:
    codes = with_secure_server(
        certificate, auth_attempts(("relay", "a"), ("relay", "b"), ("relay", "s3cret"))
    )

    assert codes == [535, 535, 235]


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
