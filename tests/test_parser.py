"""Stage 1–2: text → IR. Spans, syntax coverage, and syntax errors in the user's words."""

from __future__ import annotations

import pytest

from archdsl import ir
from archdsl.errors import Span
from archdsl.loader import Loader
from archdsl.parser import expected_phrase, parse
from archdsl.transformer import source_file

from conftest import ROOT, SPECS


def parse_ok(text: str, file: str = "t.arch") -> ir.SourceFile:
    result = parse(text, file)
    assert result.diagnostics == []
    return source_file(result.items, file)


def syntax_errors(text: str) -> list[tuple[int, int, str]]:
    return [(d.span.line, d.span.column, d.message) for d in parse(text, "t.arch").diagnostics]


@pytest.mark.parametrize("spec", SPECS)
def test_ir_of_every_spec_is_well_typed_and_round_trips_through_json(spec: str) -> None:
    source = Loader().read(str(ROOT / spec)).source
    assert ir.SourceFile.model_validate_json(source.model_dump_json()) == source


def test_every_node_carries_the_span_of_its_text() -> None:
    text = "model M {\n    input [1, 28, 28]\n    c1: conv(6, kernel=5, padding=2) tanh\n}\n"
    model = parse_ok(text).models[0]
    assert model.span == Span("t.arch", 1, 1, 4, 2)
    assert model.name_span == Span("t.arch", 1, 7, 1, 8)
    input_stmt, conv, tanh = model.body
    assert input_stmt.span == Span("t.arch", 2, 5, 2, 22)
    assert isinstance(conv, ir.Call) and isinstance(tanh, ir.Call)
    assert (conv.label, conv.label_span, conv.op_span) == (
        "c1",
        Span("t.arch", 3, 5, 3, 7),
        Span("t.arch", 3, 9, 3, 13),
    )
    assert conv.span == Span("t.arch", 3, 5, 3, 37)
    assert [(a.name, a.span) for a in conv.args] == [
        (None, Span("t.arch", 3, 14, 3, 15)),
        ("kernel", Span("t.arch", 3, 17, 3, 25)),
        ("padding", Span("t.arch", 3, 27, 3, 36)),
    ]
    assert tanh.span == Span("t.arch", 3, 38, 3, 42)


def test_statements_separate_by_whitespace_newlines_and_semicolons() -> None:
    body = parse_ok("model M { input [1, 8, 8]; relu;; tanh\n sigmoid ; }").models[0].body
    assert [getattr(s, "op", s.kind) for s in body] == ["input", "relu", "tanh", "sigmoid"]


def test_literals_lists_trailing_commas_and_comments() -> None:
    text = """
    # comment
    model M(a: float = 1e-3, b: float = .5, c: float = 2., s: str = "x\\"y", t: str = 'q') {  # trailing
        input [1, 8, 8,]
        view([64],)
        train { dataset = "mnist", seed = 3; normalize = [0.5, 0.25] }
    }
    """
    model = parse_ok(text).models[0]
    defaults = [p.default for p in model.params]
    assert [d.value for d in defaults if d is not None] == [1e-3, 0.5, 2.0, 'x"y', "q"]
    assert isinstance(model.body[0], ir.Input) and len(model.body[0].dims) == 3
    train = model.body[2]
    assert isinstance(train, ir.Train) and [e.key for e in train.entries] == ["dataset", "seed", "normalize"]


def test_arithmetic_parses_with_python_precedence() -> None:
    call = parse_ok("model M { input [1] view(1 + 2 * 3 - 8 // 2 * 2) }").models[0].body[1]
    assert isinstance(call, ir.Call)
    expr = call.args[0].value

    def show(e: ir.Expr) -> str:
        if isinstance(e, ir.BinOp):
            return f"({show(e.left)} {e.op} {show(e.right)})"
        assert isinstance(e, ir.IntLit)
        return str(e.value)

    assert show(expr) == "((1 + (2 * 3)) - ((8 // 2) * 2))"


