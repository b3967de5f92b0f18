"""One log setup serves every process, and it honours ENGINE_LOG_LEVEL."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator

import pytest

from engine import process
from engine.settings import Settings

# Each process the CLI (and ``engine up``) starts: its module and entry function.
PROCESS_ENTRIES = [
    ("engine.ingest.mail.service", "run_smtp_ingestor"),
    ("engine.ingest.snmp.service", "run_snmp_receiver"),
    ("engine.ingest.mail.parser_service", "run_mail_parser"),
    ("engine.triage.processor", "run_processor"),
    ("engine.sla.worker", "run_sla_worker"),
    ("engine.entitlements.worker", "run_ledger"),
    ("engine.notify.notifier", "run_notifier"),
    ("engine.api.service", "run_api"),
    ("engine.supervisor", "run_up"),
]


class _Configured(Exception):
    """Stops a process entry right after its log setup, before it touches the network."""


@pytest.fixture(autouse=True)
def root_logger_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("setting", "level"),
    [("DEBUG", logging.DEBUG), ("INFO", logging.INFO), ("WARN", logging.WARNING),
     ("ERROR", logging.ERROR)],
)  # fmt: skip
def test_the_log_setup_honours_engine_log_level(
    monkeypatch: pytest.MonkeyPatch, setting: str, level: int
) -> None:
    monkeypatch.setenv("ENGINE_LOG_LEVEL", setting)
    logging.getLogger().addHandler(logging.NullHandler())  # as if an import had set one up

    process.configure_logging(Settings())

    root = logging.getLogger()
    assert root.level == level
    assert len(root.handlers) == 1
    assert root.handlers[0].formatter is not None
    assert root.handlers[0].formatter._fmt == process.LOG_FORMAT


@pytest.mark.parametrize(("module_name", "entry"), PROCESS_ENTRIES)
def test_every_process_starts_with_the_one_log_setup(
    monkeypatch: pytest.MonkeyPatch, module_name: str, entry: str
) -> None:
    monkeypatch.setenv("ENGINE_LOG_LEVEL", "DEBUG")
    module = importlib.import_module(module_name)
    seen: list[Settings] = []

    def configure_then_stop(settings: Settings) -> None:
        process.configure_logging(settings)
        seen.append(settings)
        raise _Configured

    monkeypatch.setattr(module, "configure_logging", configure_then_stop)
    run: Callable[[Settings], object] = getattr(module, entry)
    settings = Settings()
    with pytest.raises(_Configured):
        run(settings)

    assert seen == [settings]
    assert logging.getLogger().level == logging.DEBUG


def test_a_repeated_line_is_said_once_per_window_with_how_many_were_held() -> None:
    now = [0.0]
    quieter = process.RepeatQuieter(window_seconds=10.0, clock=lambda: now[0])

    def record(group: str) -> logging.LogRecord:
        return logging.LogRecord(
            "kafka.coordinator", logging.WARNING, __file__, 1,
            "Marking the coordinator dead (node %s) for group %s", ("1", group), None,
        )  # fmt: skip

    passed = []
    for step in range(300):  # 30 s of a line every 0.1 s
        now[0] = step / 10
        line = record("parser")
        if quieter.filter(line):
            passed.append((now[0], line.getMessage()))
    assert [at for at, _ in passed] == [0.0, 10.0, 20.0]
    assert passed[0][1].endswith("group parser")
    assert passed[1][1].endswith("[99 more like this in the last 10s]")
    assert quieter.filter(record("notifier")), "another group's line is its own kind"
