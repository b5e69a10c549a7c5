"""Names of values: which values a definition reads by name, and what they are called, after the
variables of the module's own `forward` (`x1 = self.inc(x)` gives `as x1`) where that name is free,
else `x1`, `x2`, ….
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .failures import _segments
from .ir import Stmt, Value, end_of, nameable, refs
from .nodes import _stack

if TYPE_CHECKING:
    from torch import fx


def _statement_at(node: fx.Node, depth: int) -> tuple[Any, ...] | None:
    """Where, in the `forward` of the module `depth` calls deep, the statement that made `node`
    is (its line, and the lines of the calls around it), or None."""
    segments = _segments(node)
    if len(segments) <= depth or not segments[depth]:
        return None
    return tuple((s[-1][0], s[-1][1]) if s else None for s in segments[: depth + 1])


_ASSIGNED = re.compile(
    r"\s*\(?\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*,?\s*\)?\s*(?:[-+*/%@&|^]|//|\*\*|<<|>>)?=(?!=)"
)


def assigned(node: fx.Node, depth: int) -> list[str] | None:
    """The variables that the statement of the `forward` `depth` calls deep assigns `node` to
    (`x1 = self.inc(x)`: ["x1"]; `a, b = x.chunk(2, 1)`: ["a", "b"]) where `node` is what the
    statement computes last, not a step on its way."""
    where = _statement_at(node, depth)
    if where is None:
        return None
    # a step on the statement's way is read by the statement; what a child module returns and
    # also reads itself (`return self.pool(skip), skip`) is not
    inner = _stack(node)[depth : depth + 1]
    if any(_statement_at(u, depth) == where and _stack(u)[depth : depth + 1] != inner for u in node.users):
        return None
    if not inner and any(_statement_at(u, depth) == where for u in node.users):
        return None
    match = _ASSIGNED.match(_segments(node)[depth][-1][3])
    return [name.strip() for name in match.group(1).split(",")] if match else None


def hint(value: Value, depth: int, index: int = 0, count: int = 1) -> str | None:
    """The name the module's own `forward` gives `value`, looked for in the module `depth` calls
    deep and in those it calls: `index` of `count` values a statement gives together."""
    if value.hint is not None:
        return value.hint
    node = value.node
    if node is None:
        return None
    for level in range(depth, len(_segments(node))):
        names = assigned(node, level)
        if names is None:
            continue
        # a tuple's names belong to the statement of this module that gives the tuple; a value's
        # own name may stand deeper, in the module that makes it
        if level == depth and count > 1:
            if len(names) == count:
                return names[index]
            continue
        return names[0] if len(names) == 1 else None
    return None


class Names:
    """Which values of one definition (a model or a block) are read by name, and their names: the
    `forward`'s variable where no other value holds it from its value's making to its last
    reading, else the next `x1`, `x2`, … that no value of the definition is named. Also settles
    which statements read by name (`x -> …`): those that do not read what the statement before
    them makes."""

    def __init__(self, depth: int, reserved: set[str]):
        self.depth = depth
        self.reserved = reserved
        self.position = 0
        self.made: dict[Value, int] = {}
        self.last: dict[Value, int] = {}
        self.wanted: list[Value] = []
        #: the values a statement gives together, for the names a tuple's line gives them
        self.together: dict[Value, tuple[int, int]] = {}

    def make(self, values: list[Value]) -> None:
        for index, value in enumerate(values):
            if value not in self.made:
                self.made[value] = self.position
                if len(values) > 1:
                    self.together[value] = (index, len(values))
                    self.want(value)
        self.position += 1

    def want(self, value: Value) -> None:
        if value not in self.wanted:
            self.wanted.append(value)

    def read(self, value: Value) -> None:
        self.want(value)
        self.last[value] = self.position
        self.position += 1

    def flow(self, statements: list[Stmt], current: Value | None) -> Value | None:
        """Walks `statements` as the spec reads them, from `current`; returns what the last one
        gives."""
        for s in statements:
            if s.kind in ("group", "plain"):
                # a group reads by name where its first statement does: `image -> rgb: { … }`
                s.source = None
                first = end_of(s.body, 0)
                if first is not None and first.reads is not None and first.reads is not current:
                    s.source = current = first.reads
                    self.read(first.reads)
                current = self.flow(s.body, current)
                continue
            s.source = None
            if s.reads is not None and s.reads is not current:
                s.source = s.reads
                self.read(s.reads)
            for value in refs(list(s.args.values())):
                self.read(value)
            if s.kind in ("residual", "gate", "repeat"):
                self.flow(s.body, s.reads)
                if s.shortcut is not None:
                    self.flow(s.shortcut.body, s.reads)
            elif s.kind == "concat":
                for branch in s.body:
                    self.flow(branch.body, branch.reads or s.reads)
            self.make(s.gives)
            current = s.gives[0] if len(s.gives) == 1 else None
        return current

    def assign(self, fixed: dict[Value, str] | None = None) -> None:
        """Names the values read by name (those in `fixed` as given)."""
        held: dict[str, list[tuple[int, int]]] = {}

        def span(value: Value) -> tuple[int, int]:
            start = self.made.get(value, 0)
            return start, max(self.last.get(value, start), start)

        def free(name: str, value: Value) -> bool:
            start, end = span(value)
            return all(end < s or e < start for s, e in held.get(name, []))

        def hold(name: str, value: Value) -> None:
            value.name = name
            held.setdefault(name, []).append(span(value))

        for value, name in (fixed or {}).items():
            hold(name, value)
        hints: dict[Value, str | None] = {}
        for value in self.wanted:
            if value in (fixed or {}):
                continue
            index, count = self.together.get(value, (0, 1))
            found = hint(value, self.depth, index, count)
            hints[value] = found if nameable(found, self.reserved) else None
        taken = {h for h in hints.values() if h} | set((fixed or {}).values())
        numbered = iter(f"x{i}" for i in range(1, 10**6))
        for value in sorted(hints, key=lambda v: self.made.get(v, 0)):
            given = hints[value]
            if given is not None and free(given, value):
                hold(given, value)
                continue
            while True:
                candidate = next(numbered)
                if candidate not in taken and candidate not in self.reserved and free(candidate, value):
                    break
            taken.add(candidate)
            hold(candidate, value)
