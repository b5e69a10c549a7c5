"""Stage 5a: the dataflow graph → a real `torch.nn.Module` (the only stage here that imports torch).

Consumes a `ShapedModel`'s graph: every module of it (the model, each block call, group and
composite that is not spliced) becomes an `nn.Module` holding its members under their keys, so
`state_dict` keys follow the spec; every layer is constructed from its `Module` description (the one
`emit` writes), in-channels and in-features taken from the shapes already inferred. A module whose
program runs its members one after another is an `nn.Sequential`; any other runs its program
(`graph.programs`): the steps `emit` writes as `forward`'s lines, here kept as data and run.
"""

from __future__ import annotations

import functools
import operator
import os
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from . import layers
from .codes import TOO_LARGE
from .errors import ArchError, error
from .graph import Graph as Dataflow
from .graph import Module as GraphModule
from .graph import Node, Program, ShapedModel, Value, is_chain, programs
from .layers import Batched, Function, Input, Inputs, Member, SizeOf, callables
from .layers.callables import construct as construct  # importable from here, as it was
from .runtime import Sequential
from .shapes import float32_size


class Model(Sequential):
    """A body whose statements run one after another: a model's, or a block call's. Prints under
    the spec's name; a slice of it is a plain `nn.Sequential`."""

    def __init__(self, arch_name: str, members: OrderedDict[str, nn.Module]):
        super().__init__(members)
        self.arch_name = arch_name

    def _get_name(self) -> str:
        return self.arch_name


class Block(Model):
    """The body of one block call."""


# An instruction of a `Graph` module: what it runs, the slots it reads and writes, and the slots
# that no later instruction reads (freed after it, so a long forward holds what it still needs).
Instruction = tuple[str, Any, tuple[int, ...], tuple[int, ...], tuple[int, ...]]


class Graph(nn.Module):
    """A module whose members (submodules and parameters) do not simply run one after another: its
    forward runs its program (see `graph.programs`), which names them. The emitted source writes the
    same program out as a `forward` method."""

    def __init__(
        self,
        arch_name: str,
        members: OrderedDict[str, nn.Module | nn.Parameter],
        code: list[Instruction],
        inputs: int,
        outputs: tuple[int, ...],
        keys: list[str] | None = None,
    ):
        super().__init__()
        self.arch_name = arch_name
        for key, member in members.items():
            if isinstance(member, nn.Parameter):
                self.register_parameter(key, member)
            else:
                self.add_module(key, member)
        self._code = code
        self._inputs = inputs
        self._outputs = outputs
        self._keys = keys

    def _get_name(self) -> str:
        return self.arch_name

    def forward(self, *inputs: torch.Tensor) -> Any:
        if len(inputs) != self._inputs:
            raise TypeError(f"{self.arch_name} takes {self._inputs} input(s), got {len(inputs)}")
        slots: dict[int, Any] = dict(enumerate(inputs))
        for kind, target, reads, writes, frees in self._code:
            values = [slots[i] for i in reads]
            if kind == "call":
                result = self._modules[target](*values)  # type: ignore[misc]
            elif kind == "use":
                key, function = target
                member = self._modules[key] if key in self._modules else self._parameters[key]
                result = run_function(function, values, member)
            else:
                result = run_function(target, values)
            if len(writes) == 1 and not (kind == "function" and target.many):
                slots[writes[0]] = result
            else:
                for slot, value in zip(writes, result, strict=True):
                    slots[slot] = value
            for slot in frees:
                del slots[slot]
        results = [slots[i] for i in self._outputs]
        if self._keys is not None:
            return dict(zip(self._keys, results, strict=True))
        return results[0] if len(results) == 1 else tuple(results)


#: The operators a `Function` may name, applied left to right over its operands.
OPERATORS = {"+": operator.add, "*": operator.mul, "@": operator.matmul}


def run_function(function: Function, inputs: list[Any], member: Any = None) -> Any:
    """What a `Function` computes on a node's inputs (and its `member`, for `Layer.use`)."""
    if function.target in OPERATORS:
        operands: list[Any] = []
        for argument in function.args:
            value = _argument(argument, inputs, member)
            operands.extend(value) if isinstance(argument, Inputs) else operands.append(value)
        return functools.reduce(OPERATORS[function.target], operands)
    args = [_argument(a, inputs, member) for a in function.args]
    kwargs = {k: _argument(v, inputs, member) for k, v in function.kwargs.items()}
    called = member if isinstance(function.target, Member) else callables.target(function.target)
    result = called(*args, **kwargs)
    return result if function.pick is None else result[function.pick]


def _argument(value: Any, inputs: list[Any], member: Any = None) -> Any:
    if isinstance(value, Input):
        return inputs[value.index]
    if isinstance(value, Inputs):
        return list(inputs)
    if isinstance(value, SizeOf):
        return inputs[value.index].shape[2:]
    if isinstance(value, Member):
        return member
    if isinstance(value, Batched):
        return member.expand(inputs[value.index].shape[0], *(-1,) * (member.dim() - 1))
    if isinstance(value, list):
        return [_argument(v, inputs, member) for v in value]
    return value


