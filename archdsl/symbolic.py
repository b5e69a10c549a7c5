"""Integer expressions over names (`width * 2`, `(H - 1) // 2 + 1`), folded as a person folds them.

Used by `codegen/blocks.py` to follow a block's channel counts and sizes in terms of its parameters. A value
is an `int` when it is constant, else a `Sym`. The constructors (`add`, `mul`, `floordiv`) fold
constants and keep sums linear, so equal expressions built the same way compare equal and print the
same; `str` gives Python source with only the parentheses precedence needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Operator precedence when printing: a subexpression binding looser than its place is bracketed.
_CONDITIONAL, _SUM, _PRODUCT, _ATOM = 0, 1, 2, 3


class Sym:
    """A non-constant integer expression."""

    precedence = _ATOM

    def evaluate(self, env: Mapping[str, int]) -> int | None:
        """Its value with `env`'s names bound, or None if a name is unbound or the value unknown."""
        raise NotImplementedError

    def names(self) -> frozenset[str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return str(self)


Value = int | Sym


@dataclass(frozen=True, eq=True, repr=False)
class Var(Sym):
    name: str

    def __str__(self) -> str:
        return self.name

    def evaluate(self, env: Mapping[str, int]) -> int | None:
        return env.get(self.name)

    def names(self) -> frozenset[str]:
        return frozenset({self.name})


@dataclass(frozen=True, eq=True, repr=False)
class Unknown(Sym):
    """A size no closed expression here describes (a pool in ceil mode): printed `?`."""

    def __str__(self) -> str:
        return "?"

    def evaluate(self, env: Mapping[str, int]) -> int | None:
        return None

    def names(self) -> frozenset[str]:
        return frozenset()


UNKNOWN = Unknown()


@dataclass(frozen=True, eq=True, repr=False)
class Sum(Sym):
    """Σ coefficient·term + constant, terms in the order they first appeared."""

    terms: tuple[tuple[Sym, int], ...]
    constant: int
    precedence = _SUM

    def __str__(self) -> str:
        terms = list(self.terms)
        parts: list[str] = []
        if terms[0][1] < 0 and self.constant > 0:  # `4 - w` rather than `-w + 4`
            parts.append(str(self.constant))
        for term, coefficient in terms:
            text = _term(term, abs(coefficient))
            if not parts:
                if coefficient < 0:
                    parts.append(
                        "-" + (text if isinstance(term, Var) and abs(coefficient) == 1 else f"({text})")
                    )
                else:
                    parts.append(text)
            else:
                parts.append(("- " if coefficient < 0 else "+ ") + text)
        if self.constant and not (terms[0][1] < 0 and self.constant > 0):
            parts.append(("- " if self.constant < 0 else "+ ") + str(abs(self.constant)))
        return " ".join(parts)

    def evaluate(self, env: Mapping[str, int]) -> int | None:
        total = self.constant
        for term, coefficient in self.terms:
            value = term.evaluate(env)
            if value is None:
                return None
            total += coefficient * value
        return total

    def names(self) -> frozenset[str]:
        return frozenset().union(*(term.names() for term, _ in self.terms))


@dataclass(frozen=True, eq=True, repr=False)
class Product(Sym):
    left: Sym
    right: Sym
    precedence = _PRODUCT

    def __str__(self) -> str:
        return f"{_operand(self.left, _PRODUCT)} * {_operand(self.right, _ATOM)}"

    def evaluate(self, env: Mapping[str, int]) -> int | None:
        left, right = self.left.evaluate(env), self.right.evaluate(env)
        return None if left is None or right is None else left * right

    def names(self) -> frozenset[str]:
        return self.left.names() | self.right.names()


@dataclass(frozen=True, eq=True, repr=False)
class FloorDiv(Sym):
    numerator: Value
    denominator: Value
    precedence = _PRODUCT

    def __str__(self) -> str:
        return f"{_operand(self.numerator, _PRODUCT)} // {_operand(self.denominator, _ATOM)}"

    def evaluate(self, env: Mapping[str, int]) -> int | None:
        numerator, denominator = evaluate(self.numerator, env), evaluate(self.denominator, env)
        if numerator is None or denominator is None or denominator == 0:
            return None
        return numerator // denominator

    def names(self) -> frozenset[str]:
        return names(self.numerator) | names(self.denominator)


@dataclass(frozen=True, eq=True, repr=False)
class Choice(Sym):
    """`if_zero if count == 0 else otherwise`: a size after a `repeat count` that may not run."""

    count: Value
    if_zero: Value
    otherwise: Value
    precedence = _CONDITIONAL

    def __str__(self) -> str:
        test = _operand(self.count, _SUM)
        return f"{_operand(self.if_zero, _SUM)} if {test} == 0 else {_operand(self.otherwise, _SUM)}"

    def evaluate(self, env: Mapping[str, int]) -> int | None:
        count = evaluate(self.count, env)
        if count is None:
            return None
        return evaluate(self.if_zero if count == 0 else self.otherwise, env)

    def names(self) -> frozenset[str]:
        return names(self.count) | names(self.if_zero) | names(self.otherwise)


def _operand(value: Value, place: int) -> str:
    """`value` as an operand where an expression of precedence `place` or tighter needs no brackets."""
    text = str(value)
    if isinstance(value, int):
        return f"({text})" if value < 0 and place >= _PRODUCT else text
    return text if value.precedence >= place else f"({text})"


def _term(term: Sym, coefficient: int) -> str:
    return _operand(term, _PRODUCT) if coefficient == 1 else f"{_operand(term, _PRODUCT)} * {coefficient}"


def evaluate(value: Value, env: Mapping[str, int]) -> int | None:
    return value if isinstance(value, int) else value.evaluate(env)


def names(value: Value) -> frozenset[str]:
    return frozenset() if isinstance(value, int) else value.names()


def known(value: Value) -> bool:
    """Whether `value` is an expression at all (no `?` in it)."""
    if isinstance(value, int | Var):
        return True
    if isinstance(value, Unknown):
        return False
    if isinstance(value, Sum):
        return all(known(term) for term, _ in value.terms)
    if isinstance(value, Product):
        return known(value.left) and known(value.right)
    if isinstance(value, FloorDiv):
        return known(value.numerator) and known(value.denominator)
    assert isinstance(value, Choice)
    return known(value.if_zero) and known(value.otherwise)


# --- construction, folding ------------------------------------------------------------------------


def _linear(value: Value) -> tuple[dict[Sym, int], int]:
    if isinstance(value, int):
        return {}, value
    if isinstance(value, Sum):
        return dict(value.terms), value.constant
    return {value: 1}, 0


def _from_linear(terms: dict[Sym, int], constant: int) -> Value:
    kept = tuple((term, coefficient) for term, coefficient in terms.items() if coefficient)
    if not kept:
        return constant
    if len(kept) == 1 and kept[0][1] == 1:
        term = kept[0][0]
        if constant == 0:
            return term
        if isinstance(term, FloorDiv) and isinstance(term.denominator, int) and term.denominator > 0:
            # x // d + c = (x + c·d) // d: `(H + 1) // 2` rather than `(H - 1) // 2 + 1`
            return FloorDiv(add(term.numerator, constant * term.denominator), term.denominator)
    return Sum(kept, constant)


def add(left: Value, right: Value) -> Value:
    if isinstance(left, Unknown) or isinstance(right, Unknown):
        return UNKNOWN
    terms, constant = _linear(left)
    more, extra = _linear(right)
    terms = dict(terms)
    for term, coefficient in more.items():
        terms[term] = terms.get(term, 0) + coefficient
    return _from_linear(terms, constant + extra)


def mul(left: Value, right: Value) -> Value:
    if isinstance(left, Unknown) or isinstance(right, Unknown):
        return UNKNOWN
    if isinstance(left, int) and isinstance(right, int):
        return left * right
    if isinstance(left, int):
        left, right = right, left
    if isinstance(right, int):
        terms, constant = _linear(left)
        return _from_linear({t: c * right for t, c in terms.items()}, constant * right)
    assert isinstance(left, Sym)
    return Product(left, right)


def sub(left: Value, right: Value) -> Value:
    return add(left, mul(right, -1))


def floordiv(numerator: Value, denominator: Value) -> Value:
    """`numerator // denominator`; raises ZeroDivisionError for a constant 0."""
    if isinstance(numerator, Unknown) or isinstance(denominator, Unknown):
        return UNKNOWN
    if isinstance(denominator, int):
        if isinstance(numerator, int):
            return numerator // denominator
        if denominator == 0:
            raise ZeroDivisionError
        if denominator == 1:
            return numerator
        if denominator > 0:
            terms, constant = _linear(numerator)
            if all(c % denominator == 0 for c in terms.values()):
                # exact on the terms: (2w + 5) // 2 = w + 5 // 2
                return _from_linear({t: c // denominator for t, c in terms.items()}, constant // denominator)
            if constant and constant % denominator == 0:
                # (x + k·d) // d = x // d + k, for any integer x
                return add(floordiv(_from_linear(terms, 0), denominator), constant // denominator)
            inner = numerator if isinstance(numerator, FloorDiv) else None
            if inner is not None and isinstance(inner.denominator, int) and inner.denominator > 0:
                # (x // a) // b = x // (a·b) for a, b > 0
                return floordiv(inner.numerator, inner.denominator * denominator)
    return FloorDiv(numerator, denominator)


def choice(count: Value, if_zero: Value, otherwise: Value) -> Value:
    if if_zero == otherwise:
        return if_zero
    if isinstance(if_zero, Unknown) or isinstance(otherwise, Unknown):
        return UNKNOWN
    return Choice(count, if_zero, otherwise)


def window(size: Value, kernel: Value, stride: Value, padding: Value, dilation: Value = 1) -> Value:
    """PyTorch's output size of a conv or pool (not in ceil mode) on one axis:
    (size + 2·padding − dilation·(kernel − 1) − 1) // stride + 1."""
    span = add(mul(dilation, sub(kernel, 1)), 1)
    return add(floordiv(sub(add(size, mul(padding, 2)), span), stride), 1)
