"""Diagrams: a shaped model as graphviz DOT text, and DOT rendered to svg, png or pdf.

Consumes a `ShapedModel` (the shapes stage's output) and only formats it, like `summary`: one node
per layer labelled as the summary describes it, edges labelled with the tensor shape flowing along
them, blocks as clusters, concat as parallel branches joining in a concat node, residual as a body
beside its skip edge meeting in an add node. The DOT text is generated here, deterministically,
with every label an escaped HTML-like label; graphviz's `dot` program only lays it out. No torch.

Node ids are the statements' module paths (`"layer2.0.0.body.3"`), so adding a layer changes no
other layer's id; nodes that are not modules carry a suffix no path can contain (`":input"`,
`"layer2.0.0:add"`).
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import layers
from .atomic import atomic_path, write_text
from .errors import visible
from .shapes import Shape, Shaped, ShapedModel, fmt
from .summary import describe, human

FORMATS = ("svg", "png", "pdf", "dot")
SUFFIXES = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
RANKDIRS = ("TB", "LR")
DOT_MISSING = (
    "graphviz's `dot` was not found: install it with `apt-get install graphviz` "
    "(or brew install graphviz); --format dot works without it"
)
FONT = "Helvetica,Arial,sans-serif"
NODESEP = 0.25  # inches between nodes side by side
PNG_OPTIONS = ("-Gdpi=144",)  # graphviz's default 96 dpi is blurry on today's screens


class RenderError(Exception):
    """`dot` is missing or failed; the message says what to do."""


# --- style ----------------------------------------------------------------------------------------

#: fill and border colour by layer kind; a light fill keeps the black text readable.
COLORS = {
    "conv": ("#dbe9f6", "#5b8fc7"),
    "pool": ("#dcefdc", "#5fa35f"),
    "norm": ("#fff2c4", "#c9a53a"),
    "activation": ("#fde3cf", "#dd8a4a"),
    "linear": ("#e6dcf2", "#8a6aad"),
    "dropout": ("#eeeeee", "#9a9a9a"),
    "reshape": ("#f8dada", "#c46060"),
    "merge": ("#f6dcec", "#b0508a"),
    "block": ("#f0f0f0", "#7a7a7a"),
    "io": ("#ffffff", "#333333"),
    "other": ("#ffffff", "#888888"),
}

CLUSTER = {"style": "rounded,filled", "color": "#b8c2d0", "fontsize": "10", "labeljust": "l"}

#: cluster fill by what the cluster is; nested clusters stay distinguishable by their border.
CLUSTER_COLORS = {"block": "#f4f7fb", "repeat": "#fbf6ea", "iteration": "#fffdf6", "other": "#f7f7f7"}


# --- escaping -------------------------------------------------------------------------------------


def _text(value: str) -> str:
    """Text for an HTML-like label: markup characters escaped, control characters made visible, so
    a name, a string or a file path cannot end the label or inject attributes."""
    return html.escape(visible(value), quote=True)


def _id(value: str) -> str:
    """A quoted DOT ID; module paths never need the escapes, but a quote must never end it early."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _Html(str):
    """An HTML-like label, already escaped: written as `<…>`, never quoted."""


def _label(*lines: tuple[str, str]) -> _Html:
    """An HTML-like label from (style, text) lines; style is "b" (bold), "small" or ""."""
    parts = []
    for style, text in lines:
        body = _text(text)
        if style == "b":
            body = f"<B>{body}</B>"
        elif style == "small":
            body = f'<FONT POINT-SIZE="9" COLOR="#555555">{body}</FONT>'
        parts.append(body)
    return _Html("<" + "<BR/>".join(parts) + ">")


def _attrs(attrs: dict[str, str]) -> str:
    """Attributes in the order given; HTML-like labels as they are, other values quoted."""
    items = [f"{key}={value if isinstance(value, _Html) else _id(value)}" for key, value in attrs.items()]
    return "[" + ", ".join(items) + "]"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def block_call(node: Shaped) -> str:
    """`Stage(width=128)`: the block's name with the values of its parameters (its `args`)."""
    if not node.args:
        return node.op
    return f"{node.op}(" + ", ".join(f"{k}={_value(v)}" for k, v in node.args.items()) + ")"


