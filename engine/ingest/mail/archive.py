"""Where whole mails (and so their attachments) are kept: a content-addressed directory.

Kafka's ticket topics carry attachment metadata only (name, type, size, SHA-256); with an
archive configured, the SMTP ingestor first writes the raw mail to
``<dir>/<aa>/<sha256>.eml`` (``aa``: the hash's first two hex digits), then spools it;
its ``email.received`` event names that hash. The file is written to a temporary name,
flushed and renamed, so a reader never sees half a mail and a resend writes nothing new.
The directory may be a mounted volume, NFS share or object-store mount; the engine only
writes to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path


def archive_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / f"{sha256}.eml"


def store_mail(root: Path, raw: bytes) -> str:
    """Keep ``raw`` under its SHA-256 (once) and return the hash."""
    digest = hashlib.sha256(raw).hexdigest()
    target = archive_path(root, digest)
    if target.exists():
        return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    with partial.open("wb") as file:
        file.write(raw)
        file.flush()
        os.fsync(file.fileno())
    partial.replace(target)
    return digest


class MailArchive:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def store(self, raw: bytes) -> str:
        """Raises OSError when the mail cannot be kept (the sender is told to retry)."""
        return await asyncio.to_thread(store_mail, self.root, raw)
