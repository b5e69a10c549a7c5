"""Editor queries over a checked document: what stands at a position, and what may be typed there.

Consumes a document's text (maybe half typed) and its path; runs the checker's own stages on it
(`program.compile_file`, the shapes, `receptive.py`, `shape_comments.py`) and answers, in
archdsl's 1-based lines and columns (counted in characters): the diagnostics, a statement's shape,
parameters, MACs and receptive field, a block's signature and docs, a layer's reference, where a
block is defined, the shape at the end of each line, the symbols, and the completions at a
position, which come from the layer and block signatures. `server.py` is the protocol around it and
converts positions at the edge. Nothing here imports torch or pygls.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .. import ir
from ..constructs import CONCAT, RESIDUAL
from ..converters import tensor, tensors
from ..errors import Diagnostic, Span, text_at
from ..layers import KEYWORD_VALUES, Arg, Layer, Signature, find, names
from ..layers.reference import argument_table, reference
from ..loader import LoadedFile, Loader, display_path
from ..pipeline import Program, compile_file
from ..resolve import nested_statements
from ..shape_comments import Statement, shape_of, shape_text, statements, walk
from ..shapes import Shaped, ShapedModel
from ..sizes import fmt
from ..trivia import Trivia, comment_pattern, scan, skip_pattern

# --- checking a document ----------------------------------------------------------------------------


class BufferLoader(Loader):
    """A loader that reads open editor buffers in place of the files on disk."""

    def __init__(self, buffers: dict[str, str]):
        super().__init__()
        self.buffers = {display_path(path): text for path, text in buffers.items()}

    def read(self, path: str) -> LoadedFile:
        path = display_path(path)
        if path in self.buffers and path not in self.sources:
            return self.add_text(self.buffers[path], path)
        return super().read(path)


@dataclass
class Analysis:
    """One check of a document's text, and what the queries need from it."""

    path: str
    text: str
    program: Program
    loader: Loader
    lines: list[str] = field(default_factory=list)

    @functools.cached_property
    def trivia(self) -> Trivia:
        """The document's comments, strings and braces, as its parse's lexer found them."""
        loaded = self.loader.read(self.path)
        if loaded.text == self.text:
            return loaded.trivia
        return scan(self.text)  # a byte-order mark, which the loader drops, shifts every offset

    @functools.cached_property
    def source(self) -> ir.SourceFile:
        return self.loader.read(self.path).source

    @functools.cached_property
    def instances(self) -> list[tuple[Shaped, ShapedModel]]:
        """Every statement of every model whose text is in this document, with its model."""
        found = []
        for model in self.program.models:
            for node in walk(model.layers):
                if node.span.file == self.path and node.kind not in ("iteration", "branch", "shortcut"):
                    found.append((node, model))
        return found

    @functools.cached_property
    def statements(self) -> dict[int, Statement]:
        """The document's statements by the offset where each ends (the shape comments' index)."""
        return statements(self.program.models, self.trivia, self.path)

    def fields(self, model: ShapedModel) -> dict[str, Any]:
        from ..receptive import receptive_fields

        cache: dict[int, dict[str, Any]] = self.__dict__.setdefault("_fields", {})
        if id(model) not in cache:
            cache[id(model)] = receptive_fields(model)
        return cache[id(model)]

    def offset(self, line: int, column: int) -> int:
        line = min(max(line, 1), len(self.trivia.line_starts))
        return self.trivia.offset(line, column)


def analyse(text: str, path: str, buffers: dict[str, str] | None = None) -> Analysis:
    """Checks `text` as the file at `path`, its imports read from `buffers` (open documents) or
    from disk."""
    path = display_path(path)
    loader = BufferLoader(buffers or {})
    loader.add_text(text, path)
    program = compile_file(path, loader=loader)
    return Analysis(path=path, text=text, program=program, loader=loader, lines=text.split("\n"))


