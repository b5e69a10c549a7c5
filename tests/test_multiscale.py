"""MViT's layers on a clip's tokens (`archdsl/layers/multiscale.py`): each gives torchvision's
shape, parameters, MACs and values, on grids the zoo's clips never make (odd, unequal sides, where
V2's position tables are interpolated), and refuses a grid that does not hold its tokens."""

from __future__ import annotations

import pytest

from archdsl.loader import Loader
from archdsl.pipeline import Program, compile_file

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")


def shapes(body: str, input_shape: tuple[int, ...]) -> Program:
    loader = Loader()
    loader.add_text(f"model M {{ input {list(input_shape)}\n{body}\n}}", "t.arch")
    return compile_file("t.arch", loader=loader)


def attention(grid: list[int], dim_in: int, dim: int, heads: int, **kw: object) -> object:
    from functools import partial

    from torch import nn
    from torchvision.models.video import mvit

    options = {"residual_pool": False, "residual_with_cls_embed": False, "rel_pos_embed": False, **kw}
    return mvit.MultiscaleAttention(
        grid, dim_in, dim, heads, norm_layer=partial(nn.LayerNorm, eps=1e-6), **options
    )


def position(dim: int, grid: list[int], embed: bool) -> object:
    from torchvision.models.video import mvit

    return mvit.PositionalEncoding(dim, (grid[1], grid[2]), grid[0], rel_pos_embed=not embed)


def pool(kernel: list[int], stride: list[int], padding: list[int]) -> object:
    from torch import nn
    from torchvision.models.video import mvit

    return mvit.Pool(nn.MaxPool3d(kernel, stride=stride, padding=padding), None)


CASES = [
    # V2's: queries pooled by 2 on odd sides (its grid rounds up, the tables' sizes down), keys by 4
    (
        "poolattention(2, grid=[3, 5, 7], kernel_q=3, stride_q=[1, 2, 2], kernel_kv=3, "
        "stride_kv=[1, 4, 4], residual_pool=true, rel_pos=true, eps=1e-6)",
        [3, 5, 7],
        (106, 16),
        lambda: attention(
            [3, 5, 7],
            16,
            16,
            2,
            kernel_q=[3, 3, 3],
            kernel_kv=[3, 3, 3],
            stride_q=[1, 2, 2],
            stride_kv=[1, 4, 4],
            residual_pool=True,
            rel_pos_embed=True,
        ),
    ),
    # widened, the queries unpooled, the keys and values by a window of one frame
    (
        "poolattention(4, dim=32, grid=[2, 4, 4], kernel_kv=[1, 3, 3], stride_kv=[1, 2, 2], eps=1e-6)",
        [2, 4, 4],
        (33, 16),
        lambda: attention(
            [2, 4, 4], 16, 32, 4, kernel_q=[], kernel_kv=[1, 3, 3], stride_q=[], stride_kv=[1, 2, 2]
        ),
    ),
    (
        "tokenpool([1, 3, 3], stride=[1, 2, 2], padding=[0, 1, 1], grid=[2, 5, 5])",
        [2, 5, 5],
        (51, 8),
        lambda: pool([1, 3, 3], [1, 2, 2], [0, 1, 1]),
    ),
    ("posencoding(grid=[2, 3, 4])", None, (24, 8), lambda: position(8, [2, 3, 4], True)),
    ("posencoding(grid=[2, 3, 4], embed=false)", None, (24, 8), lambda: position(8, [2, 3, 4], False)),
]


@pytest.mark.parametrize(
    ("layer", "grid", "sample", "make"), CASES, ids=[c[0].split("(")[0] + str(i) for i, c in enumerate(CASES)]
)
def test_each_layer_is_torchvisions_in_shape_parameters_macs_and_values(
    layer: str, grid: list[int] | None, sample: tuple[int, ...], make: object
) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from archdsl.builder import build_model

    program = shapes(layer, sample)
    assert program.diagnostics == []
    model = program.model()
    theirs = make().eval()  # type: ignore[operator]
    for parameter in theirs.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    x = torch.randn(2, *sample, generator=torch.Generator().manual_seed(0))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        expected = theirs(x) if grid is None else theirs(x, tuple(grid))[0]
    assert model.output == tuple(expected.shape[1:])
    assert model.params == sum(p.numel() for p in theirs.parameters())
    assert model.macs == counter.get_total_flops() // 2 // 2  # per sample, of a batch of 2
    ours = build_model(model).eval()
    ours.load_state_dict({f"0.{k}": v for k, v in theirs.state_dict().items()}, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), expected)


@pytest.mark.parametrize(
    ("body", "sample", "message"),
    [
        (
            "poolattention(2, grid=[2, 4, 4])",
            (32, 8),
            "poolattention grid [2, 4, 4] holds 1 + 2·4·4 = 33 tokens (a class token and the grid's "
            "positions), but it receives 32: [32, 8]",
        ),
        (
            "posencoding(grid=[2, 4, 4])",
            (33, 8),
            "posencoding grid [2, 4, 4] holds 2·4·4 = 32 tokens (the grid's positions), but it receives "
            "33: [33, 8]",
        ),
    ],
)
def test_a_grid_that_does_not_hold_the_tokens_is_E120(
    body: str, sample: tuple[int, ...], message: str
) -> None:
    [diagnostic] = shapes(body, sample).errors
    assert (diagnostic.code, diagnostic.message) == ("E120", message)


def test_rel_pos_on_a_grid_smaller_than_its_strides_is_refused_as_torchvision_cannot_size_it() -> None:
    [diagnostic] = shapes(
        "poolattention(1, grid=[1, 1, 1], stride_q=[1, 2, 2], stride_kv=[1, 2, 2], rel_pos=true)", (2, 4)
    ).errors
    assert diagnostic.code == "E101"
    with pytest.raises(RuntimeError):
        attention(
            [1, 1, 1],
            4,
            4,
            1,
            kernel_q=[1, 1, 1],
            kernel_kv=[1, 1, 1],
            stride_q=[1, 2, 2],
            stride_kv=[1, 2, 2],
            rel_pos_embed=True,
        )
