"""Argument values: what a layer, block or train setting accepts, normalised for later stages.

Each converter takes an evaluated value (an int, a float, a string, a list, a `Symbol` for a bare
name) and returns the normalised form the stages read (ints, `(h, w)` pairs, floats, bools), or
raises `BadValue` saying what was expected. No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import Span


class BadValue(Exception):
    """An argument value of the wrong kind; the message says what was expected."""


@dataclass(frozen=True)
class Symbol:
    """A bare name that is not a parameter in scope: a keyword value such as `same` or `project`."""

    name: str

    def __str__(self) -> str:
        return self.name


class _Unknown:
    """A value not known here: `channels` in a statement that never runs (or after an error), and
    whatever is computed from it. Converters pass it through; nothing is judged of it."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True, eq=False)
class TensorRef:
    """A named value (a tensor) where an argument takes one: `cat(skip)`, `Up(x3, 256)`. `value`
    is the graph's `Value`."""

    name: str
    value: Any
    #: Where it is read: for diagnostics, not what the argument is.
    span: Span = field(repr=False)

    def __str__(self) -> str:
        return self.name


def tensor_refs(args: Mapping[str, Any]) -> list[TensorRef]:
    """The named values among a layer's bound arguments, in the order of its signature (a tuple
    of them where an argument takes several, `cat(a, b)`)."""
    found: list[TensorRef] = []
    for value in args.values():
        if isinstance(value, TensorRef):
            found.append(value)
        elif isinstance(value, tuple):
            found.extend(v for v in value if isinstance(v, TensorRef))
    return found


@dataclass(frozen=True)
class CallValue:
    """A call written as a value, `sgd(lr=0.9)`; bound by whoever knows its signature."""

    name: str
    span: Span
    args: tuple[tuple[str | None, Any, Span], ...]


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    if isinstance(value, Symbol):
        return f"the name '{value.name}'"
    if isinstance(value, CallValue):
        return f"{value.name}(...)"
    if isinstance(value, TensorRef):
        return f"the tensor '{value.name}'"
    return str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any) -> int:
    if _is_int(value) and value >= 1:
        return int(value)
    raise BadValue(f"a positive integer, got {describe(value)}")


def nonnegative_int(value: Any) -> int:
    if _is_int(value) and value >= 0:
        return int(value)
    raise BadValue(f"an integer ≥ 0, got {describe(value)}")


def any_int(value: Any) -> int:
    if _is_int(value):
        return int(value)
    raise BadValue(f"an integer, got {describe(value)}")


def _pair(item: Callable[[Any], int], what: str) -> Callable[[Any], tuple[int, int]]:
    def convert(value: Any) -> tuple[int, int]:
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise BadValue(f"{what} or an [h, w] pair, got {describe(value)}")
            try:
                return item(value[0]), item(value[1])
            except BadValue:
                raise BadValue(f"{what} or an [h, w] pair of them, got {describe(value)}") from None
        try:
            single = item(value)
        except BadValue:
            raise BadValue(f"{what} or an [h, w] pair, got {describe(value)}") from None
        return single, single

    return convert


positive_pair = _pair(positive_int, "a positive integer")
nonnegative_pair = _pair(nonnegative_int, "an integer ≥ 0")


def _axes(item: Callable[[Any], int], what: str) -> Callable[[Any], int | tuple[int, ...]]:
    """A size for every spatial axis (an int, kept as one: the input's rank says how many axes it
    stands for) or one per axis, a list of 1 to 3 (`[l]`, `[h, w]`, `[t, h, w]`), held to the
    input's rank by the shape rule."""
    expected = f"{what}, or one per spatial axis ([l], [h, w] or [t, h, w])"

    def convert(value: Any) -> int | tuple[int, ...]:
        if isinstance(value, list | tuple):
            if not 1 <= len(value) <= 3:
                raise BadValue(f"{expected}, got {describe(value)}")
            try:
                return tuple(item(v) for v in value)
            except BadValue:
                raise BadValue(f"{expected}, got {describe(value)}") from None
        try:
            return item(value)
        except BadValue:
            raise BadValue(f"{expected}, got {describe(value)}") from None

    return convert


