"""`archdsl fmt`: the one canonical layout of a spec, keeping every comment and the meaning.

Consumes a file's text; produces the same spec laid out canonically (docs/language.md, "Layout"):

- four spaces of indentation per `{ }` level; one space between statements on a line; `conv(6,
  kernel=5)`, `name: type = default`, `key = value`, spaces around binary operators;
- the statements stay on the lines they were written on (a line holds a run of related
  statements, `conv(…) batchnorm relu`); a line longer than 100 columns moves the statements that
  do not fit to a new line, and a statement that alone does not fit has its arguments wrapped,
  all on one indented line, or else one per line with a trailing comma;
- a `{ … }` written on one line stays on one line while it fits, an empty one is `{ }`; one
  written over several lines keeps its statements on lines of their own, and `}` on its own line;
- `;` and the train section's `,` separators are dropped (they carry no meaning), and so are
  trailing commas of arguments that fit on one line;
- one blank line between top-level definitions; elsewhere runs of blank lines become one, and
  none is left after `{` or before `}`;
- comments are kept where they were: an own-line comment on its own line at the indentation of
  what follows it, a trailing comment after the code it follows; trailing comments of
  consecutive lines are aligned into one column.

The text is parsed with the grammar's concrete tree (every token kept) and laid out with
`pretty.py`. Meaning cannot change: tokens other than separators are written as they were, and
the result is parsed again and compared with the original, node for node, before it is returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lark import Token, Tree
from lark.exceptions import UnexpectedInput

from .errors import Diagnostic
from .pretty import (
    BLANK,
    HARD,
    LINE,
    SOFT,
    Comment,
    Doc,
    Fill,
    Group,
    IfBreak,
    Indent,
    Suffix,
    align_comments,
    print_doc,
)
from .trivia import scan

WIDTH = 100

#: Tokens the layout writes itself, or drops: comments beside them belong to their neighbours.
_PUNCTUATION = {"COMMA", "SEMICOLON", "COLON", "EQUAL"}
_BODY_RULES = {
    "repeat",
    "concat",
    "branch",
    "residual",
    "shortcut",
    "gate",
    "group_stmt",
    "train_stmt",
    "then_body",
    "else_body",
}


class FormatError(Exception):
    """The text cannot be formatted: it has syntax errors (`diagnostics`), or — a bug in fmt —
    the layout would change its meaning or lose a comment."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.diagnostics = diagnostics or []


def format_text(text: str, file: str = "<string>", shapes: bool = False) -> str:
    """`text` in the canonical layout. With `shapes`, every statement line of a model's body also
    gets a true `# [C, H, W]` comment, and stale ones are rewritten (`shape_comments.refresh`);
    imports are then read from beside `file`. Raises `FormatError` when the text does not parse
    (or, with `shapes`, does not check). The file keeps its line endings, as its first line ends
    (`\r\n` or `\n`), as black keeps them."""
    first = text.find("\n")
    formatted = _formatted(text.replace("\r\n", "\n"), file, shapes)
    return formatted.replace("\n", "\r\n") if first > 0 and text[first - 1] == "\r" else formatted


def _formatted(text: str, file: str, shapes: bool) -> str:
    formatted = _format(text, file)
    if not shapes:
        return formatted
    from .loader import Loader
    from .pipeline import compile_file
    from .shape_comments import refresh, statements

    bom = "\ufeff" if formatted.startswith("\ufeff") else ""
    loader = Loader()
    loader.add_text(formatted, file)
    program = compile_file(file, loader=loader)
    if program.errors:
        raise FormatError(f"{file}: cannot write shape comments: the spec has errors", program.errors)
    trivia = scan(formatted.removeprefix("\ufeff"))
    return bom + _format(refresh(trivia, statements(program.models, trivia, program.path)), file)


def _format(text: str, file: str) -> str:
    from .parser import concrete_parser, parse

    bom = "\ufeff" if text.startswith("\ufeff") else ""
    source = text.removeprefix("\ufeff")
    before = parse(source, file)
    if before.diagnostics:
        raise FormatError(f"{file}: cannot format a file with syntax errors", before.diagnostics)
    try:
        tree = concrete_parser().parse(source)
    except UnexpectedInput:  # the grammar is the same: cannot happen
        raise FormatError(f"{file}: cannot parse this file (a bug in archdsl fmt)") from None
    formatted = _Layout(source, tree).text()
    _same_meaning(source, before.items, formatted, file)
    return bom + formatted


