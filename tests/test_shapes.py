"""Stage 4: the static size rules, checked against numbers worked out by hand from PyTorch's rules.

(tests/test_differential.py checks the same rules against PyTorch itself on random networks.)
"""

from __future__ import annotations

import pytest

from archdsl.loader import Loader
from archdsl.pipeline import Program, compile_file
from archdsl.shapes import projection_stride
from archdsl.sizes import Window


def shapes(body: str, input_shape: str) -> Program:
    loader = Loader()
    loader.add_text(f"model M {{ input {input_shape}\n{body}\n}}", "t.arch")
    return compile_file("t.arch", loader=loader)


def output(body: str, input_shape: str) -> tuple[int, ...]:
    program = shapes(body, input_shape)
    assert program.errors == [], program.errors
    out = program.model().output
    assert out is not None
    return out


def first_error(body: str, input_shape: str) -> tuple[str, str]:
    diagnostic = shapes(body, input_shape).errors[0]
    return diagnostic.code, diagnostic.message


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ("conv(8, kernel=3)", (8, 30, 30)),
        ("conv(8, kernel=3, stride=2)", (8, 15, 15)),  # ⌊29/2⌋ + 1
        ("conv(8, kernel=3, padding=1, dilation=2)", (8, 30, 30)),  # 32 + 2 − 2·2 − 1 + 1
        ("conv(8, kernel=[1, 5], padding=[0, 2])", (8, 32, 32)),
        ("conv(8, kernel=[3, 5], stride=[1, 2])", (8, 30, 14)),
        ('conv(8, kernel=4, padding="same")', (8, 32, 32)),  # asymmetric: 1 left, 2 right
        ('conv(8, kernel=3, dilation=3, padding="same")', (8, 32, 32)),
        ('conv(8, kernel=5, padding="valid")', (8, 28, 28)),
        ("conv(8, kernel=3, groups=4, in=4)", (8, 30, 30)),
        ("maxpool(2)", (4, 16, 16)),
        ("maxpool(3, stride=2)", (4, 15, 15)),
        ("maxpool(3, stride=2, ceil=true)", (4, 16, 16)),
        ("maxpool(3, stride=2, padding=1, dilation=2)", (4, 15, 15)),
        ("avgpool(5, stride=3, padding=2, ceil=true)", (4, 12, 12)),
        ("adaptiveavgpool([3, 7])", (4, 3, 7)),
        ("adaptivemaxpool(1)", (4, 1, 1)),
        ("batchnorm", (4, 32, 32)),
        ("flatten", (4096,)),
        ("view(16, -1)", (16, 256)),
        ("view([2, 2, 32, 32])", (2, 2, 32, 32)),
    ],
)
def test_layer_output_shape(layer: str, expected: tuple[int, ...]) -> None:
    assert output(layer, "[4, 32, 32]") == expected


def test_ceil_mode_drops_a_window_that_would_start_in_the_right_padding() -> None:
    # ⌈(5 + 2 − 2)/2⌉ + 1 = 4, but the 4th window would start at 6 ≥ 5 + 1 (input + left padding).
    assert Window(size=5, kernel=2, stride=2, pad_left=1, pad_right=1, ceil=True).output == 3
    assert output("maxpool(2, stride=2, padding=1, ceil=true)", "[1, 5, 5]") == (1, 3, 3)
    # Without padding the same rule keeps a last window that starts inside the input.
    assert Window(size=6, kernel=3, stride=2, pad_left=0, pad_right=0, ceil=True).output == 3


def test_ceil_mode_formula_in_an_error_says_when_the_last_window_is_dropped() -> None:
    window = Window(size=1, kernel=3, stride=2, pad_left=1, pad_right=1, ceil=True)
    assert window.formula() == "⌈(1 − 3 + 2)/2⌉ + 1 = 1"


def test_parameter_and_mac_counts() -> None:
    program = shapes("conv(8, kernel=3, groups=2) batchnorm flatten linear(10, bias=false)", "[4, 6, 6]")
    conv, bn, _flatten, linear = program.model().layers
    assert (conv.params, conv.macs) == (8 * 2 * 9 + 8, 8 * 2 * 9 * 4 * 4)
    assert (bn.params, bn.macs) == (16, 0)
    assert (linear.params, linear.macs) == (128 * 10, 128 * 10)
    assert program.model().params == conv.params + bn.params + linear.params


