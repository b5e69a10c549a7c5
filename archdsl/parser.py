"""Stage 1: text → parse, with syntax errors phrased in the user's words.

Consumes the text of one `.arch` file; produces its top-level items (`import`, `block`, `model`)
as IR nodes — lark applies `transformer.ToIR` during the LALR parse instead of building a tree —
and a list of syntax diagnostics. When the file has a syntax error, each top-level item is parsed
on its own so one typo does not hide the errors (or the valid definitions) in the rest of the file.
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .codes import SYNTAX
from .errors import Diagnostic, Note, Span, did_you_mean, error
from .grammar import GRAMMAR, keywords, skip_pattern
from .transformer import LabelError, ToIR


def _lark(name: str, **options: Any) -> Lark:
    # The LALR tables are cached on disk keyed by the grammar's hash: building them costs more
    # than the rest of `archdsl check`'s start-up together.
    cache = Path(tempfile.gettempdir()) / f"archdsl-{name}-{_grammar_digest()}.lark-cache"
    return Lark(
        GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="basic",
        maybe_placeholders=True,
        cache=str(cache),
        **options,
    )


#: The terminals the lexer hands to `_LEXED` as it goes: what `trivia.py` makes a file's trivia
#: of (lark drops comments, and the braces and strings place them).
TRIVIA_TERMINALS = ("COMMENT", "STRING", "LBRACE", "RBRACE")
#: The trivia tokens of the parse under way (the lexer's callbacks fill it).
_LEXED: list[Token] = []


def _keep(token: Token) -> Token:
    _LEXED.append(token)
    return token


@functools.lru_cache(maxsize=1)
def lark_parser() -> Lark:
    return _lark(
        "grammar", transformer=_TRANSFORMER, lexer_callbacks={name: _keep for name in TRIVIA_TERMINALS}
    )


def _parse(text: str, file: str) -> list[Any]:
    _TRANSFORMER.file = file
    _LEXED.clear()
    return lark_parser().parse(text)  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def _expression_parser() -> Lark:
    return _lark("expr", start="expr", transformer=_TRANSFORMER)


@functools.lru_cache(maxsize=1)
def concrete_parser() -> Lark:
    """The grammar without the IR transformer and with every token kept (commas, colons, `;`):
    the concrete syntax tree that `fmt` lays out again."""
    return _lark("concrete", keep_all_tokens=True)


def parse_expression(text: str, file: str, line: int, column: int) -> Any:
    """One expression written inside a string at `line`, `column` (1-based) of `file`, as an IR
    expression whose spans point there; raises `LabelError` when it is not one."""
    padded = "\n" * (line - 1) + " " * (column - 1) + text
    try:
        return _expression_parser().parse(padded)
    except UnexpectedInput as exc:
        span = Span(file, line, column, line, column + max(len(text), 1))
        if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
            span = _token_span(exc.token, file)
        raise LabelError(f"'{{{text}}}' in a name must hold an expression", span) from None


_TRANSFORMER = ToIR(parse_expression)


def _grammar_digest() -> str:
    import hashlib

    import lark

    digest = hashlib.sha256(GRAMMAR.read_bytes() + lark.__version__.encode()).hexdigest()
    return digest[:16]


@dataclass
class ParseResult:
    items: list[Any] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: Blocks whose definition has a syntax error: calls to them are not reported a second time.
    unparsed_blocks: list[str] = field(default_factory=list)
    #: The lexer's comment, string and brace tokens, in order, when the whole file parsed (the
    #: lexer saw all of it); None when it did not, and `comments.scan` reads the text instead.
    trivia_tokens: list[Token] | None = None


def parse(text: str, file: str) -> ParseResult:
    try:
        items = _parse(text, file)
    except (UnexpectedInput, LabelError) as first:
        return _parse_items_separately(text, file, first)
    return ParseResult(items=items, trivia_tokens=list(_LEXED))


def _label_error(bad: LabelError, file: str) -> Diagnostic:
    where = bad.where
    span = where if isinstance(where, Span) else _token_span(where, file)
    return error(SYNTAX, bad.message, span)


def _parse_items_separately(text: str, file: str, first_error: UnexpectedInput | LabelError) -> ParseResult:
    result = ParseResult()
    line_starts = _line_starts(text)
    chunks = _top_level_chunks(text)
    for start, end in chunks:
        line = _line_of(line_starts, start)
        column = start - line_starts[line - 1]
        # Padding keeps lark's line and column counts equal to the file's.
        padded = "\n" * (line - 1) + " " * column + text[start:end]
        try:
            items = _parse(padded, file)
        except LabelError as bad:
            result.diagnostics.append(_label_error(bad, file))
            header = _BLOCK_HEADER.match(text, start)
            if header:
                result.unparsed_blocks.append(header.group(1))
            continue
        except UnexpectedInput as exc:
            following = None
            if end < len(text):
                word = _TOP_KEYWORD.match(text, end)
                following = f"'{word.group(1) if word else text[end]}' at line {_line_of(line_starts, end)}"
            result.diagnostics.append(_diagnose(exc, padded, file, following))
            header = _BLOCK_HEADER.match(text, start)
            if header:
                result.unparsed_blocks.append(header.group(1))
            continue
        result.items.extend(items)
    if not result.diagnostics:  # the split changed the error away; report the original
        result.items = []
        if isinstance(first_error, LabelError):
            result.diagnostics.append(_label_error(first_error, file))
        else:
            result.diagnostics.append(_diagnose(first_error, text, file))
    return result


# --- splitting a broken file into top-level items --------------------------------------------------

_TOP_KEYWORD = re.compile(r"(import|block|model)\b")
_BLOCK_HEADER = re.compile(r"block\s+([A-Za-z_][A-Za-z0-9_]*)")


def _code_offsets(text: str) -> Iterator[int]:
    """Offsets of the characters outside comments and string literals (closed or not), as the
    grammar's terminals define them (`grammar.skip_pattern`)."""
    start = 0
    for skipped in _skipped().finditer(text):
        yield from range(start, skipped.start())
        start = skipped.end()
    yield from range(start, len(text))


