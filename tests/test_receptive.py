"""Receptive fields: hand-computed values, published values, and torch's own gradients."""

from __future__ import annotations

from pathlib import Path

import pytest

from archdsl.pipeline import compile_file
from archdsl.receptive import Axis, Field, receptive_fields
from archdsl.shapes import ShapedModel

from conftest import ROOT


def _model(tmp_path: Path, text: str) -> ShapedModel:
    spec = tmp_path / "probe.arch"
    spec.write_text(text, encoding="utf-8")
    program = compile_file(str(spec))
    assert not program.errors, program.errors
    return program.models[0]


def _spec(name: str) -> ShapedModel:
    return compile_file(str(ROOT / "specs" / f"{name}.arch")).models[0]


def _square(field: Field) -> tuple[int, int]:
    assert field.rows == field.cols
    return field.rows.size, field.rows.jump


def test_lenet5_fields_by_hand() -> None:
    fields = receptive_fields(_spec("lenet5"))
    # conv 5×5 pad 2 → r 5; avgpool 2/2 → r 6 j 2; conv 5×5 → 6 + 4·2 = 14; pool → 16, j 4;
    # conv 5×5 → 16 + 4·4 = 32; then flatten and linear see everything.
    assert _square(fields["0"]) == (5, 1)
    assert fields["0"].rows.start == -2  # two rows of padding above the image
    assert _square(fields["1"]) == (5, 1)  # tanh changes nothing
    assert _square(fields["2"]) == (6, 2)
    assert _square(fields["3"]) == (14, 2)
    assert _square(fields["5"]) == (16, 4)
    assert _square(fields["6"]) == (32, 4)
    assert fields["8"].whole and fields["8"].text() == "global"
    assert fields["11"].whole


def test_vgg16_matches_published_fields() -> None:
    # Araujo et al., Distill 2019, table of receptive fields: VGG-16 conv5_3 196, pool5 212.
    fields = receptive_fields(_spec("vgg16"))
    assert _square(fields["4.0.5"]) == (196, 16)  # the third pass's relu: the repeat numbers on
    assert _square(fields["4"]) == (212, 32)
    assert fields["4"].text() == "212×212"
    # adaptiveavgpool(7) on a 7×7 map is one-to-one: nothing changes.
    assert fields["5"] == fields["4"]


def test_resnet18_final_stage_field_is_435() -> None:
    fields = receptive_fields(_spec("resnet18"))
    assert _square(fields["conv1"]) == (7, 2)
    assert _square(fields["maxpool"]) == (11, 4)
    assert _square(fields["layer4"]) == (435, 32)
    # the 1×1 stride-2 projection keeps the field and doubles the jump
    assert _square(fields["layer2.0.0.shortcut"]) == (43, 8)
    assert fields["avgpool"].whole  # adaptive pool to 1×1: global


def test_concat_field_is_the_widest_branch() -> None:
    fields = receptive_fields(_spec("googlenet_mini"))
    branches = [fields[f"3.0.{i}"] for i in range(4)]
    assert [b.rows.size for b in branches] == [6, 14, 14, 6]
    assert fields["3.0"].rows == Axis(14, 2, -4)


def test_rectangular_kernels_track_rows_and_columns_apart(tmp_path: Path) -> None:
    model = _model(
        tmp_path,
        "model M { input [1, 20, 20] conv(4, kernel=[3, 7], stride=[1, 2]) maxpool([2, 1], stride=1) }",
    )
    fields = receptive_fields(model)
    assert fields["0"].rows == Axis(3, 1, 0)
    assert fields["0"].cols == Axis(7, 2, 0)
    assert fields["1"].rows == Axis(4, 1, 0)
    assert fields["1"].cols == Axis(7, 2, 0)
    assert fields["1"].text() == "4×7" and fields["1"].jump_text() == "1×2"


def test_adaptive_pool_with_uneven_bins_is_an_upper_bound(tmp_path: Path) -> None:
    model = _model(tmp_path, "model M { input [1, 10, 10] adaptiveavgpool(3) }")
    field = receptive_fields(model)["0"]
    # bins of 10 into 3: [0, 4), [3, 7), [6, 10): the widest is 4
    assert field.rows.size == 4 and not field.exact and field.text() == "≤4×4"


