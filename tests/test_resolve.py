"""Stage 3: names, imports, blocks, parameters, repeat, statement keys, the train section, limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from archdsl import ir
from archdsl.loader import Loader
from archdsl.pipeline import Program, compile_file
from archdsl.resolve import MAX_EXPANDED_LAYERS, MAX_NESTING, Resolver
from archdsl.shapes import Shaped
from archdsl.trainspec import AugmentSpec, DatasetSpec, NormalizeSpec, OptimizerSpec, ScheduleSpec

from conftest import ROOT


def compile_text(text: str, path: str = "t.arch", **params: object) -> Program:
    loader = Loader()
    loader.add_text(text, path)
    return compile_file(path, loader=loader, params=params or None)


def codes(program: Program) -> list[tuple[str, int]]:
    return [(d.code, d.span.line) for d in program.diagnostics]


def keys(layers: list[Shaped]) -> list[str]:
    return [layer.key for layer in layers]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_imports_resolve_relative_to_the_importing_file_and_are_transitive(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "nets/main.arch": 'import "../lib/blocks.arch"\nmodel M { input [1, 8, 8] Stem() Head() }\n',
            "lib/blocks.arch": 'import "common.arch"\nblock Stem { Conv3(4) relu }\n',
            "lib/common.arch": "block Conv3(width: int) { conv(width, kernel=3, padding=1) }\n"
            "block Head { flatten linear(2) }\n",
        },
    )
    program = compile_file(str(tmp_path / "nets/main.arch"))
    assert program.diagnostics == []
    assert program.model().output == (2,)


def test_a_block_body_resolves_in_the_file_that_defines_it(tmp_path: Path) -> None:
    # main.arch defines its own Conv3 with another meaning; lib's Stem must still use lib's Conv3.
    write(
        tmp_path,
        {
            "main.arch": 'import "lib.arch"\nmodel M { input [1, 8, 8] Stem() }\n',
            "lib.arch": 'import "conv.arch"\nblock Stem { Conv3() }\n',
            "conv.arch": "block Conv3 { conv(5, kernel=3) }\n",
        },
    )
    assert compile_file(str(tmp_path / "main.arch")).model().output == (5, 6, 6)


def test_a_diamond_import_is_not_a_duplicate(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.arch": 'import "a.arch"\nimport "b.arch"\nmodel M { input [1, 8, 8] A() B() }\n',
            "a.arch": 'import "base.arch"\nblock A { Base() }\n',
            "b.arch": 'import "base.arch"\nblock B { Base() }\n',
            "base.arch": "block Base { relu }\n",
        },
    )
    assert compile_file(str(tmp_path / "main.arch")).diagnostics == []


def test_two_imported_definitions_of_one_block_conflict(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.arch": 'import "a.arch"\nimport "b.arch"\nmodel M { input [1, 8, 8] Base() }\n',
            "a.arch": "block Base { relu }\n",
            "b.arch": "block Base { tanh }\n",
        },
    )
    (diagnostic,) = compile_file(str(tmp_path / "main.arch")).diagnostics
    assert diagnostic.code == "E009" and diagnostic.message == "block 'Base' is defined twice"


def test_block_parameters_bind_by_position_keyword_and_default() -> None:
    program = compile_text("""
        block Stage(width: int, depth: int = 2, grow: int = width * 2) {
            repeat depth { conv(width, kernel=3, padding=1) } conv(grow, kernel=1)
        }
        model M { input [3, 8, 8] Stage(4) Stage(width=6, depth=1) }
    """)
    assert program.diagnostics == []
    first, second = program.model().layers
    assert first.args == {"width": 4, "depth": 2, "grow": 8}
    assert len(first.children[0].children) == 2 and first.output == (8, 8, 8)
    assert second.args == {"width": 6, "depth": 1, "grow": 12}
    assert len(second.children[0].children) == 1 and second.output == (12, 8, 8)


def test_parameter_types_are_enforced() -> None:
    program = compile_text("""
        block B(n: int, rate: float = 0.5) { dropout(rate) }
        model M { input [4] B(2.5) B(1, rate=true) }
    """)
    messages = [d.message for d in program.diagnostics]
    assert messages == [
        "block B argument 'n' must be an integer, got 2.5",
        "block B argument 'rate' must be a number, got true",
    ]


def test_model_parameters_can_be_overridden() -> None:
    text = "model M(classes: int = 10) { input [4] linear(classes) }"
    assert compile_text(text).model().output == (10,)
    assert compile_text(text, classes=3).model().output == (3,)


def test_unnamed_statements_are_numbered_like_nn_sequential_skipping_input_and_train() -> None:
    program = compile_text("""
        model M {
            input [1, 8, 8]
            conv(2, kernel=3) c2: conv(2, kernel=3) relu
            repeat 2 { relu tanh }
            train { epochs = 1 }
        }
    """)
    layers = program.model().layers
    assert keys(layers) == ["0", "c2", "2", "3"]
    repeat = layers[3]
    # A pass is no module: the repeat numbers its members on through the passes, as
    # `nn.Sequential(relu, tanh, relu, tanh)` would.
    assert all(c.spliced for c in repeat.children)
    assert [c.path for c in repeat.children[1].children] == ["3.2", "3.3"]


#: SqueezeNet's Fire: the expands of both branches are members of the block, as torchvision's are.
FIRE = """
block Fire(width: int) {
    squeeze: conv(4, kernel=1)
    *concat {
        *branch { e1: conv(width, kernel=1) a1: relu }
        branch { }
        *branch { e3: conv(width, kernel=3, padding=1) }
    }
}
model M { input [3, 8, 8] f: Fire(6) }
"""


def test_a_spliced_branchs_members_join_the_module_its_concat_stands_in() -> None:
    program = compile_text(FIRE)
    assert program.diagnostics == []
    (fire,) = program.model().layers
    (concat,) = fire.children[1:]
    first, empty, last = concat.children
    assert (first.spliced, empty.spliced, last.spliced) == (True, False, True)
    # members numbered on through the spliced branches: squeeze, e1, a1, the empty branch, e3
    assert [c.path for c in (*first.children, empty, *last.children)] == ["f.e1", "f.a1", "f.3", "f.e3"]
    assert concat.output == (16, 8, 8) and fire.params == 16 + 30 + 222


def test_repeat_count_is_an_integer_expression_and_zero_is_allowed() -> None:
    program = compile_text(
        "block B(n: int) { repeat n * 2 - 1 { relu } }\nmodel M { input [2] B(2) repeat 0 { tanh } }"
    )
    block, empty = program.model().layers
    assert len(block.children[0].children) == 3
    assert empty.children == [] and empty.output == (2,)


def test_same_means_as_many_channels_as_come_in() -> None:
    assert compile_text(
        "model M { input [7, 5, 5] conv(same, kernel=1) flatten linear(same) }"
    ).model().output == (175,)


def test_keyword_values_in_the_wrong_place_are_bad_values_not_unknown_names() -> None:
    (diagnostic,) = compile_text("model M { input [3, 5, 5] conv(4, kernel=same) }").diagnostics
    assert (diagnostic.code, diagnostic.message) == (
        "E005",
        "conv argument 'kernel' must be a positive integer, or one per spatial axis ([l], [h, w] or "
        "[t, h, w]), got the name 'same'",
    )


def test_division_by_zero_is_reported_at_the_divisor() -> None:
    (diagnostic,) = compile_text(
        "block B(n: int) { repeat 4 // n { relu } }\nmodel M { input [2] B(0) }"
    ).diagnostics
    assert (diagnostic.code, diagnostic.message, diagnostic.span.column) == ("E005", "division by zero", 31)


def test_integer_arithmetic_follows_python() -> None:
    resolver = Resolver({})
    call = compile_source("model M { input [1] view(-7 // 2 + 3 * -2) }").models[0].body[1]
    assert isinstance(call, ir.Call)
    assert resolver.evaluate(call.args[0].value, {}) == -7 // 2 + 3 * -2


def compile_source(text: str) -> ir.SourceFile:
    return Loader().add_text(text, "t.arch").source


def test_a_block_that_calls_itself_through_another_is_reported() -> None:
    program = compile_text("block A { B() }\nblock B { A() }\nmodel M { input [1] A() }")
    assert codes(program) == [("E010", 2)]
    assert program.diagnostics[0].message == "block 'A' calls itself: A → B → A"


def test_a_huge_repeat_is_refused_before_anything_is_expanded() -> None:
    start = time.perf_counter()
    program = compile_text("model M { input [1] repeat 1000 { repeat 1000 { repeat 1000 { relu } } } }")
    assert time.perf_counter() - start < 5  # generous: the point is that nothing is expanded
    assert codes(program) == [("E110", 1)]
    assert f"{MAX_EXPANDED_LAYERS:,}" in program.diagnostics[0].message


def test_train_section_is_validated_into_a_spec() -> None:
    program = compile_text("""
        model M {
            input [3, 32, 32]
            flatten linear(10)
            train {
                dataset = imagefolder("data/train") resize = [40, 48] epochs = 3 batch = 64 seed = 7
                normalize = [[0.5, 0.4, 0.3], [0.2, 0.2, 0.2]] augment = [crop(padding=2), flip]
                optimizer = sgd(lr=0.1, momentum=0.9, nesterov=true) schedule = step(every=2, gamma=0.5)
                loss = cross_entropy(smoothing=0.1)
            }
        }
    """)
    assert program.diagnostics == []
    train = program.model().train
    assert train is not None
    assert train.dataset == DatasetSpec(name="imagefolder", path="data/train")
    assert (train.resize, train.epochs, train.batch, train.seed) == ((40, 48), 3, 64, 7)
    assert train.normalize == NormalizeSpec(mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    assert train.augment == AugmentSpec(crop_padding=2, flip=0.5)
    assert train.optimizer == OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, nesterov=True)
    assert train.schedule == ScheduleSpec(name="step", every=2, gamma=0.5)
    assert train.loss is not None and train.loss.smoothing == 0.1


def test_lenet_train_section_from_the_design() -> None:
    train = compile_file(str(ROOT / "specs" / "lenet5.arch")).model().train
    assert train is not None and train.dataset == DatasetSpec(name="fashion-mnist")
    assert (train.epochs, train.batch, train.optimizer) == (5, 256, OptimizerSpec(name="sgd", lr=0.9))


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "conv(4, kernel=3, stride=[1, 2, 3, 4])",
            "conv argument 'stride' must be a positive integer, or one per spatial axis ([l], [h, w] or "
            "[t, h, w]), got [1, 2, 3, 4]",
        ),
        (
            'conv(4, kernel=3, padding="full")',
            "conv argument 'padding' must be an integer ≥ 0, one per spatial axis ([l], [h, w] or "
            '[t, h, w]), "same" or "valid", got "full"',
        ),
        ("residual(shortcut=skip) { relu }", "unknown name 'skip'"),
        ("residual(stride=2) { relu }", "'stride' applies only to shortcut=project"),
        ("concat { }", "concat needs at least one branch"),
        (
            "view()",
            "view needs an argument 'dims' (the per-sample shape; one -1 is inferred; [] for one number)",
        ),
    ],
)
def test_argument_problems_are_reported_in_words(statement: str, message: str) -> None:
    program = compile_text(f"model M {{ input [3, 8, 8] {statement} }}")
    assert [d.message for d in program.errors] == [message]


@pytest.mark.slow
@pytest.mark.parametrize("opening", ["repeat 1 {", "residual {", "concat { branch {"])
def test_nesting_deeper_than_the_limit_is_a_positioned_error_at_any_depth(opening: str) -> None:
    closing = "} }" if opening.startswith("concat") else "}"
    for depth in (MAX_NESTING + 1, 20_000):
        program = compile_text(f"model M {{ input [1, 4, 4] {opening * depth} relu {closing * depth} }}")
        (diagnostic,) = program.diagnostics
        assert diagnostic.code == "E110" and diagnostic.message.startswith(
            f"statements nest more than {MAX_NESTING}"
        )


def test_block_calls_count_towards_the_nesting_limit() -> None:
    chain = "".join(f"block B{i} {{ B{i - 1}() }}\n" for i in range(1, MAX_NESTING + 5))
    program = compile_text(f"block B0 {{ relu }}\n{chain}model M {{ input [2] B{MAX_NESTING + 4}() }}")
    assert [d.code for d in program.diagnostics] == ["E110"]


def test_a_block_nobody_calls_is_still_checked_for_unknown_layers() -> None:
    program = compile_text("block Stem(width: int) { conv(width, kernel=3) rleu }")
    assert [(d.code, d.message) for d in program.diagnostics] == [
        ("E002", "unknown layer or block 'rleu'; did you mean 'relu'?")
    ]


def test_an_unknown_layer_in_a_block_called_twice_is_reported_once() -> None:
    program = compile_text("block Stem { flaten }\nmodel M { input [2] Stem() Stem() }")
    assert codes(program) == [("E002", 1)]


def test_input_and_train_belong_at_the_top_of_a_model() -> None:
    program = compile_text("model M { input [2] repeat 2 { train { epochs = 1 } relu } }")
    assert [(d.code, d.message) for d in program.diagnostics] == [
        ("E011", "'train' belongs at the top of a model, not inside repeat, concat or residual")
    ]


def test_a_shortcut_written_first_is_the_first_member_as_regnet_registers_proj() -> None:
    program = compile_text("""
        model M {
            input [4, 8, 8]
            *residual {
                shortcut proj { conv(8, kernel=1, stride=2) }
                f: conv(8, kernel=3, stride=2, padding=1)
                relu
            }
        }
    """)
    residual = program.model().layers[0]
    assert [(c.path, c.kind) for c in residual.children] == [
        ("proj", "shortcut"),
        ("f", "layer"),
        ("2", "layer"),
    ]
