"""What each ``engine`` command does: thin handlers that load settings and call the
component or tool (imported inside each, so a command loads only what it runs)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.settings import Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    """The process's settings; every Kafka client it builds from now on uses their
    security (``engine.kafka.security``)."""
    from engine.kafka.security import use_for_this_process

    settings = load_settings(
        bootstrap_servers=getattr(args, "bootstrap_servers", None),
        broker_nodes=getattr(args, "nodes", None),
        replicas=getattr(args, "replicas", None),
    )
    use_for_this_process(settings.kafka_security)
    return settings


def cmd_broker(args: argparse.Namespace) -> int:
    from engine.kafka import broker

    settings = _settings(args)
    if args.action == "fetch":
        print(f"Kafka's jars are in {broker.fetch_jars(settings)}")
    elif args.action == "start":
        print(broker.start(settings))
    elif args.action == "stop":
        print(broker.stop(settings))
    else:
        answering, message = broker.status(settings)
        print(message)
        return 0 if answering else 3
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from engine.contract.topics import declared_topics
    from engine.kafka.admin import TopicAction, list_topics, provision

    settings = _settings(args)
    specs = declared_topics(settings.partitions, settings.topic_replication_factor)
    if args.action == "create":
        outcomes = provision(settings.kafka_bootstrap, specs)
        for outcome in outcomes:
            detail = f": {outcome.detail}" if outcome.detail else ""
            print(f"{outcome.action.value:9}  {outcome.name}{detail}")
        created = sum(outcome.action is TopicAction.CREATED for outcome in outcomes)
        differing = sum(outcome.action is TopicAction.DIFFERS for outcome in outcomes)
        if created == 0 and differing == 0:
            print(f"Nothing to change: all {len(outcomes)} topics exist as declared.")
        else:
            print(f"{created} created, {differing} differ from the declaration.")
        return 1 if differing else 0
    found = list_topics(settings.kafka_bootstrap, specs)
    print(f"{'topic':40} {'parts':>5} {'rf':>3}  {'cleanup':8} {'retention':>10}  purpose")
    for spec in specs:
        described = found.get(spec.name)
        if described is None:
            print(f"{spec.name:40} {'-':>5} {'-':>3}  {'missing':8} {'':>10}  {spec.purpose}")
            continue
        retention = described.config.get("retention.ms")
        days = f"{int(retention) / 86_400_000:g}d" if retention else "forever"
        cleanup = described.config.get("cleanup.policy", "delete")
        print(
            f"{spec.name:40} {described.partitions:>5} {described.replication_factor:>3}  "
            f"{cleanup:8} {days:>10}  {spec.purpose}"
        )
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from engine.contract.schema_export import export_schemas

    for path in export_schemas(Path(args.out)):
        print(path)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from engine.kafka.tail import tail

    settings = _settings(args)
    return tail(
        settings.kafka_bootstrap,
        args.topic,
        follow=args.follow,
        from_beginning=not args.new_only,
        limit=args.max,
        timeout_seconds=args.timeout,
        with_meta=args.meta,
    )


def _rules_and_directory(args: argparse.Namespace) -> tuple[Any, Any]:
    from engine.contract.customers import load_directory
    from engine.rules.ruleset import load_ruleset

    settings = _settings(args)
    rules_path = Path(args.rules) if getattr(args, "rules", None) else settings.rules_file
    customers = Path(args.customers) if getattr(args, "customers", None) else None
    return load_ruleset(rules_path), load_directory(customers or settings.customers_file)


def cmd_classify(args: argparse.Namespace) -> int:
    from engine.cli.rules import classify_lines

    ruleset, directory = _rules_and_directory(args)
    return classify_lines(sys.stdin, ruleset, directory)


def cmd_rules(args: argparse.Namespace) -> int:
    from engine.cli import rules as commands

    if args.action == "check":
        return commands.check([Path(p) for p in args.files])
    if args.action == "test":
        ruleset, directory = _rules_and_directory(args)
        if args.report:
            return max(
                commands.test_report(Path(p), ruleset, directory, as_data=args.json)
                for p in args.report
            )
        return max(commands.test(Path(p), ruleset, directory) for p in args.files)
    if args.action == "publish":
        from engine.clock import SystemClock
        from engine.triage.rules_feed import publish

        (path,) = args.files
        ruleset = publish(_settings(args).kafka_bootstrap, Path(path), SystemClock().now())
        print(f"published {ruleset.fingerprint} ({len(ruleset.rules)} rules) from {path}")
        return 0
    from engine.contract.customers import load_directory
    from engine.rules.ruleset import load_ruleset

    if not (args.old and args.new):
        raise EngineError("rules diff needs --old FILE and --new FILE")
    settings = _settings(args)
    events = commands.recorded_events(
        settings.kafka_bootstrap,
        last=args.last,
        since=_time(args.since),
        until=_time(args.until),
    )
    directory = load_directory(settings.customers_file)
    return commands.diff(
        load_ruleset(Path(args.old)), load_ruleset(Path(args.new)), events, directory
    )


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise EngineError(f"{value!r}: give a time zone, e.g. 2026-11-20T00:00:00+00:00")
    return parsed


def cmd_hash_password(args: argparse.Namespace) -> int:
    import getpass

    from engine.passwords import hash_password

    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline()
    print(f"{args.user}:{hash_password(password.rstrip(chr(10)))}")
    return 0


def cmd_smtp(args: argparse.Namespace) -> int:
    from engine.ingest.mail.service import run_smtp_ingestor

    run_smtp_ingestor(_settings(args))
    return 0


def cmd_mail_parser(args: argparse.Namespace) -> int:
    from engine.ingest.mail.parser_service import run_mail_parser

    run_mail_parser(_settings(args))
    return 0


def cmd_processor(args: argparse.Namespace) -> int:
    from engine.triage.processor import run_processor

    run_processor(_settings(args))
    return 0


def cmd_notifier(args: argparse.Namespace) -> int:
    from engine.notify.notifier import run_notifier

    settings = _settings(args)
    if not settings.notify_relay:
        raise EngineError("the notifier needs ENGINE_NOTIFY_RELAY (host:port of an SMTP relay)")
    run_notifier(settings)
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    from engine.workers.service import run_tier_workers

    run_tier_workers(_settings(args))
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    from engine.contract import Tier
    from engine.rules.ruleset import load_ruleset
    from engine.sla.calendars import load_calendars
    from engine.workers.agents import asked_skills, load_agents

    settings = _settings(args)
    asked = asked_skills(load_ruleset(Path(args.rules) if args.rules else settings.rules_file))
    calendars = load_calendars(settings.sla_calendars_file)
    for name in args.files:
        directory = load_agents(Path(name), calendars, asked)
        tiers = {tier: sum(tier in a.tiers for a in directory.agents.values()) for tier in Tier}
        staffed = ", ".join(f"{tier} {n}" for tier, n in tiers.items())
        print(f"ok {name}: {len(directory)} agents ({staffed}), {len(directory.skills)} skills")
    return 0


def cmd_escalation(args: argparse.Namespace) -> int:
    from engine.contract import Priority
    from engine.workers.escalation import load_escalation

    for name in args.files:
        policy = load_escalation(Path(name))
        accept = ", ".join(f"{p} {policy.acceptance[p].text}" for p in Priority)
        print(f"ok {name}: accept within {accept}; manager told: {policy.names_managers}")
    return 0


def cmd_snmp(args: argparse.Namespace) -> int:
    from engine.ingest.snmp.service import run_snmp_receiver

    run_snmp_receiver(_settings(args))
    return 0


def cmd_sla(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.action == "run":
        from engine.sla.worker import run_sla_worker

        run_sla_worker(settings)
        return 0
    from datetime import timedelta

    from engine.contract import Priority, SlaFacts, SupportPlan, TicketStatus
    from engine.sla.calendars import load_calendars
    from engine.sla.obligations import SlaPolicy
    from engine.sla.schedule import schedule_lines

    opened_at = _time(args.opened_at)
    if opened_at is None:
        raise EngineError("sla schedule needs --opened-at (ISO 8601, with zone)")
    facts = SlaFacts(
        ticket_id="T-SCHEDULE",
        priority=Priority(args.priority),
        status=TicketStatus.OPEN,
        opened_at=opened_at,
        plan=SupportPlan(args.plan),
        timezone=args.timezone,
        calendar=args.calendar,
    )
    calendars = load_calendars(settings.sla_calendars_file)
    calendar = calendars.for_plan(facts.plan, facts.calendar).in_zone(facts.timezone)
    policy = SlaPolicy(
        warning_lead=timedelta(minutes=settings.sla_warning_lead_minutes),
        pause_while_waiting=settings.sla_pause_while_waiting,
    )
    informed = [moment for moment in map(_time, args.informed_at) if moment is not None]
    for line in schedule_lines(facts, calendar, informed, policy, args.repeats):
        print(line)
    return 0


def cmd_entitlements(args: argparse.Namespace) -> int:
    from engine.clock import SystemClock
    from engine.entitlements import worker

    settings = _settings(args)
    if args.action == "run":
        worker.run_ledger(settings)
        return 0
    if not args.customer:
        raise EngineError(f"entitlements {args.action} needs a CUSTOMER id")
    if args.action == "topup":
        if args.hours is None or args.hours <= 0 or not args.reference:
            raise EngineError("entitlements topup needs --hours (more than 0) and --reference")
        record = worker.top_up(
            settings.kafka_bootstrap, args.customer, args.hours, args.reference,
            args.actor, SystemClock().now(),
        )  # fmt: skip
        print(f"topped up {args.customer} with {args.hours:g} h ({record.event_id})")
        return 0
    balances = worker.read_balances(settings.kafka_bootstrap, SystemClock())
    balance = balances.by_customer.get(args.customer)
    if balance is None:
        print(f"{args.customer}: no balance (support not metered, or the ledger has not run)")
        return 1
    print(worker.describe_balance(balance))
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from engine.api.service import run_api

    run_api(_settings(args))
    return 0


def cmd_api_token(args: argparse.Namespace) -> int:
    from engine.api.security import Scope, new_token

    scopes = [Scope(scope) for scope in args.scopes]
    token, line = new_token(args.integration, scopes, args.customer)
    print(f"token (give it to the integration; it is not stored): {token}", file=sys.stderr)
    print(line)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from engine.supervisor import run_up

    settings = _settings(args)
    if args.monitoring:
        settings = settings.model_copy(update={"monitoring": True})
    return run_up(settings)
