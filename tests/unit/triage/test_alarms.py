"""Alarm identity, storm collapse, clearing and flapping: pure functions, tables of inputs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.contract import AlarmState, AlarmTransition, TrapFacts, Varbind
from engine.contract.alarm_identity import identify
from engine.triage.alarms import DEFAULT_FLAP_POLICY, FlapPolicy, update
from tests.unit.ingest.snmp.trap_samples import T0

R, C, E = AlarmTransition.RAISED, AlarmTransition.CLEARED, AlarmTransition.EVENT


def trap(name: str, *varbinds: tuple[str, str | int, str | None]) -> TrapFacts:
    return TrapFacts(
        oid="1.2.3",
        name=name,
        varbinds=tuple(
            Varbind(oid="1.2.3.4", name=vname, value=value, label=label)
            for vname, value, label in varbinds
        ),
    )


@pytest.mark.parametrize(
    ("facts", "key", "transition"),
    [
        (trap("IF-MIB::linkDown", ("IF-MIB::ifIndex", 3, None)), "pbx|IF-MIB::link|3", R),
        (trap("IF-MIB::linkUp", ("IF-MIB::ifIndex", 3, None)), "pbx|IF-MIB::link|3", C),
        (trap("IF-MIB::linkDown", ("IF-MIB::ifIndex", 4, None)), "pbx|IF-MIB::link|4", R),
        (
            trap("UPS-MIB::upsTrapOnBattery"),
            "pbx|UPS-MIB::upsAlarm|UPS-MIB::upsAlarmOnBattery",
            R,
        ),
        (
            trap(
                "UPS-MIB::upsTrapAlarmEntryRemoved",
                ("UPS-MIB::upsAlarmId", 7, None),
                ("UPS-MIB::upsAlarmDescr", "1.3.6.1.2.1.33.1.6.3.2", "UPS-MIB::upsAlarmOnBattery"),
            ),
            "pbx|UPS-MIB::upsAlarm|UPS-MIB::upsAlarmOnBattery",
            C,
        ),
        (trap("SNMPv2-MIB::coldStart"), "pbx|SNMPv2-MIB::restart|", E),
        (trap("SNMPv2-MIB::warmStart"), "pbx|SNMPv2-MIB::restart|", E),
        (trap("ACME-MIB::fanFailed"), "pbx|ACME-MIB::fanFailed|", E),
    ],
)
def test_identity_is_device_family_and_affected_object(
    facts: TrapFacts, key: str, transition: AlarmTransition
) -> None:
    found = identify(facts, "pbx")

    assert (found.key, found.transition) == (key, transition)


def test_raise_and_clear_of_one_alarm_share_a_ticket_and_devices_do_not() -> None:
    down = identify(trap("IF-MIB::linkDown", ("IF-MIB::ifIndex", 3, None)), "pbx")
    up = identify(trap("IF-MIB::linkUp", ("IF-MIB::ifIndex", 3, None)), "pbx")
    other = identify(trap("IF-MIB::linkDown", ("IF-MIB::ifIndex", 3, None)), "gw")

    assert down.ticket_id == up.ticket_id != other.ticket_id
    assert down.ticket_id.startswith("T-")


def run(
    transitions: list[tuple[AlarmTransition, int]], policy: FlapPolicy = DEFAULT_FLAP_POLICY
) -> tuple[AlarmState, list[bool]]:
    state: AlarmState | None = None
    reopened = []
    for transition, seconds in transitions:
        result = update(state, "k", transition, T0 + timedelta(seconds=seconds), policy)
        state = result.state
        reopened.append(result.reopened)
    assert state is not None
    return state, reopened


def test_a_storm_collapses_into_occurrences_with_first_and_last_seen() -> None:
    state, reopened = run([(R, second) for second in range(200)])

    assert state.occurrences == 200
    assert (state.first_seen, state.last_seen) == (T0, T0 + timedelta(seconds=199))
    assert not state.cleared and not state.flapping and not any(reopened)


def test_a_clearing_notification_clears_and_a_new_raise_reopens() -> None:
    state, reopened = run([(R, 0), (R, 1), (C, 60)])
    assert state.cleared and state.cleared_at == T0 + timedelta(seconds=60)
    assert state.occurrences == 3

    state, reopened = run([(R, 0), (C, 60), (R, 3600)])
    assert not state.cleared and state.cleared_at is None
    assert reopened == [False, False, True]


@pytest.mark.parametrize(
    ("seconds", "flapping"),
    [
        ([0, 10, 20, 30, 40, 50, 60], True),  # 6 transitions in a minute
        ([0, 10, 20, 30, 40], False),  # 4 transitions
        ([0, 200, 400, 600, 800, 1000, 1200], False),  # 6, but spread over 20 minutes
    ],
)
def test_flapping_is_many_transitions_within_the_window(seconds: list[int], flapping: bool) -> None:
    steps = [(R if index % 2 == 0 else C, s) for index, s in enumerate(seconds)]
    state, reopened = run(steps, FlapPolicy(transitions=6, window=timedelta(minutes=10)))

    assert state.flapping is flapping
    if flapping:
        assert reopened[-1] is False  # flagged, not reopened


def test_a_repeated_clear_is_not_a_transition() -> None:
    state, _ = run([(R, 0), (C, 1), (C, 2), (C, 3)])

    assert state.cleared and state.cleared_at == T0 + timedelta(seconds=1)
    assert len(state.transitions) == 1


def test_a_clear_before_any_raise_opens_a_cleared_alarm() -> None:
    state, _ = run([(C, 0)])

    assert state.cleared and state.occurrences == 1


def test_events_count_but_never_clear() -> None:
    state, _ = run([(E, 0), (E, 5)])

    assert state.occurrences == 2 and not state.cleared and state.transitions == ()


def fold_runs(steps: list[tuple[AlarmTransition, int]]) -> list[list[tuple[AlarmTransition, int]]]:
    """Consecutive steps of one transition, as the receiver folds them."""
    runs: list[list[tuple[AlarmTransition, int]]] = []
    for step in steps:
        if runs and runs[-1][-1][0] is step[0]:
            runs[-1].append(step)
        else:
            runs.append([step])
    return runs


@pytest.mark.parametrize(
    "steps",
    [
        [(R, s) for s in range(200)],
        [(R, 0), (R, 1), (C, 60), (C, 61), (R, 3600), (R, 3601), (R, 3602)],
        [(R if s % 20 < 10 else C, s) for s in range(0, 120)],  # flaps, in runs of ten
        [(C, 0), (C, 3), (E, 5), (E, 6)],
    ],
)
def test_folded_runs_leave_the_alarm_as_one_by_one_does(
    steps: list[tuple[AlarmTransition, int]],
) -> None:
    one_by_one, _ = run(steps)
    folded: AlarmState | None = None
    for folded_run in fold_runs(steps):
        (transition, first), (_, last) = folded_run[0], folded_run[-1]
        folded = update(
            folded,
            "k",
            transition,
            T0 + timedelta(seconds=last),
            occurrences=len(folded_run),
            first_at=T0 + timedelta(seconds=first),
        ).state

    assert folded == one_by_one