@functools.lru_cache(maxsize=1)
def _skipped() -> re.Pattern[str]:
    return re.compile(skip_pattern())


def _top_level_chunks(text: str) -> list[tuple[int, int]]:
    """Offsets of each top-level item: a keyword at brace depth 0, or in column 1.

    A definition that starts in column 1 is taken as a new item even inside an unclosed brace,
    so a missing '}' costs one definition, not the rest of the file.
    """
    starts: list[int] = []
    depth = 0
    for i in _code_offsets(text):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(depth - 1, 0)
        elif ch in "ibm" and (depth == 0 or i == 0 or text[i - 1] == "\n"):
            word_start = i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
            if word_start and _TOP_KEYWORD.match(text, i):
                starts.append(i)
                depth = 0
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = [*starts, len(text)]
    return [(bounds[k], bounds[k + 1]) for k in range(len(starts))]


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(m.end() for m in re.finditer("\n", text))
    return starts


def _line_of(line_starts: list[int], offset: int) -> int:
    import bisect

    return bisect.bisect_right(line_starts, offset)


# --- phrasing ---------------------------------------------------------------------------------------

_STATEMENT_STARTS = {
    "NAME",
    "STRING",
    "STAR",
    "LBRACE",
    "REPEAT",
    "CONCAT",
    "RESIDUAL",
    "GATE",
    "SHORTCUT",
    "INPUT",
    "OUTPUT",
    "TRAIN",
    "IF",
}
_ITEM_STARTS = {"IMPORT", "BLOCK", "MODEL"}
_LABEL_KEYWORDS = {"BLOCK", "MODEL", "BRANCH", "AS", "ELSE", "AND", "OR", "NOT"}
#: What may follow a statement's name or call without being a new statement: its `->` (the name
#: was a value it reads), its `as`, its argument list and label.
_CONTINUATIONS = {"LPAR", "COLON", "ARROW", "AS"}
_VALUE_STARTS = {"INT", "FLOAT", "STRING", "NAME", "LSQB", "MINUS", "LPAR", "TRUE", "FALSE", "NOT"}
_OPERATORS = {
    "PLUS",
    "MINUS",
    "STAR",
    "SLASH",
    "FLOORDIV",
    "EQ",
    "NE",
    "LT",
    "LE",
    "GT",
    "GE",
    "AND",
    "OR",
    "ARROW",
}
_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "$END": "the end of the file",
}