def test_composites_parse_with_labels_and_named_branches() -> None:
    text = """
    model M {
        input [3, 8, 8]
        stage: repeat 2 { conv(same, kernel=3, padding=1) }
        mix: concat { branch a { relu } branch { tanh } }
        res: residual(shortcut=project) { conv(8, kernel=1) }
    }
    """
    _, repeat, concat, residual = parse_ok(text).models[0].body
    assert isinstance(repeat, ir.Repeat) and repeat.label == "stage" and len(repeat.body) == 1
    assert isinstance(concat, ir.Concat) and [b.name for b in concat.branches] == ["a", None]
    assert (
        isinstance(residual, ir.Residual) and residual.label == "res" and residual.args[0].name == "shortcut"
    )


def test_a_spliced_branch_parses_and_takes_no_name() -> None:
    text = "model M { input [3, 8, 8] concat { *branch { relu } branch { tanh } } }"
    (concat,) = parse_ok(text).models[0].body[1:]
    assert isinstance(concat, ir.Concat) and [b.splice for b in concat.branches] == [True, False]
    assert concat.branches[0].span.column == 36  # from the `*`
    assert syntax_errors("model M { concat { *branch b { relu } } }") == [
        (1, 28, "a spliced branch (`*branch`) makes no module, so it takes no name")
    ]


def test_syntax_error_names_what_was_expected_after_which_token() -> None:
    assert syntax_errors("model M { input [1, 8, 8] relu ) }") == [
        (1, 32, "expected a layer or '}' after 'relu', found ')'")
    ]
    assert syntax_errors("model M { conv(6, kernel=5 relu }") == [
        (1, 28, "expected ')' or ',' after '5', found 'relu'")
    ]


def test_each_broken_definition_is_reported_and_the_rest_still_parses() -> None:
    text = "model A { conv(6 }\nmodel B { relu }\nmodel C { tanh ] }\n"
    result = parse(text, "t.arch")
    assert [d.span.line for d in result.diagnostics] == [1, 3]
    assert [m.name for m in source_file(result.items, "t.arch").models] == ["B"]


def test_keywords_name_statements_but_nothing_else() -> None:
    # torchvision calls ConvNeXt's body `block`: a keyword may name a statement (its module) ...
    assert syntax_errors("model M { input [1] repeat: relu block: tanh }") == []
    # ... but is no layer, parameter or value
    assert syntax_errors("model M { input [1] block }")[0][2].startswith("expected")
    assert syntax_errors("block B(repeat: int) { relu }")[0][2].startswith("expected")


def test_unterminated_string_is_named() -> None:
    assert syntax_errors('import "blocks.arch\nmodel M { }') == [
        (1, 8, "unterminated string: it must close on the same line")
    ]


@pytest.mark.parametrize(
    ("expected", "phrase"),
    [
        (
            {
                "NAME",
                "REPEAT",
                "CONCAT",
                "RESIDUAL",
                "INPUT",
                "TRAIN",
                "RBRACE",
                "LPAR",
                "COLON",
                "SEMICOLON",
            },
            "a layer or '}'",
        ),
        (
            {"INT", "FLOAT", "STRING", "NAME", "LSQB", "MINUS", "LPAR", "TRUE", "FALSE", "RPAR"},
            "a value or ')'",
        ),
        ({"BLOCK", "MODEL", "IMPORT", "$END"}, "'block', 'model' or 'import'"),
        ({"RPAR", "COMMA", "PLUS", "MINUS", "STAR", "FLOORDIV"}, "')' or ','"),
    ],
)
def test_expected_terminals_are_phrased_for_people(expected: set[str], phrase: str) -> None:
    assert expected_phrase(expected) == phrase


def test_a_conditional_expression_binds_loosest_and_nests_to_the_right() -> None:
    def show(expr: ir.Expr) -> str:
        if isinstance(expr, ir.Choose):
            return f"({show(expr.then)} if {show(expr.condition)} else {show(expr.otherwise)})"
        if isinstance(expr, ir.BinOp):
            return f"({show(expr.left)} {expr.op} {show(expr.right)})"
        if isinstance(expr, ir.Not):
            return f"(not {show(expr.operand)})"
        return str(getattr(expr, "name", getattr(expr, "value", "?")))

    text = "model M { input [1, 4, 4] conv(a + 1 if a > 2 and not b else c if d else e * 2, kernel=1) }\n"
    (model,) = parse(text, "m.arch").items
    (_input, call) = model.body
    assert show(call.args[0].value) == "((a + 1) if ((a > 2) and (not b)) else (c if d else (e * 2)))"
    assert call.args[0].value.span == Span("m.arch", 1, 32, 1, 79)