# --- the safety net ------------------------------------------------------------------------------


def _same_meaning(before: str, items: list[Any], after: str, file: str) -> None:
    from .parser import parse

    new = parse(after, file)
    if new.diagnostics or _without_spans(items) != _without_spans(new.items):
        raise FormatError(f"{file}: fmt would change the meaning of this file (a bug in archdsl fmt)")
    if [c.text for c in scan(before).comments] != [c.text for c in scan(after).comments]:
        raise FormatError(f"{file}: fmt would lose or reorder a comment (a bug in archdsl fmt)")


def _without_spans(items: list[Any]) -> list[Any]:
    """The IR as a flat list in preorder — node types, field names and values — without positions.
    Iterative: a deeply nested spec would exhaust the recursion."""
    from pydantic import BaseModel

    out: list[Any] = []
    stack: list[Any] = [items]
    while stack:
        value = stack.pop()
        if isinstance(value, BaseModel):
            out.append(type(value).__name__)
            fields = [(k, v) for k, v in value.__dict__.items() if not k.endswith("span")]
            for key, item in reversed(fields):
                stack.extend([item, f"\0{key}"])
        elif isinstance(value, list | tuple):
            out.append(("list", len(value)))
            stack.extend(reversed(value))
        else:
            out.append(value)
    return out


# --- where each comment belongs --------------------------------------------------------------------


@dataclass
class _Trivia:
    """What stands around one token: comments before it on lines of their own (each with whether
    a blank line precedes it), comments after it on its line, and the gap before it."""

    leading: list[tuple[str, bool]] = field(default_factory=list)
    trailing: list[str] = field(default_factory=list)
    blank_before: bool = False  # a blank line between the token and what precedes it
    newline_before: bool = False  # a line break between the token and the token before it


def _tokens(tree: Tree[Token] | Token | None) -> Iterator[Token]:
    if tree is None:
        return
    if isinstance(tree, Token):
        yield tree
        return
    for child in tree.children:
        yield from _tokens(child)


def _has_blank_line(gap: str) -> bool:
    """Whether `gap` (text between two elements) holds an empty line."""
    return any(not segment.strip() for segment in gap.split("\n")[1:-1])


