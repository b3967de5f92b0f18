"""``make fuzz``: each target fuzzed for a bounded time, one after the other, and what each
run saw: inputs tried, crashes (the exception and the saved reproducer) and the slowest
input.

    python -m tests.fuzz.runner [--inputs N] [--seconds N] [TARGET ...]

Each target runs until it has tried ``--inputs`` inputs, or for ``--seconds`` at most.
Exits 1 when a target crashed or an input took over ``SLOW_SECONDS``. The slowest input
is timed again here, without the fuzzer's instrumentation, and that time is the one
judged; one over the limit is kept beside the crashes (``slow-<sha1>``), so the unit tests
replay it too. ``make test`` runs a short run of each target (``test_short_run.py``), which fails
only on a crash.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.child import CRASHING, REGRESSIONS
from tests.fuzz.targets import NAMES, target

ROOT = Path(__file__).resolve().parents[2]
SLOW_SECONDS = 1.0
STARTUP_SECONDS = 300  # instrumenting the imports, loading the seeds
_EXECUTED = re.compile(r"^stat::number_of_executed_units:\s*(\d+)", re.MULTILINE)
_PROGRESS = re.compile(r"^#(\d+)\s", re.MULTILINE)
_WRITTEN = re.compile(r"Test unit written to (\S+)")
_PYTHON_ERROR = re.compile(r"=== Uncaught Python exception: ===\n(.*?)(?=^==\d+==|\Z)", re.S | re.M)
_FUZZER_ERROR = re.compile(r"ERROR: libFuzzer: (.*)")


@dataclass(frozen=True)
class Crash:
    error: str
    """The exception (its last traceback line), or libFuzzer's error (a hang, memory)."""
    details: str
    reproducer: Path | None


@dataclass(frozen=True)
class SlowestInput:
    data: bytes
    seconds: float
    """Timed again without instrumentation: the time judged against ``SLOW_SECONDS``."""
    instrumented_seconds: float


@dataclass(frozen=True)
class Outcome:
    target: str
    inputs: int
    seconds: float
    crash: Crash | None
    slowest: SlowestInput | None

    @property
    def too_slow(self) -> bool:
        return self.slowest is not None and self.slowest.seconds > SLOW_SECONDS


def fuzz(name: str, seconds: int, inputs: int | None = None) -> Outcome:
    """Fuzz one target in a process of its own, for ``seconds`` or until it has tried
    ``inputs`` inputs."""
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as work:
        workdir = Path(work)
        started = time.monotonic()
        finished = subprocess.run(
            [sys.executable, "-m", "tests.fuzz.child", name, str(seconds), str(workdir)]
            + ([str(inputs)] if inputs else []),
            cwd=ROOT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},  # the exception before libFuzzer's lines
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=seconds + STARTUP_SECONDS,
            check=False,
        )
        elapsed = time.monotonic() - started
        log = finished.stdout
        crash = crash_in(log) if finished.returncode != 0 else None
        if crash is not None and crash.reproducer is None:
            crash = keep_crashing(name, workdir, crash)
        slowest = _slowest(name, workdir)
    return Outcome(name, inputs_in(log), elapsed, crash, slowest)


def inputs_in(log: str) -> int:
    """How many inputs libFuzzer ran, from its final statistics or else its last report."""
    found = _EXECUTED.search(log)
    if found is not None:
        return int(found.group(1))
    progress = _PROGRESS.findall(log)
    return int(progress[-1]) if progress else 0


def crash_in(log: str) -> Crash:
    """The crash a failed run's log tells of: the Python exception, or libFuzzer's own
    error (a hang past its timeout, memory), and where the input was written."""
    written = _WRITTEN.search(log)
    reproducer = Path(written.group(1)) if written else None
    python_error = _PYTHON_ERROR.search(log)
    if python_error is not None:
        details = python_error.group(1).strip()
        return Crash(details.splitlines()[-1] if details else "?", details, reproducer)
    fuzzer_error = _FUZZER_ERROR.search(log)
    error = fuzzer_error.group(1).strip() if fuzzer_error else "the fuzzer failed"
    return Crash(error, log[-4000:], reproducer)


def keep_crashing(name: str, workdir: Path, crash: Crash) -> Crash:
    """The crash with its input kept as ``crash-<sha1>``, when libFuzzer wrote none."""
    path = workdir / CRASHING
    if not path.exists():
        return crash
    data = path.read_bytes()
    kept = REGRESSIONS / name / f"crash-{hashlib.sha1(data).hexdigest()}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(data)
    return dataclasses.replace(crash, reproducer=kept)


def _slowest(name: str, workdir: Path) -> SlowestInput | None:
    path = workdir / "slowest"
    if not path.exists():
        return None
    data = path.read_bytes()
    instrumented = float((workdir / "slowest.seconds").read_text())
    return SlowestInput(data, retime(name, data), instrumented)


def retime(name: str, data: bytes, tries: int = 3) -> float:
    """The input's shortest time through its target here, without instrumentation (the
    first try also loads what the target loads once)."""
    run = target(name).run
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        with contextlib.suppress(Exception):  # a crash is the fuzzer's to report
            run(data)
        times.append(time.perf_counter() - started)
    return min(times)


def keep_slow(outcome: Outcome) -> Path | None:
    """Save an input over ``SLOW_SECONDS`` beside the crashes, as ``slow-<sha1>``."""
    if outcome.slowest is None or not outcome.too_slow:
        return None
    data = outcome.slowest.data
    path = REGRESSIONS / outcome.target / f"slow-{hashlib.sha1(data).hexdigest()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def shown(data: bytes, limit: int = 80) -> str:
    """An input in a line: its size and its first bytes."""
    head = repr(data[:limit]) + ("..." if len(data) > limit else "")
    return f"{len(data):,} bytes {head}"


def summary(outcome: Outcome) -> str:
    lines = [
        f"{outcome.target}: {outcome.inputs:,} inputs in {outcome.seconds:.0f} s, "
        f"{1 if outcome.crash else 0} crash{'' if outcome.crash else 'es'}"
    ]
    if outcome.crash is not None:
        lines.append(f"  crash: {outcome.crash.error}")
        lines.append(f"  reproducer: {outcome.crash.reproducer or '(not written)'}")
        lines.extend("    " + line for line in outcome.crash.details.splitlines()[-12:])
    if outcome.slowest is not None:
        slowest = outcome.slowest
        verdict = f"  OVER {SLOW_SECONDS:g} s" if outcome.too_slow else ""
        lines.append(
            f"  slowest input: {slowest.seconds:.4f} s ({slowest.instrumented_seconds:.4f} s "
            f"instrumented), {shown(slowest.data)}{verdict}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--seconds", type=int, default=900, help="most time per target")
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=", ".join(NAMES))
    args = parser.parse_args(argv)
    failed = False
    unknown = set(args.targets) - set(NAMES)
    if unknown:
        parser.error(f"no such target: {', '.join(sorted(unknown))}")
    for name in args.targets or NAMES:
        outcome = fuzz(name, args.seconds, args.inputs)
        print(summary(outcome), flush=True)
        slow = keep_slow(outcome)
        if slow is not None:
            print(f"  kept as {slow.relative_to(ROOT)}", flush=True)
        failed |= outcome.crash is not None or outcome.too_slow
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
