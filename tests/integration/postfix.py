"""A real Postfix (Debian's ``postfix``) in front of the engine, as a support centre runs it:
its own configuration, queue and log in one folder, loopback ports only, relaying the
support domain to the engine's SMTP port with XFORWARD (docs/postfix.md)."""

from __future__ import annotations

import json
import shutil
import smtplib
import subprocess
import tempfile
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.integration.harness import free_port, port_open, wait_until

POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = relay.test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# The engine serves the support domain: relay it there, and say who each client was.
relay_domains = {domain}
transport_maps = inline:{{ {domain}=smtp:[127.0.0.1]:{engine_port} }}
smtp_send_xforward_command = yes
smtp_bind_address = 127.0.0.1
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclass
class Postfix:
    """One Postfix instance: ``start``, submit mail as a client at some loopback address,
    read its queue (``postqueue -j``), flush it, ``stop``."""

    engine_port: int
    domain: str = "support.example.com"
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="engine-postfix-")))

    @property
    def config(self) -> Path:
        return self.root / "conf"

    def start(self) -> None:
        for tool in (POSTFIX, POSTQUEUE):
            if not Path(tool).exists():
                raise AssertionError(f"{tool} is missing: `make bootstrap` installs postfix")
        # Postfix's daemons run as the postfix user: they must reach the folders.
        self.root.chmod(0o755)
        self.config.mkdir()
        (self.root / "queue").mkdir()
        (self.root / "data").mkdir()
        shutil.chown(self.root / "data", user="postfix")
        values = {"root": self.root, "domain": self.domain, "engine_port": self.engine_port}
        (self.config / "main.cf").write_text(MAIN_CF.format(**values))
        (self.config / "master.cf").write_text(MASTER_CF.format(port=self.port))
        self._postfix("check")  # creates the queue's folders with their owners
        self._postfix("start")
        wait_until(lambda: port_open(self.port), 30, f"Postfix to listen on {self.port}", self.log)

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.config), "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def submit(self, message: EmailMessage, client_address: str) -> tuple[int, bytes]:
        """Send ``message`` to Postfix over SMTP from ``client_address`` (127.0.0.0/8)."""
        with smtplib.SMTP(
            "127.0.0.1", self.port, timeout=30, source_address=(client_address, 0)
        ) as client:
            client.ehlo(f"client-{client_address}.test")
            client.mail(str(message["From"]).split("<")[-1].rstrip(">"))
            code, text = client.rcpt(str(message["To"]))
            assert code == 250, (code, text)
            return client.data(message.as_bytes(policy=policy.SMTP))

    def queue(self) -> list[dict[str, Any]]:
        """The mails Postfix still holds, as ``postqueue -j`` lists them."""
        listed = subprocess.run(
            [POSTQUEUE, "-c", str(self.config), "-j"], capture_output=True, text=True, check=True
        )
        return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]

    def deferred(self, sender: str, reason: str) -> list[dict[str, Any]]:
        """The mails of ``sender`` Postfix holds with ``reason`` in a recipient's delay."""
        return [
            mail
            for mail in self.queue()
            if mail["sender"] == sender
            and any(reason in r.get("delay_reason", "") for r in mail["recipients"])
        ]

    def flush(self) -> None:
        subprocess.run([POSTQUEUE, "-c", str(self.config), "-f"], capture_output=True, check=True)

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def _postfix(self, command: str) -> None:
        done = subprocess.run(
            [POSTFIX, "-c", str(self.config), command], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise AssertionError(
                f"postfix {command} exited with {done.returncode}: {done.stderr}\n{self.log()}"
            )
