"""The ``engine`` command: one entry point for people, CI and deployments."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from engine.cli.commands import (
    cmd_agents,
    cmd_api,
    cmd_api_token,
    cmd_broker,
    cmd_classify,
    cmd_entitlements,
    cmd_escalation,
    cmd_hash_password,
    cmd_mail_parser,
    cmd_notifier,
    cmd_processor,
    cmd_rules,
    cmd_schemas,
    cmd_sla,
    cmd_smtp,
    cmd_snmp,
    cmd_tail,
    cmd_topics,
    cmd_up,
    cmd_workers,
)
from engine.errors import EngineError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine",
        description="Ticket routing engine: ingest, classify, route and time support tickets "
        "on Apache Kafka.",
    )
    parser.add_argument(
        "--config", help="TOML settings file (same names as the ENGINE_* variables, lowercase)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(handler=handler)
        sub_parser.add_argument(
            "--bootstrap-servers",
            help="an existing Kafka cluster (host:port,...); default: the local broker",
        )
        return sub_parser

    broker_parser = command(
        "broker",
        cmd_broker,
        "Fetch the jars of, start, stop or check the local Kafka broker.",
    )
    broker_parser.add_argument("action", choices=["fetch", "start", "stop", "status"])
    broker_parser.add_argument(
        "--nodes",
        type=int,
        help="nodes of the local KRaft cluster (ENGINE_BROKER_NODES; default 1); with 3 or "
        "more, the topics get replication factor 3 and min.insync.replicas 2",
    )

    topics_parser = command("topics", cmd_topics, "Create (idempotently) or list the topics.")
    topics_parser.add_argument("action", choices=["create", "list"])

    schemas_parser = command("schemas", cmd_schemas, "Write the JSON Schema of every record.")
    schemas_parser.add_argument("action", choices=["export"])
    schemas_parser.add_argument("--out", default="schemas", help="folder (default: schemas)")

    tail_parser = command("tail", cmd_tail, "Print a topic's records as JSON lines.")
    tail_parser.add_argument("topic")
    tail_parser.add_argument("-f", "--follow", action="store_true", help="wait for new records")
    tail_parser.add_argument(
        "--new-only", action="store_true", help="start at the end instead of the beginning"
    )
    tail_parser.add_argument("-n", "--max", type=int, default=None, help="stop after N records")
    tail_parser.add_argument(
        "--meta", action="store_true", help="wrap each value with its partition, offset and key"
    )
    tail_parser.add_argument(
        "--timeout", type=float, default=5.0, help="without --follow: stop after this idle time"
    )

    classify_parser = command(
        "classify",
        cmd_classify,
        "Decide JSON lines from stdin (channel, subject, body, sender; optional customer, "
        "trap, suggested_priority): one JSON decision a line, with its explanation.",
    )
    classify_parser.add_argument("--rules", help="rule set (default: ENGINE_RULES_FILE or shipped)")
    classify_parser.add_argument("--customers", help="customer directory (YAML or CSV)")

    rules_parser = command("rules", cmd_rules, "Check, test, diff or publish rule sets.")
    rules_parser.add_argument("action", choices=["check", "test", "diff", "publish"])
    rules_parser.add_argument(
        "files", nargs="*", help="check: rule files; test: case files; publish: one rule file"
    )
    rules_parser.add_argument("--rules", help="test: the rule set (default: shipped)")
    rules_parser.add_argument("--customers", help="test: customer directory")
    rules_parser.add_argument(
        "--report",
        nargs="+",
        metavar="FILE",
        help="test: measure these labelled files like a classifier (accuracy, confusion, "
        "macro F1, recall and precision) instead of listing failures",
    )
    rules_parser.add_argument("--json", action="store_true", help="test --report: one JSON line")
    rules_parser.add_argument("--old", help="diff: the rule set in force")
    rules_parser.add_argument("--new", help="diff: the candidate rule set")
    rules_parser.add_argument("--last", type=int, help="diff: the last N events of each partition")
    rules_parser.add_argument("--since", help="diff: from this time (ISO 8601, with zone)")
    rules_parser.add_argument("--until", help="diff: up to this time (ISO 8601, with zone)")

    hash_parser = sub.add_parser(
        "hash-password",
        help="Print a line for the SMTP AUTH users file (password from the terminal or stdin).",
    )
    hash_parser.add_argument("user")
    hash_parser.set_defaults(handler=cmd_hash_password)

    command("smtp", cmd_smtp, "Run the SMTP ingestor.")
    command("mail-parser", cmd_mail_parser, "Read spooled mail into ticket events.")
    command("processor", cmd_processor, "Run the triage processor (faust worker).")
    command("notifier", cmd_notifier, "Send customers their acknowledgements (SMTP relay).")
    command("snmp", cmd_snmp, "Run the SNMP trap and INFORM receiver.")
    command(
        "workers",
        cmd_workers,
        "Run the tier workers: assign routed tickets to the best qualified agent who can take "
        "them (ENGINE_AGENTS_FILE).",
    )
    agents_parser = command("agents", cmd_agents, "Check an agents directory.")
    agents_parser.add_argument("action", choices=["check"])
    agents_parser.add_argument("files", nargs="+", help="agents directories (YAML)")
    agents_parser.add_argument(
        "--rules", help="the rule set whose category skills someone must have (default: shipped)"
    )
    escalation_parser = command(
        "escalation", cmd_escalation, "Check an escalation matrix (ENGINE_ESCALATION_FILE)."
    )
    escalation_parser.add_argument("action", choices=["check"])
    escalation_parser.add_argument("files", nargs="+", help="escalation matrices (YAML)")
    sla_parser = command(
        "sla",
        cmd_sla,
        "Run the SLA worker (update obligations, warnings and breaches), or print the "
        "deadlines of a ticket's history (schedule).",
    )
    sla_parser.add_argument("action", nargs="?", choices=["run", "schedule"], default="run")
    sla_parser.add_argument("--priority", choices=["P1", "P2", "P3", "P4"], default="P2")
    sla_parser.add_argument("--plan", choices=["business_hours", "24x7"], default="business_hours")
    sla_parser.add_argument("--calendar", help="a calendar name (default: the plan's)")
    sla_parser.add_argument("--timezone", default="America/Mexico_City", help="IANA zone")
    sla_parser.add_argument("--opened-at", help="ISO 8601 with zone")
    sla_parser.add_argument(
        "--informed-at", action="append", default=[], help="ISO 8601 with zone; repeatable"
    )
    sla_parser.add_argument("--repeats", type=int, default=3, help="breach steps to show")
    entitlements_parser = command(
        "entitlements",
        cmd_entitlements,
        "Run the support-hours ledger, show a customer's balance, or top it up.",
    )
    entitlements_parser.add_argument(
        "action", nargs="?", choices=["run", "show", "topup"], default="run"
    )
    entitlements_parser.add_argument("customer", nargs="?", help="show, topup: customer id")
    entitlements_parser.add_argument("--hours", type=float, help="topup: hours bought")
    entitlements_parser.add_argument("--reference", help="topup: order or invoice (once each)")
    entitlements_parser.add_argument("--actor", default="cli", help="topup: who records it")
    command("api", cmd_api, "Run the HTTP API (chat, phone entry, activity, ticket queries).")
    token_parser = sub.add_parser(
        "api-token",
        help="Make a bearer token for an integration: the token on stderr, the line for "
        "ENGINE_API_TOKENS_FILE on stdout.",
    )
    token_parser.add_argument("integration", help="its name, e.g. chat-widget")
    token_parser.add_argument(
        "scopes",
        nargs="+",
        choices=["chat:write", "phone:write", "activity:write", "tickets:read", "presence:write"],
    )
    token_parser.add_argument(
        "--customer",
        help="the customer (an id of the customer directory) every chat message and phone "
        "call of this integration is for, e.g. for that customer's chat widget",
    )
    token_parser.set_defaults(handler=cmd_api_token)
    up_parser = command(
        "up",
        cmd_up,
        "Start the local broker (unless --bootstrap-servers), provision the topics, then run "
        "each component as its own process until Ctrl-C, restarting one that dies: smtp (the "
        "SMTP ingestor), mail-parser, api (the HTTP API), processor (triage), sla (the SLA "
        "worker), entitlements (the support-hours ledger), snmp (the SNMP receiver), and "
        "notifier when ENGINE_NOTIFY_RELAY is set, workers (the tier workers) when "
        "ENGINE_AGENTS_FILE is set.",
    )
    up_parser.add_argument(
        "--replicas",
        type=int,
        help="processes of each component that can share the work (ENGINE_REPLICAS; "
        "default 1): smtp, mail-parser, api, processor, sla, notifier, workers",
    )
    up_parser.add_argument(
        "--nodes",
        type=int,
        help="run the local broker as a KRaft cluster of this many nodes (ENGINE_BROKER_NODES)",
    )
    up_parser.add_argument(
        "--monitoring",
        action="store_true",
        help="also run a local Prometheus with deploy/monitoring/ (ENGINE_PROMETHEUS_PORT)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config:
        os.environ["ENGINE_CONFIG_FILE"] = args.config
    try:
        result: int = args.handler(args)
    except ValidationError as error:
        print(f"engine: invalid settings:\n{settings_errors(error)}", file=sys.stderr)
        return 2
    except EngineError as error:
        print(f"engine: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


def settings_errors(error: ValidationError) -> str:
    """One line per bad setting, naming it, without the values given (pydantic would show
    the whole input of a check across settings: the Kafka password among them)."""
    return "\n".join(
        f"  {'.'.join(map(str, found['loc'])) or 'settings'}: {found['msg']}"
        for found in error.errors(include_url=False, include_input=False)
    )


if __name__ == "__main__":
    sys.exit(main())