def diagnostics_by_file(analysis: Analysis) -> dict[str, list[Diagnostic]]:
    """The check's diagnostics, by the file each points into (the document's own file first)."""
    found: dict[str, list[Diagnostic]] = {analysis.path: []}
    for diagnostic in analysis.program.diagnostics:
        found.setdefault(diagnostic.span.file, []).append(diagnostic)
    return found


def _contains(span: Span, line: int, column: int) -> bool:
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)


# --- hover ----------------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Instances of one statement listed in a hover, at most.
MAX_INSTANCES = 8


@dataclass
class Hover:
    markdown: str
    span: Span  # what it describes


def word_at(analysis: Analysis, line: int, column: int) -> tuple[str, Span] | None:
    if not 1 <= line <= len(analysis.lines):
        return None
    text = analysis.lines[line - 1]
    for match in _WORD.finditer(text):
        if match.start() < column <= match.end() + 1 and not _in_comment_or_string(
            analysis, line, match.start()
        ):
            span = Span(analysis.path, line, match.start() + 1, line, match.end() + 1)
            return match.group(), span
    return None


def _in_comment_or_string(analysis: Analysis, line: int, index: int) -> bool:
    trivia = analysis.trivia
    return trivia.in_comment_or_string(trivia.line_starts[line - 1] + index)


def statement_at(analysis: Analysis, line: int, column: int) -> list[tuple[Shaped, ShapedModel]]:
    """The innermost statement at the position, with each of its instances (one per block call
    and repeat pass)."""
    covering = [(n, m) for n, m in analysis.instances if _contains(n.span, line, column)]
    if not covering:
        return []
    innermost = min(covering, key=lambda nm: _extent(nm[0].span))[0].span
    return [(n, m) for n, m in covering if n.span == innermost]


def _extent(span: Span) -> tuple[int, int]:
    return (span.end_line - span.line, span.end_column - span.column if span.end_line == span.line else 0)


def hover(analysis: Analysis, line: int, column: int) -> Hover | None:
    word = word_at(analysis, line, column)
    found = statement_at(analysis, line, column)
    parts: list[str] = []
    span = found[0][0].span if found else (word[1] if word else None)
    named = value_at(analysis, line, column)
    if named is not None:
        parts.append(_value_text(analysis, named))
        span = named.here
    if found:
        parts.append(_statement_text(analysis, found))
    if word is not None:
        name = word[0]
        block = find_block(analysis, name)
        on_op = not found or found[0][0].op == name
        if block is not None and on_op:
            parts.append(block_text(analysis, name, block))
        elif find(name) is not None and on_op and not block:
            parts.append(layer_reference(name))
    if not parts or span is None:
        return None
    return Hover("\n\n---\n\n".join(parts), span)


def _statement_text(analysis: Analysis, found: list[tuple[Shaped, ShapedModel]]) -> str:
    node = found[0][0]
    source = _span_text(analysis, node.span).split("\n")[0]
    lines = [f"```arch\n{source}\n```"]
    rows = []
    for shaped, model in found[:MAX_INSTANCES]:
        field = analysis.fields(model).get(shaped.path)
        if shaped.key.startswith("."):
            # A function (`cat`, `padto`) is no module: it runs in its enclosing one's forward.
            parent = shaped.path[: -len(shaped.key)].rstrip(".")
            where = f"in `{model.name}.{parent}`" if parent else f"in `{model.name}`"
        else:
            where = f"`{model.name}.{shaped.path}`" if shaped.path else f"`{model.name}`"
        text = (
            f"{where}: **{fmt(shaped.output)}** (from {fmt(shaped.input)}), "
            f"{shaped.params:,} parameters, {shaped.macs:,} MACs"
        )
        if field is not None:
            text += f", receptive field {field.text()}, stride {field.jump_text()}"
        rows.append(text)
    if len(found) > MAX_INSTANCES:
        rows.append(f"… and {len(found) - MAX_INSTANCES} more")
    if len(found) == 1:
        return lines[0] + "\n\n" + rows[0]
    return (
        lines[0]
        + f"\n\n{len(found)} instances (block calls, repeat passes):\n\n"
        + "\n".join(f"- {row}" for row in rows)
    )


