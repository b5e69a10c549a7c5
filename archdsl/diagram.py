"""Diagrams: a shaped model as graphviz DOT text, and DOT rendered to svg, png or pdf.

Consumes a `ShapedModel` (the shapes stage's output) and only formats it, like `summary`: its
graph's nodes and values, one node per layer labelled as the summary describes it and one per
function (a sum, a concatenation), an edge per value read labelled with its shape (a value read by
several nodes leaves one point), blocks, repeats and groups as clusters from the outline. A value
read stages later (a U-Net's skip) is an edge across the clusters between; a residual's shortcut
and a gate's input are dashed. The DOT text is generated here, deterministically, with every label
an escaped HTML-like label; graphviz's `dot` program only lays it out. No torch.

Node ids are the statements' module paths (`"layer2.0.0.body.3"`), so adding a layer changes no
other layer's id; nodes that are not modules carry a suffix no path can contain (`":input"`,
`"layer2.0.0:add"`, a function statement's `"..3"`).
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from . import layers
from .atomic import atomic_path, write_text
from .errors import RenderError, visible
from .graph import Graph, Node, Shaped, ShapedModel, Value, flat_outputs
from .sizes import Shape, fmt
from .table import describe, human

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
class _Options:
    depth: int | None
    expand: bool
    rankdir: str


def _shapes(shapes: list[Shape]) -> str:
    """One shape, or the first and last of a statement drawn once for several passes of a repeat."""
    first, last = shapes[0], shapes[-1]
    if last == first:
        return fmt(first)
    distinct = len(dict.fromkeys(shapes))
    return f"{fmt(first)} → … → {fmt(last)}" if distinct > 2 else f"{fmt(first)} → {fmt(last)}"


def _vary(first: str, last: str | None, passes: int) -> str:
    if last is None or last == first:
        return first
    return f"{first} → … → {last}" if passes > 2 else f"{first} → {last}"


def _merge_label(node: Node, record: Shaped | None) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """A function's node: `+` and `×` as small circles, a concatenation with its channel sum."""
    name = record.label if record is not None else None
    if node.op in ("add", "mul"):
        sign = "+" if node.op == "add" else "×"
        if name:
            return [("b", name), ("", sign)], {}
        return [("b", sign)], {"shape": "circle", "width": "0.3", "fixedsize": "true"}
    if node.op == "cat":
        channels = [str(v.shape[0]) for v in node.inputs]  # type: ignore[index]
        text = f"concat {'+'.join(channels)} = {node.output[0]}"
    else:
        text = describe(node)
    return ([("b", name), ("", text)] if name else [("", text)]), {}


@dataclass
class _Item:
    """What the walk draws, in order: a node, or a cluster opening or closing."""

    kind: str  # node | open | close
    id: str = ""
    label: _Html | None = None
    style: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    title: str = ""
    bold: bool = True


