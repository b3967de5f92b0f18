"""The engine as it scales out, under faults: ``engine up --nodes 3 --replicas 2`` and
the fault campaign's short variant (``python -m bench.chaos --quick``).

The engine runs on a local three-node KRaft cluster (every topic with replication factor
3 and min.insync.replicas 2, ``engine broker status`` naming each node's partitions) with
two processes of every component that can share the work. About 60 s of load (1,500
inputs at 25/s by SMTP, SNMP INFORM and HTTP chat) meets one fault of each kind: the
leading broker killed and restarted, a triage processor and a mail parser killed, an SLA
worker stopped for 20 s, an SMTP ingestor killed in the middle of a DATA; SLA time runs
fast for a 24x7 customer, so warnings, breaches, escalation steps and their mails happen
during the run. The test fails on any acknowledged input lost or unrouted and on any
escalation step or mail made twice; SLA alerts written again on their topic (same event
id) are counted and printed, as the tier topics' repeats are. The pauses after each fault
are printed, not asserted (they are timings).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.chaos import QUICK, REPLICAS, Engine, Load, run_campaign
from bench.chaos_check import Kind, render
from engine.contract.topics import TICKET_EVENTS, declared_topics
from engine.kafka.admin import admin_client, describe
from engine.supervisor import REPLICA_PORT_STEP, REPLICATED

# The components engine up runs twice here (the notifier and the workers: configured).
TWICE = REPLICATED
# Mails sent after the campaign to show a restarted SMTP process takes mail (numbers
# apart from the load's).
PROBE_SECONDS = 60.0
PROBE_NUMBERS_FROM = 1_000_000


def three_nodes_and_two_of_each(engine: Engine) -> None:
    # the whole log: its tail (``log()``) may have moved past the start under load
    assert "up: Kafka cluster of 3 nodes started" in engine.process.log_path.read_text(
        errors="replace"
    )
    with admin_client(engine.settings.kafka_bootstrap) as client:
        found = describe(client, [spec.name for spec in declared_topics()])
    assert len(found) == len(declared_topics())
    assert {topic.replication_factor for topic in found.values()} == {3}
    assert {topic.config["min.insync.replicas"] for topic in found.values()} == {"2"}

    children = engine.process.children()
    assert {name: len(children.get(name, [])) for name in TWICE} == dict.fromkeys(
        TWICE, REPLICAS
    ), children
    assert len(children["snmp"]) == 1, "the SNMP receiver keeps an alarm's traps in order"

    status = subprocess.run(
        [sys.executable, "-m", "engine", "broker", "status", "--nodes", "3"],
        env=engine.process.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].startswith("Kafka cluster of 3 nodes")
    led = [int(line.split("leads ")[1].split()[0]) for line in lines[1:4]]
    # the engine's topics, and the processor's own (faust's) beside them
    assert sum(led) >= sum(spec.partitions for spec in declared_topics()), status.stdout
    assert min(led) > 0, status.stdout
    assert "without a leader" not in status.stdout
    assert f"{TICKET_EVENTS} [" in status.stdout


def accepted_mail_by_smtp_process(engine: Engine) -> list[float]:
    smtp_metrics = int(engine.process.env["ENGINE_SMTP_METRICS_PORT"])
    return [
        engine.process.metric(
            "ticketing_events_ingested_total",
            {"source": "email", "outcome": "accepted", "reason": ""},
            port=smtp_metrics + REPLICA_PORT_STEP * replica,
        )
        for replica in range(REPLICAS)
    ]


def both_smtp_processes_take_mail(engine: Engine) -> None:
    """The survivor took the load's mail; the one killed and restarted (its count starts
    again) takes mail on the shared port too. When the load ended before it was back, a
    few more mails show it: the kernel spreads connections over both listeners."""
    load = Load(engine)
    deadline = time.monotonic() + PROBE_SECONDS
    number = PROBE_NUMBERS_FROM
    while min(accepted := accepted_mail_by_smtp_process(engine)) == 0:
        if time.monotonic() > deadline:
            break
        load.mail(number, None)
        number += 1
        time.sleep(0.5)
    assert min(accepted) > 0, accepted


# kafka-python 3's network layer, in this process's readers, can drop a socket whose connect
# to the killed broker failed without closing it (its selector then logs "is not
# registered"): Python reports it as an unraisable ResourceWarning when it is collected.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
def test_three_nodes_two_of_each_and_nothing_acknowledged_lost_under_faults(
    tmp_path: Path,
) -> None:
    report = run_campaign(
        QUICK, tmp_path, on_ready=three_nodes_and_two_of_each,
        after_load=both_smtp_processes_take_mail,
    )  # fmt: skip
    print(render(report))
    assert report.failures == [], render(report)
    assert len(report.recoveries) == 5, "every fault was injected"
    assert all(report.acked[kind] > 0 for kind in Kind), report.acked