def compile_program(program: Program) -> tuple[list[Instruction], tuple[int, ...]]:
    """A program as instructions over numbered slots, each slot freed after its last reader."""
    slots: dict[Value, int] = {value: index for index, value in enumerate(program.inputs)}
    steps: list[tuple[str, Any, tuple[int, ...], tuple[int, ...]]] = []
    for step in program.steps:
        reads = tuple(slots[v] for v in step.inputs)
        writes = tuple(slots.setdefault(v, len(slots)) for v in step.outputs)
        target = step.target
        if step.calls_member:
            steps.append(("call", target.key, reads, writes))
            continue
        assert isinstance(target, Node)  # a submodule is always called
        if target.member:
            steps.append(("use", (target.key, target.use), reads, writes))
        else:
            steps.append(("function", layers.LAYERS[target.op].function(target), reads, writes))
    outputs = tuple(slots[v] for v in program.outputs)
    last: dict[int, int] = {}
    for index, (_, _, reads, _) in enumerate(steps):
        for slot in reads:
            last[slot] = index
    code: list[Instruction] = []
    for index, (kind, target, reads, writes) in enumerate(steps):
        frees = tuple(sorted({s for s in reads if last[s] == index and s not in outputs}))
        code.append((kind, target, reads, writes, frees))
    return code, outputs


class _Building:
    """One build: the modules' programs, and whether `pretrained(...)` layers load their weights."""

    def __init__(self, graph: Dataflow, pretrained_weights: bool):
        self.programs = programs(graph)
        self.pretrained_weights = pretrained_weights

    def module(self, module: GraphModule, keys: list[str] | None = None) -> nn.Module:
        return _module(module, self, keys)


def _member(member: Node | GraphModule, building: _Building) -> nn.Module | nn.Parameter:
    """One member of a module, built: a submodule, a bare parameter, or a layer's module."""
    if isinstance(member, GraphModule):
        return building.module(member)
    if member.parameter:
        parameter = layers.LAYERS[member.op].parameter(member)
        assert parameter is not None
        if parameter.std is not None:
            return nn.Parameter(torch.empty(parameter.shape).normal_(std=parameter.std))
        return nn.Parameter(torch.full(parameter.shape, float(parameter.fill)))
    if (
        not building.pretrained_weights
        and member.op == "pretrained"
        and member.args.get("weights") is not None
    ):
        member = replace(member, args={**member.args, "weights": None})
    return layers.LAYERS[member.op].build(member)


def _module(module: GraphModule, building: _Building, keys: list[str] | None = None) -> nn.Module:
    members = OrderedDict((key, _member(member, building)) for key, member in module.members.items())
    built = building.programs
    program = built[module]
    if keys is None and is_chain(program):
        modules: OrderedDict[str, nn.Module] = members  # type: ignore[assignment]  # a chain has no parameters
        if module.parent is None:
            return Model(module.title, modules)
        record = module.record
        if record is not None and record.kind == "block":
            return Block(module.title, modules)
        return nn.Sequential(modules)
    code, outputs = compile_program(program)
    return Graph(module.title, members, code, len(program.inputs), outputs, keys)


def memory_bytes() -> int | None:
    """This machine's physical memory, if the system says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def default_max_params() -> int:
    """As many float32 parameters as this machine's memory holds (2**30 when it cannot be told)."""
    memory = memory_bytes()
    return memory // 4 if memory else 2**30


def size_error(model: ShapedModel, max_params: int | None = None) -> ArchError | None:
    """Refuses, before anything is allocated, a model with more parameters than `max_params`
    (by default: more than fit in this machine's memory as float32)."""
    limit = default_max_params() if max_params is None else max_params
    if model.params <= limit:
        return None
    if max_params is None:
        reason = f"more than fit in this machine's memory ({float32_size(limit)})"
    else:
        reason = f"more than max_params={max_params:,}"
    return ArchError(
        [
            error(
                TOO_LARGE,
                f"model {model.name} has {model.params:,} parameters ({float32_size(model.params)} "
                f"as float32), {reason}; raise the limit (max_params=…, --max-params) to build it",
                model.span,
            )
        ]
    )


def build_model(
    model: ShapedModel, max_params: int | None = None, pretrained_weights: bool = True
) -> nn.Module:
    """Builds the model; raises `ArchError` (E110) if it has more than `max_params` parameters
    (default: what this machine's memory holds), before allocating any. `pretrained_weights=False`
    builds `pretrained(...)` layers without their weights (nothing is downloaded)."""
    if not model.complete or model.graph is None:
        raise ValueError(f"model {model.name} has errors; check it first")
    too_big = size_error(model, max_params)
    if too_big is not None:
        raise too_big
    graph = model.graph
    return _Building(graph, pretrained_weights).module(graph.root, graph.output_keys)