# --- the walk -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Port:
    """The end of the diagram so far: the node a tensor leaves and the text for its edge."""

    node: str
    text: str


@dataclass(frozen=True)
class _Options:
    depth: int | None
    expand: bool
    rankdir: str


def _shapes(first: Shape, last: Shape | None, passes: int) -> str:
    """One shape, or the first and last pass's shapes of a repeat drawn once."""
    if last is None or last == first:
        return fmt(first)
    return f"{fmt(first)} → … → {fmt(last)}" if passes > 2 else f"{fmt(first)} → {fmt(last)}"


def _vary(first: str, last: str | None, passes: int) -> str:
    if last is None or last == first:
        return first
    return f"{first} → … → {last}" if passes > 2 else f"{first} → {last}"


class _Writer:
    def __init__(self, options: _Options) -> None:
        self.options = options
        self.lines: list[str] = []
        # Edges are written after every node and cluster, at the top level: an edge written inside a
        # cluster would make its other end, a node outside, a member of that cluster too.
        self.edges: list[str] = []
        self.targets: dict[str, list[str]] = {}
        # (id, title width, line) of the spacers of clusters opened and still without a first node
        self.spacers: list[tuple[str, float, int]] = []
        self.indent = 1

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def node(self, node_id: str, label: str, kind: str, **extra: str) -> None:
        fill, border = COLORS[kind]
        attrs = {"label": label, "fillcolor": fill, "color": border, **extra}
        self.emit(f"{_id(node_id)} {_attrs(attrs)}")
        self.beside_spacers(node_id)

    def beside_spacers(self, node_id: str) -> None:
        """Puts the spacers of the clusters just opened left of `node_id`, their first node, in order."""
        if not self.spacers:
            return
        # Nested clusters opened together share the row: each spacer adds only what the spacers
        # inside it (and the gaps between them) leave short of its own title's width (in inches,
        # about 0.07 a character).
        inside = 0.0
        for spacer, title_width, line in reversed(self.spacers):
            width = max(title_width - inside, 0.01)
            inside += width + NODESEP
            attrs = {"label": "", "shape": "none", "style": "", "width": f"{width:.2f}", "height": "0.01"}
            self.lines[line] += f"{_id(spacer)} {_attrs({**attrs, 'fixedsize': 'true'})}"
        row = [spacer for spacer, _, _ in self.spacers] + [node_id]
        self.edges.append("    {rank=same; " + " -> ".join(_id(n) for n in row) + ' [style="invis"]}')
        self.spacers.clear()

    def edge(self, port: _Port, target: str, **extra: str) -> None:
        self.targets.setdefault(port.node, []).append(target)
        attrs = {"label": _label(("", port.text)), **extra} if port.text else dict(extra)
        self.edges.append(f"    {_id(port.node)} -> {_id(target)}" + (f" {_attrs(attrs)}" if attrs else ""))

    def open_cluster(self, path: str, title: str, kind: str, *, bold: bool = True) -> None:
        self.emit(f"subgraph {_id('cluster_' + path)} {{")
        self.indent += 1
        # Cluster style is set on each cluster: set on the graph it would also restyle the title.
        fill = CLUSTER_COLORS.get(kind, CLUSTER_COLORS["other"])
        label = _label(("b" if bold else "", title))
        self.emit(f"graph {_attrs({'label': label, 'fillcolor': fill, **CLUSTER})}")
        if self.options.rankdir == "TB":
            # Top to bottom, edges enter a cluster near the middle of its top, across a long title.
            # An empty node as wide as the title, left of the cluster's first node (see
            # `beside_spacers`), keeps what is under the title clear of them.
            self.emit("")  # the spacer, written once its width is known
            self.spacers.append((f"{path}:spacer", len(title) * 0.07, len(self.lines) - 1))

    def close_cluster(self) -> None:
        self.indent -= 1
        self.emit("}")

    # A drawn statement may stand for several passes of a repeat drawn once: `twins` are the same
    # statements in the last pass, used only for the text of labels, and `passes` how many there are.

    def sequence(
        self, nodes: Sequence[Shaped], twins: Sequence[Shaped] | None, port: _Port, level: int, passes: int
    ) -> _Port:
        for index, node in enumerate(nodes):
            twin = twins[index] if twins is not None else None
            port = self.statement(node, twin, port, level, passes)
        return port

    def statement(self, node: Shaped, twin: Shaped | None, port: _Port, level: int, passes: int) -> _Port:
        out = _shapes(node.output, twin.output if twin else None, passes)
        if node.kind == "layer":
            kind = layers.LAYERS[node.op].kind
            text = _vary(describe(node), describe(twin) if twin else None, passes)
            # a name that only repeats the op (`relu: relu`) is not written twice
            named = node.label is not None and node.label != node.op
            lines = [("b", node.label or ""), ("", text)] if named else [("", text)]
            self.node(node.path, _label(*lines), kind)
            self.edge(port, node.path)
            return _Port(node.path, out)
        if node.kind == "block":
            return self.block(node, twin, port, level, passes, out)
        if node.kind == "repeat":
            return self.repeat(node, twin, port, level, passes, out)
        if node.kind == "concat":
            return self.concat(node, twin, port, level, passes, out)
        if node.kind == "residual":
            return self.residual(node, twin, port, level, passes, out)
        if node.kind == "gate":
            return self.gate(node, twin, port, level, passes, out)
        if node.kind == "group":
            self.open_cluster(node.path, node.label or "group", "other")
            port = self.sequence(node.children, twin.children if twin else None, port, level + 1, passes)
            self.close_cluster()
            return _Port(port.node, out)
        # a kind this version does not know: drawn as one box rather than dropped
        self.node(node.path, _label(("", describe(node))), "other")
        self.edge(port, node.path)
        return _Port(node.path, out)

    def fork(self, node: Shaped, port: _Port) -> _Port:
        """A point where a tensor splits (into branches, or a body and its shortcut): the shape is
        written once, on the edge into it, and the split stays inside the statement's cluster."""
        fork = f"{node.path}:fork"
        self.emit(f"{_id(fork)} {_attrs({'shape': 'point', 'width': '0.07', 'color': '#777777'})}")
        self.beside_spacers(fork)
        self.edge(port, fork, arrowhead="none")
        return _Port(fork, "")

    def block(
        self, node: Shaped, twin: Shaped | None, port: _Port, level: int, passes: int, out: str
    ) -> _Port:
        call = block_call(node)
        depth = self.options.depth
        if depth is not None and level >= depth:
            lines = [("b", node.label)] if node.label else []
            lines += [("", call), ("small", f"{human(node.params)} params" if node.params else "no params")]
            self.node(node.path, _label(*lines), "block", peripheries="2")
            self.edge(port, node.path)
            return _Port(node.path, out)
        self.open_cluster(node.path, f"{node.label}: {call}" if node.label else call, "block")
        port = self.sequence(node.children, twin.children if twin else None, port, level + 1, passes)
        self.close_cluster()
        return _Port(port.node, out)

    def repeat(
        self, node: Shaped, twin: Shaped | None, port: _Port, level: int, passes: int, out: str
    ) -> _Port:
        count = node.args.get("count", len(node.children))
        name = f"{node.label}: " if node.label else ""
        if not node.children:  # repeat 0 passes its input through
            self.node(node.path, _label(("", f"{name}repeat ×0")), "other")
            self.edge(port, node.path)
            return _Port(node.path, out)
        self.open_cluster(node.path, f"{name}repeat ×{count}", "repeat")
        if self.options.expand:
            for index, iteration in enumerate(node.children):
                other = twin.children[index] if twin else None
                self.open_cluster(iteration.path, describe(iteration), "iteration", bold=False)
                port = self.sequence(
                    iteration.children, other.children if other else None, port, level, passes
                )
                self.close_cluster()
        else:
            last = (twin or node).children[-1]
            port = self.sequence(node.children[0].children, last.children, port, level, passes * count)
        self.close_cluster()
        return _Port(port.node, out)

    def concat(
        self, node: Shaped, twin: Shaped | None, port: _Port, level: int, passes: int, out: str
    ) -> _Port:
        def joined(concat: Shaped) -> str:
            channels = [str(b.output[0]) for b in concat.children]
            return f"concat {'+'.join(channels)} = {concat.output[0]}"

        text = _vary(joined(node), joined(twin) if twin else None, passes)
        merge = f"{node.path}:concat"
        port = self.fork(node, port)
        split = node.args.get("split")
        ends = []
        # graphviz orders a rank's nodes left to right, which left-to-right layout turns into bottom
        # to top: there the branches are written last first, so the first is drawn on top.
        order = list(enumerate(node.children))
        if self.options.rankdir == "LR":
            order.reverse()
        for index, branch in order:
            other = twin.children[index] if twin else None
            named = branch.label is not None
            if named:
                self.open_cluster(branch.path, f"branch {branch.label}", "other")
            # Split branches each take their share of the channels: the edge says which shape.
            given = _Port(port.node, fmt(branch.input)) if split else port
            end = self.sequence(branch.children, other.children if other else None, given, level, passes)
            if named:
                self.close_cluster()
            ends.append(_Port(end.node, _shapes(branch.output, other.output if other else None, passes)))
        # The branches start side by side: without this, labelled edges of unequal branches let a
        # short branch's first layer sink a rank or two.
        heads = [t for t in self.targets.get(port.node, []) if t != merge]
        if len(heads) > 1:
            self.edges.append("    {rank=same; " + " ".join(_id(h) + ";" for h in heads) + "}")
        lines = [("b", node.label), ("", text)] if node.label else [("", text)]
        self.node(merge, _label(*lines), "merge")
        for end in ends:
            self.edge(end, merge)
        return _Port(merge, out)

    def gate(
        self, node: Shaped, twin: Shaped | None, port: _Port, level: int, passes: int, out: str
    ) -> _Port:
        """The body from a fork, its result and the input itself meeting in a × node."""
        port = self.fork(node, port)
        end = self.sequence(node.children, twin.children if twin else None, port, level, passes)
        merge = f"{node.path}:mul"
        if node.label:
            self.node(merge, _label(("b", node.label), ("", "×")), "merge")
        else:
            self.node(merge, _label(("b", "×")), "merge", shape="circle", width="0.3", fixedsize="true")
        self.edge(end, merge)
        self.edge(port, merge, style="dashed", tooltip="the gated input")
        return _Port(merge, out)

    def residual(
        self, node: Shaped, twin: Shaped | None, port: _Port, level: int, passes: int, out: str
    ) -> _Port:
        body = [c for c in node.children if c.kind != "shortcut"]
        shortcut = next((c for c in node.children if c.kind == "shortcut"), None)
        body_twin = [c for c in twin.children if c.kind != "shortcut"] if twin else None
        port = self.fork(node, port)
        end = self.sequence(body, body_twin, port, level, passes)
        merge = f"{node.path}:add"
        title = [("b", node.label), ("", "+")] if node.label else [("b", "+")]
        if node.label:
            self.node(merge, _label(*title), "merge")
        else:
            self.node(merge, _label(*title), "merge", shape="circle", width="0.3", fixedsize="true")
        self.edge(end, merge)
        if shortcut is None:
            self.edge(port, merge, style="dashed", tooltip="identity shortcut")
        elif shortcut.op == "path":
            twin_short = next((c for c in twin.children if c.kind == "shortcut"), None) if twin else None
            self.open_cluster(
                shortcut.path, f"shortcut {shortcut.label}" if shortcut.label else "shortcut", "other"
            )
            end = self.sequence(
                shortcut.children, twin_short.children if twin_short else None, port, level, passes
            )
            self.close_cluster()
            out_short = _shapes(shortcut.output, twin_short.output if twin_short else None, passes)
            self.edge(_Port(end.node, out_short), merge, style="dashed")
        else:
            self.node(
                shortcut.path,
                _label(("", _shortcut(shortcut))),
                "conv" if shortcut.op == "conv" else "linear",
            )
            self.edge(port, shortcut.path, style="dashed")
            twin_short = next((c for c in twin.children if c.kind == "shortcut"), None) if twin else None
            out_short = _shapes(shortcut.output, twin_short.output if twin_short else None, passes)
            self.edge(_Port(shortcut.path, out_short), merge, style="dashed")
        return _Port(merge, out)