def test_batchnorm_without_affine_has_no_parameters() -> None:
    assert shapes("batchnorm(affine=false)", "[4, 6, 6]").model().params == 0


@pytest.mark.parametrize(
    ("body", "input_shape", "code", "message"),
    [
        (
            "conv(4, kernel=7)",
            "[3, 5, 5]",
            "E101",
            "conv output is empty: input [3, 5, 5], kernel 7, stride 1 → 5 − 7 + 1 = -1",
        ),
        (
            "maxpool(3, stride=2)",
            "[3, 2, 5]",
            "E101",
            "maxpool output is empty: input [3, 2, 5], kernel 3, stride 2 → height ⌊(2 − 3)/2⌋ + 1 = 0",
        ),
        (
            "maxpool(4, padding=3)",
            "[3, 8, 8]",
            "E108",
            "maxpool padding 3 is more than half the kernel 4: PyTorch allows at most 2",
        ),
        (
            "conv(6, kernel=1, groups=4)",
            "[8, 4, 4]",
            "E104",
            "conv groups=4 must divide the 6 output channels (6 = 4·1 + 2)",
        ),
        (
            "linear(4)",
            "[2, 3, 5]",
            "E102",
            "linear acts on the last axis, here W of [C = 2, H = 3, W = 5]: add `flatten` before it "
            "(giving [30]), or `permute(1, 2, 0)` moves the channels last",
        ),
        (
            "conv(4, kernel=1)",
            "[16]",
            "E102",
            "conv needs a [C, L], [C, H, W] or [C, T, H, W] input, got [16]; use `view(C, H, W)` to give "
            "it a spatial shape",
        ),
        (
            "view(7, -1)",
            "[4, 5]",
            "E107",
            "view cannot reshape [4, 5] (20 elements) to [7, -1]: 20 is not a multiple of 7",
        ),
        ("view(0, 20)", "[4, 5]", "E107", "view dimensions must be positive (or one -1), got 0"),
        (
            "softmax(dim=2)",
            "[10]",
            "E102",
            "softmax dim=2 is out of range for a [10] sample: with the batch axis the dims are -2..1",
        ),
        (
            "dropout2d",
            "[10]",
            "E102",
            "dropout2d needs a [C, H, W] input, got [10]; use `view(C, H, W)` to give it a spatial shape",
        ),
    ],
)
def test_errors_carry_the_numbers_that_failed(body: str, input_shape: str, code: str, message: str) -> None:
    assert first_error(body, input_shape) == (code, message)


def test_inexact_division_warns_with_the_floored_result() -> None:
    (warning,) = shapes("conv(96, kernel=11, stride=4, padding=1)", "[1, 224, 224]").diagnostics
    assert warning.code == "W001"
    assert "(224 − 11 + 2)/4 + 1 = 54.75 → 54" in warning.message


def test_exact_division_and_ceil_mode_do_not_warn() -> None:
    assert (
        shapes(
            "conv(8, kernel=3, stride=2, padding=1) maxpool(3, stride=2, ceil=true)", "[1, 32, 32]"
        ).diagnostics
        == []
    )


def test_concat_adds_channels_and_needs_equal_spatial_sizes() -> None:
    body = "concat { branch { conv(16, kernel=1) } branch { conv(24, kernel=3, padding=1) } branch { } }"
    assert output(body, "[8, 12, 12]") == (48, 12, 12)
    code, message = first_error(
        "concat { branch a { conv(4, kernel=1) } branch b { maxpool(2) } }", "[8, 12, 12]"
    )
    assert code == "E105"
    assert (
        message
        == "concat branches must agree on H and W: branch a gives [4, 12, 12], branch b gives [8, 6, 6]"
    )


def test_concat_of_flat_features_joins_them() -> None:
    assert output("concat { branch { linear(3) } branch { linear(5) } }", "[10]") == (8,)


def test_residual_identity_needs_the_input_shape_back() -> None:
    assert output("residual { conv(same, kernel=3, padding=1) relu }", "[8, 6, 6]") == (8, 6, 6)
    code, message = first_error("residual { conv(8, kernel=3) }", "[8, 6, 6]")
    assert code == "E106" and message.startswith("residual body changes the shape [8, 6, 6] → [8, 4, 4]")