class _Layout:
    def __init__(self, text: str, tree: Tree[Token]):
        self.source = text
        self.tree = tree
        self.trivia: dict[int, _Trivia] = {}
        #: Comments after the last token.
        self.final: list[tuple[str, bool]] = []
        self._attach([t for t in _tokens(tree) if t.type not in _PUNCTUATION])
        for node in tree.find_data("list_expr"):
            # A comment after a list's last value goes after its ']', where it is found next time.
            values: list[Any] = [c for c in node.children[1:-1] if isinstance(c, Tree)]
            close: Any = node.children[-1]
            if values and not self.info(close).trailing:
                last = self.info(_last(values[-1]))
                self.trivia.setdefault(id(close), _Trivia()).trailing, last.trailing = last.trailing, []
        self.taken_leading: set[int] = set()
        self.taken_trailing: set[int] = set()

    def _attach(self, tokens: list[Token]) -> None:
        comments = scan(self.source).comments
        elements: list[tuple[int, int, Any]] = [(t.start_pos or 0, t.end_pos or 0, t) for t in tokens]
        elements += [(c.offset, c.offset + len(c.text), c) for c in comments]
        elements.sort(key=lambda e: e[0])
        previous_end = 0
        previous_token: Token | None = None
        pending: list[tuple[str, bool]] = []
        for start, end, element in elements:
            gap = self.source[previous_end:start]
            blank = _has_blank_line(gap) and previous_end > 0
            if isinstance(element, Token):
                trivia = self.trivia.setdefault(id(element), _Trivia())
                trivia.leading = pending
                trivia.blank_before = blank
                since = previous_token.end_pos or 0 if previous_token is not None else start
                trivia.newline_before = "\n" in self.source[since:start]
                pending = []
                previous_token = element
            elif previous_token is not None and element.trailing and not pending and "\n" not in gap:
                self.trivia[id(previous_token)].trailing.append(element.text)
            else:
                pending.append((element.text, blank))
            previous_end = end
        self.final = pending

    def info(self, token: Any) -> _Trivia:
        return self.trivia.get(id(token)) or _Trivia()

    # --- tokens --------------------------------------------------------------------------------

    def tok(self, token: Any) -> Doc:
        """A token with the comments around it that no layout rule placed: leading ones on lines
        of their own before it, trailing ones held to the end of its line."""
        parts: list[Doc] = []
        if id(token) not in self.taken_leading:
            self.taken_leading.add(id(token))
            parts.extend(Comment(text) for text, _blank in self.info(token).leading)
        parts.append(str(token))
        if id(token) not in self.taken_trailing:
            parts.extend(self.trailing(token, inner=True))
        return parts

    def leading(self, token: Token, first_in_body: bool = False) -> list[Doc]:
        """The own-line comments before `token`, with the blank lines between them (the first
        blank dropped at the start of a body); marks them placed."""
        self.taken_leading.add(id(token))
        info = self.info(token)
        return self._comment_lines(info.leading, info.blank_before, first_in_body)

    @staticmethod
    def _comment_lines(comments: list[tuple[str, bool]], blank_after: bool, first: bool) -> list[Doc]:
        docs: list[Doc] = []
        for index, (text, blank) in enumerate(comments):
            if blank and not (first and index == 0):
                docs.append(BLANK)
            docs.append(Comment(text))
        if blank_after and not (first and not comments):
            docs.append(BLANK)
        return docs

    def trailing(self, token: Any, inner: bool = False) -> list[Doc]:
        """The comment after `token` on its line. `inner`: `token` stands inside a statement, where
        no separator follows it, so the line break the comment needs is added."""
        self.taken_trailing.add(id(token))
        comments: list[Doc] = [Suffix(text) for text in self.info(token).trailing]
        return [*comments, HARD] if comments and inner else comments

    # --- the file -----------------------------------------------------------------------------

    def text(self) -> str:
        parts: list[Doc] = []
        previous: Tree[Token] | None = None
        for item in self.tree.children:
            if not isinstance(item, Tree):
                continue
            first, last = _first(item), _last(item)
            lead = self.leading(first, first_in_body=previous is None)
            trail = self.trailing(last)
            if previous is not None:
                imports = previous.data == item.data == "import_stmt"
                parts.append(HARD if imports and not self.info(first).blank_before else BLANK)
            parts.extend(lead)
            parts.append(self.item(item))
            parts.extend(trail)
            previous = item
        if self.final:
            parts.append(HARD)
            parts.extend(self._comment_lines(self.final, False, previous is None))
        printed = print_doc(parts, WIDTH)
        lines = align_comments(printed.lines)
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines) + "\n" if lines else ""

    def item(self, tree: Tree[Token]) -> Doc:
        if tree.data == "import_stmt":
            keyword, path = tree.children
            return [self.tok(keyword), " ", self.tok(path)]
        keyword, name, params, *body = tree.children
        header: list[Doc] = [self.tok(keyword), " ", self.tok(name)]
        if isinstance(params, Tree):
            header.append(self.brackets(params, self.param))
        return [*header, " ", self.body(body)]

    # --- statements -----------------------------------------------------------------------------

    def statement(self, tree: Tree[Token]) -> Doc:
        children: list[Any] = tree.children
        if tree.data == "sourced":
            source, statement = children
            return [*self.reads(source), self.statement(statement)]
        if tree.data == "call":
            prefix, op, args, bind = children
            parts = [*self.prefix(prefix), self.tok(op)]
            if isinstance(args, Tree):
                parts.append(self.brackets(args, self.argument))
            return [*parts, *self.bind(bind)]
        if tree.data == "input_stmt":
            keyword, dims, bind = children
            shape = [" ", self.expr(dims)] if dims is not None else []
            return [self.tok(keyword), *shape, *self.bind(bind)]
        if tree.data == "output_stmt":
            return self.output(children)
        if tree.data == "if_stmt":
            return self.conditional(children)
        if tree.data == "train_stmt":
            return [self.tok(children[0]), " ", self.body(children[1:])]
        if tree.data in ("branch", "shortcut"):
            start = _open_brace(children)
            words: list[Doc] = []
            star = False
            for token in children[:start]:
                if token is None:
                    continue
                if words and not star:
                    words.append(" ")
                words.append(self.tok(token))
                star = token.type == "STAR"
            return [*words, " ", self.body(children[start:])]
        prefix, *rest, bind = children
        parts = self.prefix(prefix)
        start = _open_brace(rest)
        header, body = rest[:start], rest[start:]
        for index, piece in enumerate(header):
            if piece is None:
                continue
            if isinstance(piece, Tree) and piece.data == "arg_list":
                parts.append(self.brackets(piece, self.argument))
                continue
            if index > 0:
                parts.append(" ")
            parts.append(self.expr(piece) if isinstance(piece, Tree) else self.tok(piece))
        if header:
            parts.append(" ")
        parts.append(self.body(body))
        return [*parts, *self.bind(bind)]

    def reads(self, source: Tree[Token] | None) -> list[Doc]:
        """`skip -> `: the value a statement reads."""
        if source is None:
            return []
        name, arrow = source.children
        return [self.tok(name), " ", self.tok(arrow), " "]

    def bind(self, bind: Tree[Token] | None) -> list[Doc]:
        """` as x`, ` as (a, b)`: the names of what a statement gives."""
        if bind is None:
            return []
        keyword, *rest = [c for c in bind.children if isinstance(c, Token)]
        if len(rest) == 1:
            return [" ", self.tok(keyword), " ", self.tok(rest[0])]
        # Every token through `tok`, so a comment after `(` or a comma stays where it was.
        parts: list[Doc] = [" ", self.tok(keyword), " "]
        for index, token in enumerate(rest):
            if token.type == "COMMA":
                closing = rest[index + 1].type == "RPAR"
                info = self.info(token)
                if closing and not (info.leading or info.trailing):
                    continue  # `(a, b,)` is `(a, b)`
                parts.append(self.tok(token))
                if not closing:
                    parts.append(" ")
            else:
                parts.append(self.tok(token))
        return parts

    def output(self, children: list[Any]) -> Doc:
        """`output a, b` or `output out: a, aux: b`, its items filled within the line."""
        keyword, *items = [c for c in children if c is not None]
        values = [i for i in items if isinstance(i, Tree)]
        parts: list[Doc] = []
        for index, item in enumerate(values):
            words = [
                c for c in item.children if c is not None and not (isinstance(c, Token) and c.type == "COLON")
            ]
            entry: list[Doc] = (
                [self.tok(words[0]), ": ", self.tok(words[1])] if len(words) == 2 else [self.tok(words[0])]
            )
            if index < len(values) - 1:
                entry.append(",")
                parts.extend([entry, LINE])
            else:
                parts.append(entry)
        return Group([self.tok(keyword), " ", Indent([Fill(parts)])])

    def conditional(self, children: list[Any]) -> Doc:
        """`if cond { … } else if cond { … } else { … }`."""
        keyword, condition, then, otherwise_keyword, otherwise = children
        parts: list[Doc] = [self.tok(keyword), " ", self.expr(condition), " ", self.body(then.children)]
        if otherwise_keyword is not None:
            # A comment after the `}` before `else` stays there, and `else` starts the next line.
            after = self.trailing(then.children[-1], inner=True)
            parts += [*after] if after else [" "]
            parts += [self.tok(otherwise_keyword), " "]
            if otherwise.data == "if_stmt":
                parts.append(self.conditional(otherwise.children))
            else:
                parts.append(self.body(otherwise.children))
        return parts

    def prefix(self, prefix: Tree[Token] | None) -> list[Doc]:
        if prefix is None:
            return []
        token = prefix.children[0]
        assert isinstance(token, Token)
        return [self.tok(token)] if token.type == "STAR" else [self.tok(token), ": "]

    def body(self, children: list[Any]) -> Doc:
        """`{ … }`: its statements (or branches, or train settings) as a fill, flat while it fits
        when written on one line."""
        open_, *items, close = [c for c in children if c is not None]
        items = [i for i in items if isinstance(i, Tree)]
        head: list[Doc] = [self.tok(open_)]
        parts: list[Doc] = []
        before: list[Doc] = []
        trail: list[Doc] = []
        for index, item in enumerate(items):
            first, last = _first(item), _last(item)
            lead = self.leading(first, first_in_body=index == 0)
            if index == 0:
                before = lead
            else:
                hard = lead or trail or self.info(first).newline_before
                parts.append([HARD if hard else LINE, *lead])
            trail = self.trailing(last)
            parts.append([self.entry(item), *trail])
        self.taken_leading.add(id(close))
        info = self.info(close)
        after = self._comment_lines(info.leading, False, not items)
        if not items and not after and not self.info(open_).trailing:
            return Group([*head, " ", str(close)])
        broken = open_.line != close.line
        return Group([*head, Indent([LINE, *before, Fill(parts), *after]), LINE, str(close)], broken)

    def entry(self, tree: Tree[Token]) -> Doc:
        if tree.data == "train_entry":
            key, _equal, value = tree.children
            return [self.tok(key), " = ", self.expr(value)]
        return self.statement(tree)

    # --- argument and parameter lists -------------------------------------------------------------

    def brackets(self, tree: Tree[Token], element: Any) -> Doc:
        """`(a, b)`: flat when it fits, else its elements on one indented line, else one per line
        with a trailing comma. The ')' closes the group; comments after it stay outside."""
        children: list[Any] = [c for c in tree.children if c is not None]
        open_, close = children[0], children[-1]
        elements = [c for c in children[1:-1] if not (isinstance(c, Token) and c.type == "COMMA")]
        # The ')' ends its group; a comment after it (unless it ends the statement) stays outside.
        after = [] if id(close) in self.taken_trailing else self.trailing(close, inner=True)
        if not elements:
            return [
                Group([self.tok(open_), Indent([SOFT, *self._close_leading(close)]), SOFT, str(close)]),
                *after,
            ]
        joined: list[Doc] = []
        trail: list[Doc] = []
        for index, item in enumerate(elements):
            if index:
                joined.extend([",", *trail, LINE])
            trail = self.trailing(_last(item))
            joined.append(element(item))
        inner = Group([*joined, IfBreak(","), *trail])
        return [
            Group([self.tok(open_), Indent([SOFT, inner, *self._close_leading(close)]), SOFT, str(close)]),
            *after,
        ]

    def _close_leading(self, close: Any) -> list[Doc]:
        self.taken_leading.add(id(close))
        return self._comment_lines(self.info(close).leading, False, False)

    def argument(self, tree: Any) -> Doc:
        if isinstance(tree, Tree) and tree.data == "keyword_arg":
            name, _equal, value = tree.children
            return [self.tok(name), "=", self.expr(value)]
        return self.expr(tree)

    def param(self, tree: Tree[Token]) -> Doc:
        name, _colon, type_name, *default = [c for c in tree.children if c is not None]
        parts: list[Doc] = [self.tok(name), ": ", self.tok(type_name)]
        if default:
            parts.extend([" = ", self.expr(default[-1])])
        return parts

    # --- expressions ----------------------------------------------------------------------------

    def arith(self, children: list[Any]) -> Doc:
        """`a op b op c …`, as flat as the grammar keeps it."""
        parts: list[Doc] = []
        for index, child in enumerate(children):
            if index % 2:
                parts.extend([" ", self.tok(child), " "])
            else:
                parts.append(self.expr(child))
        return parts

    def expr(self, tree: Any) -> Doc:
        if isinstance(tree, Token):
            return self.tok(tree)
        kind = tree.data
        children = [c for c in tree.children if c is not None]
        if kind == "expr" and len(children) >= 5 and getattr(children[-4], "type", None) == "IF":
            # `then if condition else otherwise`, `then` an operand or a flat `a op b …`
            *head, word, condition, otherwise_word, otherwise = children
            return [
                self.arith(head),
                " ",
                self.tok(word),
                " ",
                self.expr(condition),
                " ",
                self.tok(otherwise_word),
                " ",
                self.expr(otherwise),
            ]
        if kind in ("expr", "arith"):
            return self.arith(children)
        if kind == "neg":
            minus, operand = children
            return [self.tok(minus), self.expr(operand)]
        if kind == "not_":
            word, operand = children
            return [self.tok(word), " ", self.expr(operand)]
        if kind == "group":
            open_, inner, close = children
            return [self.tok(open_), self.expr(inner), self.tok(close)]
        if kind == "list_expr":
            open_, *items, close = children
            values = [i for i in items if not (isinstance(i, Token) and i.type == "COMMA")]
            parts = [self.tok(open_)]
            for index, value in enumerate(values):
                trail = self.trailing(_last(value), inner=True)
                parts.append(self.expr(value))
                parts.extend([",", *trail, " "] if index < len(values) - 1 else trail)
            parts.append(self.tok(close))
            return parts
        if kind == "call_expr":
            name, args = children
            return [self.tok(name), self.brackets(args, self.argument)]
        (token,) = children  # a literal or a name
        return self.tok(token)


def _first(tree: Any) -> Token:
    return next(t for t in _tokens(tree) if t.type not in _PUNCTUATION)


def _last(tree: Any) -> Token:
    return [t for t in _tokens(tree) if t.type not in _PUNCTUATION][-1]


def _open_brace(children: list[Any]) -> int:
    return next(i for i, c in enumerate(children) if isinstance(c, Token) and c.type == "LBRACE")