class _Walk:
    """Decides what is drawn: a node per layer and per function, clusters for blocks, repeats and
    groups; and which drawn node stands for each node of the graph (itself; the first pass's twin
    of a repeat drawn once; the block drawn as one node)."""

    def __init__(self, options: _Options):
        self.options = options
        self.items: list[_Item] = []
        self.ids: dict[Node, str] = {}
        #: The nodes a drawn node stands for, in pass order (for the labels of repeats drawn once).
        self.stands_for: dict[str, list[Node]] = {}

    def draw(self, node_id: str, label: _Html, style: str, **extra: str) -> None:
        self.items.append(_Item("node", node_id, label, style, extra))

    def records(self, records: list[Shaped], level: int, passes: int) -> None:
        for record in records:
            self.record(record, level, passes)

    def record(self, record: Shaped, level: int, passes: int) -> None:
        if isinstance(record, Node):
            self.layer(record)
            return
        kind = record.kind
        if kind == "block":
            depth = self.options.depth
            if depth is not None and level >= depth:
                self.collapse(record)
                return
            call = block_call(record)
            self.open(record.path, f"{record.label}: {call}" if record.label else call, "block")
            self.composite(record, level + 1, passes)
            self.close()
        elif kind == "repeat":
            self.repeat(record, level, passes)
        elif kind == "group":
            self.open(record.path, record.label or "group", "other")
            self.composite(record, level + 1, passes)
            self.close()
        elif kind in ("branch", "shortcut") and record.label is not None:
            self.open(record.path, f"{kind} {record.label}", "other")
            self.composite(record, level, passes)
            self.close()
        elif kind == "shortcut":
            self.open(record.path, "shortcut", "other")
            self.composite(record, level, passes)
            self.close()
        else:
            self.composite(record, level, passes)

    def composite(self, record: Shaped, level: int, passes: int) -> None:
        """A statement's children, with the functions its construct made: a split before them,
        a join after."""
        before = [j for j in record.joins if j.op == "split"]
        after = [j for j in record.joins if j.op != "split"]
        for join in before:
            self.join(join, record)
        self.records(record.children, level, passes)
        for join in after:
            self.join(join, record)

    def layer(self, node: Node) -> None:
        if not node.member:
            self.join(node, None)
            return
        kind = layers.LAYERS[node.op].kind
        # a name that only repeats the op (`relu: relu`) is not written twice
        named = node.label is not None and node.label != node.op
        self.ids[node] = node.path
        self.stands_for[node.path] = [node]
        self.items.append(_Item("node", node.path, None, kind, {"named": "1" if named else ""}))

    def join(self, node: Node, record: Shaped | None) -> None:
        self.ids[node] = node.path
        self.stands_for[node.path] = [node]
        self.items.append(_Item("node", node.path, None, layers.LAYERS[node.op].kind, {"function": "1"}))
        self.join_records[node.path] = record

    join_records: dict[str, Shaped | None]

    def collapse(self, record: Shaped) -> None:
        """A block drawn as one node, standing for every node inside it."""
        call = block_call(record)
        lines = [("b", record.label)] if record.label else []
        lines += [("", call), ("small", f"{human(record.params)} params" if record.params else "no params")]
        self.items.append(_Item("node", record.path, _label(*lines), "block", {"peripheries": "2"}))
        for node in _nodes(record):
            self.ids[node] = record.path
        self.stands_for[record.path] = []

    def repeat(self, record: Shaped, level: int, passes: int) -> None:
        count = record.args.get("count", len(record.children))
        name = f"{record.label}: " if record.label else ""
        if not record.children:  # repeat 0 runs nothing: its input goes straight on
            return
        self.open(record.path, f"{name}repeat ×{count}", "repeat")
        first, rest = record.children[0], record.children[1:]
        aligned = all(_aligned(first, other) for other in rest)
        if self.options.expand or not aligned:
            for iteration in record.children:
                self.open(iteration.path, describe(iteration), "iteration", bold=False)
                self.composite(iteration, level, passes)
                self.close()
        else:
            self.composite(first, level, passes * len(record.children))
            for other in rest:
                for mine, theirs in zip(_nodes(first), _nodes(other), strict=True):
                    drawn = self.ids[mine]
                    self.ids[theirs] = drawn
                    if self.stands_for.get(drawn):
                        self.stands_for[drawn].append(theirs)
        self.close()

    def open(self, path: str, title: str, kind: str, *, bold: bool = True) -> None:
        self.items.append(_Item("open", path, style=kind, title=title, bold=bold))

    def close(self) -> None:
        self.items.append(_Item("close"))


def _nodes(record: Shaped) -> list[Node]:
    """Every graph node a statement made, in order (its layers, and its constructs' functions)."""
    if isinstance(record, Node):
        return [record]
    found: list[Node] = [j for j in record.joins if j.op == "split"]
    for child in record.children:
        found.extend(_nodes(child))
    found.extend(j for j in record.joins if j.op != "split")
    return found


def _aligned(first: Shaped, other: Shaped) -> bool:
    """Whether two passes of a repeat made the same statements (so one can be drawn for both)."""
    mine, theirs = _nodes(first), _nodes(other)
    return len(mine) == len(theirs) and all(a.op == b.op for a, b in zip(mine, theirs, strict=True))


class _Writer:
    def __init__(self, options: _Options) -> None:
        self.options = options
        self.lines: list[str] = []
        # Edges are written after every node and cluster, at the top level: an edge written inside a
        # cluster would make its other end, a node outside, a member of that cluster too.
        self.edges: list[str] = []
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

    def point(self, node_id: str) -> None:
        self.emit(f"{_id(node_id)} {_attrs({'shape': 'point', 'width': '0.07', 'color': '#777777'})}")
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

    def edge(self, source: str, target: str, text: str, **extra: str) -> None:
        attrs = {"label": _label(("", text)), **extra} if text else dict(extra)
        self.edges.append(f"    {_id(source)} -> {_id(target)}" + (f" {_attrs(attrs)}" if attrs else ""))

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