def test_residual_projection_infers_the_stride_and_counts_its_parameters() -> None:
    program = shapes("residual(shortcut=project) { conv(16, kernel=3, stride=2, padding=1) }", "[8, 7, 7]")
    (residual,) = program.model().layers
    assert residual.output == (16, 4, 4)
    shortcut = residual.children[-1]  # the projection: a 1×1 conv named `shortcut`
    assert (shortcut.kind, shortcut.op, shortcut.key) == ("layer", "conv", "shortcut")
    assert (shortcut.args["kernel"], shortcut.args["stride"]) == ((1, 1), (2, 2))
    assert shortcut.params == 16 * 8 + 16
    assert residual.params == (16 * 8 * 9 + 16) + shortcut.params


def test_projection_with_batchnorm_and_without_bias_counts_like_resnet_downsample() -> None:
    program = shapes(
        "residual(shortcut=project, bias=false, batchnorm=true) { conv(16, kernel=3, padding=1) }",
        "[8, 4, 4]",
    )
    assert program.model().layers[0].children[-1].params == 16 * 8 + 2 * 16


@pytest.mark.parametrize(
    ("size", "target", "stride"),
    [(56, 28, 2), (7, 4, 2), (9, 3, 3), (5, 5, 1), (5, 1, 5), (4, 3, None), (3, 4, None)],
)
def test_projection_stride_is_the_smallest_that_maps_the_size(
    size: int, target: int, stride: int | None
) -> None:
    assert projection_stride(size, target) == stride


def test_projection_that_cannot_match_is_an_error() -> None:
    code, message = first_error("residual(shortcut=project) { conv(4, kernel=2) }", "[4, 4, 4]")
    assert code == "E106"
    assert message == "no 1×1 projection maps [4, 4, 4] to [4, 3, 3]: no stride takes height 4 to 3"


def test_shape_errors_in_one_branch_do_not_hide_errors_in_another() -> None:
    program = shapes(
        "concat { branch { conv(4, kernel=9) } branch { conv(4, kernel=1, groups=3) } }", "[4, 4, 4]"
    )
    assert [d.code for d in program.errors] == ["E101", "E104"]


def test_channels_in_linear_is_the_last_axis_it_acts_on() -> None:
    # `channels` is the count the layer works on: linear's features are its input's last axis.
    program = shapes("linear(channels * 2)", "[10, 96]")
    assert program.model().output == (10, 192)
    program = shapes("permute(1, 2, 0) linear(channels) layernorm(eps=1e-6)", "[96, 8, 8]")
    assert program.model().output == (8, 8, 96)
    assert not program.errors


# --- every rank: a signal [C, L], an image [C, H, W], a video [C, T, H, W] ------------------------

#: (statement, input, PyTorch's own module for it, written by hand)
RANKED = [
    ("conv(8, kernel=3)", (4, 20), "nn.Conv1d(4, 8, 3)"),
    ("conv(8, kernel=[5], stride=2, padding=2, dilation=2)", (4, 20), "nn.Conv1d(4, 8, 5, 2, 2, 2)"),
    ('conv(8, kernel=4, padding="same")', (4, 9), 'nn.Conv1d(4, 8, 4, padding="same")'),
    (
        "conv(6, kernel=[3, 5], stride=[1, 2], groups=2)",
        (4, 9, 11),
        "nn.Conv2d(4, 6, (3, 5), (1, 2), groups=2)",
    ),
    (
        "conv(8, kernel=[3, 7, 7], stride=[1, 2, 2], padding=[1, 3, 3], bias=false)",
        (3, 5, 16, 16),
        "nn.Conv3d(3, 8, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)",
    ),
    (
        'conv(8, kernel=[2, 3, 4], dilation=[1, 2, 1], padding="same")',
        (3, 5, 9, 9),
        'nn.Conv3d(3, 8, (2, 3, 4), dilation=(1, 2, 1), padding="same")',
    ),
    ('conv(4, kernel=3, padding="valid", groups=4)', (4, 3, 5, 5), "nn.Conv3d(4, 4, 3, groups=4)"),
    ("maxpool(3, stride=2, ceil=true)", (4, 10), "nn.MaxPool1d(3, 2, ceil_mode=True)"),
    (
        "maxpool([1, 3, 3], stride=[1, 2, 2], padding=[0, 1, 1])",
        (4, 5, 9, 9),
        "nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))",
    ),
    (
        "maxpool(2, dilation=[1, 2, 1], ceil=true)",
        (4, 5, 9, 9),
        "nn.MaxPool3d(2, dilation=(1, 2, 1), ceil_mode=True)",
    ),
    (
        "avgpool(2, padding=1, count_include_pad=false)",
        (4, 9),
        "nn.AvgPool1d(2, padding=1, count_include_pad=False)",
    ),
    ("avgpool([2, 7, 7], stride=1)", (4, 2, 7, 9), "nn.AvgPool3d((2, 7, 7), 1)"),
    ("avgpool(3, stride=2, ceil=true)", (4, 5, 9, 9), "nn.AvgPool3d(3, 2, ceil_mode=True)"),
    ("adaptiveavgpool(3)", (4, 10), "nn.AdaptiveAvgPool1d(3)"),
    ("adaptivemaxpool([1, 2, 3])", (4, 5, 9, 9), "nn.AdaptiveMaxPool3d((1, 2, 3))"),
    ("adaptiveavgpool(1)", (4, 5, 9, 9), "nn.AdaptiveAvgPool3d(1)"),
    ("batchnorm(eps=0.001, momentum=0.001)", (4, 5, 9, 9), "nn.BatchNorm3d(4, 0.001, 0.001)"),
]


