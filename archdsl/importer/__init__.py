"""`archdsl import`: an existing `nn.Module` → a `.arch` spec (imports torch; runs the user's code).

The module is traced with `torch.fx` (its leaf modules kept whole, shapes recorded by running the
trace once on a sample, each submodule's call recorded with its arguments and results), and the
graph is read back into the language, module by module:

1. each module's part of the graph is condensed to its own operations and its children (each
   child one step, however many tensors it takes and gives), then written in the order its
   `forward` computes it. Where the flow forks and its branches rejoin (at the fork's immediate
   post-dominator) with nothing else entering or leaving between, the join names the construct —
   an addition is a `residual`, a product with the input a `gate`, a channel concatenation a
   `concat` (after `chunk` or `split`, a split concat). Any other flow is written with named
   values: a value read again later is named (`stmt as x`) and read by name (`x -> stmt`, or an
   argument: `cat(x)`, `padto(x)`); a join of values is `add`, `mul` or `cat`, a split into
   values `split(n) as (a, b)`;
2. a leaf module becomes the layer statement that builds it (each layer's `imports` and
   `arguments`, the inverse of its `module`, in `archdsl/layers/`), a child module a group, a
   functional op the layer or function that computes it (each layer's `calls` and `called`: the
   importer knows no layer by name, so a plugin's layer is read back as a built-in one is);
   everything keeps its module's name, so `state_dict` names are the original's;
3. groups of one class become calls of a `block` (`importer/factor.py`), with parameters for what differs:
   a child called with several tensors takes them as `tensor` parameters, and one that returns
   several ends with `output a, b`;
4. values are named after the variables of the `forward` that computes them (`x1 = self.inc(x)`
   gives `as x1`) where that name is free, else `x1`, `x2`, ….

The text is then checked by proof, not by hope: compiled, built, loaded with the original's
`state_dict` strictly, and run on random inputs; it is returned only when its outputs equal the
original's and every leaf module stands at the same path with the same settings. What the language
cannot express is an `ImportFailed` naming the op and the line of the module's `forward`.

The stages, one module each: `trace` (load and trace) → `rewrites` (forms the language writes
another way) → `statements` (the flow, `walk`, with `steps` for one step, `functional` and
`resampling` for functional ops, over the condensed graph of `flow`; `nodes` answers questions
about one fx node) → `factor` (blocks and repeats, `archdsl/importer/factor.py`) → `text` (statements → the
spec's text, with `names` naming values; `fmt` then lays it out) → `proof`. `failures` is the one
error and where it points. The statements themselves are `archdsl/importer/ir.py`, below this
package and `factor`, which both read and make them; `factor` imports nothing of this package.

`text.Writer` still lays the statements out in lines before `fmt` formats them, because `fmt`
keeps statements on the lines they were written on: which layers share a line (`conv(…)
batchnorm relu`) and which bodies stay on one are decided when the text is written. Handing that
to fmt's printer takes a rule for grouping statements into lines in `fmt.py` itself (it has none:
it follows its input), which is fmt's change to make, not this package's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import factor
from .failures import ImportFailed
from .ir import shape_text
from .proof import agrees, idle_modules, leaves, prove
from .rewrites import dense_concatenations, implicit_broadcasts, learnt_tensors, self_attention
from .statements import Reader
from .text import Model, _canonical, name_text, spec_text
from .trace import default_input, inputs_of, load_factory, trace

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ImportFailed", "Imported", "agrees", "import_module", "leaves", "load_factory", "name_text"]


@dataclass(frozen=True)
class Imported:
    text: str
    name: str
    params: int
    lines: int


def _inputs(module: nn.Module, sample: Any) -> list[tuple[int, ...]]:
    """The per-sample shape of each input the module's forward takes."""
    names, required = inputs_of(module)
    if sample is None:
        given: list[tuple[int, ...]] = []
    elif sample and all(isinstance(s, int) for s in sample):
        given = [tuple(sample)]
    else:
        given = [tuple(s) for s in sample]
    if not given:
        if required > 1:
            raise ImportFailed(
                f"{type(module).__name__}'s forward takes {required} inputs ({', '.join(names[:required])}): "
                "give --input once for each"
            )
        guessed = default_input(module)
        if guessed is None:
            raise ImportFailed(
                f"{type(module).__name__}'s input shape cannot be told from its first layer: give --input"
            )
        return [guessed]
    if not required <= len(given) <= max(len(names), 1):
        count = str(required) if required == len(names) else f"{required} to {len(names)}"
        raise ImportFailed(
            f"{type(module).__name__}'s forward takes {count} input{'s' if len(names) != 1 else ''} "
            f"({', '.join(names)}), and --input gives {len(given)}"
        )
    return given


def import_module(
    module: nn.Module,
    name: str,
    sample: tuple[int, ...] | list[tuple[int, ...]] | None = None,
    header: list[str] | None = None,
) -> Imported:
    """`module` as a spec: traced, read back, factored into blocks, and proved to rebuild it.
    `sample` is the per-sample shape of its input, or a list of them for several inputs."""
    samples = _inputs(module, sample)
    traced, calls = trace(module, samples)
    implicit_broadcasts(traced.graph)
    self_attention(traced.graph, module)
    learnt_tensors(traced.graph, module)
    dense_concatenations(traced.graph)
    reader = Reader(module, traced, calls)
    if len(reader.inputs) != len(samples):
        raise ImportFailed(
            f"{type(module).__name__}'s forward reads {len(reader.inputs)} inputs, and --input gives "
            f"{len(samples)}"
        )
    body = reader.module_body("", reader.inputs, [node for _, node in reader.outputs])
    inputs = []
    for shape, node in zip(samples, reader.inputs, strict=True):
        value = reader.value(node)
        value.hint = str(node.target)
        inputs.append((shape, value))
    outputs = [(key, reader.value(node)) for key, node in reader.outputs]
    for key, value in outputs:  # `result["aux"] = x`: the value is the model's `aux`
        if key is not None and value.hint is None and key.isidentifier():
            value.hint = key
    blocks, body = factor.factor(body)
    params = sum(p.numel() for p in module.parameters())
    top = [
        *(header or []),
        f"{params:,} parameters. Names are the module's, so its state_dict loads with strict=True;",
        "shapes are for one sample of the input."
        if len(samples) == 1
        else "shapes are for one sample of the inputs.",
    ]
    text = _canonical(spec_text(Model(name, inputs, body, outputs, reader.returns), blocks, top))
    ran = {str(n.target) for n in traced.graph.nodes if n.op == "call_module"}
    idle = idle_modules(
        module, {str(n.target) for n in traced.graph.nodes if n.op in ("call_module", "get_attr")}
    )
    if idle:
        held = sum(p.numel() for path in idle for p in module.get_submodule(path).parameters())
        shapes = " and ".join(shape_text(s) for s in samples)
        raise ImportFailed(
            f"{type(module).__name__} holds modules that do not run on a {shapes} "
            f"input in eval mode ({', '.join(idle)}: {held:,} parameters): a spec has no statement for a "
            "module that never runs, so its state_dict could not load; build the module without them "
            "(for torchvision's googlenet and inception_v3, --arg aux_logits=False)"
        )
    lines = prove(text, module, samples, ran)
    return Imported(text, name, params, lines)
