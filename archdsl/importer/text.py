"""Statements → the spec's text, then `archdsl fmt`'s layout of it with true shape comments.

`Writer` decides what only a writer of statements knows: which layers share a line (`conv(…)
batchnorm relu`), which bodies fit on one, the labels that `nn.Sequential`'s numbering makes
redundant. `fmt` keeps statements on the lines they were written on, so this layout is its input,
not a second canonical layout: `_canonical` then hands the text to `fmt.format_text`, which owns
spacing, wrapping and the alignment of comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import layers
from ..codes import INEXACT
from ..grammar import keywords
from ..trivia import scan
from .ir import Expr, Ref, Stmt, Value, end_of, is_function, reserved_names, shape_text, walk_body
from .names import Names


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        text = repr(value)
        return text
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return value_text(value[0])
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_expr_text(v) for v in value) + "]"
    return str(value)


#: Optional arguments written without their name when they come first: `dropout(0.25)`.
POSITIONAL = ("p", "init")


def layer_text(op: str, args: dict[str, Any]) -> str:
    """`conv(64, kernel=7, stride=2, padding=3, bias=false)`: arguments at their default left out,
    the first required one positional, a variadic layer's list written out."""
    layer = layers.LAYERS[op]
    parts: list[str] = []
    for arg in layer.args:
        if arg.name not in args:
            continue
        value = args[arg.name]
        if layer.variadic == arg.name:
            parts.extend(_expr_text(v) for v in value) if value else parts.append("[]")
            continue
        default = arg.default
        if not arg.required and (value == default or (isinstance(default, tuple) and _same(value, default))):
            continue
        # positional only where the call reads it so: the layer's first argument
        if (arg.required or (arg.name in POSITIONAL and arg is layer.args[0])) and not parts:
            parts.append(_expr_text(value))
        else:
            parts.append(f"{arg.name}={_expr_text(value)}")
    return f"{op}({', '.join(parts)})" if parts else op


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, tuple) and tuple(a) == tuple(b)


def _expr_text(value: Any) -> str:
    if isinstance(value, Ref):
        assert value.value.name is not None, "a value read by name has a name"
        return value.value.name
    return value.text if isinstance(value, Expr) else value_text(value)


def name_text(name: str, keyword_ok: bool = True) -> str:
    """`name` as the spec writes it: bare where the grammar takes it, else quoted. A statement's
    `name:` may be a keyword (ConvNeXt's `block:`), except the three that start an expression or a
    file's import."""
    keyword = name in keywords() and (not keyword_ok or name in ("import", "true", "false"))
    return name if name.isidentifier() and not keyword else f'"{name}"'


WIDTH = 100


@dataclass
class Line:
    indent: int
    text: str
    shape: tuple[int, ...] | None = None
    #: a line of layers only, which a following unnamed layer may join
    joinable: bool = False


def _named_by_group(group: Stmt) -> Value | None:
    """What a group gives, where its last statement names it and nothing else in it is named: the
    group names it (`rgb: { … } as x`)."""
    last = end_of(group.body, -1)
    if last is None or len(last.gives) != 1 or last.gives[0].name is None:
        return None
    if any(v.name is not None for s in walk_body(group.body) if s is not last for v in s.gives):
        return None
    return last.gives[0]


def _source_text(s: Stmt) -> str:
    return f"{s.source.name} -> " if s.source is not None else ""


def _bind_text(s: Stmt) -> str:
    """` as x`, or ` as (a, b)` for a statement that gives several values."""
    if s.bound_outside:
        return ""
    if len(s.gives) > 1:
        return f" as ({', '.join(v.name or '_' for v in s.gives)})"
    if s.gives and s.gives[0].name is not None:
        return f" as {s.gives[0].name}"
    return ""


def _flowing(s: Stmt) -> bool:
    """Whether a statement reads or gives a value by name."""
    return s.source is not None or bool(_bind_text(s))