def test_model_without_image_input_has_no_fields(tmp_path: Path) -> None:
    model = _model(tmp_path, "model M { input [784] linear(10) }")
    assert receptive_fields(model) == {}


PROBES = {
    # gap-free stacks: every pixel inside the field reaches the output
    "plain": "conv(2, kernel=[3, 5], stride=[2, 1], padding=[1, 2]) relu avgpool(2, stride=1) "
    "conv(2, kernel=3, stride=2)",
    "residual": "conv(2, kernel=3, padding=1) "
    "residual(shortcut=project) { conv(3, kernel=3, stride=2, padding=1) conv(3, kernel=3, padding=1) }",
    "concat": "conv(2, kernel=3) concat { branch { conv(2, kernel=1) } "
    "branch { conv(2, kernel=5, padding=2) } branch { avgpool(3, stride=1, padding=1) } }",
    # with holes (dilation): the field is the bounding box of what reaches the output
    "dilated": "conv(2, kernel=3, dilation=3) conv(2, kernel=[1, 3], stride=2, padding=[0, 1])",
    # H and W swapped: the [1, 3] window with stride [1, 2] slides 3 columns… over the rows
    "transposed": "conv(4, kernel=3) permute(0, 2, 1) conv(4, kernel=[1, 3], stride=[1, 2]) "
    "layernorm2d shuffle(2) permute(0, 2, 1) conv(2, kernel=[3, 1])",
    # channels-last, as in ConvNeXt's blocks: layernorm on C at each position
    "channels-last": "conv(4, kernel=3, stride=2) permute(1, 2, 0) layernorm relu permute(2, 0, 1) "
    "conv(2, kernel=[1, 3])",
}


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_field_is_where_the_gradient_reaches(tmp_path: Path, probe: str) -> None:
    torch = pytest.importorskip("torch")
    from archdsl.builder import build_model

    height, width = 23, 19
    model = _model(tmp_path, f"model Probe {{ input [1, {height}, {width}] {PROBES[probe]} }}")
    field = receptive_fields(model)[model.layers[-1].path]
    module = build_model(model).eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.rand_like(parameter) + 0.1)  # positive: no cancellation
    image = torch.ones(1, 1, height, width, requires_grad=True)
    output = module(image)
    rows, cols = output.shape[2], output.shape[3]
    for i, k in {(0, 0), (rows // 2, cols // 2), (rows - 1, cols - 1), (rows - 1, 0)}:
        image.grad = None
        output[0, :, i, k].sum().backward(retain_graph=True)
        reached = image.grad[0, 0] != 0
        found_rows = reached.any(dim=1).nonzero().flatten()
        found_cols = reached.any(dim=0).nonzero().flatten()
        top, bottom = field.rows.span(i, height)
        left, right = field.cols.span(k, width)
        assert (int(found_rows.min()), int(found_rows.max()) + 1) == (top, bottom), (i, k)
        assert (int(found_cols.min()), int(found_cols.max()) + 1) == (left, right), (i, k)
        if probe != "dilated":
            assert int(reached.sum()) == (bottom - top) * (right - left)


def test_a_transposed_grid_swaps_which_kernel_axis_the_rows_see(tmp_path: Path) -> None:
    model = _model(tmp_path, f"model M {{ input [1, 23, 19] {PROBES['transposed']} }}")
    fields = receptive_fields(model)
    assert fields["1"].grid == (2, 1) and fields["1"].rows == fields["0"].rows
    assert (fields["2"].rows.size, fields["2"].rows.jump) == (3 + 2, 2)
    assert (fields["2"].cols.size, fields["2"].cols.jump) == (3, 1)
    assert fields["5"].grid == (1, 2) and fields["6"].rows.size == 5 + 2 * 2


def _rule(tmp_path: Path, body: str, shape: str = "[4, 8, 8]") -> Field:
    model = _model(tmp_path, f"model M {{ input {shape} {body} }}")
    return receptive_fields(model)[model.layers[-1].path]


@pytest.mark.parametrize(
    "body",
    [
        "groupnorm(2)",  # its statistics come from the whole map
        "softmax(dim=3)",
        "permute(1, 2, 0) concat { branch { } branch { } }",  # joined along H
        "concat { branch { } branch { permute(0, 2, 1) } }",  # rows of one, columns of the other
    ],
)
def test_a_layer_that_mixes_h_or_w_sees_the_whole_map(tmp_path: Path, body: str) -> None:
    assert _rule(tmp_path, body).whole


@pytest.mark.parametrize(
    "body",
    ["layernorm2d", "shuffle(2)", "softmax", "permute(1, 2, 0) layernorm", "permute(2, 1, 0) softmax(dim=3)"],
)
def test_a_layer_that_mixes_only_channels_keeps_the_field(tmp_path: Path, body: str) -> None:
    field = _rule(tmp_path, body)
    assert not field.whole and field.rows.size == field.cols.size == 1


def test_linear_on_channels_last_keeps_the_field(tmp_path: Path) -> None:
    field = _rule(tmp_path, "conv(4, kernel=3) permute(1, 2, 0) linear(8) permute(2, 0, 1)")
    assert not field.whole and field.rows.size == 3


def test_a_video_has_a_field_along_time_height_and_width(tmp_path: Path) -> None:
    model = _model(
        tmp_path,
        "model M { input [3, 16, 64, 64] "
        "conv(8, kernel=[3, 7, 7], stride=[1, 2, 2], padding=[1, 3, 3]) "
        "maxpool([1, 3, 3], stride=[1, 2, 2], padding=[0, 1, 1]) "
        "conv(8, kernel=[3, 1, 1], padding=[1, 0, 0]) adaptiveavgpool(1) }",
    )
    fields = receptive_fields(model)
    assert fields["0"].axes == (Axis(3, 1, -1), Axis(7, 2, -3), Axis(7, 2, -3))
    assert (fields["0"].text(), fields["0"].jump_text()) == ("3×7×7", "1×2×2")
    # the pool reaches across frames by nothing, across rows and columns by 2 jumps of 2
    assert fields["1"].axes == (Axis(3, 1, -1), Axis(11, 4, -5), Axis(11, 4, -5))
    assert fields["2"].axes == (Axis(5, 1, -2), Axis(11, 4, -5), Axis(11, 4, -5))
    assert fields["3"].whole and fields["3"].text() == "global"


def test_a_signal_has_a_field_along_its_length(tmp_path: Path) -> None:
    model = _model(tmp_path, "model M { input [2, 50] conv(4, kernel=5, stride=2) maxpool(3, stride=2) }")
    fields = receptive_fields(model)
    assert fields["0"].axes == (Axis(5, 2, 0),)
    assert (fields["1"].text(), fields["1"].jump_text()) == ("9", "4")


@pytest.mark.parametrize(
    ("sample", "body"),
    [
        (
            (1, 9, 11, 10),
            "conv(2, kernel=[3, 1, 5], stride=[2, 1, 1], padding=[1, 0, 2]) relu "
            "avgpool([1, 2, 2], stride=1) conv(2, kernel=3, stride=2, dilation=[1, 2, 1])",
        ),
        (
            (1, 23),
            "conv(2, kernel=5, stride=2, padding=2) avgpool(3, stride=1) conv(2, kernel=3, dilation=2)",
        ),
    ],
    ids=["video", "signal"],
)
def test_a_videos_and_a_signals_field_is_where_the_gradient_reaches(
    tmp_path: Path, sample: tuple[int, ...], body: str
) -> None:
    torch = pytest.importorskip("torch")
    from archdsl.builder import build_model

    model = _model(tmp_path, f"model Probe {{ input {list(sample)} {body} }}")
    field = receptive_fields(model)[model.layers[-1].path]
    module = build_model(model).eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.rand_like(parameter) + 0.1)  # positive: no cancellation
    signal = torch.ones(1, *sample, requires_grad=True)
    output = module(signal)
    extents = sample[1:]
    last = tuple(n - 1 for n in output.shape[2:])
    for position in {tuple(0 for _ in last), tuple(n // 2 for n in last), last}:
        signal.grad = None
        output[(0, slice(None), *position)].sum().backward(retain_graph=True)
        reached = signal.grad[0, 0] != 0
        for axis, (along, extent) in enumerate(zip(field.axes, extents, strict=True)):
            others = tuple(a for a in range(len(extents)) if a != axis)
            found = (reached.any(dim=others) if others else reached).nonzero().flatten()
            expected = along.span(position[axis], extent)
            assert (int(found.min()), int(found.max()) + 1) == expected, (position, axis)