def _span_text(analysis: Analysis, span: Span) -> str:
    text = analysis.program.sources.get(span.file, analysis.text if span.file == analysis.path else "")
    return text_at(text, span)


# --- named values ---------------------------------------------------------------------------------


@dataclass
class NamedValue:
    name: str
    #: Where the name is given, as elaboration records it (`ShapedModel.named`): the `as …` of a
    #: statement or input, or a tensor parameter.
    given: Span
    #: The name itself there (where go to definition lands).
    name_span: Span
    #: The word at the position.
    here: Span


def value_at(analysis: Analysis, line: int, column: int) -> NamedValue | None:
    """The value named by the word at the position (where it is read, `cat(skip)`, `skip -> …`,
    `output skip`, or where it is named): a name of the definition the position is in."""
    word = word_at(analysis, line, column)
    if word is None:
        return None
    name, here = word
    definition = next(
        (
            d
            for d in (*analysis.source.blocks, *analysis.source.models)
            if d.span.file == analysis.path and _contains(d.span, line, column)
        ),
        None,
    )
    if definition is None:
        return None
    for param in definition.params:
        if param.name == name:
            if param.type_name != "tensor":
                return None
            start = param.span
            return NamedValue(name, start, _name_span(analysis, start, name), here)
    statements = list(nested_statements(definition.body))
    # A layer or block named like a value is the layer where its name is the op.
    if any(isinstance(s, ir.Call) and _contains(s.op_span, line, column) for s in statements):
        return None
    for statement in statements:
        if statement.binds and name in statement.binds:
            given = statement.binds_span or statement.span
            return NamedValue(name, given, _name_span(analysis, given, name), here)
    return None


def _name_span(analysis: Analysis, span: Span, name: str) -> Span:
    """Where `name` is written inside `span` (the first whole word), else `span`."""
    for offset, text in enumerate(_span_text(analysis, span).split("\n")):
        match = re.search(rf"\b{re.escape(name)}\b", text)
        if match is not None:
            line = span.line + offset
            start = match.start() + (span.column if offset == 0 else 1)
            return Span(span.file, line, start, line, start + len(name))
    return span


def _value_text(analysis: Analysis, named: NamedValue) -> str:
    """`skip`: its shapes (one per block call and repeat pass where they differ), and where it is
    named."""
    shapes: list[str] = []
    for model in analysis.program.models:
        for name, given, value in model.named:
            if name == named.name and given == named.given and value.shape is not None:
                text = fmt(value.shape)
                if text not in shapes:
                    shapes.append(text)
    shown = " | ".join(f"**{s}**" for s in shapes[:MAX_HINT_SHAPES])
    if len(shapes) > MAX_HINT_SHAPES:
        shown += f" | … ({len(shapes)} shapes)"
    where = f"named at line {named.name_span.line}"
    return f"value `{named.name}`: {shown}, {where}" if shown else f"value `{named.name}`, {where}"


# --- blocks and layers ----------------------------------------------------------------------------


def find_block(analysis: Analysis, name: str) -> ir.BlockDef | None:
    """The definition of the block `name` visible in the document (or in a block it calls)."""
    seen: set[int] = set()
    stack = [analysis.program.blocks]
    while stack:
        scope = stack.pop()
        entry = scope.get(name)
        if entry is not None and entry.definition is not None:
            return entry.definition
        for other in scope.values():
            if id(other.scope) not in seen:
                seen.add(id(other.scope))
                stack.append(other.scope)
    return next((b for b in analysis.source.blocks if b.name == name), None)


def block_signature(analysis: Analysis, block: ir.BlockDef) -> str:
    params = ", ".join(
        f"{p.name}: {p.type_name}" + (f" = {_span_text(analysis, p.default.span)}" if p.default else "")
        for p in block.params
    )
    return f"block {block.name}({params})"


