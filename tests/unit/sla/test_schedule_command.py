"""``engine sla schedule``: deadlines of a ticket's history, from next_update_due."""

from __future__ import annotations

import pytest

from engine.cli.main import main


def test_the_schedule_judges_each_update_and_shows_what_follows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "sla", "schedule", "--priority", "P1", "--plan", "business_hours",
            "--timezone", "Europe/Madrid", "--opened-at", "2026-10-23T16:00+02:00",
            "--informed-at", "2026-10-23T17:30+02:00", "--informed-at", "2026-10-26T12:00+01:00",
        ]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    # Friday 16:00 CEST: two open hours end at Friday's close, 18:00.
    assert "due Fri 2026-10-23 18:00 CEST (2026-10-23T16:00Z)" in lines[0]
    assert lines[1] == "  informed Fri 2026-10-23 17:30 CEST: on time"
    # From 17:30: half an hour on Friday, 1.5 h from Monday 09:00 CET (after the DST change).
    assert "armed by customer informed (update 1)" in lines[2]
    assert "due Mon 2026-10-26 10:30 CET (2026-10-26T09:30Z)" in lines[2]
    assert lines[3] == "  informed Mon 2026-10-26 12:00 CET: LATE by 1:30:00"
    assert "UPD-P1 #3" in lines[4]
    assert lines[5] == "  warning Mon 2026-10-26 13:30 CET (0:30:00 before)"
    assert lines[6:] == [
        "  breach Mon 2026-10-26 14:00 CET if still not informed",
        "  breach repeat 2 Mon 2026-10-26 16:00 CET if still not informed",
        "  breach repeat 3 Mon 2026-10-26 18:00 CET if still not informed",
    ]


def test_a_time_without_zone_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sla", "schedule", "--opened-at", "2026-10-23T16:00"]) == 1
    assert "give a time zone" in capsys.readouterr().err