@pytest.mark.parametrize(("layer", "sample", "reference"), RANKED, ids=[r[0] for r in RANKED])
def test_every_rank_gives_pytorchs_shape_parameters_macs_and_module(
    layer: str, sample: tuple[int, ...], reference: str
) -> None:
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from archdsl.builder import build_model
    from archdsl.importer import leaves

    program = shapes(layer, str(list(sample)))
    assert program.diagnostics == []
    model = program.model()
    theirs = eval(reference, {"nn": nn})  # PyTorch's module, written by hand
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        expected = theirs(torch.randn(2, *sample))
    assert model.output == tuple(expected.shape[1:])
    assert model.params == sum(p.numel() for p in theirs.parameters())
    assert model.macs == counter.get_total_flops() // 2 // 2  # per sample, of a batch of 2
    # the module archdsl builds (and `emit` writes) is that one
    assert leaves(build_model(model)) == {"0": leaves(theirs)[""]}


SWIN = [
    # a map and a clip; windows larger than the clip on some axes (shrunk, unshifted), padded ones
    (
        "windowattention(3, window=[2, 3], shift=1)",
        (5, 7, 12),
        "sw.ShiftedWindowAttention(12, [2, 3], [1, 1], 3)",
    ),
    (
        "windowattention(2, window=[8, 7, 7], shift=[4, 3, 3])",
        (2, 8, 9, 8),
        "sw3.ShiftedWindowAttention3d(8, [8, 7, 7], [4, 3, 3], 2)",
    ),
    (
        "windowattention(4, window=[2, 3, 3], shift=[1, 1, 0])",
        (5, 7, 6, 8),
        "sw3.ShiftedWindowAttention3d(8, [2, 3, 3], [1, 1, 0], 4)",
    ),
    ("patchmerging", (3, 5, 7, 8), "sw.PatchMerging(8)"),
]


@pytest.mark.parametrize(("layer", "sample", "reference"), SWIN, ids=[r[0] for r in SWIN])
def test_swins_layers_on_maps_and_clips_give_torchvisions_shape_parameters_and_macs(
    layer: str, sample: tuple[int, ...], reference: str
) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.models import swin_transformer as sw
    from torchvision.models.video import swin_transformer as sw3

    # the sample is channels-last already: a permute names its axes so
    back = "permute(1, 2, 0)" if len(sample) == 3 else "permute(1, 2, 3, 0)"
    first = (sample[-1], *sample[:-1])
    model = shapes(f"{back} {layer}", str(list(first))).model()
    theirs = eval(reference, {"sw": sw, "sw3": sw3})
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        expected = theirs(torch.randn(2, *sample))
    assert model.output == tuple(expected.shape[1:])
    assert model.params == sum(p.numel() for p in theirs.parameters())
    assert model.macs == counter.get_total_flops() // 2 // 2  # per sample, of a batch of 2