def block_docs(analysis: Analysis, block: ir.BlockDef) -> str:
    """The comment lines just above a block's definition (its docs)."""
    text = analysis.program.sources.get(block.span.file, "")
    lines = text.split("\n")
    docs: list[str] = []
    index = block.span.line - 2
    while index >= 0 and lines[index].lstrip().startswith("#"):
        docs.insert(0, lines[index].lstrip()[1:].strip())
        index -= 1
    return " ".join(docs)


def block_text(analysis: Analysis, name: str, block: ir.BlockDef) -> str:
    where = os.path.relpath(block.span.file, os.path.dirname(analysis.path) or ".")
    text = f"```arch\n{block_signature(analysis, block)}\n```\n\nblock defined at {where}:{block.span.line}"
    docs = block_docs(analysis, block)
    return f"{text}\n\n{docs}" if docs else text


def signature_text(spec: Layer | Signature) -> str:
    """`conv(out, kernel, stride=1, padding=0, …)`: required arguments bare, the rest with defaults."""
    args = ", ".join(a.name if a.required else f"{a.name}={a.shown_default}" for a in spec.args)
    return f"{spec.name}({args})" if spec.args else spec.name


def layer_reference(name: str) -> str:
    """The layer's reference, shipped in the package (`archdsl.layers.reference`, which
    docs/language.md's layer sections are rendered from); for a layer it does not document (a
    plugin's), its signature, doc and argument table from the catalog."""
    section = reference(name)
    if section is not None:
        return section
    spec = find(name)
    if spec is None:
        return ""
    table = argument_table(spec) if spec.args else ""
    return f"```arch\n{signature_text(spec)}\n```\n\n{spec.doc}\n\n{table}".strip()


# --- go to definition -------------------------------------------------------------------------------

_IMPORT = re.compile(r"""\bimport\s+("((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)')""")


def definition(analysis: Analysis, line: int, column: int) -> Span | None:
    """Where the block named at the position is defined, where the value named there is given its
    name, or the file an import names."""
    if 1 <= line <= len(analysis.lines):
        for match in _IMPORT.finditer(analysis.lines[line - 1]):
            if match.start() < column <= match.end() + 1:
                relative = match.group(2) if match.group(2) is not None else match.group(3)
                target = display_path(os.path.join(os.path.dirname(analysis.path), relative))
                return Span(target, 1, 1, 1, 1)
    word = word_at(analysis, line, column)
    if word is None:
        return None
    named = value_at(analysis, line, column)
    if named is not None:
        return named.name_span
    block = find_block(analysis, word[0])
    return block.name_span if block is not None else None


# --- inlay hints ----------------------------------------------------------------------------------


#: Shapes an inlay hint lists, at most (a block called at many sizes has one per size).
MAX_HINT_SHAPES = 3


@dataclass
class InlayHint:
    line: int
    column: int  # where the hint stands: just past the statement's last character
    label: str


def inlay_hints(analysis: Analysis, first_line: int = 1, last_line: int | None = None) -> list[InlayHint]:
    """The output shape at the end of each line that ends a statement: the statement that ends
    last on it (its shapes, `|`-separated, when its calls or passes differ). A line whose shape
    comment describes that statement gets none: the comment says it (or W005 says it is wrong)."""
    trivia = analysis.trivia
    commented = {c.code_end for c in trivia.comments if c.trailing and shape_of(c) is not None}
    last_line = last_line or len(trivia.line_starts)
    per_line: dict[int, Statement] = {}
    for end, statement in analysis.statements.items():
        line = trivia.line_of(end - 1)
        if first_line <= line <= last_line and (line not in per_line or end > per_line[line].end):
            per_line[line] = statement
    hints = []
    for line, statement in sorted(per_line.items()):
        if statement.end in commented:
            continue
        column = statement.end - trivia.line_starts[line - 1] + 1
        shapes = [shape_text(s) for s in statement.shapes[:MAX_HINT_SHAPES]]
        more = " | …" if len(statement.shapes) > MAX_HINT_SHAPES else ""
        hints.append(InlayHint(line, column, " | ".join(shapes) + more))
    return hints


