"""What a module holds and what its forward does, read off the shaped IR; no torch.

A module's *members* are the submodules and parameters registered on it under their keys (its
`state_dict` names); its *flow* is the computation its forward runs over them. In a plain body
they coincide: each statement is a member and runs after the one before (`nn.Sequential`). A
spliced statement (`*residual { … }`, a repeat's passes, `*Block()`) is no member: its own
members join the enclosing module, which then runs the statement's computation over them — the
sum of a residual, the product of a gate, the concatenation of branches.

The builder constructs members and runs the flow (`builder.Graph`); `emit` writes the members in
`__init__` and the flow as `forward`'s lines. Both read it from here, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import layers

if TYPE_CHECKING:
    from .shapes import Shaped


@dataclass(frozen=True, slots=True)
class Call:
    """Runs the member module `key`."""

    key: str


@dataclass(frozen=True, slots=True)
class Scale:
    """Multiplies by the member parameter `key` (broadcast over the sample)."""

    key: str


@dataclass(frozen=True, slots=True)
class Seq:
    steps: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class Add:
    """body(x) + shortcut(x); shortcut None is the identity."""

    body: Op
    shortcut: Op | None


@dataclass(frozen=True, slots=True)
class Mul:
    """x · gate(x)."""

    gate: Op


@dataclass(frozen=True, slots=True)
class Cat:
    """The branches' outputs joined on the channel axis; with `split`, branch i takes the i-th
    share of the input's channels (`torch.split(x, split, dim=1)`), else all of the input."""

    branches: tuple[Op, ...]
    split: tuple[int, ...] | None


Op = Call | Scale | Seq | Add | Mul | Cat


def is_parameter(node: Shaped) -> bool:
    """A statement whose member is a bare parameter (`layer_scale: scale(1e-6)`), not a module."""
    return node.kind == "layer" and layers.LAYERS[node.op].parameter(node) is not None


def sequence(nodes: list[Shaped], members: list[Shaped]) -> Seq:
    """The flow of statements run in order; their members are appended to `members`."""
    steps: list[Op] = []
    for node in nodes:
        step = statement(node, members)
        steps.extend(step.steps if isinstance(step, Seq) else (step,))
    return Seq(tuple(steps))


def statement(node: Shaped, members: list[Shaped]) -> Op:
    if not node.spliced:
        members.append(node)
        return Scale(node.key) if is_parameter(node) else Call(node.key)
    return composite(node, members)


def composite(node: Shaped, members: list[Shaped]) -> Op:
    """The flow of a composite statement whose members join `members`: a spliced statement's,
    or a composite module's own (then `members` is its own, empty at first)."""
    kind = node.kind
    if kind == "residual":
        # Members in the order they are written: a shortcut may stand before the body's.
        steps: list[Op] = []
        shortcut: Op | None = None
        for child in node.children:
            if child.kind == "shortcut":
                shortcut = statement(child, members)
            else:
                step = statement(child, members)
                steps.extend(step.steps if isinstance(step, Seq) else (step,))
        return Add(Seq(tuple(steps)), shortcut)
    if kind == "gate":
        return Mul(sequence(node.children, members))
    if kind == "concat":
        split = node.args.get("split")
        return Cat(tuple(statement(branch, members) for branch in node.children), split)
    # block, group, repeat (its passes are spliced), iteration, branch, a written-out shortcut
    return sequence(node.children, members)


def module(node: Shaped) -> tuple[list[Shaped], Op]:
    """A composite module's own members and flow."""
    members: list[Shaped] = []
    return members, composite(node, members)


def is_chain(flow: Op) -> bool:
    """Whether the flow runs its member modules one after another, as `nn.Sequential` does."""
    return isinstance(flow, Seq) and all(isinstance(step, Call) for step in flow.steps)
