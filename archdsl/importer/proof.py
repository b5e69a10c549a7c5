"""The proof: the spec written is compiled, built, loaded with the original's `state_dict`
strictly, and run on random inputs; it stands only when its outputs equal the original's and every
leaf module stands at the same path with the same settings.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from .failures import ImportFailed, _first_line
from .trace import _kind, _samples

if TYPE_CHECKING:
    from torch import nn


def leaves(model: nn.Module) -> dict[str, str]:
    """Each module without children, as `Class(arguments)` the way it prints itself (a subclass
    that only fixes a torch.nn module's arguments as that module), `inplace` aside (it changes no
    value); strings unquoted (torchvision's StochasticDepth prints
    `mode=row`) and a tuple of one number (`(5,)`, a square pair, a cube's triple) as that number,
    as PyTorch's modules take either."""
    found = {}
    for path, module in model.named_modules():
        if not list(module.children()):
            name, _, text = repr(module).partition("(")
            name = _kind(module) if name == type(module).__name__ else name
            text = ", ".join(
                part for part in text.removesuffix(")").split(", ") if not part.startswith("inplace=")
            )
            text = re.sub(r"'([^']*)'", r"\1", text)
            found[path] = re.sub(r"\((-?\d+)(?:,|(?:, \1)+)\)", r"\1", f"{name}({text})")
    return found


def agrees(ours: str | None, theirs: str) -> str | None:
    """Ours where it is theirs; where theirs prints no arguments (torchvision's Permute keeps its
    dims to itself), the class alone: the outputs' agreement checks what such a module computes."""
    if ours is not None and theirs.endswith("()") and ours.startswith(theirs[:-1]):
        return theirs
    return ours


def idle_modules(module: nn.Module, used: set[str]) -> list[str]:
    """The outermost submodules whose state the traced forward never touches (GoogLeNet's
    auxiliary classifiers in eval mode)."""
    idle: list[str] = []
    for key in module.state_dict():
        parts = key.split(".")[:-1]
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            # a module called whole (a leaf such as nn.MultiheadAttention) runs its submodules
            if not any(u == prefix or u.startswith(prefix + ".") or prefix.startswith(u + ".") for u in used):
                if prefix not in idle:
                    idle.append(prefix)
                break
    return idle


def _tensors(result: Any) -> list[tuple[str, Any]]:
    """A module's outputs, each with where it stands: `out`, `[1]`, `["aux"]`."""
    if isinstance(result, dict):
        return [(f'["{k}"]', v) for k, v in result.items()]
    if isinstance(result, (list, tuple)):
        return [(f"[{i}]", v) for i, v in enumerate(result)]
    return [("", result)]


def prove(text: str, original: nn.Module, samples: list[tuple[int, ...]], ran: set[str]) -> int:
    """Compiles, builds and runs `text` against `original`; returns its line count. Raises
    `ImportFailed` (as a bug of the importer) when it does not reproduce the module."""
    import torch

    from ..builder import build_model
    from ..errors import SourceCache, render
    from ..loader import Loader
    from ..pipeline import compile_file

    loader = Loader()
    path = "imported.arch"
    loader.add_text(text, path)
    program = compile_file(path, loader=loader)
    if program.errors:
        cache = SourceCache(loader.sources)
        shown = "\n".join(render(d, cache) for d in program.errors[:3])
        raise ImportFailed(f"the spec written does not check (a bug in archdsl import):\n{shown}")
    model = program.models[0]
    expected_params = sum(p.numel() for p in original.parameters())
    ours = build_model(model).eval()
    try:
        ours.load_state_dict(original.state_dict(), strict=True)
    except RuntimeError as exc:
        raise ImportFailed(
            f"the spec written does not take the module's weights (a bug in archdsl import): "
            f"{_first_line(exc)}"
        ) from None
    if model.params != expected_params:
        raise ImportFailed(
            f"the spec has {model.params:,} parameters, the module {expected_params:,} "
            "(a bug in archdsl import)"
        )
    xs = _samples(samples)
    with torch.no_grad():
        expected, got = _tensors(original.eval()(*xs)), _tensors(ours(*xs))
    if [k for k, _ in expected] != [k for k, _ in got]:
        raise ImportFailed(
            f"the spec gives {', '.join(k or 'one tensor' for k, _ in got)}, the module "
            f"{', '.join(k or 'one tensor' for k, _ in expected)} (a bug in archdsl import)"
        )
    for (where, want), (_, have) in zip(expected, got, strict=True):
        scale = max(want.abs().max().item(), 1.0)
        difference = (have - want).abs().max().item() if have.shape == want.shape else math.inf
        if not difference <= 1e-5 * scale:
            raise ImportFailed(
                f"the spec's outputs{where and ' ' + where} differ from the module's by {difference:.3g} "
                "(a bug in archdsl import)"
            )
    mine = leaves(ours)
    theirs = {p: t for p, t in leaves(original).items() if p in ran}
    # an nn.Identity has no settings to compare (and stands nowhere where it was a shortcut)
    wrong = [p for p, t in theirs.items() if t != "Identity()" and agrees(mine.get(p), t) != t]
    if wrong:
        raise ImportFailed(
            f"the spec's {wrong[0]} is {mine.get(wrong[0])}, the module's {theirs[wrong[0]]} "
            "(a bug in archdsl import)"
        )
    return text.count("\n")
