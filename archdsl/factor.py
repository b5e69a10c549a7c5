"""Stage of `archdsl import`: groups of one module class → calls of a `block`, runs → `repeat`."""

from __future__ import annotations

from .importer import Stmt


def factor(body: list[Stmt]) -> tuple[list[tuple[str, list[str], list[Stmt]]], list[Stmt]]:
    return [], body
