"""Receptive fields: for every statement of a shaped model, which input pixels one output sees.

Consumes a `ShapedModel`'s graph (the shapes stage's output), follows the fields along its values
node by node, and reports, without torch, for each statement's output and for each spatial axis
of the input separately (rows and columns of an image; a video's frames too; a signal's positions):

- `size`: how many rows (columns) of the input image one output position depends on,
- `jump`: how many input rows apart two neighbouring output positions are (the product of strides),
- `start`: the first input row seen by output position 0; negative when it lies in the padding.

Output position i then sees input rows `start + i·jump … start + i·jump + size − 1` (clipped to the
image: padding contributes no pixels). The recurrence is the standard one (Araujo et al., "Computing
Receptive Fields of Convolutional Neural Networks", Distill 2019): a conv or pool with kernel k,
dilation d, stride s and left padding p maps (size r, jump j, start t) to
(r + (d·(k − 1))·j, j·s, t − p·j).

The choices this module makes, all conservative (the field never misses a pixel that matters):
- adaptive pools: PyTorch's bin i covers input ⌊i·n/o⌋ … ⌈(i + 1)·n/o⌉ − 1. When o divides n the bins
  are a regular pool (kernel = stride = n/o), so the field is exact; when o = 1 the one output sees
  its whole input (kernel = stride = n), and the statement is marked `whole` ("global") when both
  axes are pooled to 1. Otherwise the bins vary in width and step: the widest bin is taken as the
  kernel and the largest step as the stride, and the field is marked inexact (its size is an upper
  bound; its start positions are approximate).
- values joined (a sum, a product, a concatenation: what residuals, gates and concats lower to, and
  `add`, `mul`, `cat` themselves): the union of their fields — the widest when they are aligned,
  which they are in every usual network; the jump is the largest.
- flatten, view, and softmax over a spatial axis: every output depends on every position of its
  input, so the field becomes the union over the whole map and is marked `whole`; later layers
  (linear, …) keep it. A model whose input has no spatial axes ([F]) has no fields at all; one of
  [C, L], [C, H, W] or [C, T, H, W] has a field along each of its 1, 2 or 3 spatial axes.
- pretrained (a torchvision model or part): its inside is not known here, so conservatively every
  output sees its whole input (`whole`), as after flatten.
- layers that act on each position alone (activations, batchnorm, dropout, identity) keep it.
- layers that mix one axis (`linear` and `layernorm`: the last; `layernorm2d`, `shuffle`: the
  channels; `softmax`: its `dim`) keep the field when that axis is not H or W, and make it `whole`
  when it is (exactly, the field would be a whole row or column; `whole` bounds it).
- groupnorm: its statistics, a mean and variance per group, come from the whole map, so every
  output depends on every position: `whole`.
- permute moves H and W to other axes, and the field follows them (`Field.grid` says where they
  are): a channels-last `[H, W, C]` tensor keeps its field through `layernorm` and `linear` on C,
  as ConvNeXt's blocks do. A layer that slides a window or pools needs H and W where a [C, H, W]
  sample has them (axes 1 and 2, in either order): anywhere else it mixes the grid with other
  axes, and the field becomes `whole`. A concat joins the first axis: when that is H or W, the
  joined positions come from different places, and the field becomes `whole` too.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from fractions import Fraction

from . import layers
from .graph import Node, Shaped, ShapedModel, Value
from .layers import ADAPTIVE, WHOLE, Joins, Mixes, Permutes, Resamples, Sliding


@dataclass(frozen=True, slots=True)
class Axis:
    """The field along one axis (rows or columns) of the input image. After an upsampling the jump
    (and so sizes and starts) may be a fraction of a pixel: two outputs of a ×2 upsampling are half
    an input pixel apart."""

    size: int | Fraction
    jump: int | Fraction
    start: int | Fraction

    def window(self, kernel: int, stride: int, pad: int, dilation: int = 1) -> Axis:
        effective = dilation * (kernel - 1) + 1
        return Axis(self.size + (effective - 1) * self.jump, self.jump * stride, self.start - pad * self.jump)

    def resample(self, scale: Fraction, reach: int) -> Axis:
        """An upsampling by `scale`, each output reading `reach` inputs along the axis."""
        return Axis(self.size + (reach - 1) * self.jump, _whole_number(self.jump / scale), self.start)

    def union(self, other: Axis) -> Axis:
        start = min(self.start, other.start)
        end = max(self.start + self.size, other.start + other.size)
        return Axis(end - start, max(self.jump, other.jump), start)

    def span(self, position: int, extent: int) -> tuple[int, int]:
        """The input rows output `position` sees, as a half-open range clipped to `extent` rows."""
        first = self.start + position * self.jump
        return max(math.floor(first), 0), min(math.ceil(first + self.size), extent)


@dataclass(frozen=True, slots=True)
class Field:
    """The receptive field of one statement's output, along each spatial axis of the model's input
    in its order (`axes`: L; H and W; T, H and W); `whole`: it no longer has a spatial grid
    (flatten, linear, view, a global pool) and every output sees the union over the whole map.
    `grid`: the per-sample axes that hold those input axes now ((1, 2) in [C, H, W], (0, 1) after
    `permute(1, 2, 0)`, (1, 2, 3) in [C, T, H, W])."""

    axes: tuple[Axis, ...]
    whole: bool = False
    exact: bool = True
    grid: tuple[int, ...] = (1, 2)

    @property
    def rows(self) -> Axis:
        """An image's (or a video's) rows: the field along H."""
        return self.axes[-2]

    @property
    def cols(self) -> Axis:
        """An image's (or a video's) columns: the field along W."""
        return self.axes[-1]

    @property
    def bounded(self) -> bool:
        """Whether the sizes are upper bounds rather than exact: an adaptive pool of unequal bins,
        an interpolation, or a size that falls between whole pixels (after an upsampling)."""
        return not self.exact or any(isinstance(s, Fraction) and s.denominator != 1 for s in self.sizes())

    def sizes(self) -> tuple[int | Fraction, ...]:
        return tuple(axis.size for axis in self.axes)

    def size_text(self) -> str:
        """'212×212' (a video's '5×212×212', a signal's '9'), in whole pixels (a fraction rounded up)."""
        return "×".join(str(math.ceil(s)) for s in self.sizes())

    def text(self) -> str:
        """'212×212', '≤23×23' for an upper bound, 'global' for a field without a grid."""
        if self.whole:
            return "global"
        size = self.size_text()
        return f"≤{size}" if self.bounded else size

    def jump_text(self) -> str:
        """The jump, in input pixels: '8', '8×4', '1/2' after an upsampling."""
        if self.whole:
            return "—"
        jumps = [axis.jump for axis in self.axes]
        return str(jumps[0]) if len(set(jumps)) == 1 else "×".join(str(j) for j in jumps)


def _input(axes: int) -> Field:
    """The field of a model's input: each position sees itself, along each of its spatial axes."""
    return Field((Axis(1, 1, 0),) * axes, grid=tuple(range(1, axes + 1)))


