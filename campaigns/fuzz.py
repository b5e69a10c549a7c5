"""Fuzzing campaign: the parser and `archdsl check` on N random and mutated inputs.

Inputs come from `campaigns/specgen.py`: the specs in specs/ and tests/fixtures/errors/ mutated (cut,
spliced, with fragments, odd characters and extreme values — 5,000-digit numbers, deep nesting,
huge repeat counts, self-imports — put in), generated specs mutated the same way, strings of
language fragments, and random bytes (often not UTF-8). Each input is written to a file and run
through everything `archdsl check` runs (load, parse, resolve, shapes, rendering of diagnostics,
the JSON report, the summary line). The only outcomes allowed are a clean check or diagnostics
positioned inside the file: an exception, a hang (over --timeout seconds) or a position outside
the file is a finding, printed with its seed.

It then checks that checking stays linear: a 10,000-line spec against a 1,000-line one.

    .venv/bin/python -m campaigns.fuzz 100000           # seeds 0..99999 (about 8 minutes on 2 cores)
    .venv/bin/python -m campaigns.fuzz 2000 --start 5000
    .venv/bin/python -m campaigns.fuzz 1 --start 123 --show   # one input and its outcome
    .venv/bin/python -m campaigns.fuzz 0                # only the scaling figure

Prints progress every 2,000 inputs and a final summary line. Exit status 1 on any finding.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from campaigns import specgen


class Hang(Exception):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise Hang()


def scaling_spec(lines: int) -> str:
    """A model of `lines` layer statements, one a line, through a block and a repeat."""
    body = [
        "block Unit(w: int) {",
        "    conv(w, kernel=3, padding=1) relu",
        "}",
        "model Big {",
        "    input [3, 8, 8]",
    ]
    kinds = [
        "conv(8, kernel=3, padding=1)",
        "batchnorm",
        "relu",
        "Unit(8)",
        "repeat 2 { relu }",
        "dropout(p=0.1)",
    ]
    body += [f"    {kinds[i % len(kinds)]}" for i in range(lines)]
    body += ["    flatten linear(10)", "}"]
    return "\n".join(body) + "\n"


def scaling(directory: str, runs: int = 5) -> tuple[float, float]:
    from archdsl.loader import Loader
    from archdsl.pipeline import compile_file

    times = {}
    for lines in (1_000, 10_000):
        path = os.path.join(directory, f"scale{lines}.arch")
        Path(path).write_text(scaling_spec(lines), encoding="utf-8")
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            program = compile_file(path, loader=Loader())
            samples.append(time.perf_counter() - started)
            assert not program.errors, program.errors[:1]
        times[lines] = min(samples)  # the least disturbed run
    return times[1_000], times[10_000]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="how many inputs")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--timeout", type=int, default=10, help="seconds before an input counts as a hang")
    parser.add_argument("--show", action="store_true", help="print every input and its outcome")
    parser.add_argument("--max-report", type=int, default=20, help="findings printed in full")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGALRM, _alarm)
    kinds: collections.Counter[str] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()
    findings: list[int] = []
    with tempfile.TemporaryDirectory(prefix="archdsl-fuzz-") as directory:
        # Measured first, in a fresh heap: after 100,000 inputs the collector's work on a large,
        # fragmented heap would inflate the big spec's time and hide what the checker does.
        small, large = scaling(directory)
        path = os.path.join(directory, "fuzz.arch")
        started = time.perf_counter()
        for number, seed in enumerate(range(args.start, args.start + args.count), 1):
            kind, data = specgen.fuzz_input(random.Random(seed))
            kinds[kind] += 1
            signal.alarm(args.timeout)
            try:
                problem = specgen.check_survives(data, path)
            except Hang:
                problem = f"no answer within {args.timeout} s"
            except BaseException:
                problem = "exception:\n" + traceback.format_exc(limit=-4)
            finally:
                signal.alarm(0)
            if problem is None:
                outcomes["ok"] += 1
            else:
                findings.append(seed)
                if len(findings) <= args.max_report:
                    preview = data[:600].decode("utf-8", "replace")
                    print(f"--- seed {seed} ({kind}): {problem}\n{preview!r}", flush=True)
            if args.show:
                print(f"--- seed {seed} ({kind}): {problem or 'ok'}\n{data.decode('utf-8', 'replace')}")
            if number % 2000 == 0:
                elapsed = time.perf_counter() - started
                print(f"{number}/{args.count} inputs, {len(findings)} findings, {elapsed:.0f} s", flush=True)
        fuzz_elapsed = time.perf_counter() - started
    mix = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    if findings:
        print(f"seeds with findings: {findings[:100]}")
    print(
        f"scaling: 1,000 lines {small * 1000:.0f} ms ({small * 1000:.0f} µs/line), 10,000 lines "
        f"{large * 1000:.0f} ms ({large * 100:.0f} µs/line), ratio {large / small:.1f}"
    )
    print(
        f"fuzz: {args.count} inputs (seeds {args.start}..{args.start + args.count - 1}; {mix}): "
        f"{args.count - len(findings)} clean checks or positioned diagnostics, {len(findings)} findings; "
        f"{fuzz_elapsed:.0f} s"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