# --- document symbols -----------------------------------------------------------------------------


@dataclass
class Symbol:
    name: str
    kind: str  # model | block | statement | import
    span: Span  # the whole definition or statement
    name_span: Span
    detail: str = ""
    children: list[Symbol] = field(default_factory=list)


def symbols(analysis: Analysis) -> list[Symbol]:
    """The document's imports, models and blocks, and in them their named statements."""
    source = analysis.source
    found: list[Symbol] = []
    for item in source.imports:
        found.append(Symbol(item.path, "import", item.span, item.span))
    for definition in sorted([*source.blocks, *source.models], key=lambda d: (d.span.line, d.span.column)):
        kind = "model" if isinstance(definition, ir.ModelDef) else "block"
        symbol = Symbol(definition.name, kind, definition.span, definition.name_span)
        symbol.detail = block_signature(analysis, definition).split(" ", 1)[1] if definition.params else ""  # type: ignore[arg-type]
        symbol.children = _statement_symbols(analysis, definition.body)
        found.append(symbol)
    return found


def _statement_symbols(analysis: Analysis, body: list[Any]) -> list[Symbol]:
    found: list[Symbol] = []
    for statement in body:
        inner = _nested(statement)
        children = _statement_symbols(analysis, inner)
        if statement.label is not None and statement.label_span is not None:
            end = _statement_end(analysis, statement)
            span = statement.span.to(end) if end is not None else statement.span
            detail = statement.op if isinstance(statement, ir.Call) else statement.kind
            found.append(Symbol(statement.label, "statement", span, statement.label_span, detail, children))
        else:
            found.extend(children)
    return found


def _nested(statement: Any) -> list[Any]:
    if isinstance(statement, ir.Concat):
        return [s for branch in statement.branches for s in branch.body]
    body = list(getattr(statement, "body", []) or [])
    shortcut = getattr(statement, "shortcut", None)
    return body + (list(shortcut.body) if shortcut is not None else [])


def _statement_end(analysis: Analysis, statement: Any) -> Span | None:
    if isinstance(statement, ir.Concat | ir.Residual | ir.Gate | ir.Group):
        trivia = analysis.trivia
        close = trivia.closing_brace_after(trivia.offset(statement.span.line, statement.span.column))
        if close is not None:
            line = trivia.line_of(close - 1)
            column = close - trivia.line_starts[line - 1] + 1
            return Span(analysis.path, line, column, line, column)
    return None


# --- completion -----------------------------------------------------------------------------------


@dataclass
class Completion:
    label: str
    kind: str  # layer | block | keyword | argument | setting | value
    detail: str = ""
    documentation: str = ""
    insert: str | None = None


_KEYWORD_DOCS = {
    "repeat": ("repeat N { … }", "runs its body N times in sequence (`repeat N as i` names the pass)"),
    "concat": ("concat { branch { … } … }", "joins its branches' outputs on the channel axis"),
    "residual": ("residual { … }", "body(x) + shortcut(x)"),
    "gate": ("gate { … }", "x · body(x): squeeze-and-excitation"),
    "branch": ("branch [name] { … }", "one path of a concat"),
    "shortcut": ("shortcut [name] { … }", "a residual's written-out shortcut"),
    "input": ("input [C, H, W]", "the shape of one sample"),
    "train": ("train { … }", "the experiment that trains the model"),
    "block": ("block Name(params) { … }", "a reusable piece"),
    "model": ("model Name(params) { … }", "a network"),
    "import": ('import "file.arch"', "the blocks of another file"),
}


@functools.lru_cache(maxsize=1)
def _tokens() -> re.Pattern[str]:
    """A tolerant tokenizer of half-typed text: strings (closed or not) and comments skipped, as
    `trivia.py` defines them."""
    return re.compile(
        rf"""(?P<skip>{skip_pattern()})|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<open>[({{\[])|(?P<close>[)}}\]])|(?P<other>[=,:;*]|\S)"""
    )


