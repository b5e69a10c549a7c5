"""Stage 2: lark parse → IR (`ir.py`), one `SourceFile` per spec file.

Pure translation: every node gets the span of its text; nothing is resolved or judged here.
`parser.py` runs this transformer inline, inside lark's LALR parser, so no intermediate tree is
built (for a 10,000-layer spec the separate tree walk cost more than the parse). Spans are taken
from each rule's first and last token — the grammar keeps closing brackets and keywords as named
terminals for that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lark import Token, Transformer

from . import ir
from .errors import Span

#: Stands for an integer literal too long to convert; anything past 64 bits is out of range.
OUT_OF_RANGE = 2**64

_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}

#: How tightly each binary operator binds, as in Python.
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    **dict.fromkeys(("==", "!=", "<", "<=", ">", ">="), 3),
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "//": 5,
}


def decimal(digits: str) -> int:
    """A string of decimal digits as an int, or OUT_OF_RANGE past 64 bits: Python refuses to
    convert more than 4,300 digits (and doing so takes quadratic time), and nothing here has a
    size or count that large, so a stand-in will do."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 20 else OUT_OF_RANGE


def unescape(body: str) -> str:
    out: list[str] = []
    chars = iter(body)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


def _first(item: Any) -> tuple[int, int]:
    if isinstance(item, Token):
        return item.line, item.column  # type: ignore[return-value]
    span = item if isinstance(item, Span) else item.span
    return span.line, span.column


def _last(item: Any) -> tuple[int, int]:
    if isinstance(item, Token):
        return item.end_line, item.end_column  # type: ignore[return-value]
    span = item if isinstance(item, Span) else item.span
    return span.end_line, span.end_column


class Prefix:
    """A statement's `name:` or `*`, with the token it starts at."""

    def __init__(self, token: Token, fields: dict[str, Any]):
        self.token = token
        self.fields = fields


def _fields(prefix: Prefix | None) -> dict[str, Any]:
    return {} if prefix is None else prefix.fields


def _branch_name(token: Token | None) -> str | None:
    if token is None:
        return None
    return unescape(token[1:-1]) if token.type == "STRING" else str(token)


class LabelError(Exception):
    """A statement's name or structure the grammar admits but the language does not; raised during
    the parse, reported by the parser as a syntax error at `where` (a token or a span)."""

    def __init__(self, message: str, where: Any):
        super().__init__(message)
        self.message = message
        self.where = where


class ArgList(list[ir.Arg]):
    """The arguments of a call, remembering where its ')' ends."""

    end: Token