def _describe_terminal(name: str) -> str:
    if name in _WORDS:
        return _WORDS[name]
    terminal = lark_parser().get_terminal(name)
    pattern = terminal.pattern
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


def expected_phrase(expected: set[str]) -> str:
    """Names a parser state's acceptable terminals the way a user thinks of them."""
    remaining = set(expected)
    phrases: list[str] = []
    if "REPEAT" in remaining:
        phrases.append("a layer")
        # After a layer name, '(' and ':' would continue it; offering them beside "a layer"
        # only clutters the message, as do the keywords that may name a statement (`block:`).
        remaining -= _STATEMENT_STARTS | _LABEL_KEYWORDS | _CONTINUATIONS
    if "BLOCK" in remaining:
        phrases.append("'block', 'model' or 'import'")
        remaining -= _ITEM_STARTS | {"$END"}
    if "INT" in remaining:
        phrases.append("a value")
        remaining -= _VALUE_STARTS
    if remaining - _OPERATORS:
        remaining -= _OPERATORS
    order = ["RBRACE", "RPAR", "RSQB", "COMMA", "EQUAL", "COLON", "LBRACE", "LPAR", "$END"]
    ordered = sorted(remaining, key=lambda t: (order.index(t) if t in order else len(order), t))
    phrases.extend(_describe_terminal(t) for t in ordered if t != "SEMICOLON")
    if not phrases:
        return "something else"
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "the end of the file"
    text = str(token)
    if token.type == "NAME":
        return f"'{text}'"
    if token.type in ("INT", "FLOAT"):
        return f"the number {text}"
    if token.type == "STRING":
        return f"the string {text}"
    return f"'{text}'"


def _diagnose(exc: UnexpectedInput, text: str, file: str, following: str | None = None) -> Diagnostic:
    """One syntax error in words. `following` names what comes after a chunk that ends early
    (the next definition), so its end is not called the end of the file."""
    if isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream or 0
        char = text[position] if position < len(text) else ""
        span = Span(file=file, line=exc.line, column=exc.column, end_line=exc.line, end_column=exc.column + 1)
        if char in "\"'":
            return error(SYNTAX, "unterminated string: it must close on the same line", span)
        allowed = set(exc.allowed or ())
        shown = repr(char) if char.isprintable() and char != "" else f"U+{ord(char):04X}" if char else "end"
        message = f"unexpected character {shown}"
        if allowed:
            message += f": expected {expected_phrase(allowed)}"
        return error(SYNTAX, message, span)

    if isinstance(exc, UnexpectedEOF):
        return _eof_error(set(exc.expected), text, file, None, following)

    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    expected = _acceptable(exc)
    offset = len(text) if token.type == "$END" else token.start_pos or 0
    previous = _previous_token(text, offset)
    if token.type == "$END":
        return _eof_error(expected, text, file, previous, following)
    span = _token_span(token, file)
    message = f"expected {expected_phrase(expected)}"
    if previous is not None:
        message += f" after '{previous}'"
    message += f", found {_describe_token(token)}"
    if "NAME" in expected and token.type != "NAME" and str(token) in keywords():
        message += ", a keyword, which cannot be a name"
    elif token.type == "COMMA" and _NAMED_ONE.search(text, 0, offset):
        message += "; several values are named in parentheses: `as (a, b)`"
    if token.type == "NAME":
        words = [_describe_terminal(t).strip("'") for t in expected if t.isupper() and t.isalpha()]
        message += did_you_mean(str(token), [k for k in words if k.isalpha()])
    return error(SYNTAX, message, span, *_unclosed_notes(text, offset, expected, token.line or 1))


