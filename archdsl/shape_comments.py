"""Shape comments that cannot lie: `# [16, 10, 10]` after a statement, held to its inferred shape.

Consumes a file's trivia (its comments, as the lexer found them: `trivia.py`) and its shaped
models; produces W005 for each shape comment that disagrees with the shape inference, and, for
`archdsl fmt --shapes`, the text with every such comment written or refreshed.

A trailing comment describes the statement that ends right before it on its line: `conv(6,
kernel=5) tanh  # [6, 28, 28]` describes `tanh`, and a comment after the `}` of a `repeat`, group,
`concat`, `residual` or `gate` describes that whole statement. It is a shape comment when its text
starts with a list of integers (`# [16, 10, 10]`, `# [10] logits`). The shapes it is held to are
those of the file's own models at their default parameters: a statement in a model's body has one;
one in a block's body has one per call of the block (and one in a repeat, one per pass). When they
differ, no comment can be true for all of them, and a shape comment there is reported as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from .codes import STALE_SHAPE
from .errors import Diagnostic, Note, Span, warning
from .shapes import Shaped, ShapedModel
from .sizes import Shape, fmt_io
from .transformer import OUT_OF_RANGE, decimal
from .trivia import Comment, Trivia

_SIZES = r"\[\s*(?:[0-9]+(?:\s*,\s*[0-9]+)*\s*,?)?\s*\]"
#: `# [16, 10, 10]`: the comment's shape, then any other text; `# ([2, 8, 8], [2, 8, 8])` for a
#: statement that gives several values.
_SHAPE = re.compile(rf"#\s*({_SIZES}|\(\s*{_SIZES}(?:\s*,\s*{_SIZES})+\s*,?\s*\))")
#: What a statement gives, as a shape comment states it: the shape of each of its values.
Given = tuple[Shape, ...]
#: Statement kinds that are not statements of their own: a repeat's passes, a concat's branches.
_NOT_STATEMENTS = {"iteration", "branch"}
#: Statements whose span ends at their header: they end at the `}` of their body (a residual's
#: written `shortcut { … }` too, which gives what the body's sum adds).
_BODIES = {"group", "concat", "residual", "gate", "shortcut"}
#: The names given after a body's `}`: `{ … } as skip`, which the statement ends with.
_BOUND = re.compile(r"[ \t]*as[ \t]*(?:\([^)\n]*\)|[A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class Statement:
    """A statement of the file, as the models use it: every output shape it has, in order."""

    span: Span
    what: str  #: `tanh`, `Stage`, the group
    end: int  #: the offset just past its last character
    in_model: bool  #: written in a model's body (not in a block's)
    shapes: list[Given] = field(default_factory=list)


def stale_comments(models: list[ShapedModel], trivia: Trivia, file: str) -> list[Diagnostic]:
    """W005 for each shape comment of `file` (whose trivia is `trivia`) that its models contradict."""
    if not any(c.trailing and _SHAPE.match(c.text) for c in trivia.comments):
        return []
    return check(trivia, statements(models, trivia, file), file)


def statements(models: list[ShapedModel], trivia: Trivia, file: str) -> dict[int, Statement]:
    """The statements of `file` that `models` use, keyed by the offset just past their last character."""
    found: dict[int, Statement] = {}
    for model in models:
        model_lines = (model.span.line, model.span.end_line)
        for node in walk(model.layers):
            span = node.span
            if node.kind in _NOT_STATEMENTS or span.file != file or span.whole_file:
                continue
            end = trivia.offset(span.end_line, span.end_column)
            if node.kind in _BODIES:
                end = trivia.closing_brace_after(trivia.offset(span.line, span.column)) or end
                bound = _BOUND.match(trivia.text, end)
                end = bound.end() if bound is not None else end
            statement = found.get(end)
            if statement is None:
                in_model = model.file == file and model_lines[0] <= span.line <= model_lines[1]
                what = f"`{node.op}`" if node.kind in ("layer", "block") else f"the {node.kind}"
                statement = found[end] = Statement(span, what, end, in_model)
            given = node.given or (node.output,)
            if given not in statement.shapes:
                statement.shapes.append(given)
    return found


def walk(nodes: list[Shaped]) -> Iterator[Shaped]:
    """Every statement under `nodes`, depth first, in source order."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def shape_of(comment: Comment) -> tuple[Given, re.Match[str]] | None:
    """The shapes a comment starts with (one, or one per value), and the match of its brackets."""
    match = _SHAPE.match(comment.text)
    if match is None:
        return None
    lists = re.findall(_SIZES, match.group(1))
    return tuple(tuple(decimal(d) for d in re.findall("[0-9]+", sizes)) for sizes in lists), match