@dataclass
class _Context:
    bracket: str  # "(" "{" "[" or "" at the top level
    word: str  # the word before a "(", or the keyword that opened a "{"
    given: list[str] = field(default_factory=list)  # keyword arguments already written in a "("
    definition: str = ""  # "block" or "model": the definition the position is in
    after_equals: bool = False


_OPENERS = {"repeat", "concat", "branch", "residual", "shortcut", "gate", "train", "block", "model"}


def _context(text: str) -> _Context:
    """Where the end of `text` stands: in which bracket, opened after which word. Tolerant: any
    half-typed text has a context."""
    tokens: list[str] = []
    stack: list[_Context] = []
    for match in _tokens().finditer(text):
        kind, token = match.lastgroup, match.group()
        if kind == "skip":
            continue
        if kind == "open":
            word = tokens[-1] if token == "(" and tokens and _WORD.fullmatch(tokens[-1]) else ""
            if token == "{":
                word = _opener(tokens)
            definition = stack[0].definition if stack else (word if word in ("block", "model") else "")
            stack.append(_Context(token, word, definition=definition))
        elif kind == "close":
            if stack:
                stack.pop()
        elif token == "=" and stack and stack[-1].bracket == "(" and tokens:
            stack[-1].given.append(tokens[-1])
        tokens.append(token)
    context = stack[-1] if stack else _Context("", "")
    context.after_equals = bool(tokens) and tokens[-1] == "="
    return context


def _opener(tokens: list[str]) -> str:
    """The keyword a `{` belongs to (`repeat`, `concat`, `model`, …), or '' for a group: looking
    back past its header (a repeat's count, a call's arguments) to the previous statement."""
    depth = 0
    for index in range(len(tokens) - 1, -1, -1):
        token = tokens[index]
        if token in (")", "]"):
            depth += 1
        elif token in ("(", "["):
            depth -= 1
        elif depth == 0 and token in ("{", "}"):
            return ""
        elif depth == 0 and token in _OPENERS:
            labelled = index + 1 < len(tokens) and tokens[index + 1] == ":"
            return "" if labelled else token
    return ""


def completions(analysis: Analysis, line: int, column: int, text: str | None = None) -> list[Completion]:
    """What may be typed at the position: inside a call's parentheses its argument names with
    their defaults; in a body the layers, the blocks in scope and the keywords; in a train section
    its settings; at the top level the definitions. From the signatures the checker binds."""
    text = analysis.text if text is None else text
    lines = text.split("\n")
    line = min(max(line, 1), len(lines))
    offset = sum(len(x) + 1 for x in lines[: line - 1]) + min(column - 1, len(lines[line - 1]))
    before = text[:offset]
    partial = re.search(r"[A-Za-z_][A-Za-z0-9_]*$", before)
    context = _context(before[: partial.start()] if partial else before)
    if context.bracket == "(":
        if context.after_equals:
            return _values(analysis, context) + _named(before)
        found = _arguments(analysis, context)
        if _reads_values(analysis, context.word):
            found = _named(before) + found
        return found
    if context.bracket == "{":
        if context.word == "train":
            return [Completion(key, "setting", f"{key} = …") for key in _train_keys()]
        if context.word == "concat":
            return [
                _keyword("branch"),
                Completion("*branch", "keyword", "*branch { … }", "a branch whose members join the concat's"),
            ]
        found = _statement_starts(analysis, context)
        if context.word == "residual":
            found.append(_keyword("shortcut"))
        return found
    if context.bracket == "":
        return [_keyword(word) for word in ("model", "block", "import")]
    return _values(analysis, context)


def _keyword(word: str) -> Completion:
    detail, doc = _KEYWORD_DOCS[word]
    return Completion(word, "keyword", detail, doc)


def _train_keys() -> tuple[str, ...]:
    from ..trainspec import KEYS

    return KEYS


