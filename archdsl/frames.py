"""The places a statement is elaborated in, shared by the walk (`elaborate.py`) and the constructs
(`constructs.py`) it hands statements to.

A `Frame` says where a statement stands: the module its members join, the `Namespace` they are
claimed in, the `Scope` of names it sees and the value it receives. A construct says what it made
as a `Made`; `dry` is a value that is not computed (its statement failed, or never runs). These
hold no behaviour of either stage, so both import them and neither imports the other back.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import ir
from .errors import Span
from .graph import Module, Shaped, Value
from .resolve import nested_statements


@dataclass
class Namespace:
    """The members of one module, claimed in order: a named statement takes its name, an unnamed
    one its position among the members (as `nn.Sequential` numbers them)."""

    names: dict[str, Span] = field(default_factory=dict)
    #: Members so far; a spliced statement's members count here, not the statement itself.
    members: int = 0
    #: Statements that make no member so far (spliced ones, functions), told apart by their
    #: number (`.0`, `.1`, …).
    spliced: int = 0

    def anonymous(self) -> str:
        key = f".{self.spliced}"
        self.spliced += 1
        return key


@dataclass
class Scope:
    """The names of one definition's body (a model's, or a block call's): its parameters, and the
    values named so far (shared by the composites inside it, as Python's locals are)."""

    params: dict[str, Any]
    values: dict[str, Value] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    #: Names made only in a part that does not run here (a branch, `repeat 0`'s body), with
    #: where that part is and what it is (`if`, `repeat`).
    maybe: dict[str, tuple[Span, str]] = field(default_factory=dict)
    #: The definition's statements, from which the names it makes are found (with where first)
    #: when a name is read that is not made yet: for "read before it is made".
    body: Sequence[ir.Stmt] = ()
    _later: dict[str, Span] | None = None
    #: The values made in this body, for the check that each is used.
    made: list[Value] = field(default_factory=list)
    #: The names given in this body (`as p`), with where: a value a block call gives is made in
    #: the block's body, and its name here is what the check reports.
    given_names: list[tuple[str, Span, Value]] = field(default_factory=list)
    #: The statements' module names, for the hint where one is read as a value.
    labels: dict[str, Span] = field(default_factory=dict)
    #: What `output` gives, once it is written.
    outputs: list[Value] | None = None
    output_keys: list[str] | None = None
    output_names: list[str] | None = None
    output_span: Span | None = None

    @property
    def later(self) -> dict[str, Span]:
        if self._later is None:
            self._later = _made_names(self.body)
        return self._later

    def dead(self) -> Scope:
        """The scope of a part that never runs: it sees this one's names, and keeps the names it
        makes (their values are dry) to itself; `maybe`, shared, tells a later reader where they
        would have been made."""
        return Scope(
            dict(self.params),
            ChainMap({}, self.values),  # type: ignore[arg-type]
            ChainMap({}, self.spans),  # type: ignore[arg-type]
            self.maybe,
            self.body,
            self._later,
            labels=self.labels,
        )


@dataclass
class Frame:
    """Where a statement is elaborated: the module its members join, the namespace they are
    claimed in (the module's own, or, spliced, an enclosing one's), and what it receives."""

    module: Module
    space: Namespace
    scope: Scope
    flow: Value | None
    stack: tuple[str, ...]
    weight: int
    #: In statements that never run: checked, never built.
    never: bool = False
    #: Why there is no flow where there is none (the statement before gave several values).
    stopped: str | None = None
    #: A definition's own body (where `output` may stand), not a composite's.
    top: bool = False
    #: What the last statement made (several values, where it made several).
    last: list[Value] = field(default_factory=list)
    #: In a part that does not run: the statement it belongs to, and what it is (`if`, `repeat`).
    never_at: Span | None = None
    never_kind: str = "if"

    def dead(self, module: Module, at: Span, kind: str, **changes: Any) -> Frame:
        """A frame for a part that never runs (`kind`, written at `at`), unless this one is in one
        already: checked, never built, with a scope of its own (`Scope.dead`)."""
        if self.never:
            return self.inner(module, Namespace(), scope=self.scope.dead(), **changes)
        return self.inner(
            module, Namespace(), scope=self.scope.dead(), never=True, never_at=at, never_kind=kind, **changes
        )

    def inner(self, module: Module | None = None, space: Namespace | None = None, **changes: Any) -> Frame:
        """A frame for the body of a composite statement: its own module, or (spliced) this one's."""
        return replace(
            self,
            module=module or self.module,
            space=space if space is not None else (Namespace() if module is not None else self.space),
            top=False,
            last=[],
            **changes,
        )


@dataclass
class Made:
    """What a statement made: its outline record (None where it made nothing: an error, a statement
    that never runs) and its output values (one, or several)."""

    record: Shaped | None
    outputs: list[Value]
    #: Records to stand in its place in the outline instead (an `if`'s chosen statements).
    spread: list[Shaped] | None = None


def dry(span: Span | None = None, origin: str = "") -> Value:
    """A value that is not computed here (its statement failed, or never runs)."""
    return Value(None, origin=origin, span=span)


def _made_names(body: Sequence[ir.Stmt]) -> dict[str, Span]:
    """Every value name a body makes (`as`), with where it is first made."""
    found: dict[str, Span] = {}
    for statement in nested_statements(body):
        for name in statement.binds or ():
            found.setdefault(name, statement.binds_span or statement.span)
    return found


__all__ = ["Frame", "Made", "Namespace", "Scope", "dry"]
