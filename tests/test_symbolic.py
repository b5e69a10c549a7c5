"""`archdsl.symbolic`: folded expressions print as a person writes them and mean what they compute."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from archdsl.symbolic import UNKNOWN, Value, Var, add, choice, evaluate, floordiv, mul, sub, window

H, W, w, k = Var("H"), Var("W"), Var("w"), Var("k")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (window(H, 3, 1, 1), "H"),
        (window(H, 3, 2, 1), "(H + 1) // 2"),
        (window(window(H, 3, 2, 1), 3, 2, 1), "(H + 3) // 4"),
        (window(H, 2, 2, 0), "H // 2"),
        (window(H, k, 1, floordiv(k, 2)), "H + k // 2 * 2 - k + 1"),
        (add(mul(w, 2), 1), "w * 2 + 1"),
        (add(add(16, 24), add(24, w)), "w + 64"),
        (add(w, w), "w * 2"),
        (sub(4, w), "4 - w"),
        (sub(0, floordiv(w, 2)), "-(w // 2)"),
        (mul(w, add(k, 1)), "w * (k + 1)"),
        (floordiv(mul(w, 4), 2), "w * 2"),
        (choice(Var("n"), w, add(w, 1)), "w if n == 0 else w + 1"),
        (add(choice(Var("n"), w, 3), 1), "(w if n == 0 else 3) + 1"),
        (add(UNKNOWN, 1), "?"),
    ],
)
def test_expressions_print_folded_with_only_the_brackets_precedence_needs(value: Value, text: str) -> None:
    assert str(value) == text


def _random(rng: random.Random, depth: int) -> tuple[Value, Callable[[dict[str, int]], int]]:
    """An expression and, beside it, the plain computation it stands for."""
    if depth == 0 or rng.random() < 0.25:
        if rng.random() < 0.5:
            name = rng.choice("abc")
            return Var(name), lambda env: env[name]
        number = rng.randint(-5, 9)
        return number, lambda env: number
    left, compute_left = _random(rng, depth - 1)
    op = rng.choice("+-*/")
    if op == "/":
        divisor = rng.choice([1, 2, 3, 4, Var("d")])
        value = floordiv(left, divisor)
        return value, lambda env: compute_left(env) // (env["d"] if isinstance(divisor, Var) else divisor)
    right, compute_right = _random(rng, depth - 1)
    if op == "+":
        return add(left, right), lambda env: compute_left(env) + compute_right(env)
    if op == "-":
        return sub(left, right), lambda env: compute_left(env) - compute_right(env)
    return mul(left, right), lambda env: compute_left(env) * compute_right(env)


def test_folded_expressions_compute_what_they_stand_for_in_python_too() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        value, compute = _random(rng, 4)
        env = {
            "a": rng.randint(-20, 40),
            "b": rng.randint(1, 64),
            "c": rng.randint(-3, 3),
            "d": rng.randint(1, 5),
        }
        expected = compute(env)
        assert evaluate(value, env) == expected, value
        assert eval(str(value), {}, dict(env)) == expected, value  # the printed source means the same