class ToIR(Transformer[Any, Any]):
    """Builds IR nodes; `file` is set by the parser before each parse. `parse_expression` parses
    an expression written inside a name's string (`"block{i + 1}"`): the parser's, passed in, as the
    parser is the stage that holds the grammar and applies this transformer."""

    def __init__(self, parse_expression: Callable[[str, str, int, int], Any]) -> None:
        super().__init__(visit_tokens=False)
        self.file = "<string>"
        self.parse_expression = parse_expression

    def _span(self, first: Any, last: Any) -> Span:
        line, column = _first(first)
        end_line, end_column = _last(last)
        return Span(self.file, line, column, end_line, end_column)

    def _token_span(self, token: Token) -> Span:
        return Span(self.file, token.line, token.column, token.end_line, token.end_column)  # type: ignore[arg-type]

    # --- definitions ----------------------------------------------------------------------------

    def start(self, children: list[Any]) -> list[Any]:
        return children

    def import_stmt(self, children: list[Any]) -> ir.Import:
        keyword, path = children
        return ir.Import.of(span=self._span(keyword, path), path=unescape(path[1:-1]))

    def _definition(self, cls: type[ir.Definition], children: list[Any]) -> Any:
        keyword, name, params, *body, close = children
        return cls.of(
            span=self._span(keyword, close),
            name=str(name),
            name_span=self._token_span(name),
            params=params or [],
            body=[s for s in body if not isinstance(s, Token)],
        )

    def block_def(self, children: list[Any]) -> ir.BlockDef:
        return self._definition(ir.BlockDef, children)

    def model_def(self, children: list[Any]) -> ir.ModelDef:
        return self._definition(ir.ModelDef, children)

    def param_list(self, children: list[Any]) -> list[ir.Param]:
        return [c for c in children if c is not None]

    def param(self, children: list[Any]) -> ir.Param:
        name, type_name, default = children
        return ir.Param.of(
            span=self._span(name, default if default is not None else type_name),
            name=str(name),
            type_name=str(type_name),
            type_span=self._token_span(type_name),
            default=default,
        )

    # --- statements -----------------------------------------------------------------------------

    def prefix(self, children: list[Any]) -> Prefix:
        (token,) = children
        if token.type == "STAR":
            return Prefix(token, {"splice": True})
        span = self._token_span(token)
        if token.type != "STRING":  # a name, or a keyword used as one
            return Prefix(token, {"label": str(token), "label_span": span})
        text = unescape(token[1:-1])
        parts = self._interpolated(text, token) if "{" in text or "}" in text else None
        if parts is not None and all(isinstance(p, str) for p in parts):
            text, parts = "".join(parts), None  # only `{{` / `}}` escapes: a plain name
        return Prefix(token, {"label": text, "label_span": span, "label_parts": parts})

    def _interpolated(self, text: str, token: Token) -> list[str | Any]:
        """`"block{i + 1}-0"` as ["block", <i + 1>, "-0"]: each `{…}` is an expression, parsed
        where it stands in the file so its span points into the string. `{{` and `}}` are braces."""
        parts: list[str | Any] = []
        literal: list[str] = []
        index = 0
        while index < len(text):
            char = text[index]
            if char in "{}" and text[index : index + 2] in ("{{", "}}"):
                literal.append(char)
                index += 2
                continue
            if char == "}":
                raise LabelError("a '}' in a name must be written '}}' (or close a '{' expression)", token)
            if char != "{":
                literal.append(char)
                index += 1
                continue
            end = text.find("}", index)
            if end < 0:
                raise LabelError("a '{' in a name opens an expression that is never closed", token)
            if literal:
                parts.append("".join(literal))
                literal = []
            # The string's text before the brace stands for its own width: no escapes inside names.
            column = token.column + 1 + index + 1  # type: ignore[operator]
            parts.append(self.parse_expression(text[index + 1 : end], self.file, token.line, column))  # type: ignore[arg-type]
            index = end + 1
        if literal:
            parts.append("".join(literal))
        return parts

    def _start(self, prefix: Prefix | None, keyword: Any) -> Any:
        return prefix.token if prefix is not None else keyword

    def _binds(self, bind: Any) -> dict[str, Any]:
        """The `as …` of a statement, as its IR fields."""
        if bind is None:
            return {}
        names, span, tupled = bind
        return {"binds": names, "binds_span": span, "binds_tuple": tupled}

    def source(self, children: list[Any]) -> tuple[str, Span, Token]:
        name, _arrow = children
        return str(name), self._token_span(name), name

    def sourced(self, children: list[Any]) -> ir.Stmt:
        """`x -> statement`: the statement, reading `x`, and starting at it."""
        (name, span, token), statement = children
        end = statement.span
        return statement.model_copy(
            update={
                "source": name,
                "source_span": span,
                "span": Span(self.file, token.line, token.column, end.end_line, end.end_column),
            }
        )

    def bind(self, children: list[Any]) -> tuple[list[str], Span, bool]:
        keyword, *names = children
        tupled = bool(names) and isinstance(names[0], Token) and names[0].type == "LPAR"
        words = [n for n in names if isinstance(n, Token) and n.type == "NAME"]
        last = names[-1] if names[-1] is not None else names[-2]
        return [str(n) for n in words], self._span(keyword, last), tupled

    def call(self, children: list[Any]) -> ir.Call:
        prefix, op, args, bind = children
        if prefix is None and bind is None:
            # Most statements of a long spec: no name, no `as` (their fields' defaults).
            return ir.Call.of(
                span=self._span(op, args.end if args is not None else op),
                op=str(op),
                op_span=self._token_span(op),
                args=args or [],
            )
        end = bind[1] if bind is not None else args.end if args is not None else op
        return ir.Call.of(
            span=self._span(self._start(prefix, op), end),
            op=str(op),
            op_span=self._token_span(op),
            args=args or [],
            **_fields(prefix),
            **self._binds(bind),
        )

    def repeat(self, children: list[Any]) -> ir.Repeat:
        prefix, keyword, count, _as, index, *body, close, bind = children
        extra = {} if index is None else {"index": str(index), "index_span": self._token_span(index)}
        return ir.Repeat.of(
            span=self._span(self._start(prefix, keyword), close),
            count=count,
            body=body,
            **extra,
            **_fields(prefix),
            **self._binds(bind),
        )

    def concat(self, children: list[Any]) -> ir.Concat:
        prefix, keyword, args, *branches, _close, bind = children
        return ir.Concat.of(
            span=self._span(self._start(prefix, keyword), args.end if args is not None else keyword),
            args=args or [],
            branches=branches,
            **_fields(prefix),
            **self._binds(bind),
        )

    def branch(self, children: list[Any]) -> ir.Branch:
        star, keyword, name, *body, _close = children
        if star is not None and name is not None:
            raise LabelError("a spliced branch (`*branch`) makes no module, so it takes no name", name)
        return ir.Branch.of(
            span=self._span(star or keyword, name or keyword),
            name=_branch_name(name),
            body=body,
            splice=star is not None,
        )

    def shortcut(self, children: list[Any]) -> ir.Branch:
        return self.branch([None, *children])

    def residual(self, children: list[Any]) -> ir.Residual:
        prefix, keyword, args, *body, _close, bind = children
        shortcuts = [c for c in body if isinstance(c, ir.Branch)]
        extra = {"shortcut": shortcuts[0], "shortcut_at": body.index(shortcuts[0])} if shortcuts else {}
        if len(shortcuts) > 1:
            raise LabelError("a residual has one shortcut", shortcuts[1].span)
        return ir.Residual.of(
            span=self._span(self._start(prefix, keyword), args.end if args is not None else keyword),
            args=args or [],
            body=[c for c in body if not isinstance(c, ir.Branch)],
            **extra,
            **_fields(prefix),
            **self._binds(bind),
        )

    def gate(self, children: list[Any]) -> ir.Gate:
        prefix, keyword, *body, _close, bind = children
        return ir.Gate.of(
            span=self._span(self._start(prefix, keyword), keyword),
            body=body,
            **_fields(prefix),
            **self._binds(bind),
        )

    def group_stmt(self, children: list[Any]) -> ir.Group:
        prefix, open_, *body, _close, bind = children
        return ir.Group.of(
            span=self._span(self._start(prefix, open_), open_),
            body=body,
            **_fields(prefix),
            **self._binds(bind),
        )

    def if_stmt(self, children: list[Any]) -> ir.If:
        keyword, condition, then, _else, otherwise = children
        orelse = [otherwise] if isinstance(otherwise, ir.If) else otherwise or []
        return ir.If.of(span=self._span(keyword, condition), condition=condition, body=then, orelse=orelse)

    def then_body(self, children: list[Any]) -> list[Any]:
        return [c for c in children[1:-1] if not isinstance(c, Token)]

    else_body = then_body

    def output_stmt(self, children: list[Any]) -> ir.Output:
        keyword, *items = children
        items = [i for i in items if i is not None]
        return ir.Output.of(span=self._span(keyword, items[-1]), items=items)

    def output_item(self, children: list[Any]) -> ir.OutputItem:
        key, name = children
        fields: dict[str, Any] = {"key": None}
        if key is not None:
            text = unescape(key[1:-1]) if key.type == "STRING" else str(key)
            fields = {"key": text, "key_span": self._token_span(key)}
        return ir.OutputItem.of(span=self._span(key or name, name), name=str(name), **fields)

    def input_stmt(self, children: list[Any]) -> ir.Input:
        keyword, dims, bind = children
        return ir.Input.of(
            span=self._span(keyword, bind[1] if bind is not None else dims if dims is not None else keyword),
            dims=dims.items if dims is not None else None,
            **self._binds(bind),
        )

    def train_stmt(self, children: list[Any]) -> ir.Train:
        keyword, *entries, close = children
        return ir.Train.of(span=self._span(keyword, close), entries=entries)

    def train_entry(self, children: list[Any]) -> ir.TrainEntry:
        key, value = children
        return ir.TrainEntry.of(span=self._span(key, value), key=str(key), value=value)

    def arg_list(self, children: list[Any]) -> ArgList:
        *items, close = children
        args = ArgList(
            item if isinstance(item, ir.Arg) else ir.Arg.of(span=item.span, name=None, value=item)
            for item in items
            if item is not None
        )
        args.end = close
        return args

    def keyword_arg(self, children: list[Any]) -> ir.Arg:
        name, value = children
        return ir.Arg.of(span=self._span(name, value), name=str(name), value=value)

    # --- expressions ----------------------------------------------------------------------------

    def expr(self, children: list[Any]) -> Any:
        """`a op b …`, or `a op b … if condition else otherwise`: the grammar's one rule for both."""
        marker = children[-4] if len(children) >= 5 else None
        if not (isinstance(marker, Token) and marker.type == "IF"):
            return self.arith(children)
        then = self.arith(children[:-4]) if len(children) > 5 else children[0]
        condition, otherwise = children[-3], children[-1]
        return ir.Choose.of(
            span=self._span(then, otherwise), condition=condition, then=then, otherwise=otherwise
        )

    def arith(self, children: list[Any]) -> Any:
        """`a op b op c …` with Python's precedence, every level left-associative: * / // bind
        tighter than + -, which bind tighter than comparisons, then `and`, then `or`."""
        operands: list[Any] = [children[0]]
        ops: list[str] = []
        for op, operand in zip(children[1::2], children[2::2], strict=True):
            # Reduce what binds at least as tightly as `op` before pushing it (shunting-yard).
            while ops and _PRECEDENCE[ops[-1]] >= _PRECEDENCE[str(op)]:
                right = operands.pop()
                operands[-1] = self._make_binop(ops.pop(), operands[-1], right)
            ops.append(str(op))
            operands.append(operand)
        while ops:
            right = operands.pop()
            operands[-1] = self._make_binop(ops.pop(), operands[-1], right)
        return operands[0]

    def _make_binop(self, op: str, left: Any, right: Any) -> ir.BinOp:
        return ir.BinOp.of(span=self._span(left, right), op=op, left=left, right=right)

    def neg(self, children: list[Any]) -> ir.Neg:
        minus, operand = children
        return ir.Neg.of(span=self._span(minus, operand), operand=operand)

    def not_(self, children: list[Any]) -> ir.Not:
        keyword, operand = children
        return ir.Not.of(span=self._span(keyword, operand), operand=operand)

    def group(self, children: list[Any]) -> Any:
        open_, inner, close = children
        return inner.model_copy(update={"span": self._span(open_, close)})

    def int_lit(self, children: list[Any]) -> ir.IntLit:
        (token,) = children
        # the resolver reports any value past 64 bits as out of range
        return ir.IntLit.of(span=self._token_span(token), value=decimal(token))

    def float_lit(self, children: list[Any]) -> ir.FloatLit:
        (token,) = children
        return ir.FloatLit.of(span=self._token_span(token), value=float(token))

    def string_lit(self, children: list[Any]) -> ir.StrLit:
        (token,) = children
        return ir.StrLit.of(span=self._token_span(token), value=unescape(token[1:-1]))

    def true_lit(self, children: list[Any]) -> ir.BoolLit:
        (token,) = children
        return ir.BoolLit.of(span=self._token_span(token), value=True)

    def false_lit(self, children: list[Any]) -> ir.BoolLit:
        (token,) = children
        return ir.BoolLit.of(span=self._token_span(token), value=False)

    def name_ref(self, children: list[Any]) -> ir.NameRef:
        (token,) = children
        return ir.NameRef.of(span=self._token_span(token), name=str(token))

    def call_expr(self, children: list[Any]) -> ir.CallExpr:
        name, args = children
        return ir.CallExpr.of(span=self._span(name, args.end), name=str(name), args=list(args))

    def list_expr(self, children: list[Any]) -> ir.ListExpr:
        open_, *items, close = children
        return ir.ListExpr.of(span=self._span(open_, close), items=[c for c in items if c is not None])


def source_file(items: list[Any], file: str, unparsed_blocks: list[str] | None = None) -> ir.SourceFile:
    """Sorts a file's transformed top-level items into a `SourceFile`."""
    return ir.SourceFile.of(
        path=file,
        imports=[i for i in items if isinstance(i, ir.Import)],
        blocks=[i for i in items if isinstance(i, ir.BlockDef)],
        models=[i for i in items if isinstance(i, ir.ModelDef)],
        unparsed_blocks=unparsed_blocks or [],
    )
