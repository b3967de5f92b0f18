"""The fault campaign's short variant: ``bench/chaos.py --quick`` as a test.

About 60 s of load (1,500 inputs at 25/s by SMTP, SNMP INFORM and HTTP chat) against
``engine up --nodes 3 --replicas 2``, with one fault of each kind: the leading broker
killed and restarted, a triage processor and a mail parser killed, an SLA worker stopped
for 20 s, an SMTP ingestor killed in the middle of a DATA. It fails on any acknowledged
input lost and on any SLA alert, escalation step or customer mail made twice; the pauses
after each fault are printed, not asserted (they are timings).
"""

from __future__ import annotations

from pathlib import Path

from bench.chaos import QUICK, run_campaign
from bench.chaos_check import Kind, render


def test_nothing_acknowledged_is_lost_and_no_effect_happens_twice_under_faults(
    tmp_path: Path,
) -> None:
    report = run_campaign(QUICK, tmp_path)
    print(render(report))
    assert report.failures == [], render(report)
    assert len(report.recoveries) == 5, "every fault was injected"
    assert all(report.acked[kind] > 0 for kind in Kind), report.acked