def _whole_number(value: Fraction | int) -> Fraction | int:
    """A fraction that is whole, as an int (so fields stay in ints until an upsampling)."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    return value


def receptive_fields(model: ShapedModel) -> dict[str, Field]:
    """Each statement's field keyed by its module path; empty when the input has no spatial axes
    (or more than 3). Fields follow the graph's values, so a value read three stages later (a
    U-Net's skip) brings its own field to where it is joined. Of several inputs, those of the
    first one's rank have fields."""
    rank = len(model.input)
    if not 2 <= rank <= 4 or model.graph is None:
        return {}
    graph = model.graph
    start = _input(rank - 1)
    fields: dict[Value, Field] = {
        value: start for value in graph.inputs if value.shape and len(value.shape) == rank
    }
    for node in graph.nodes:
        given = [fields[v] for v in node.inputs if v in fields]
        if len(given) != len(node.inputs):
            continue  # it reads a value with no field (a flat input): neither has its output
        field = _node(node, given)
        for value in node.outputs:
            fields[value] = field
    found: dict[str, Field] = {}
    for record in _records(model.layers):
        if record.result is not None and record.result in fields:
            found[record.path] = fields[record.result]
    return found


def _records(records: list[Shaped]) -> list[Shaped]:
    found: list[Shaped] = []
    stack = list(reversed(records))
    while stack:
        record = stack.pop()
        found.append(record)
        stack.extend(reversed(record.children))
    return found


