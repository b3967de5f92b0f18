"""Password hashes for the SMTP relays' users and the API's tokens: PBKDF2-SHA256 with a
random salt, stored as ``pbkdf2_sha256$iterations$salt$hash``."""

from __future__ import annotations

import hashlib
import hmac
import os

ITERATIONS = 310_000


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def iterations_of(stored: str) -> int | None:
    """The PBKDF2 iteration count of a stored hash; None when it is not one."""
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != "pbkdf2_sha256" or not parts[1].isdigit():
        return None
    return int(parts[1])


def password_matches(password: bytes, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    found = hashlib.pbkdf2_hmac("sha256", password, bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(found.hex(), digest)
