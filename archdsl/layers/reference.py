"""Each built-in layer's reference, shipped in the package: hover shows it, and docs/language.md's
layer sections are rendered from it.

The prose is package data, one Markdown file per section in `layers/docs/` (`conv.md`, `pad.md`
for pad and padto, `activations.md` for the activations), in the order `SECTIONS` lists. Where a
section shows a layer's arguments it holds the line `<!-- arguments: name -->`, which is rendered
as the argument table of the layer's signature (`argument_table`), so a table cannot differ from
the catalog. `markdown()` is the text docs/language.md holds from its `BEGIN` marker to its `END`
(tests/test_docs.py compares them; `pytest --update-goldens` rewrites them). No torch.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from . import LAYERS
from .base import Layer, Signature

#: The sections in the order docs/language.md shows them, each `layers/docs/<stem>.md`.
SECTIONS = (
    "conv",
    "convtranspose",
    "upsample",
    "resize",
    "pad",
    "pixelshuffle",
    "maxpool",
    "avgpool",
    "adaptivepool",
    "batchnorm",
    "layernorm",
    "groupnorm",
    "dropout",
    "stochasticdepth",
    "scale",
    "activations",
    "flatten",
    "view",
    "permute",
    "narrow",
    "shuffle",
    "linear",
    "token",
    "posembed",
    "attention",
    "matmul",
    "select",
    "mean",
    "windowattention",
    "partitionattention",
    "patchmerging",
    "multiscale",
    "pretrained",
)

#: The markers around the rendered sections in docs/language.md.
BEGIN = "<!-- BEGIN layer reference: rendered from archdsl/layers/docs/ (pytest --update-goldens) -->"
END = "<!-- END layer reference -->"

_ARGUMENTS = re.compile(r"^<!-- arguments: (\w+) -->$", flags=re.M)


def argument_table(spec: Layer | Signature) -> str:
    """The Markdown table of a signature's arguments: name, default, meaning."""
    rows = ["| argument | default | meaning |", "|---|---|---|"]
    rows += [f"| `{arg.name}` | {arg.shown_default} | {arg.doc} |" for arg in spec.args]
    return "\n".join(rows)


def _table(match: re.Match[str]) -> str:
    return argument_table(LAYERS[match.group(1)])


@functools.cache
def sections() -> tuple[tuple[str, str], ...]:
    """Each section as (its heading, its Markdown from the heading line on), tables rendered."""
    folder = resources.files(__package__).joinpath("docs")
    rendered = []
    for stem in SECTIONS:
        text = _ARGUMENTS.sub(_table, folder.joinpath(f"{stem}.md").read_text(encoding="utf-8"))
        rendered.append((text.split("\n", 1)[0].removeprefix("### "), text.strip() + "\n"))
    return tuple(rendered)


@functools.cache
def tabled() -> frozenset[str]:
    """The layers whose argument table some section shows."""
    folder = resources.files(__package__).joinpath("docs")
    text = "".join(folder.joinpath(f"{stem}.md").read_text(encoding="utf-8") for stem in SECTIONS)
    return frozenset(_ARGUMENTS.findall(text))


def markdown() -> str:
    """The sections as docs/language.md holds them, markers included."""
    body = "\n".join(text for _heading, text in sections())
    return f"{BEGIN}\n\n{body}\n{END}\n"


def reference(name: str) -> str | None:
    """The section that documents the layer: the one whose heading names it, else the first that
    names it in code (`relu`, `gelu(`); None for a layer no section documents (a plugin's)."""
    for heading, text in sections():
        if re.search(rf"\b{re.escape(name)}\b", heading):
            return text.strip()
    for _heading, text in sections():
        if f"`{name}`" in text or f"`{name}(" in text:
            return text.strip()
    return None