positive_axes = _axes(positive_int, "a positive integer")
nonnegative_axes = _axes(nonnegative_int, "an integer ≥ 0")


def conv_padding(value: Any) -> int | tuple[int, ...] | str:
    if isinstance(value, str | Symbol) and str(value) in ("same", "valid"):
        return str(value)
    try:
        return nonnegative_axes(value)
    except BadValue:
        raise BadValue(
            f'an integer ≥ 0, one per spatial axis ([l], [h, w] or [t, h, w]), "same" or "valid", '
            f"got {describe(value)}"
        ) from None


def channels(value: Any) -> int | str:
    """An output channel/feature count, or `same`: as many as come in."""
    if isinstance(value, Symbol) and value.name == "same":
        return "same"
    if _is_int(value) and value >= 1:
        return int(value)
    raise BadValue(f"a positive integer or `same`, got {describe(value)}")


def probability(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    raise BadValue(f"a probability between 0 and 1, got {describe(value)}")


def command_line_value(text: str) -> bool | int | float | str:
    """A value as the command line writes one (`-p NAME=VALUE`, a sweep's choices): `true` or
    `false`, an integer, a number, else the text itself."""
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any, expected: str) -> float:
    """The number as a float. inf, nan and an int past 1.8e308 are refused: a size computed from
    one could not be an integer."""
    if not _numeric(value):
        raise BadValue(f"{expected}, got {describe(value)}")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise BadValue(f"a finite number, got {describe(value)}")
    return result


def number(value: Any) -> float:
    return _finite(value, "a number")


def positive_number(value: Any) -> float:
    result = _finite(value, "a number > 0")
    if result <= 0:
        raise BadValue(f"a number > 0, got {describe(value)}")
    return result


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    # Python's spelling, from `-p flag=True` or a habit: the language's words are lowercase.
    word = str(value).lower() if isinstance(value, str) else None
    hint = f" (the language writes it {word})" if word in ("true", "false") else ""
    raise BadValue(f"true or false, got {describe(value)}{hint}")


def string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise BadValue(f"a string, got {describe(value)}")


def any_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise BadValue(f"a list, got {describe(value)}")


def int_list(value: Any) -> tuple[int, ...]:
    if isinstance(value, list | tuple) and all(_is_int(v) for v in value):
        return tuple(int(v) for v in value)
    raise BadValue(f"a list of integers, got {describe(value)}")


def choice(*options: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if isinstance(value, str | Symbol) and str(value) in options:
            return str(value)
        listed = ", ".join(f"`{o}`" for o in options)
        raise BadValue(f"one of {listed}, got {describe(value)}")

    return convert


def channel_split(value: Any) -> bool | tuple[int, ...]:
    """`true`, `false`, or a list of positive channel counts."""
    if isinstance(value, bool):
        return value
    if isinstance(value, list | tuple) and value and all(_is_int(v) and v >= 1 for v in value):
        return tuple(int(v) for v in value)
    raise BadValue(f"true, false or a list of positive channel counts, got {describe(value)}")


def tensor(value: Any) -> TensorRef:
    """A named value: a tensor the statement reads beside the one it receives."""
    if isinstance(value, TensorRef):
        return value
    raise BadValue(f"a named value (a tensor made earlier, `… as name`), got {describe(value)}")


def tensors(value: Any) -> tuple[TensorRef, ...]:
    """One named value or several."""
    items = value if isinstance(value, list | tuple) else [value]
    if items and all(isinstance(v, TensorRef) for v in items):
        return tuple(items)
    raise BadValue(f"named values (tensors made earlier, `… as name`), got {describe(value)}")
