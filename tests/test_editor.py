"""editor.py, the queries the language server answers, on half-typed text (no server here)."""

from __future__ import annotations

import pytest

from archdsl.editor import analyse, completions, definition, hover, inlay_hints, symbols

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
