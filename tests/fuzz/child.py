"""One target under atheris (libFuzzer), in a process of its own: libFuzzer ends the
process when its time is up or at the first crash, so the runner starts one per target.

    python -m tests.fuzz.child TARGET SECONDS WORKDIR [INPUTS]

It stops after SECONDS, or once it has tried INPUTS inputs when given.

Seeds are copied into WORKDIR/corpus, where libFuzzer also keeps the inputs that reach new
code; a crash is written to ``tests/fuzz/regressions/TARGET/`` by libFuzzer, and to
WORKDIR/crashing too; the slowest input so far is kept in WORKDIR/slowest (its time, under
instrumentation, in WORKDIR/slowest.seconds).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import atheris

from tests.fuzz.targets import MODULES, target

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
CRASHING = "crashing"  # the input that raised, in WORKDIR
HANG_SECONDS = 20  # an input still running after this is a crash (libFuzzer's "timeout")


def dictionary_line(token: bytes) -> str:
    """A token as libFuzzer's dictionary format writes it: quoted, with \\xNN escapes."""
    escaped = "".join(
        chr(byte) if 0x20 <= byte < 0x7F and byte not in b'"\\' else f"\\x{byte:02x}"
        for byte in token
    )
    return f'"{escaped}"'


class Slowest:
    """The slowest input seen, written down whenever one is slower than the last."""

    def __init__(self, workdir: Path) -> None:
        self.seconds = 0.0
        self._input = workdir / "slowest"
        self._time = workdir / "slowest.seconds"

    def offer(self, data: bytes, seconds: float) -> None:
        if seconds > self.seconds:
            self.seconds = seconds
            self._input.write_bytes(data)
            self._time.write_text(f"{seconds!r}\n")


def warm_up(run: Callable[[bytes], None], seeds: Iterable[bytes]) -> None:
    """Each seed run once before timing starts: what a target loads on first use (MIBs,
    the rule set) is not any input's time. A seed that crashes is found again by libFuzzer,
    which reads the seeds first."""
    for seed in seeds:
        with contextlib.suppress(Exception):
            run(seed)


def main(argv: list[str]) -> None:
    name, seconds, workdir = argv[1], int(argv[2]), Path(argv[3])
    inputs = [f"-runs={argv[4]}"] if len(argv) > 4 else []
    with atheris.instrument_imports(include=MODULES[name].instrumented):
        fuzzed = target(name)
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for number, seed in enumerate(fuzzed.seeds()):
        (corpus / f"seed-{number:03d}").write_bytes(seed)
    tokens = workdir / "tokens.dict"
    tokens.write_text("".join(dictionary_line(token) + "\n" for token in fuzzed.tokens))
    artifacts = REGRESSIONS / name
    artifacts.mkdir(parents=True, exist_ok=True)
    warm_up(fuzzed.run, fuzzed.seeds())
    slowest = Slowest(workdir)

    def one_input(data: bytes) -> None:
        started = time.perf_counter()
        try:
            fuzzed.run(data)
        except BaseException:  # kept in case libFuzzer does not write it
            (workdir / CRASHING).write_bytes(data)
            raise
        slowest.offer(data, time.perf_counter() - started)

    atheris.Setup(
        [
            argv[0],
            f"-max_total_time={seconds}",
            f"-max_len={fuzzed.max_len}",
            f"-timeout={HANG_SECONDS}",
            f"-artifact_prefix={artifacts}/",
            f"-dict={tokens}",
            "-print_final_stats=1",
            *inputs,
            str(corpus),
        ],
        one_input,
    )
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