def _statement_starts(analysis: Analysis, context: _Context) -> list[Completion]:
    found = []
    for name in names():
        spec = find(name)
        if spec is not None:
            found.append(Completion(name, "layer", signature_text(spec), spec.doc))
    for name in sorted(_visible_blocks(analysis)):
        block = find_block(analysis, name)
        if block is not None:
            found.append(
                Completion(name, "block", block_signature(analysis, block), block_docs(analysis, block))
            )
    keywords = ["repeat", "concat", "residual", "gate"]
    if context.definition == "model":
        keywords += ["input", "train"]
    found.extend(_keyword(word) for word in keywords)
    return found


def _visible_blocks(analysis: Analysis) -> set[str]:
    visible = {name for name, entry in analysis.program.blocks.items() if entry.definition is not None}
    return visible | {block.name for block in analysis.source.blocks}


def _signature_of(analysis: Analysis, word: str) -> Layer | Signature | ir.BlockDef | None:
    from ..trainspec import AUGMENTS, IMAGEFOLDER, LOSSES, OPTIMIZERS, SCHEDULES

    if word == "residual":
        return RESIDUAL
    if word == "concat":
        return CONCAT
    block = find_block(analysis, word) if word in _visible_blocks(analysis) else None
    if block is not None:
        return block
    spec = find(word)
    if spec is not None:
        return spec
    for table in (OPTIMIZERS, SCHEDULES, LOSSES, AUGMENTS, {"imagefolder": IMAGEFOLDER}):
        if word in table:
            return table[word]
    return None


def _arguments(analysis: Analysis, context: _Context) -> list[Completion]:
    spec = _signature_of(analysis, context.word)
    if isinstance(spec, ir.BlockDef):
        return [
            Completion(
                f"{p.name}=",
                "argument",
                f"{p.name}: {p.type_name}"
                + (f" = {_span_text(analysis, p.default.span)}" if p.default else ""),
                f"a parameter of block {spec.name}",
            )
            for p in spec.params
            if p.name not in context.given
        ]
    if spec is None:
        return []
    return [_argument(arg) for arg in spec.args if arg.name not in context.given]


def _reads_values(analysis: Analysis, word: str) -> bool:
    """Whether `word(` takes a named value (`cat(skip)`, `padto(x)`, a block's tensor parameter)."""
    spec = _signature_of(analysis, word)
    if isinstance(spec, ir.BlockDef):
        return any(p.type_name == "tensor" for p in spec.params)
    return spec is not None and any(a.accepts in (tensor, tensors) for a in spec.args)


#: Where a definition names a value: `as x`, `as (a, b)`, `skip: tensor`.
_GIVEN = re.compile(r"\bas\s+(?:\(([^)]*)\)|([A-Za-z_]\w*))|\b([A-Za-z_]\w*)\s*:\s*tensor\b")
_DEFINITION_START = re.compile(r"^\s*(?:model|block)\b", re.M)


def _named(before: str) -> list[Completion]:
    """The names given in the definition the text before the position ends in, read from the text
    (a half-typed document does not parse)."""
    starts = [m.start() for m in _DEFINITION_START.finditer(before)]
    body = re.sub(comment_pattern(), "", before[starts[-1] :] if starts else before)
    body = re.sub(r"\brepeat\b[^{]*", "", body)  # `repeat 4 as i` names a number, not a value
    names: list[str] = []
    for match in _GIVEN.finditer(body):
        given = (
            re.findall(r"[A-Za-z_]\w*", match.group(1))
            if match.group(1) is not None
            else [match.group(2) or match.group(3)]
        )
        names.extend(name for name in given if name not in names)
    return [Completion(name, "value", f"the value named {name}") for name in names]


def _argument(arg: Arg) -> Completion:
    return Completion(f"{arg.name}=", "argument", f"{arg.name} (default {arg.shown_default})", arg.doc)


def _values(analysis: Analysis, context: _Context) -> list[Completion]:
    found = [Completion(word, "value") for word in ("true", "false", *KEYWORD_VALUES)]
    found.append(Completion("channels", "value", "the channels this layer receives"))
    return found
