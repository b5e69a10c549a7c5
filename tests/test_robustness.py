"""`archdsl check` on any text: a clean check or positioned diagnostics, never an exception.

A bounded slice for CI, shrunk by hypothesis; the seeds and fragments are shared with the
fuzzing campaign (campaigns/specgen.py, campaigns/fuzz.py).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archdsl.loader import Loader
from archdsl.pipeline import compile_file
from campaigns.specgen import FRAGMENTS, SEEDS


@st.composite
def mutated_specs(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif choice == 1:
            text = text[:at] + draw(st.sampled_from(FRAGMENTS)) + text[at:]
        elif choice == 2:
            start = draw(st.integers(0, len(text)))
            text = text[:at] + text[start : start + draw(st.integers(1, 40))] + text[at:]
        else:
            text = text[:at] + draw(st.characters(max_codepoint=0x2FF)) + text[at:]
    return text


def check_survives(text: str) -> None:
    loader = Loader()
    loader.add_text(text, "fuzz.arch")
    program = compile_file("fuzz.arch", loader=loader)
    last_line = text.count("\n") + 1
    for diagnostic in program.diagnostics:
        if diagnostic.span.file == "fuzz.arch" and not diagnostic.span.whole_file:
            assert 1 <= diagnostic.span.line <= last_line, diagnostic
            assert diagnostic.span.column >= 1, diagnostic


@pytest.mark.slow
@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_mutated_specs_give_positioned_diagnostics_never_an_exception(text: str) -> None:
    check_survives(text)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join) | st.text(max_size=200))
def test_random_text_gives_positioned_diagnostics_never_an_exception(text: str) -> None:
    check_survives(text)
