"""A user's own layer, as a plugin package would ship it: `swish(beta=1.0)`, x·sigmoid(beta·x).

Registered through the `archdsl.layers` entry point (the tests write the entry point's metadata).
This module is imported by `archdsl check`, so it does not import torch: the module it builds is
named by its import path, `swish_torch:Swish`, and imported only when a model is built.
"""

from __future__ import annotations

from typing import Any

from archdsl.converters import number
from archdsl.layers import Arg, Module, Pointwise


class SwishLayer(Pointwise):
    name = "swish"
    torch = "swish_torch.Swish"
    doc = "x·sigmoid(beta·x)"
    args = (Arg("beta", number, "slope of the sigmoid", 1.0),)
    passed_args = ("beta",)

    def module(self, node: Any) -> Module:
        return Module("swish_torch:Swish", (), {"beta": node.args["beta"]}, {"beta": 1.0})

    def describe(self, node: Any) -> str:
        return f"swish β={node.args['beta']:g}"


class Clash(Pointwise):
    """A plugin that tries to take a built-in layer's name."""

    name = "relu"


class Keyword(Pointwise):
    """A plugin that tries to take a keyword of the language: `gate { … }` is a construct, so no
    statement could call a layer of that name."""

    name = "gate"
