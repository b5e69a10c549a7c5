"""This checkout's speed against another revision's, side by side in one run: what a change costs.

For a git revision (or another checkout's directory), it times, alternating the two so that drift
in the machine's load falls on both alike:

1. `archdsl check -q` on the spec `check_speed.py` generates for 10,000 layer statements, as a
   whole process (start-up, parse, checking, report);
2. the same with `--format json`;
3. a cold start, `archdsl check -q specs/lenet5.arch`;
4. `lsp_latency.py` (keystroke to diagnostics on a 1,000-statement spec) with the server of each.

Each revision runs from its own tree (`PYTHONPATH`), in this checkout's virtual environment, on
the same files. Every figure is a median; the ratio is this checkout's over the other's (below 1:
faster now). The budget a change may spend is 1.10 (10 % slower).

    .venv/bin/python benchmarks/versus.py HEAD~3            # against an earlier commit
    .venv/bin/python benchmarks/versus.py ../other-checkout --runs 9

A revision is checked out in a temporary git worktree, removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from check_speed import generate_spec  # noqa: E402

BUDGET = 1.10


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The other tree: a directory as given, or the revision in a temporary worktree."""
    given = Path(revision)
    if given.is_dir():
        yield given.resolve()
        return
    with tempfile.TemporaryDirectory() as parent:
        tree = Path(parent) / "other"
        git = ["git", "-C", str(REPO), "worktree"]
        subprocess.run([*git, "add", "--detach", "--quiet", str(tree), revision], check=True)
        try:
            yield tree
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=False)


def environment(tree: Path) -> dict[str, str]:
    # The tree first on the path: its `archdsl` is imported rather than the installed one.
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}


def wall(command: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return time.perf_counter() - started


def imported_from(tree: Path, cwd: Path) -> Path:
    """The package `python -m archdsl` runs under `tree`'s environment, from `cwd`."""
    found = subprocess.run(
        [sys.executable, "-c", "import archdsl; print(archdsl.__file__)"],
        env=environment(tree),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(found.stdout.strip()).resolve().parent.parent


def alternate(command: Sequence[str], trees: dict[str, Path], runs: int, cwd: Path) -> dict[str, float]:
    """The median wall time of `command` under each tree, run in turn (one warm-up each), from
    `cwd`: `python -m` puts its working directory first on the path, so a checkout's would win."""
    times: dict[str, list[float]] = {name: [] for name in trees}
    for round_ in range(runs + 1):
        for name, tree in trees.items():
            elapsed = wall(command, environment(tree), cwd)
            if round_:
                times[name].append(elapsed)
    return {name: statistics.median(found) for name, found in times.items()}


def lsp_median(tree: Path) -> float:
    """lsp_latency.py's median keystroke, with the server (and the in-process check) of `tree`."""
    result = subprocess.run(
        [sys.executable, str(HERE / "lsp_latency.py")],
        env=environment(tree),
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"median ([0-9.]+) ms, 90th", result.stdout)
    if found is None:
        raise SystemExit(f"lsp_latency.py failed under {tree}:\n{result.stdout}{result.stderr}")
    return float(found.group(1))


def row(what: str, figures: dict[str, float], unit: str = "s") -> None:
    now, then = figures["this checkout"], figures["other"]
    ratio = now / then
    verdict = "within budget" if ratio <= BUDGET else "OVER BUDGET"
    digits = 3 if unit == "s" else 1
    print(
        f"  {what:<46} now {now:>8.{digits}f} {unit}  before {then:>8.{digits}f} {unit}  "
        f"ratio {ratio:.3f}  {verdict}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", help="a git revision, or the directory of another checkout")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command, each side")
    parser.add_argument("--lsp-runs", type=int, default=3, help="lsp_latency.py runs, each side")
    args = parser.parse_args(argv)
    with checkout(args.revision) as other, tempfile.TemporaryDirectory() as workdir:
        trees = {"this checkout": REPO, "other": other}
        neutral = Path(workdir)
        for name, tree in trees.items():
            if imported_from(tree, neutral) != tree.resolve():
                raise SystemExit(f"{name}: `import archdsl` does not find {tree} first")
        spec = neutral / "generated.arch"
        spec.write_text(generate_spec(10_000), encoding="utf-8")
        check = [sys.executable, "-m", "archdsl", "check", "-q", str(spec)]
        print(f"this checkout ({REPO}) against {args.revision} ({other}); medians of {args.runs} runs")
        row("check, 10,000 statements, text", alternate(check, trees, args.runs, neutral))
        json = [*check, "--format", "json"]
        row("check, 10,000 statements, --format json", alternate(json, trees, args.runs, neutral))
        cold = [sys.executable, "-m", "archdsl", "check", "-q", str(REPO / "specs" / "lenet5.arch")]
        row("cold start, check specs/lenet5.arch", alternate(cold, trees, args.runs, neutral))
        latencies: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.lsp_runs):
            for name, tree in trees.items():
                latencies[name].append(lsp_median(tree))
        medians = {name: statistics.median(found) for name, found in latencies.items()}
        row("lsp keystroke to diagnostics (median)", medians, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
