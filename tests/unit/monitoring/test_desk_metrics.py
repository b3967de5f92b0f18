"""The numbers a desk watches, kept as records arrive: open tickets, SLA at risk and in
breach, updates on time or late, time to first response and to resolution, dead letters,
consumer lag and the build's info."""

from __future__ import annotations

from datetime import timedelta

from kafka import TopicPartition
from prometheus_client import REGISTRY

from engine import metrics
from engine.api.monitoring import export_lag, group_component, topic_name
from engine.api.view import TicketView
from engine.contract import (
    Channel,
    Priority,
    SlaAlertData,
    SlaBreached,
    SlaWarning,
    TicketStatus,
    Tier,
)
from engine.kafka.deadletter import dead_letter
from engine.kafka.lag import group_lag
from tests.unit.api.api_support import T0, ticket, updated


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def alert(kind: type[SlaWarning] | type[SlaBreached], ticket_id: str, repeat: int) -> object:
    data = SlaAlertData(
        ticket_id=ticket_id, obligation="UPD-P1", instance=1, dedup_key=f"{ticket_id}:UPD-P1:1",
        deadline=T0, calendar="24x7 (UTC)", explanation="due", repeat=repeat,
    )  # fmt: skip
    return kind(event_id=f"{kind.__name__}-{ticket_id}", occurred_at=T0, source="t", data=data)


def test_open_tickets_and_sla_states_are_counted_as_records_arrive() -> None:
    view = TicketView()
    view.apply(updated(ticket("T-1", priority=Priority.P1, tier=Tier.L3)))
    view.apply(updated(ticket("T-2", priority=Priority.P1, tier=Tier.L3)))
    view.apply(updated(ticket("T-3", status=TicketStatus.WAITING_ON_CUSTOMER)))
    view.apply(alert(SlaWarning, "T-1", 0))  # type: ignore[arg-type]
    view.apply(alert(SlaBreached, "T-2", 1))  # type: ignore[arg-type]
    view.apply(updated(ticket("T-4", status=TicketStatus.RESOLVED)))
    view.export_gauges()
    assert sample("ticketing_open_tickets", tier="L3", priority="P1", status="open") == 2
    assert sample("ticketing_open_tickets", tier="L1", priority="P3",
                  status="waiting_on_customer") == 1  # fmt: skip
    assert sample("ticketing_sla_due_soon", priority="P1") == 1
    assert sample("ticketing_sla_in_breach", priority="P1") == 1

    later = T0 + timedelta(hours=1)
    resolved = ticket("T-2", priority=Priority.P1, tier=Tier.L3, status=TicketStatus.RESOLVED,
                      resolved_at=later, updated_at=later)  # fmt: skip
    view.apply(updated(resolved))
    view.export_gauges()
    assert sample("ticketing_open_tickets", tier="L3", priority="P1", status="open") == 1
    assert sample("ticketing_sla_in_breach", priority="P1") == 0


def test_live_updates_count_on_time_or_late_and_the_response_and_resolution_times() -> None:
    view = TicketView()
    first = ticket("T-9", priority=Priority.P2, channel=Channel.EMAIL)
    view.apply(updated(first))
    view.apply(alert(SlaBreached, "T-9", 1))  # type: ignore[arg-type]
    view.live = True
    labels = {"priority": "P2", "channel": "email"}
    late_before = sample("ticketing_sla_updates_total", priority="P2", outcome="late")
    responses_before = sample("ticketing_time_to_first_response_seconds_count", **labels)
    informed = first.model_copy(
        update={"informed_count": 1, "last_informed_at": T0 + timedelta(hours=3)}
    )
    view.apply(updated(informed))
    assert sample("ticketing_sla_updates_total", priority="P2", outcome="late") == late_before + 1
    assert (
        sample("ticketing_time_to_first_response_seconds_count", **labels) == responses_before + 1
    )
    on_time_before = sample("ticketing_sla_updates_total", priority="P2", outcome="on_time")
    again = informed.model_copy(
        update={"informed_count": 2, "last_informed_at": T0 + timedelta(hours=4)}
    )
    view.apply(updated(again))
    assert (
        sample("ticketing_sla_updates_total", priority="P2", outcome="on_time")
        == on_time_before + 1
    )
    resolves_before = sample("ticketing_time_to_resolve_seconds_count", **labels)
    done = again.model_copy(
        update={"status": TicketStatus.RESOLVED, "resolved_at": T0 + timedelta(hours=5)}
    )
    view.apply(updated(done))
    assert sample("ticketing_time_to_resolve_seconds_count", **labels) == resolves_before + 1


