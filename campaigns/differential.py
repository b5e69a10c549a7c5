"""Differential campaign: archdsl's static checker against PyTorch on N random specs.

Each spec is drawn from its seed by `campaigns/specgen.py` (blocks with parameters, repeat, concat,
residual with both shortcuts, named values read again and joined by cat/add/mul or taken apart by
split, blocks with tensor parameters and several outputs, models with several inputs and outputs,
if/else and conditional expressions, every layer of the catalog), written as `.arch` text, checked
by archdsl, and run statement by statement through plain torch.nn layers. When PyTorch accepts,
every statement's shape and parameter count must agree (and archdsl's built module must produce
the same shapes); when PyTorch rejects, archdsl must report an error on the refused statement
and none on a statement PyTorch ran.

    .venv/bin/python -m campaigns.differential 10000            # seeds 0..9999
    .venv/bin/python -m campaigns.differential 500 --start 20000
    .venv/bin/python -m campaigns.differential 1 --start 1234 --show   # one spec and its verdict

Prints progress every 500 specs and a final summary line; disagreements are printed with the
spec text and seed (rerun one with --start SEED 1 --show). Exit status 1 if any disagree.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import traceback
import warnings

from campaigns import specgen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="how many specs")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--no-build", action="store_true", help="skip running archdsl's built module")
    parser.add_argument("--show", action="store_true", help="print every spec and its verdict")
    parser.add_argument("--max-report", type=int, default=20, help="disagreements printed in full")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # the tensors are tiny: threads cost more than they give
    warnings.filterwarnings("ignore")  # padding="same" with even kernels warns in PyTorch
    outcomes: collections.Counter[str] = collections.Counter()
    disagreements: list[int] = []
    started = time.perf_counter()
    for number, seed in enumerate(range(args.start, args.start + args.count), 1):
        spec = specgen.generate(seed, several_inputs=True)
        try:
            verdict = specgen.compare(spec, build=not args.no_build)
        except Exception:  # a crash in archdsl (or the harness) is a disagreement too
            text = specgen.render(spec)[0]
            verdict = specgen.Verdict(False, "?", "exception:\n" + traceback.format_exc(), text)
        outcomes["accepted" if verdict.accepted else f"rejected at {verdict.rejected_op}"] += 1
        if verdict.problem is not None:
            disagreements.append(seed)
            if len(disagreements) <= args.max_report:
                print(f"--- seed {seed} disagrees: {verdict.problem}\n{verdict.text}", flush=True)
        elif args.show:
            print(f"--- seed {seed}: {'accepted' if verdict.accepted else 'rejected'}\n{verdict.text}")
        if number % 500 == 0:
            elapsed = time.perf_counter() - started
            print(
                f"{number}/{args.count} specs, {len(disagreements)} disagreements, {elapsed:.0f} s",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    accepted = outcomes.pop("accepted", 0)
    rejected = ", ".join(f"{op.split()[-1]} {n}" for op, n in sorted(outcomes.items(), key=lambda i: -i[1]))
    agree = args.count - len(disagreements)
    print(f"rejections by statement: {rejected}")
    if disagreements:
        print(f"disagreeing seeds: {disagreements[:100]}")
    print(
        f"differential: {args.count} specs (seeds {args.start}..{args.start + args.count - 1}): "
        f"{agree} agree ({100 * agree / max(args.count, 1):.2f}%), {len(disagreements)} disagree; "
        f"PyTorch accepted {accepted}, rejected {args.count - accepted}; {elapsed:.0f} s"
    )
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
