"""ide/queries.py, the queries the language server answers, on half-typed text (no server here)."""

from __future__ import annotations

import pytest

from archdsl.errors import Span
from archdsl.ide.queries import analyse, completions, definition, hover, inlay_hints, symbols

HEAD = "model M {\n    input [1, 8, 8]\n    "


def labels(text: str) -> list[str]:
    lines = text.split("\n")
    analysis = analyse(text, "/tmp/half.arch")
    return [c.label for c in completions(analysis, len(lines), len(lines[-1]) + 1)]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("residual(shortcut=project, ", ["stride=", "bias=", "batchnorm="]),
        ("concat(", ["split="]),
        ("concat {\n        ", ["branch", "*branch"]),
        ("train { optimizer = sgd(lr=0.1, ", ["momentum=", "nesterov=", "weight_decay="]),
        ("train { schedule = step(", ["every=", "gamma="]),
        ("conv(4, kernel=", ["true", "false", "same", "project", "identity", "channels"]),
    ],
)
def test_completion_in_context(typed: str, expected: list[str]) -> None:
    assert labels(HEAD + typed) == expected


def test_a_keyword_naming_a_statement_opens_a_body_not_a_definition() -> None:
    found = labels(HEAD + "block: {\n        con")
    assert "conv" in found and "repeat" in found and "model" not in found
    assert "input" in found  # still in the model


def test_a_residual_body_offers_a_shortcut_clause_and_a_block_body_no_input() -> None:
    assert "shortcut" in labels(HEAD + "residual {\n        conv(4, kernel=3)\n        ")
    found = labels("block B {\n    ")
    assert "conv" in found and "input" not in found and "train" not in found


def test_queries_answer_on_a_broken_document() -> None:
    text = HEAD + "conv(4, kernel=3\n    relu\n}\n"
    analysis = analyse(text, "/tmp/broken.arch")
    assert [d.code for d in analysis.program.diagnostics] == ["E001"]
    for line in range(1, 7):
        for column in range(1, 25):
            hover(analysis, line, column)
            definition(analysis, line, column)
            completions(analysis, line, column)
    assert inlay_hints(analysis) == [] and symbols(analysis) == []


SKIPS = """block Up(skip: tensor, out: int) {
    convtranspose(out, kernel=2, stride=2) as up
    cat(skip)
}

model M {
    input [3, 32, 32] as image
    conv(8, kernel=3, padding=1) as (a)
    maxpool(2)
    Up(a, 8)
    cat(image) as joined
    repeat 2 as i { conv(4, kernel=1) }
    maxpool(2)
    Up(joined, 4)
}
"""


def test_a_named_value_hovers_with_its_shapes_and_goes_to_where_it_is_named() -> None:
    analysis = analyse(SKIPS, "/tmp/skips.arch")
    assert analysis.program.diagnostics == []
    # `skip` read in the block, once per call: both shapes.
    found = hover(analysis, 3, 10)
    assert found is not None and found.span.column == 9
    assert found.markdown.startswith("value `skip`: **[8, 32, 32]** | **[19, 32, 32]**, named at line 1")
    assert definition(analysis, 3, 10) == Span("/tmp/skips.arch", 1, 10, 1, 14)
    # Where it is named, at a tuple's `as (a)`, and at an input.
    assert hover(analysis, 1, 11).markdown.startswith("value `skip`")  # type: ignore[union-attr]
    assert definition(analysis, 10, 8) == Span("/tmp/skips.arch", 8, 38, 8, 39)
    assert hover(analysis, 11, 10).markdown.startswith("value `image`: **[3, 32, 32]**, named at line 7")  # type: ignore[union-attr]
    # A layer's name is the layer, and a repeat's index and a parameter are no values.
    assert "value" not in hover(analysis, 2, 6).markdown  # type: ignore[union-attr]
    assert definition(analysis, 2, 6) is None
    assert hover(analysis, 1, 25) is None or "value" not in hover(analysis, 1, 25).markdown  # type: ignore[union-attr]


def test_completion_offers_the_values_named_so_far() -> None:
    typed = HEAD + "conv(4) as skip\n    repeat 2 as i { relu }\n    conv(4) as (a, b)  # as no\n    cat("
    assert labels(typed)[:3] == ["skip", "a", "b"]
    assert "skip" not in labels(HEAD + "conv(4) as skip\n    conv(")