class Writer:
    """Statements → lines, a shape comment on each; `count` follows each module's member numbers,
    so a member named as `nn.Sequential` would number it is written without its name."""

    def __init__(self, in_block: bool = False) -> None:
        self.lines: list[Line] = []
        self.in_block = in_block

    def body(self, statements: list[Stmt], indent: int, count: list[int]) -> None:
        for statement in statements:
            self.statement(statement, indent, count)

    def _label(self, statement: Stmt, count: list[int]) -> str:
        name = statement.name
        if is_function(statement):
            return ""
        number = count[0]
        count[0] += 1
        return "" if name is None or name == str(number) else f"{name_text(name)}: "

    def statement(self, s: Stmt, indent: int, count: list[int]) -> None:
        source, bind = _source_text(s), _bind_text(s)
        shape = s.output if len(s.gives) <= 1 else None
        if s.kind == "layer":
            label = self._label(s, count)
            text = label + layer_text(s.op, s.args)
            last = self.lines[-1] if self.lines else None
            if (
                not label
                and not source
                and not is_function(s)
                and layers.LAYERS[s.op].kind not in ("conv", "linear")
                and last is not None
                and last.joinable
                and last.indent == indent
                and indent * 4 + len(last.text) + len(text) + len(bind) + 1 <= WIDTH - 20
            ):
                last.text += " " + text + bind
                last.shape = shape
                last.joinable = not bind
                return
            self.lines.append(
                Line(indent, source + text + bind, shape, joinable=not is_function(s) and not bind)
            )
            return
        if s.kind == "call":
            label = self._label(s, count)
            self.lines.append(Line(indent, source + label + call_text(s) + bind, shape))
            return
        if s.kind in ("group", "plain"):
            label = self._label(s, count)
            named, bind, shape = _named_by_group(s), "", s.output
            if named is not None:
                ending = end_of(s.body, -1)
                ending.bound_outside = True  # type: ignore[union-attr]
                bind = f" as {named.name}"
                # a block's shapes are its first call's, and `check` does not hold a comment after
                # `} as x` to the shapes of the others
                shape = None if self.in_block else shape
            self.block_of(source + label + "{", s.body, indent, shape, [0], bind)
            return
        if s.kind == "repeat":
            head = f"*repeat {_expr_text(s.count)}" + (f" as {s.index}" if s.index else "") + " {"
            inner = [count[0]]
            self.block_of(source + head, s.body, indent, s.output, inner, bind)
            # after a repeat of a parameter's count, numbers are not known: names are written
            count[0] += (inner[0] - count[0]) * s.count if isinstance(s.count, int) else -(10**9)
            return
        if s.kind == "residual":
            self.lines.append(Line(indent, source + "*residual {"))
            self.body(s.body, indent + 1, count)
            if s.shortcut is not None:
                count[0] += 1
                # `shortcut` is what an unnamed clause is called (and a keyword, so not a name there)
                name = s.shortcut.name
                self.block_of(
                    "shortcut {" if name in (None, "shortcut") else f"shortcut {name_text(name, False)} {{",
                    s.shortcut.body,
                    indent + 1,
                    None if self.in_block else s.output,  # `check` holds no comment there to a block's calls
                    [0],
                )
            self.lines.append(Line(indent, "}" + bind, s.output))
            return
        if s.kind == "gate":
            self.block_of(source + "*gate {", s.body, indent, s.output, count, bind)
            return
        if s.kind == "concat":
            split = s.args.get("split")
            head = "*concat" + (f"(split={value_text(split)})" if split is not None else "") + " {"
            self.lines.append(Line(indent, source + head))
            for branch in s.body:
                if branch.spliced:
                    self.block_of("*branch {", branch.body, indent + 1, None, count)
                else:
                    count[0] += 1
                    self.block_of(
                        f"branch {name_text(branch.name or '', keyword_ok=False)} {{",
                        branch.body,
                        indent + 1,
                        None,
                        [0],
                    )
            self.lines.append(Line(indent, "}" + bind, s.output))
            return
        raise AssertionError(s.kind)

    def block_of(
        self,
        head: str,
        body: list[Stmt],
        indent: int,
        shape: tuple[int, ...] | None,
        count: list[int],
        tail: str = "",
    ) -> None:
        """`head body }`, on one line when the body is a few layers or calls and fits."""
        trial = [count[0]]
        inline = [self.one_line(b, trial) for b in body]
        text = f"{head} {' '.join(str(t) for t in inline)} }}{tail}" if body else f"{head} }}{tail}"
        if None not in inline and indent * 4 + len(text) <= WIDTH - 10:
            count[0] = trial[0]
            self.lines.append(Line(indent, text, shape))
            return
        self.lines.append(Line(indent, head))
        self.body(body, indent + 1, count)
        self.lines.append(Line(indent, "}" + tail, shape))

    def one_line(self, s: Stmt, count: list[int]) -> str | None:
        """A statement's text when it takes one line (an unnamed layer, a call, a repeat of one)."""
        if _flowing(s):
            return None
        if s.kind == "layer" and is_function(s):
            return layer_text(s.op, s.args)
        if s.kind == "layer" and (s.name is None or s.name == str(count[0])):
            count[0] += 1
            return layer_text(s.op, s.args)
        if s.kind == "call":
            return self._label(s, count) + call_text(s)
        if s.kind == "repeat" and len(s.body) == 1 and isinstance(s.count, int):
            start = count[0]
            inner = self.one_line(s.body[0], count)
            if inner is None:
                return None
            count[0] = start + (count[0] - start) * s.count
            head = f"*repeat {s.count}" + (f" as {s.index}" if s.index else "")
            return f"{head} {{ {inner} }}"
        return None

    def text(self) -> list[str]:
        width = max((4 * line.indent + len(line.text) for line in self.lines if line.shape), default=0)
        column = min(width + 2, WIDTH - 24)
        out = []
        for line in self.lines:
            text = "    " * line.indent + line.text
            if line.shape:  # `fmt --shapes` writes the `[]` of one number a sample
                text = f"{text.ljust(column)}  # {shape_text(line.shape)}"
            out.append(text.rstrip())
        return out


