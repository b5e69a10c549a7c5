"""Rewrites of the traced graph before it is read: forms PyTorch code writes one way and the
language another (an expanded gate, self-attention's three equal arguments, a learnt token or
position embedding joined with the sequence, DenseNet's growing concatenation).
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

from .nodes import _is_cat, _is_one_tensor, _is_product, _is_sum, _stack

if TYPE_CHECKING:
    from torch import fx, nn


def implicit_broadcasts(graph: fx.Graph) -> None:
    """`x * y.expand_as(x)` (or `y.expand(...)`), as squeeze-and-excitation is often written, is
    `x * y`: the product broadcasts the gate anyway, so the expansion is dropped and the product
    read as a gate. An expansion used for anything else stays, and is refused with its line."""
    for node in list(graph.nodes):
        if not (node.op == "call_method" and node.target in ("expand_as", "expand")):
            continue
        users = list(node.users)
        if users and all(_is_product(u) for u in users):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)


def self_attention(graph: fx.Graph, root: nn.Module) -> None:
    """`attn(x, x, x, need_weights=False)[0]` of an `nn.MultiheadAttention` (torchvision's ViT): the
    call reads x once and is its first result, as `attention` writes it. Any other call (cross
    attention, the weights read) stays, and is refused with its line."""
    from torch import nn as torch_nn

    for node in list(graph.nodes):
        if node.op != "call_module" or not isinstance(
            root.get_submodule(str(node.target)), torch_nn.MultiheadAttention
        ):
            continue
        queries = node.args[:3]
        users = list(node.users)
        firsts = all(u.target is operator.getitem and u.args[1] == 0 for u in users)
        if (
            len(queries) != 3
            or len(set(queries)) != 1
            or not users
            or not firsts
            or node.kwargs.get("attn_mask") is not None
        ):
            continue
        node.args, node.kwargs = (queries[0],), {}
        node.meta["tensor_meta"] = users[0].meta["tensor_meta"]
        for user in users:
            user.replace_all_uses_with(node)
            graph.erase_node(user)


def learnt_tensors(graph: fx.Graph, root: nn.Module) -> None:
    """A parameter of the module that a value is joined with as `token` and `posembed` write it:
    `torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)` puts learnt tokens before a
    sequence, `x + self.pos_embedding` adds a tensor of the sample's shape. Each is marked with the
    parameter it reads (`meta["learnt"]`) and made to read x alone."""
    import torch
    from torch import fx

    def parameter(value: Any) -> str | None:
        if isinstance(value, fx.Node) and value.op == "get_attr":
            try:
                root.get_parameter(str(value.target))
            except AttributeError:
                return None
            return str(value.target)
        return None

    for node in list(graph.nodes):
        if node.target in (torch.cat, torch.concat) and _is_one_tensor(node):
            parts = node.args[0]
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            if not isinstance(parts, (list, tuple)) or len(parts) != 2 or dim not in (1, -2):
                continue
            expanded, x = parts
            if not (
                isinstance(expanded, fx.Node) and expanded.op == "call_method" and expanded.target == "expand"
            ):
                continue
            target = parameter(expanded.args[0])
            if target is None or len(node.meta["tensor_meta"].shape) != 3:
                continue
            node.meta["learnt"] = ("token", target)
            node.args, node.kwargs = ([x],), {"dim": 1}
            if not expanded.users:
                graph.erase_node(expanded)
        elif _is_sum(node) and len(node.args) == 2:
            targets = [parameter(a) for a in node.args]
            others = [a for a, t in zip(node.args, targets, strict=True) if t is None]
            found = [t for t in targets if t is not None]
            if len(found) == 1 and len(others) == 1 and isinstance(others[0], fx.Node):
                node.meta["learnt"] = ("posembed", found[0])
                node.args = (others[0],)


def dense_concatenations(graph: fx.Graph) -> None:
    """DenseNet's concatenations, rewritten as the language writes them: torchvision concatenates
    all earlier features in each layer, `cat([x, y1, …, yk])`; that is `cat([cat([x, y1, …]), yk])`
    of the concatenation before, so each layer's concatenation joins its input and its new
    features. A concatenation of one tensor is that tensor. A two-way concatenation of a module's
    input with that module's output, written in another module's forward, moves into the module
    that made the output: it is that module's `concat { branch { } branch { … } }`."""
    import collections

    made: dict[tuple[fx.Node, ...], fx.Node] = {}
    for node in list(graph.nodes):
        if not _is_cat(node) or "learnt" in node.meta:
            continue
        inputs = list(node.args[0])
        if len(inputs) == 1:
            node.replace_all_uses_with(inputs[0])
            graph.erase_node(node)
            continue
        made[tuple(inputs)] = node
        earlier = made.get(tuple(inputs[:-1]))
        if len(inputs) > 2 and earlier is not None:
            node.args = ([earlier, inputs[-1]], *node.args[1:])
            inputs = [earlier, inputs[-1]]
        if len(inputs) != 2:
            continue
        before, new = inputs
        here = _stack(node)
        stack = list((new.meta.get("nn_module_stack") or {}).items())
        owners = stack[:-1] if new.op == "call_module" else stack
        for depth in range(len(owners), 0, -1):
            path = owners[depth - 1][1][0]
            if _is_input_of(before, path):
                if not _within(here, path) or _as_its_sibling(before, owners[depth - 1][1]):
                    node.meta["nn_module_stack"] = collections.OrderedDict(owners[:depth])
                break


def _as_its_sibling(before: fx.Node, module: tuple[str, type]) -> bool:
    """Whether `before` is a concatenation already moved into a sibling of `module` of its class
    (the block's last layer concatenates as the layers before it did)."""
    stack = list((before.meta.get("nn_module_stack") or {}).values())
    if not _is_cat(before) or not stack:
        return False
    path, cls = stack[-1]
    return cls is module[1] and path.rpartition(".")[0] == module[0].rpartition(".")[0]


def _path_of(stack: list[str]) -> str:
    return stack[-1] if stack else ""


def _within(stack: list[str], path: str) -> bool:
    """Whether the module `stack` ends at contains the module `path` (or is it)."""
    innermost = _path_of(stack)
    return innermost == "" or path == innermost or path.startswith(innermost + ".")


def _is_input_of(value: fx.Node, path: str) -> bool:
    """`value` comes from outside the module `path`, and a node of that module reads it."""
    if path in _stack(value):
        return False
    return any(path in _stack(user) for user in value.users)
