"""Differential check of the shapes stage against torchinfo, statement by statement.

Consumes a `ShapedModel`; builds it (archdsl.builder, so this imports torch and torchinfo, lazily,
only when called), runs `torchinfo.summary` on one sample in eval mode, and matches torchinfo's
`LayerInfo` records to archdsl's `Shaped` nodes by module path (the builder names submodules after
the statements' paths). For every statement it compares the output shape and the parameter count,
then the model's output shape and total parameters. MACs are not compared: torchinfo counts the
bias and batchnorm multiplications, archdsl counts weights only.

Records torchinfo has and archdsl does not are the builder's own containers — a residual's `body`
and `shortcut` (with a projection's conv and batchnorm inside it) — and are not statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .graph import Node, Shaped, ShapedModel
from .sizes import fmt
from .table import walk

#: deeper than any spec nests: torchinfo records every module
DEPTH = 1_000_000


@dataclass(frozen=True, slots=True)
class Disagreement:
    path: str  # the statement's module path; "" for the whole model
    what: str  # "output shape", "parameters", "missing" (torchinfo never ran it), "extra"
    ours: str
    theirs: str

    def text(self) -> str:
        where = self.path or "model"
        if self.what == "missing":
            return f"{where}: archdsl has {self.ours}, torchinfo recorded no such module"
        if self.what == "extra":
            return f"{where}: torchinfo recorded {self.theirs}, archdsl has no such statement"
        return f"{where}: {self.what} {self.ours} in archdsl, {self.theirs} in torchinfo"


@dataclass
class Verification:
    model: str
    compared: int  # statements compared (the model itself not counted)
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.disagreements


def record_path(info: Any) -> str:
    """A torchinfo record's module path in the built model, "" for the model itself."""
    names = []
    while info.parent_info is not None:
        names.append(info.var_name)
        info = info.parent_info
    return ".".join(reversed(names))


def _internal(path: str, ours: dict[str, Shaped]) -> bool:
    """A module that is no statement of the spec: the conv and batchnorm inside a projection
    shortcut, or one of torchvision's own inside a `pretrained(...)` layer."""
    parts = path.split(".")
    for i in range(1, len(parts)):
        parent = ours.get(".".join(parts[:i]))
        if parent is not None and (
            parent.op == "pretrained" or (parent.kind == "shortcut" and parent.op != "path")
        ):
            return True
    return False


def records(model: ShapedModel) -> list[Any]:
    """torchinfo's LayerInfo records for `model` built (without pretrained weights) and run on one
    sample in eval mode."""
    import torch
    import torchinfo

    from .builder import build_model

    # Shapes and parameter counts do not depend on pretrained weights, so none are fetched.
    module = build_model(model, pretrained_weights=False).eval()
    with torch.no_grad():
        stats = torchinfo.summary(
            module,
            input_size=[(1, *shape) for _name, shape in model.inputs] or [(1, *model.input)],
            depth=DEPTH,
            verbose=0,
            col_names=("output_size", "num_params"),
            device="cpu",
            mode="eval",
        )
    return list(stats.summary_list)


def compare(model: ShapedModel, infos: list[Any]) -> Verification:
    """Matches records to statements by path and lists every difference."""
    # A spliced statement is no module: its members are its namespace's, and are compared there.
    # A bare parameter (a class token) is no module either: torchinfo counts it in its parent's.
    ours = {
        node.path: node
        for _depth, node in walk(model.layers)
        if not node.spliced and not (isinstance(node, Node) and not node.is_module)
    }
    theirs: dict[str, Any] = {}
    for info in infos:
        theirs.setdefault(record_path(info), info)
    result = Verification(model.name, 0)
    problems = result.disagreements
    for path, node in ours.items():
        info = theirs.get(path)
        if info is None or not info.executed:
            problems.append(Disagreement(path, "missing", f"{node.kind} {node.op}", ""))
            continue
        result.compared += 1
        _check(problems, path, node.output, node.params, info)
    for path, info in theirs.items():
        if path and path not in ours and not _internal(path, ours):
            problems.append(Disagreement(path, "extra", "", info.class_name))
    root = theirs.get("")
    if root is None:
        problems.append(Disagreement("", "missing", f"model {model.name}", ""))
    else:
        # torchinfo records one size for a tuple or dict of outputs (the last tensor's), so the
        # outputs' shapes are compared at the statements that make them.
        output = model.output or () if len(model.outputs) <= 1 else None
        _check(problems, "", output, model.params, root)
    return result


def _check(
    problems: list[Disagreement], path: str, output: tuple[int, ...] | None, params: int, info: Any
) -> None:
    """The record's output shape (unless `output` is None) and parameters against ours."""
    shape = tuple(info.output_size[1:])  # without the batch axis
    if output is not None and shape != tuple(output):
        problems.append(Disagreement(path, "output shape", fmt(output), fmt(shape)))
    if info.num_params != params:
        problems.append(Disagreement(path, "parameters", f"{params:,}", f"{info.num_params:,}"))


def verify(model: ShapedModel) -> Verification:
    return compare(model, records(model))
