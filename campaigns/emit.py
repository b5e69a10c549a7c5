"""Emit campaign: `archdsl emit`'s source against `archdsl.build`'s module on N random specs.

Each spec is drawn from its seed by `campaigns/specgen.py` (blocks whose parameters feed expressions,
defaults, kernels and repeat counts, `tensor` parameters, several outputs; concat; residual; named
values, joins and splits; `if`; models with several inputs and outputs; every layer of the
catalog). For each spec archdsl accepts, the emitted source is imported as a user would import it.
Its model class and the built module must have the same `state_dict` keys, module names and
parameter count, load each other's weights strictly, and give `torch.equal` outputs (a tensor, a
tuple or a dict, alike) on random inputs, one for each of the model's. Every source must also be as
`ruff format` writes it. The CI slice is
`tests/test_emit.py::test_random_specs_emit_classes_that_load_the_built_weights_and_compute_the_same`
(specs of one input: it runs each network on one tensor).

    .venv/bin/python -m campaigns.emit 20000 --start 300   # seeds 300..20299, ~80 s

Prints the failing seeds, then one summary line. Exits with status 1 if any fail.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

import archdsl
from archdsl.codegen.source import emit_source
from archdsl.pipeline import compile_file
from campaigns import specgen

#: The ruff installed beside this Python (the dev extra's): emitted source is as it formats.
RUFF = str(Path(sys.executable).with_name("ruff"))

#: Sources formatted per ruff call: one process for many files.
RUFF_BATCH = 500


def load_source(source: str, directory: Path) -> ModuleType:
    """Imports the emitted source as a module of its own, as a user would."""
    file = directory / "emitted_model.py"
    file.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"emitted_{abs(hash(source))}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_same_network(path: Path, model: str, source: str, directory: Path) -> None:
    """The emitted class and the built module hold the same modules and weights, load each other's,
    and compute the same on every input of the model (tests/test_emit.py checks with it too).
    Identical, NaN for NaN: a max pool whose window lies in its padding gives -inf, which later
    layers can make NaN, and NaN equals nothing. Several outputs: a tuple or a dict, alike."""
    built = archdsl.build(str(path), model=model)
    ours: nn.Module = getattr(load_source(source, directory), model)()
    assert list(ours.state_dict()) == list(built.state_dict())
    assert [name for name, _ in ours.named_modules()] == [name for name, _ in built.named_modules()]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in built.parameters())
    with torch.no_grad():  # running statistics away from their initial 0 and 1
        for buffer in built.buffers():
            if buffer.is_floating_point():
                buffer.uniform_(0.5, 1.5)
    ours.load_state_dict(built.state_dict(), strict=True)
    built.load_state_dict(ours.state_dict(), strict=True)
    shapes = [shape for _, shape in archdsl.load(str(path), model=model).model(model).inputs]
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(2, *shape, generator=generator) for shape in shapes]
    with torch.no_grad():
        torch.testing.assert_close(
            ours.eval()(*inputs), built.eval()(*inputs), rtol=0, atol=0, equal_nan=True
        )


def ruff_formatted(directory: Path, sources: dict[str, str]) -> str | None:
    """None when ruff would leave every source as it is, else its report."""
    for name, source in sources.items():
        (directory / name).write_text(source, encoding="utf-8")
    result = subprocess.run(
        [RUFF, "format", "--check", "--isolated", *sources], capture_output=True, text=True, cwd=directory
    )
    for name in sources:
        (directory / name).unlink()
    return None if result.returncode == 0 else result.stdout + result.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="how many specs")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny networks: threads cost more than they give
    warnings.simplefilter("ignore")  # PyTorch's padding="same" notices, not findings
    accepted = generic = 0
    failed: list[int] = []
    began = time.perf_counter()
    stop = args.start + args.count
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        batch: dict[str, str] = {}
        for seed in range(args.start, stop):
            path = directory / f"spec{seed}.arch"
            path.write_text(specgen.render(specgen.generate(seed, several_inputs=True))[0], encoding="utf-8")
            try:
                program = compile_file(str(path))
            except Exception as exc:  # archdsl's check itself crashed: a finding, not the campaign's end
                failed.append(seed)
                print(f"seed {seed}: check crashed: {type(exc).__name__}: {str(exc)[:500]}", flush=True)
                continue
            if program.errors:
                continue
            accepted += 1
            try:
                source = emit_source(*program.models, program=program)
                generic += "in_channels: int" in source
                assert_same_network(path, "M", source, directory)
            except Exception as exc:  # a finding to report with its seed, not a crash of the campaign
                failed.append(seed)
                print(f"seed {seed}: {type(exc).__name__}: {str(exc)[:500]}", flush=True)
                continue
            batch[f"spec{seed}.py"] = source
            if len(batch) == RUFF_BATCH or seed == stop - 1:
                report = ruff_formatted(directory, batch)
                if report is not None:
                    failed.append(seed)
                    print(f"ruff would reformat sources up to seed {seed}:\n{report}", flush=True)
                batch = {}
        if batch and (report := ruff_formatted(directory, batch)) is not None:
            failed.append(stop - 1)
            print(f"ruff would reformat sources up to seed {stop - 1}:\n{report}", flush=True)
    print(
        f"emit: {args.count} specs (seeds {args.start}..{stop - 1}): {accepted} accepted, "
        f"{generic} with a class per block, {len(failed)} failing; {time.perf_counter() - began:.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