@pytest.mark.parametrize("grid", [False, True], ids=["block", "grid"])
@pytest.mark.parametrize("scale_by", ["head", "channels"])
def test_partition_attention_computes_what_maxvits_partitioned_attention_does(
    grid: bool, scale_by: str
) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.models import maxvit

    from archdsl.builder import build_model

    # torchvision partitions a [C, H, W] map; ours is the same map channels-last
    channels, size, height, width = 16, 3, 6, 6
    layer = f'partitionattention(4, size={size}, grid={str(grid).lower()}, scale_by="{scale_by}")'
    model = shapes(f"permute(1, 2, 0) {layer} permute(2, 0, 1)", f"[{channels}, {height}, {width}]").model()
    theirs = maxvit.PartitionAttentionLayer(
        in_channels=channels,
        head_dim=channels // 4,
        partition_size=size,
        partition_type="grid" if grid else "window",
        grid_size=(height, width),
        mlp_ratio=4,
        activation_layer=torch.nn.GELU,
        norm_layer=torch.nn.LayerNorm,
        attention_dropout=0.0,
        mlp_dropout=0.0,
        p_stochastic_dropout=0.0,
    ).eval()
    attention = theirs.attn_layer[1]
    if scale_by == "head":
        attention.scale_factor = (channels // 4) ** -0.5
    with torch.no_grad():
        for tensor in attention.parameters():
            tensor.normal_()
    ours = build_model(model).eval()
    ours.load_state_dict({f"1.{k}": v for k, v in attention.state_dict().items()}, strict=True)
    x = torch.randn(2, channels, height, width)
    with torch.no_grad():
        parts = theirs.partition_swap(theirs.partition_op(x, theirs.p))
        gh, gw = height // theirs.p, width // theirs.p
        expected = theirs.departition_op(theirs.departition_swap(attention(parts)), theirs.p, gh, gw)
        counter = FlopCounterMode(display=False)
        with counter:
            got = ours(x)
    torch.testing.assert_close(got, expected)
    assert model.output == tuple(expected.shape[1:])
    assert model.params == sum(p.numel() for p in attention.parameters())
    assert model.macs == counter.get_total_flops() // 2 // 2  # per sample, of a batch of 2


@pytest.mark.parametrize(
    ("body", "input_shape", "code", "message"),
    [
        (
            "conv(8, kernel=[3, 7, 7])",
            "[3, 32, 32]",
            "E118",
            "conv kernel [3, 7, 7] gives 3 sizes, but its input [3, 32, 32] has 2 spatial axes "
            "([C, H, W]): give one size, or [h, w]",
        ),
        (
            "maxpool(2, padding=[1, 0])",
            "[3, 4, 8, 8]",
            "E118",
            "maxpool padding [1, 0] gives 2 sizes, but its input [3, 4, 8, 8] has 3 spatial axes "
            "([C, T, H, W]): give one size, or [t, h, w]",
        ),
        (
            "adaptiveavgpool([1, 1])",
            "[8, 100]",
            "E118",
            "adaptiveavgpool size [1, 1] gives 2 sizes, but its input [8, 100] has 1 spatial axis "
            "([C, L]): give one size, or [l]",
        ),
        (
            "conv(4, kernel=[3, 5, 5])",
            "[3, 2, 8, 8]",
            "E101",
            "conv output is empty: input [3, 2, 8, 8], kernel [3, 5, 5], stride 1 → time 2 − 3 + 1 = 0",
        ),
        (
            "maxpool(4, stride=2)",
            "[3, 3]",
            "E101",
            "maxpool output is empty: input [3, 3], kernel 4, stride 2 → ⌊(3 − 4)/2⌋ + 1 = 0",
        ),
        (
            "maxpool([1, 3, 3], padding=[0, 2, 1])",
            "[3, 4, 8, 8]",
            "E108",
            "maxpool padding [0, 2, 1] is more than half the kernel [1, 3, 3]: PyTorch allows at most "
            "[0, 1, 1]",
        ),
        (
            'conv(4, kernel=3, stride=[1, 2, 2], padding="same")',
            "[3, 4, 8, 8]",
            "E109",
            'padding="same" needs stride 1, got stride [1, 2, 2] (PyTorch refuses it for strided '
            "convolutions)",
        ),
        (
            "conv(4, kernel=3)",
            "[3, 2, 4, 8, 8]",
            "E102",
            "conv needs a [C, L], [C, H, W] or [C, T, H, W] input, got [3, 2, 4, 8, 8]",
        ),
        (
            "permute(1, 2, 3, 0) windowattention(2, window=[8, 7])",
            "[4, 2, 8, 8]",
            "E118",
            "windowattention window [8, 7] gives 2 sizes, but its input [2, 8, 8, 4] has 3 spatial axes "
            "([T, H, W, C]): give one size, or [t, h, w]",
        ),
        (
            "permute(1, 2, 3, 0) windowattention(2, v2=true)",
            "[4, 2, 8, 8]",
            "E102",
            "windowattention v2=true takes a map [H, W, C], got [2, 8, 8, 4]",
        ),
        (
            "permute(1, 2, 0) partitionattention(2, size=3)",
            "[4, 6, 8]",
            "E116",
            "partitionattention size=3 must divide the map's width, and [6, 8, 4] has 8 (8 = 3·2 + 2)",
        ),
        (
            "partitionattention(2)",
            "[4, 2, 14, 14]",
            "E102",
            "partitionattention needs a channels-last map [H, W, C], got [4, 2, 14, 14]",
        ),
        (
            "flatten patchmerging",
            "[4, 2, 8, 8]",
            "E102",
            "patchmerging needs a channels-last map [H, W, C] or clip [T, H, W, C], got [512]",
        ),
    ],
)
def test_errors_at_every_rank_name_the_axes(body: str, input_shape: str, code: str, message: str) -> None:
    assert first_error(body, input_shape) == (code, message)


@pytest.mark.parametrize(
    ("body", "input_shape", "message"),
    [
        (
            "conv(4, kernel=5, stride=2)",
            "[2, 100]",
            "conv size does not divide exactly: (100 − 5)/2 + 1 = 48.5 → 48; PyTorch silently drops "
            "the last position of the input",
        ),
        (
            "conv(4, kernel=[3, 7, 7], stride=2)",
            "[3, 8, 30, 30]",
            "conv size does not divide exactly: time (8 − 3)/2 + 1 = 3.5 → 3; height (30 − 7)/2 + 1 "
            "= 12.5 → 12; width (30 − 7)/2 + 1 = 12.5 → 12; PyTorch silently drops the last frame, "
            "row and column of the input",
        ),
        (
            "avgpool([3, 2, 2])",
            "[3, 8, 9, 10]",
            "avgpool size does not divide exactly: time (8 − 3)/3 + 1 = 2.67 → 2; height (9 − 2)/2 + 1 "
            "= 4.5 → 4; PyTorch silently drops the last 2 frames and row of the input",
        ),
    ],
)
def test_inexact_division_at_every_rank_counts_what_each_axis_drops(
    body: str, input_shape: str, message: str
) -> None:
    (warning,) = shapes(body, input_shape).diagnostics
    assert (warning.code, warning.message) == ("W001", message)


def test_a_3d_average_pool_needs_the_input_at_least_the_kernel_whatever_the_padding() -> None:
    # PyTorch's avg_pool3d refuses it ("input image (T: 2 H: 2 W: 6) smaller than kernel size");
    # its max pool, and the 1d and 2d average pools, take the padding into account.
    assert output("maxpool(3, stride=1, padding=1)", "[4, 2, 2, 6]") == (4, 2, 2, 6)
    assert output("avgpool(3, stride=1, padding=1)", "[4, 2, 2]") == (4, 2, 2)
    assert first_error("avgpool(3, stride=1, padding=1)", "[4, 2, 2, 6]") == (
        "E101",
        "avgpool on a video needs each spatial size at least the kernel's, whatever the padding "
        "(PyTorch's AvgPool3d): input [4, 2, 2, 6], kernel 3 → time 2 < 3; height 2 < 3",
    )


@pytest.mark.parametrize(
    ("body", "input_shape", "labels"),
    [
        (
            "conv(64, kernel=[3, 7, 7], stride=[1, 2, 2], padding=[1, 3, 3], bias=false) "
            "maxpool([1, 3, 3], stride=[1, 2, 2], padding=[0, 1, 1]) adaptiveavgpool([1, 1, 1])",
            "[3, 16, 112, 112]",
            [
                "conv 3×7×7, 64, /1×2×2, pad 1×3×3",
                "maxpool 1×3×3, /1×2×2, pad 0×1×1",
                "adaptiveavgpool 1×1×1",
            ],
        ),
        (
            "conv(8, kernel=9, stride=4, dilation=2) avgpool(2, ceil=true)",
            "[1, 400]",
            ["conv 9, 8, /4, dilation 2", "avgpool 2, ceil"],
        ),
        ("conv(8, kernel=3, stride=2, padding=1)", "[3, 32, 32]", ["conv 3×3, 8, /2, pad 1"]),
    ],
)
def test_labels_give_a_size_per_axis(body: str, input_shape: str, labels: list[str]) -> None:
    from archdsl.table import describe

    assert [describe(node) for node in shapes(body, input_shape).model().layers] == labels