def test_the_history_read_at_start_is_not_counted_as_new() -> None:
    view = TicketView()
    before = sample("ticketing_sla_updates_total", priority="P4", outcome="on_time")
    view.apply(updated(ticket("T-5", priority=Priority.P4)))
    view.apply(updated(ticket("T-5", priority=Priority.P4, informed_count=1, last_informed_at=T0)))
    assert sample("ticketing_sla_updates_total", priority="P4", outcome="on_time") == before


def test_dead_letters_are_counted_by_the_component_that_made_them() -> None:
    labels = {"origin": "snmp", "reason": "invalid"}
    before = sample("ticketing_dead_letters_total", **labels)
    dead_letter(b"x", reason="notification could not be used: no sysUpTime", field=None,
                origin="snmp", source="snmp://0.0.0.0:1162", now=T0)  # fmt: skip
    assert sample("ticketing_dead_letters_total", **labels) == before + 1
    assert (
        metrics.dead_letter_reason("activity refused: resolved") is metrics.DeadLetterReason.REFUSED
    )
    assert metrics.dead_letter_reason("the mail's event is 2,000,000 bytes, over the limit") is (
        metrics.DeadLetterReason.TOO_LARGE
    )
    assert metrics.component_of_source("engine.notifier") is metrics.Component.NOTIFIER
    assert metrics.component_of_source("something else") is metrics.Component.OTHER


def test_consumer_lag_is_end_less_committed_per_group_and_topic() -> None:
    committed = {
        "app-notifier": {TopicPartition("p.tickets.activity.v1", 0): 5,
                         TopicPartition("p.tickets.activity.v1", 1): 7},
        "app": {TopicPartition("p.tickets.events.v1", 0): 10},
    }  # fmt: skip
    ends = {
        TopicPartition("p.tickets.activity.v1", 0): 9,
        TopicPartition("p.tickets.activity.v1", 1): 7,
        TopicPartition("p.tickets.events.v1", 0): 12,
    }
    lag = group_lag(committed, ends)
    assert lag == {("app-notifier", "p.tickets.activity.v1"): 4, ("app", "p.tickets.events.v1"): 2}
    export_lag(lag, "app")
    assert sample("ticketing_consumer_lag", group="notifier", topic="tickets.activity.v1") == 4
    assert sample("ticketing_consumer_lag", group="processor", topic="tickets.events.v1") == 2
    assert group_component("app-mail-parser", "app") is metrics.Component.MAIL_PARSER
    assert group_component("other-app", "app") is None
    assert topic_name("elsewhere") is None


def test_every_process_announces_its_build_and_rule_set() -> None:
    metrics.announce_build(metrics.configured_ruleset_version())
    version = metrics.configured_ruleset_version()
    assert version[:4].isdigit()
    assert sample("ticketing_build_info", version=metrics.engine_version(), ruleset=version) == 1


def test_tickets_nobody_has_and_the_oldest_of_each_tier() -> None:
    view = TicketView()
    view.apply(updated(ticket("T-1", tier=Tier.L2, opened_at=T0)))
    view.apply(updated(ticket("T-2", tier=Tier.L2, opened_at=T0 + timedelta(minutes=5))))
    view.apply(updated(ticket("T-3", tier=Tier.L2, assignee="ana")))
    view.export_waiting(T0 + timedelta(minutes=10))
    assert sample("ticketing_waiting_tickets", tier="L2", priority="P3") == 2
    assert sample("ticketing_oldest_waiting_seconds", tier="L2") == 600
    view.apply(updated(ticket("T-1", tier=Tier.L2, opened_at=T0, assignee="ana")))
    view.export_waiting(T0 + timedelta(minutes=10))
    assert sample("ticketing_waiting_tickets", tier="L2", priority="P3") == 1
    assert sample("ticketing_oldest_waiting_seconds", tier="L2") == 300
    assert sample("ticketing_oldest_waiting_seconds", tier="L1") == 0