@dataclass
class _Edge:
    source: str
    target: str
    shapes: list[Shape]
    dashed: bool
    #: Which of its source's values it carries (a split gives several).
    value: int


def _edges(graph: Graph, walk: _Walk, order: dict[str, int], inputs: dict[Value, str]) -> list[_Edge]:
    """The drawn edges: each value from the node that makes it to each node that reads it, in the
    order the graph runs, once per pair of drawn nodes (a repeat drawn once carries every pass)."""
    found: dict[tuple[str, str, int], _Edge] = {}
    for node in graph.nodes:
        target = walk.ids[node]
        for index, value in enumerate(node.inputs):
            source = inputs[value] if value.node is None else walk.ids[value.node]
            if source == target or order[source] >= order[target]:
                continue  # inside a block drawn as one node, or from one pass of a repeat to the next
            key = (source, target, value.index)
            assert value.shape is not None
            edge = found.get(key)
            if edge is None:
                found[key] = _Edge(source, target, [value.shape], index in node.skips, value.index)
            elif edge.shapes[-1] != value.shape:
                edge.shapes.append(value.shape)
    return list(found.values())


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
    if model.graph is None:
        raise ValueError(f"model {model.name} has errors; check it first")
    graph = model.graph
    options = _Options(depth=depth, expand=expand, rankdir=rankdir)
    walk = _Walk(options)
    walk.join_records = {}
    walk.records(model.layers, 0, 1)
    for record in _walk_all(model.layers):
        for join in record.joins:
            walk.join_records[join.path] = record

    # The model's inputs and outputs: one `:input` and `:output`, or one each by name.
    inputs: dict[Value, str] = {}
    for number, value in enumerate(graph.inputs):
        inputs[value] = ":input" if len(graph.inputs) == 1 else f":input:{value.name or number}"
    outputs = flat_outputs(graph)
    order: dict[str, int] = {name: -1 for name in inputs.values()}
    for item in walk.items:
        if item.kind == "node":
            order[item.id] = len(order)
    edges = _edges(graph, walk, order, inputs)
    # A value read by several drawn nodes leaves one point, its shape written once on the way in.
    targets: dict[tuple[str, int], list[_Edge]] = {}
    for edge in edges:
        targets.setdefault((edge.source, edge.value), []).append(edge)
    forks = {
        key: f"{key[0]}:fork" + (str(key[1]) if key[1] else "")
        for key, out in targets.items()
        if len(out) > 1
    }

    writer = _Writer(options)
    for value, name in inputs.items():
        assert value.shape is not None
        text = (
            f"input {fmt(value.shape)}"
            if value.name is None or len(inputs) == 1
            else f"{value.name} {fmt(value.shape)}"
        )
        writer.node(name, _label(("b", text)), "io")
        for key, fork in forks.items():
            if key[0] == name:
                writer.point(fork)
    for item in walk.items:
        if item.kind == "open":
            writer.open_cluster(item.id, item.title, item.style, bold=item.bold)
        elif item.kind == "close":
            writer.close_cluster()
        else:
            label, extra = item.label, dict(item.extra)
            if label is None:
                label, extra = _drawn_label(item, walk)
            writer.node(item.id, label, item.style, **extra)
            for key, fork in forks.items():
                if key[0] == item.id:
                    writer.point(fork)
    for edge in edges:
        key = (edge.source, edge.value)
        style = {"style": "dashed"} if edge.dashed else {}
        if key in forks:
            continue
        writer.edge(edge.source, edge.target, _shapes(edge.shapes), **style)
    written: set[str] = set()
    for key, fork in forks.items():
        out = targets[key]
        if fork not in written:
            written.add(fork)
            writer.edge(key[0], fork, _shapes(out[0].shapes), arrowhead="none")
        for edge in out:
            writer.edge(fork, edge.target, "", **({"style": "dashed"} if edge.dashed else {}))
    for number, (given, value) in enumerate(outputs):
        assert value.shape is not None
        node = ":output" if len(outputs) == 1 else f":output:{given if given is not None else number}"
        text = f"output {fmt(value.shape)}" if given is None else f"{given} {fmt(value.shape)}"
        writer.node(node, _label(("b", text)), "io")
        source = inputs[value] if value.node is None else walk.ids[value.node]
        writer.edge(source, node, fmt(value.shape))

    title = _label(
        ("b", model.name),
        ("small", f"{model.file} · {model.params:,} params · {human(model.macs)} MACs"),
    )
    attributes = {
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
    node_style = {
        "shape": "box",
        "style": "rounded,filled",
        "fontname": FONT,
        "fontsize": "11",
        "height": "0.3",
        "margin": "0.12,0.04",
        "penwidth": "1.2",
    }
    edge_style = {
        "fontname": FONT,
        "fontsize": "9",
        "fontcolor": "#666666",
        "color": "#777777",
        "arrowsize": "0.6",
    }
    head = [
        f"digraph {_id(model.name)} {{",
        f"    graph {_attrs(attributes)}",
        f"    node {_attrs(node_style)}",
        f"    edge {_attrs(edge_style)}",
    ]
    lines = [line for line in writer.lines if line.strip()]  # spacers of clusters left empty
    return "\n".join([*head, *lines, *writer.edges, "}"]) + "\n"


def _drawn_label(item: _Item, walk: _Walk) -> tuple[_Html, dict[str, str]]:
    nodes = walk.stands_for[item.id]
    node, last = nodes[0], nodes[-1]
    if item.extra.get("function"):
        lines, extra = _merge_label(node, walk.join_records.get(item.id))
        return _label(*lines), extra
    text = _vary(describe(node), describe(last) if last is not node else None, len(nodes))
    lines = [("b", node.label or ""), ("", text)] if item.extra.get("named") else [("", text)]
    return _label(*lines), {}


def _walk_all(records: list[Shaped]) -> list[Shaped]:
    found: list[Shaped] = []
    for record in records:
        found.append(record)
        found.extend(_walk_all(record.children))
    return found


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
    with atomic_path(path) as temporary:  # made before dot runs, as it always was
        drawn = run_dot(dot, fmt)
        with open(temporary, "wb") as handle:
            handle.write(drawn)


def run_dot(dot: str, fmt: str) -> bytes:
    """`dot` laid out by graphviz's `dot` program as `fmt` (svg, png or pdf): the file's bytes.
    Raises RenderError when the program is missing or fails."""
    program = shutil.which("dot")
    if program is None:
        raise RenderError(DOT_MISSING)
    try:
        result = subprocess.run(
            [program, f"-T{fmt}", *(PNG_OPTIONS if fmt == "png" else ())],
            input=dot.encode("utf-8"),
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise RenderError(f"could not run graphviz's `dot` ({program}): {exc}") from None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
        raise RenderError(f"graphviz's `dot` failed: {message}")
    if not result.stdout:
        raise RenderError("graphviz's `dot` wrote nothing")
    return result.stdout


def svg_element(svg: str) -> str:
    """An SVG file's `<svg>` element alone, without the XML declaration, doctype and comments
    before it, so that it can stand inside an HTML page (a notebook's output)."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def svg(dot: str) -> str:
    """`dot` drawn as an `<svg>` element (RenderError as `run_dot`); graphviz writes no date or
    random id, so the same DOT text always gives the same SVG."""
    return svg_element(run_dot(dot, "svg").decode("utf-8"))


class Rendered(str):
    """What `archdsl.render` returns: the format written, as it always was (`== "svg"`), with
    `.path`, the file written; a notebook shows an svg or png file as the picture."""

    path: str

    def __new__(cls, fmt: str, path: str) -> Rendered:
        rendered = super().__new__(cls, fmt)
        rendered.path = path
        return rendered

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        # copy and pickle call __new__ with these: str's own would leave out the path
        return str(self), self.path

    def __repr__(self) -> str:
        return f"Rendered({str(self)!r}, path={self.path!r})"

    # IPython's display protocol: read when the object is shown, so a file drawn again shows anew;
    # None (nothing to show this way) for another format, or a file gone since.
    def _repr_svg_(self) -> str | None:
        if self != "svg":
            return None
        try:
            with open(self.path, encoding="utf-8") as handle:
                return svg_element(handle.read())
        except OSError:
            return None

    def _repr_png_(self) -> bytes | None:
        if self != "png":
            return None
        try:
            with open(self.path, "rb") as handle:
                return handle.read()
        except OSError:
            return None
