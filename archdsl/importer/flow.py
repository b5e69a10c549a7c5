"""One module's part of the traced graph, condensed: each of its own ops a step, each call of a
child module one step, however many tensors it takes and gives; with the post-dominator and
region questions that tell where branches fork and rejoin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import fx


ENTRY = "<input>"


EXIT = "<output>"


def _entry_key(index: int) -> str:
    return ENTRY if index == 0 else f"<input{index + 1}>"


@dataclass
class Unit:
    """A step of a module's condensed graph: one of its own ops (`node`), or a child module's call
    (`path`, all the nodes of that call)."""

    key: str
    node: fx.Node | None = None
    path: str | None = None
    nodes: list[fx.Node] = field(default_factory=list)
    #: the nodes whose values leave the step, in the order the child returns them
    outs: list[fx.Node] = field(default_factory=list)
    #: the nodes from outside the step that it reads, what it receives first
    ins: list[fx.Node] = field(default_factory=list)

    @property
    def last(self) -> fx.Node:
        return self.outs[-1] if self.outs else self.node if self.node is not None else self.nodes[-1]


class _Graph:
    def __init__(
        self,
        units: dict[str, Unit],
        preds: dict[str, list[str]],
        succs: dict[str, list[str]],
        entries: list[str],
        made: dict[fx.Node, str],
    ):
        self.units = units
        self.preds = preds
        self.succs = succs
        self.entries = entries
        #: each node that leaves a step (or enters the module) → that step's key
        self.made = made
        self.order = {
            **{key: -1 - i for i, key in enumerate(entries)},
            **{key: i for i, key in enumerate(units)},
            EXIT: len(units),
        }

    def reachable(self, start: str) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for s in self.succs.get(stack.pop(), []):
                if s not in seen:
                    seen.add(s)
                    stack.append(s)
        return seen

    def between(self, start: str, end: str, allowed: set[str]) -> set[str]:
        """The steps on paths from `start` to `end`, `start` included."""
        reach = self.reachable(start) & allowed
        back = {end}
        stack = [end]
        while stack:
            for p in self.preds.get(stack.pop(), []):
                if p in reach and p not in back:
                    back.add(p)
                    stack.append(p)
        return (reach & back) | {start}

    def ipdom(self, start: str, allowed: set[str]) -> str | None:
        """The first step every path from `start` (within `allowed`) to its end passes, or None."""
        region = self.reachable(start) & (allowed | {start})
        ordered = sorted(region, key=self.order.__getitem__, reverse=True)
        pdom: dict[str, set[str]] = {}
        for key in ordered:
            nexts = [s for s in self.succs.get(key, []) if s in region]
            if not nexts:
                pdom[key] = {key}
                continue
            common = set.intersection(*(pdom[s] for s in nexts))
            pdom[key] = common | {key}
        candidates = pdom[start] - {start}
        if not candidates:
            return None
        return min(candidates, key=self.order.__getitem__)

    def enclosed(self, start: str, join: str, allowed: set[str]) -> set[str] | None:
        """The steps strictly between `start` and `join` when nothing else enters or leaves them
        (what a composite can hold), or None."""
        region = self.between(start, join, allowed) - {start, join}
        inside = region | {start}
        for key in region | {join}:
            if any(p not in inside for p in self.preds[key]):
                return None
        for key in region:
            if any(c not in region and c != join for c in self.succs[key]):
                return None
        return region