def _node(node: Node, given: list[Field]) -> Field:
    rule = layers.LAYERS[node.op].field(node)
    if isinstance(rule, Joins):
        result = _union(given)
        if rule.axis is not None and rule.axis in result.grid:
            # joined along H or W: neighbours come from different inputs
            result = _whole(result, node.output)
        return result
    return _layer(node, given[0])


def _union(fields: list[Field]) -> Field:
    first = fields[0]
    axes = first.axes
    for other in fields[1:]:
        axes = tuple(mine.union(theirs) for mine, theirs in zip(axes, other.axes, strict=True))
    union = Field(axes, any(f.whole for f in fields), all(f.exact for f in fields), first.grid)
    # Paths that leave H and W on different axes add positions that do not correspond.
    return union if all(f.grid == first.grid for f in fields) else replace(union, whole=True)


def _whole(field: Field, shape: tuple[int, ...]) -> Field:
    """Every output sees every position of the input map: the union over the map."""
    if field.whole or len(shape) != len(field.axes) + 1:
        return replace(field, whole=True)
    sizes = (shape[axis] for axis in field.grid)
    axes = tuple(axis.window(size, size, 0) for axis, size in zip(field.axes, sizes, strict=True))
    return replace(field, axes=axes, whole=True)


def _in_place(field: Field) -> bool:
    """Whether the input's spatial axes are where a sample of their rank has them (after C, in
    any order): where a window slides and an adaptive pool pools."""
    return sorted(field.grid) == list(range(1, len(field.axes) + 1))


def _slide(field: Field, shape: tuple[int, ...], rule: Sliding) -> Field:
    """A window over the spatial axes; each input axis's field follows wherever that axis is."""
    if not _in_place(field):
        return _whole(field, shape)  # the window slides over other axes, mixing H or W with them
    axes = tuple(
        axis.window(rule.kernel[at - 1], rule.stride[at - 1], rule.padding[at - 1], rule.dilation[at - 1])
        for axis, at in zip(field.axes, field.grid, strict=True)
    )
    return replace(field, axes=axes)


def _layer(node: Shaped, field: Field) -> Field:
    if field.whole:
        return field
    rule = layers.LAYERS[node.op].field(node)
    if isinstance(rule, Sliding):
        return _slide(field, node.input, rule)
    if isinstance(rule, Resamples):
        if not _in_place(field) or len(field.axes) != len(rule.scale):
            return _whole(field, node.input)
        axes = tuple(
            axis.resample(rule.scale[at - 1], rule.reach[at - 1])
            for axis, at in zip(field.axes, field.grid, strict=True)
        )
        return replace(field, axes=axes, exact=field.exact and rule.exact)
    if isinstance(rule, Mixes):
        return _whole(field, node.input) if set(rule.axes) & set(field.grid) else field
    if isinstance(rule, Permutes):
        return replace(field, grid=tuple(rule.dims.index(at) for at in field.grid))
    if rule == WHOLE:
        return _whole(field, node.input)
    if rule == ADAPTIVE:
        return _adaptive(node, field) if _in_place(field) else _whole(field, node.input)
    return field


def _adaptive(node: Shaped, field: Field) -> Field:
    axes = []
    exact = field.exact
    for axis, current in zip(field.grid, field.axes, strict=True):
        n, o = node.input[axis], node.output[axis]
        if n % o == 0:
            axes.append(current.window(n // o, n // o, 0))
            continue
        # Bins of varying width and step: the widest bin and the largest step bound the field.
        starts = [i * n // o for i in range(o)]
        ends = [-(-(i + 1) * n // o) for i in range(o)]
        kernel = max(e - s for s, e in zip(starts, ends, strict=True))
        step = max(b - a for a, b in itertools.pairwise(starts))
        axes.append(current.window(kernel, step, 0))
        exact = False
    whole = all(size == 1 for size in node.output[1:])
    return Field(tuple(axes), whole, exact, field.grid)