#: The closing terminals a parse may expect, and the bracket each closes.
_CLOSES = {"RPAR": ("(", ")"), "RSQB": ("[", "]")}


def _unclosed_notes(text: str, offset: int, expected: set[str], line: int) -> list[Note]:
    """Where the parser wants a `)` or `]` on a line after the one that opened it (`conv(16,
    kernel=3` followed by a new statement), a note at the bracket left open, as for a `{`."""
    notes = []
    for terminal, (opening, closing) in _CLOSES.items():
        opened = _innermost_open(text[:offset], opening, closing) if terminal in expected else None
        if opened is None:
            continue
        open_line, column = _line_column(text, opened)
        if open_line < line:
            where = f"line {open_line}, column {column}"
            notes.append(Note(message=f"the '{opening}' at {where} is never closed"))
    return notes


#: `… as name` just before: a `,` after it means to name several values.
_NAMED_ONE = re.compile(r"\bas\s+[A-Za-z_][A-Za-z0-9_]*\s*$")


def _acceptable(exc: UnexpectedToken) -> set[str]:
    """Every terminal the parser could take here, following reductions (lark's own `expected`
    lists only the current state's shifts)."""
    parser = exc.interactive_parser
    if parser is not None:
        try:
            return set(parser.accepts())
        except Exception:
            pass
    return set(exc.expected)


_LAST_TOKEN = re.compile(
    r"""([A-Za-z_][A-Za-z0-9_]*|[0-9][0-9.eE+-]*|"[^"]*"|'[^']*'|//|->|[=!<>]=|\S)\s*$"""
)


def _previous_token(text: str, offset: int) -> str | None:
    """The token before `offset`, skipping white space and comments."""
    end = offset
    while end > 0:
        line_start = text.rfind("\n", 0, end) + 1
        code_end = line_start
        for i in _code_offsets(text[line_start:end]):
            code_end = line_start + i + 1
        code = text[line_start:code_end].rstrip()
        match = _LAST_TOKEN.search(code)
        if match:
            return match.group(1)
        end = line_start - 1
    return None


def _token_span(token: Token, file: str) -> Span:
    line = token.line or 1
    column = token.column or 1
    end_line = token.end_line or line
    end_column = token.end_column or column + 1
    return Span(file=file, line=line, column=column, end_line=end_line, end_column=end_column)


def _eof_error(
    expected: set[str], text: str, file: str, previous: str | None, following: str | None
) -> Diagnostic:
    stripped = text.rstrip()
    line = stripped.count("\n") + 1
    column = len(stripped) - (stripped.rfind("\n") + 1)
    span = Span(file=file, line=line, column=max(column, 1), end_line=line, end_column=max(column, 1) + 1)
    message = f"expected {expected_phrase(expected)}"
    if previous is not None:
        message += f" after '{previous}'"
    message = f"{message}, found {following}" if following else f"the file ended early: {message}"
    notes = []
    opened = _unclosed_brace(text)
    if opened is not None:
        open_line, open_col, what = opened
        notes.append(
            Note(message=f"the '{{' of {what} at line {open_line}, column {open_col} is never closed")
        )
    return error(SYNTAX, message, span, *notes)


def _unclosed_brace(text: str) -> tuple[int, int, str] | None:
    """The innermost '{' left open at the end of the text, and what it opened."""
    offset = _innermost_open(text, "{", "}")
    if offset is None:
        return None
    line, column = _line_column(text, offset)
    head = text[text.rfind("\n", 0, offset) + 1 : offset].strip()
    what = f"'{head}'" if head else "a section"
    return line, column, what


def _innermost_open(text: str, opening: str, closing: str) -> int | None:
    """The offset of the innermost `opening` bracket left open at the end of `text`, outside
    comments and strings."""
    stack: list[int] = []
    for i in _code_offsets(text):
        if text[i] == opening:
            stack.append(i)
        elif text[i] == closing and stack:
            stack.pop()
    return stack[-1] if stack else None


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of `offset` in `text`."""
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1