def shape_text(given: Given) -> str:
    """`[16, 10, 10]`, or `([2, 8, 8], [2, 8, 8])` for several values (as `summary` writes them)."""
    return fmt_io([(None, shape) for shape in given])


def _written(given: Given, match: re.Match[str]) -> str:
    """The shape as the warning quotes it: as written where a size is too long to be any tensor's."""
    return shape_text(given) if not any(OUT_OF_RANGE in s for s in given) else match.group(1)[:40] + "…"


def check(trivia: Trivia, found: dict[int, Statement], file: str) -> list[Diagnostic]:
    """W005 for each shape comment in `file` that disagrees with its statement's shapes."""
    problems: list[Diagnostic] = []
    for comment in trivia.comments:
        if not comment.trailing:
            continue
        parsed = shape_of(comment)
        statement = found.get(comment.code_end)
        if parsed is None or statement is None:
            continue
        written, match = parsed
        shapes = statement.shapes
        if shapes == [written]:
            continue
        line, column = comment.line, comment.column
        span = Span(file, line, column + match.start(1), line, column + match.end(1))
        if len(shapes) == 1:
            message = (
                f"shape comment {_written(written, match)} is stale: {statement.what} gives "
                f"{shape_text(shapes[0])}; `archdsl fmt --shapes` rewrites it"
            )
        else:
            listed = " or ".join([", ".join(shape_text(s) for s in shapes[:-1]), shape_text(shapes[-1])])
            message = (
                f"shape comment {_written(written, match)} cannot be true: {statement.what} gives {listed}, "
                "depending on the call or pass; `archdsl fmt --shapes` removes it"
            )
        notes: tuple[Note, ...] = ()
        if not statement.in_model:
            notes = (Note(message="a statement in a block has a shape at each call of the block"),)
        problems.append(warning(STALE_SHAPE, message, span, *notes))
    return problems


def refresh(trivia: Trivia, found: dict[int, Statement]) -> str:
    """The text with a true shape comment on every line that ends a statement of a model's body
    (the statement's shape first, any other comment text kept after it), stale ones rewritten,
    and those that cannot be true (a block's statement with several shapes) taken out."""
    text = trivia.text
    edits: list[tuple[int, int, str]] = []
    commented = {c.code_end: c for c in trivia.comments if c.trailing}
    for end, statement in found.items():
        comment = commented.get(end)
        if comment is None:
            line_end = text.find("\n", end)
            rest = text[end : len(text) if line_end < 0 else line_end]
            if statement.in_model and len(statement.shapes) == 1 and not rest.strip():
                edits.append((end, end, f"  # {shape_text(statement.shapes[0])}"))
            continue
        parsed = shape_of(comment)
        if len(statement.shapes) == 1:
            shape = shape_text(statement.shapes[0])
            if parsed is not None:
                _, match = parsed
                edits.append((comment.offset, comment.offset + match.end(0), f"# {shape}"))
            elif statement.in_model:
                body = comment.text[1:].strip()
                edits.append((comment.offset, comment.offset + len(comment.text), f"# {shape}  {body}"))
        elif parsed is not None:
            _, match = parsed
            rest = comment.text[match.end(0) :].lstrip(" :;,-–—").strip()
            replacement = f"# {rest}" if rest else ""
            start = comment.offset if rest else comment.code_end
            edits.append((start, comment.offset + len(comment.text), replacement))
    for start, stop, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[stop:]
    return text