def _shortcut(node: Shaped) -> str:
    """`shortcut 1×1 conv, 128, /2, batchnorm`: describe's label with the projection's size."""
    parts = [describe(node), str(node.output[0])]
    stride = node.args.get("stride")
    if stride and stride != (1, 1):
        parts.append(f"/{stride[0]}" if stride[0] == stride[1] else f"/{stride[0]}×{stride[1]}")
    if node.args.get("batchnorm"):
        parts.append("batchnorm")
    return ", ".join(parts)


def dot_source(
    model: ShapedModel, *, depth: int | None = None, expand: bool = False, rankdir: str = "TB"
) -> str:
    """The model as DOT text; the same model and options always give the same text.

    `depth` N draws blocks nested deeper than N as one node each (0: every top-level block call is
    one node); `expand` draws every pass of a repeat instead of its body once, marked ×N.
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}, not {rankdir!r}")
    if depth is not None and depth < 0:
        raise ValueError(f"depth must be 0 or more, not {depth}")
    writer = _Writer(_Options(depth=depth, expand=expand, rankdir=rankdir))
    title = _label(
        ("b", model.name),
        ("small", f"{model.file} · {model.params:,} params · {human(model.macs)} MACs"),
    )
    graph = {
        "label": title,
        "labelloc": "t",
        "fontname": FONT,
        "fontsize": "13",
        "rankdir": rankdir,
        "bgcolor": "white",
        "nodesep": f"{NODESEP:g}",
        "ranksep": "0.3",
        "newrank": "true",
    }
    node = {
        "shape": "box",
        "style": "rounded,filled",
        "fontname": FONT,
        "fontsize": "11",
        "height": "0.3",
        "margin": "0.12,0.04",
        "penwidth": "1.2",
    }
    edge = {
        "fontname": FONT,
        "fontsize": "9",
        "fontcolor": "#666666",
        "color": "#777777",
        "arrowsize": "0.6",
    }
    head = [
        f"digraph {_id(model.name)} {{",
        f"    graph {_attrs(graph)}",
        f"    node {_attrs(node)}",
        f"    edge {_attrs(edge)}",
    ]
    writer.node(":input", _label(("b", f"input {fmt(model.input)}")), "io")
    port = _Port(":input", fmt(model.input))
    port = writer.sequence(model.layers, None, port, 0, 1)
    if model.output is not None:
        writer.node(":output", _label(("b", f"output {fmt(model.output)}")), "io")
        writer.edge(port, ":output")
    lines = [line for line in writer.lines if line.strip()]  # spacers of clusters left empty
    return "\n".join([*head, *lines, *writer.edges, "}"]) + "\n"


def format_of(path: str, option: str) -> str:
    """The output format `path`'s suffix names; ValueError, naming `option` (how the caller gives a
    format), when it names none."""
    suffix = os.path.splitext(path)[1].lower()
    fmt = SUFFIXES.get(suffix)
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the format from '{suffix}'; use {option}svg|png|pdf|dot")
    return fmt


def render_dot(dot: str, path: str, fmt: str) -> None:
    """Writes `dot` to `path` as `fmt` (svg, png, pdf, or the DOT text itself), atomically.

    Raises RenderError when graphviz's `dot` is missing (only `dot` output works without it) or
    fails.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "dot":
        write_text(path, dot)
        return
    program = shutil.which("dot")
    if program is None:
        raise RenderError(DOT_MISSING)
    with atomic_path(path) as temporary:
        try:
            result = subprocess.run(
                [program, f"-T{fmt}", *(PNG_OPTIONS if fmt == "png" else ()), "-o", temporary],
                input=dot.encode("utf-8"),
                capture_output=True,
                check=False,
            )
        except OSError as exc:
            raise RenderError(f"could not run graphviz's `dot` ({program}): {exc}") from None
        if result.returncode != 0:
            message = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
            raise RenderError(f"graphviz's `dot` failed: {message}")
        if not os.path.getsize(temporary):
            raise RenderError("graphviz's `dot` wrote nothing")