def call_text(s: Stmt) -> str:
    if not s.args:
        return f"{s.op}()"
    return f"{s.op}({', '.join(_expr_text(v) for v in s.args.values())})"


def _output_text(outputs: list[tuple[str | None, Value]]) -> str:
    return "output " + ", ".join(
        (f"{k}: " if k.isidentifier() and k not in keywords() else f'"{k}": ') + v.name  # type: ignore[operator]
        if k is not None
        else v.name or "_"
        for k, v in outputs
    )


@dataclass
class Model:
    """What the spec's model is made of."""

    name: str
    #: each input's shape and value
    inputs: list[tuple[tuple[int, ...], Value]]
    body: list[Stmt]
    #: each output (its key where the model returns a dict)
    outputs: list[tuple[str | None, Value]]
    returns: str  # one | tuple | dict


def spec_text(model: Model, blocks: list[Any], header: list[str]) -> str:
    lines = [f"# {h}" if h else "#" for h in header]
    reserved = reserved_names([b.name for b in blocks])
    for block in blocks:
        names = Names(block.depth, reserved | {p.split(":")[0] for p in block.params})
        fixed = dict(zip(block.tensors, [v.name for v in block.tensors], strict=True))
        for value in [block.entry, *block.tensors]:
            names.make([value])
        last = names.flow(block.body, block.entry)
        speaks = len(block.outputs) > 1 or (block.outputs and block.outputs[0] is not last)
        if speaks:
            for value in block.outputs:
                names.read(value)
        names.assign(fixed)
        writer = Writer(in_block=True)
        if block.entry.name is not None:
            writer.lines.append(Line(1, f"input as {block.entry.name}"))
        writer.body(block.body, 1, [0])
        if speaks:
            writer.lines.append(Line(1, _output_text([(None, v) for v in block.outputs])))
        signature = f"({', '.join(block.params)})" if block.params else ""
        lines += ["", f"block {block.name}{signature} {{", *writer.text(), "}"]
    names = Names(0, reserved)
    for _, value in model.inputs:
        names.make([value])
        if len(model.inputs) > 1:
            names.want(value)
    last = names.flow(model.body, model.inputs[-1][1])
    speaks = model.returns != "one" or model.outputs[0][1] is not last
    if speaks:
        for _, value in model.outputs:
            names.read(value)
    names.assign()
    writer = Writer()
    for shape, value in model.inputs:
        writer.lines.append(
            Line(1, f"input {shape_text(shape)}" + (f" as {value.name}" if value.name else ""))
        )
    writer.body(model.body, 1, [0])
    if speaks:
        writer.lines.append(Line(1, _output_text(model.outputs)))
    lines += ["", f"model {model.name} {{", *writer.text(), "}"]
    return "\n".join(lines) + "\n"


#: Warnings that describe the module itself at the input given, so the spec allows them: a size
#: that does not divide exactly (the module floors it as the spec does; the proof compares them).
INHERENT = (INEXACT,)


def _canonical(text: str) -> str:
    """The spec in `archdsl fmt`'s layout, with a true shape comment on each line of the model
    (and on a block's lines where every call agrees), so that neither `fmt` nor `check --strict`
    has anything to say: a warning the module itself has at this input (`INHERENT`) is marked
    allowed on its line. Text that does not check is left to `prove`, which reports it."""
    from ..fmt import FormatError, format_text
    from ..loader import Loader
    from ..pipeline import compile_file

    try:
        text = format_text(text, shapes=True)
    except FormatError:
        return text
    loader = Loader()
    loader.add_text(text, "imported.arch")
    program = compile_file("imported.arch", loader=loader)
    lines = text.split("\n")
    codes: dict[int, list[str]] = {}
    for diagnostic in program.diagnostics:
        if diagnostic.code in INHERENT and not diagnostic.is_error and not diagnostic.allowed:
            found = codes.setdefault(diagnostic.span.line - 1, [])
            if diagnostic.code not in found:
                found.append(diagnostic.code)
    if not codes:
        return text
    commented = {comment.line - 1 for comment in scan(text).comments}
    for index, found in codes.items():
        line = lines[index]
        allow = f"archdsl: allow {', '.join(found)}"
        lines[index] = f"{line}  {allow}" if index in commented else f"{line}  # {allow}"
    return format_text("\n".join(lines))
