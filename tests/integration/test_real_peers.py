"""The tools a user reaches for: swaks sends the mail, kcat reads the routed ticket."""

from __future__ import annotations

import json
import subprocess
import uuid

from engine.contract import Tier
from engine.contract.topics import TIER_TOPICS, named
from tests.integration.harness import EngineProcess, TopicReader


def test_swaks_mail_is_routed_and_kcat_reads_it_as_plain_json(
    engine: EngineProcess, kafka: str, topic_prefix: str
) -> None:
    message_id = f"<{uuid.uuid4()}@acme.example>"
    swaks = subprocess.run(
        [
            "swaks", "--server", f"127.0.0.1:{engine.smtp_port}",
            "--from", "cliente@acme.example", "--to", "soporte@support.example.com",
            "--header", "Subject: Urgente: sistema caído",
            "--header", f"Message-Id: {message_id}",
            "--body", "El sistema está caído, no hay llamadas en toda la oficina.",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert swaks.returncode == 0, swaks.stdout + swaks.stderr
    accepted = next(line for line in swaks.stdout.splitlines() if line.startswith("<-  250 2.0.0"))
    ticket = accepted.rsplit(" ", 1)[-1]
    reader = TopicReader(kafka, named(TIER_TOPICS[Tier.L3], topic_prefix))
    reader.wait_for(lambda key, value: key == ticket)
    reader.close()

    l3 = named(TIER_TOPICS[Tier.L3], topic_prefix)
    kcat = subprocess.run(
        ["kcat", "-C", "-b", kafka, "-t", l3, "-e", "-q", "-f", "%k\t%s\n"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert kcat.returncode == 0, kcat.stderr
    records = dict(line.split("\t", 1) for line in kcat.stdout.splitlines() if "\t" in line)
    routed = json.loads(records[ticket])
    assert routed["kind"] == "ticket.routed"
    assert routed["data"]["ticket"]["priority"] == "P1"
