"""The layer catalog: every built-in layer kind, and those plugins add, by name.

Each kind is one `Layer` subclass (see `base.py`) that every stage looks up here: resolve binds
its arguments, shapes runs its rule, the builder constructs its module, emit writes it, render,
summary and the receptive-field pass label and follow it. Adding a layer is adding one class.

A package adds its own layers through the `archdsl.layers` entry point group, each entry naming a
`Layer` subclass (`myswish = "mypkg.arch:Swish"` under `[project.entry-points."archdsl.layers"]`).
The module it names is imported by `archdsl check`, so it must not import torch at its top: its
`module()` names the class to build (`Module("mypkg.layers:Swish")`), imported only at build time.
"""

from __future__ import annotations

from ..grammar import keywords
from . import dense, elementwise, joins, multiscale, resample, spatial, tokens
from .base import (
    ADAPTIVE,
    JOIN,
    KEEP,
    WHOLE,
    Arg,
    Batched,
    FieldRule,
    Function,
    FunctionCall,
    Input,
    Inputs,
    Joins,
    Layer,
    Member,
    Mixes,
    Module,
    NotSymbolic,
    Parameter,
    Permutes,
    Pointwise,
    Reading,
    Resamples,
    Signature,
    SizeOf,
    Sliding,
    TensorArg,
)
from .callables import PluginError
from .joins import CONCAT, RESIDUAL

__all__ = [
    "ADAPTIVE",
    "CONCAT",
    "JOIN",
    "KEEP",
    "KEYWORD_VALUES",
    "LAYERS",
    "RESIDUAL",
    "WHOLE",
    "Arg",
    "Batched",
    "FieldRule",
    "Function",
    "FunctionCall",
    "Input",
    "Inputs",
    "Joins",
    "Layer",
    "Member",
    "Mixes",
    "Module",
    "NotSymbolic",
    "Parameter",
    "Permutes",
    "PluginError",
    "Pointwise",
    "Reading",
    "Resamples",
    "Signature",
    "SizeOf",
    "Sliding",
    "TensorArg",
    "find",
    "load_plugins",
    "names",
    "register",
]

ENTRY_POINTS = "archdsl.layers"

LAYERS: dict[str, Layer] = {}


def register(layer: type[Layer] | Layer, origin: str = "") -> Layer:
    """Adds a layer kind to the catalog (an instance is made of a class). A name already taken is
    refused: a plugin never silently replaces a built-in layer or another plugin's."""
    instance = layer() if isinstance(layer, type) else layer
    name = getattr(instance, "name", None)
    where = f" (from {origin})" if origin else ""
    if not isinstance(instance, Layer) or not isinstance(name, str) or not name.isidentifier():
        raise PluginError(f"{instance!r}{where} is not a Layer with a `name` that is an identifier")
    if name in KEYWORDS:
        raise PluginError(
            f"the layer name '{name}'{where} is a keyword of the language, so no statement could call it"
        )
    if name in LAYERS:
        raise PluginError(f"the layer name '{name}'{where} is already taken")
    LAYERS[name] = instance
    return instance


_plugins_loaded = False


def find(name: str) -> Layer | None:
    """The layer kind `name`; plugins are looked for on the first name that is not built in, so a
    spec that uses none never pays for scanning the installed packages."""
    layer = LAYERS.get(name)
    if layer is None and not _plugins_loaded:
        load_plugins()
        layer = LAYERS.get(name)
    return layer


def names() -> list[str]:
    """Every layer name, plugins included (for did-you-mean hints and the docs)."""
    if not _plugins_loaded:
        load_plugins()
    return list(LAYERS)


def load_plugins() -> list[str]:
    """Registers the layers of every installed `archdsl.layers` entry point; returns their names."""
    global _plugins_loaded
    from importlib import metadata

    _plugins_loaded = True
    added = []
    for entry in metadata.entry_points(group=ENTRY_POINTS):
        try:
            layer = entry.load()
        except Exception as exc:  # a broken plugin is reported, never a traceback
            raise PluginError(
                f"the archdsl layer plugin '{entry.name}' ({entry.value}) failed to load: {exc}"
            ) from None
        added.append(register(layer, origin=entry.value).name)
    return added


#: The language's own words (read from its grammar), which no layer may take.
KEYWORDS = keywords()

for _family in (spatial, resample, elementwise, dense, joins, tokens, multiscale):
    for _layer in _family.LAYERS:
        register(_layer)

#: Names the language gives meaning to as bare values.
KEYWORD_VALUES = ("same", "project", "identity")
