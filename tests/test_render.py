"""`archdsl render`: DOT text as goldens, images graphviz can draw, escaping, ids and options."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from archdsl import RenderError
from archdsl.diagram import DOT_MISSING, dot_source, render_dot
from archdsl.pipeline import compile_file
from archdsl.shapes import ShapedModel

from conftest import ROOT, SPECS, run_cli

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


def shaped(path: str | Path, model: str | None = None) -> ShapedModel:
    program = compile_file(str(path))
    assert not program.errors, program.errors
    return program.model(model)


def spec(tmp_path: Path, text: str, name: str = "net.arch") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def node_ids(dot: str) -> list[str]:
    """The ids of drawn nodes, in order: lines `"id" [label=…]`."""
    return re.findall(r'^\s*"((?:[^"\\]|\\.)*)" \[label=', dot, flags=re.M)


def svg_nodes(svg: str) -> int:
    return svg.count('class="node"')


def models_of(spec_path: str) -> list[list[str]]:
    """The `--model` options that draw each model of a spec (none where it has one)."""
    names = compile_file(spec_path).model_names
    return [[]] if len(names) == 1 else [["--model", name] for name in names]


@pytest.mark.parametrize("spec_path", SPECS)
def test_dot_matches_golden(
    spec_path: str, in_root: Path, tmp_path: Path, golden: Callable[..., None]
) -> None:
    for choice in models_of(spec_path):
        out = tmp_path / "model.dot"
        code, text = run_cli("render", spec_path, "-o", str(out), *choice)
        assert code == 0, text
        name = f"{choice[1]}.dot" if choice else "model.dot"  # a file of several models: one each
        golden(ROOT / "tests" / "golden" / Path(spec_path).stem / name, out.read_text(encoding="utf-8"))


@pytest.mark.slow
@needs_dot
@pytest.mark.parametrize("spec_path", SPECS)
def test_svg_and_png_render_for_every_spec(spec_path: str, in_root: Path, tmp_path: Path) -> None:
    for fmt in ("svg", "png"):
        out = tmp_path / f"diagram.{fmt}"
        code, text = run_cli("render", spec_path, "-o", str(out), *models_of(spec_path)[0])
        assert code == 0, text
        data = out.read_bytes()
        if fmt == "svg":
            assert data.startswith((b"<?xml", b"<svg")) and b"<svg" in data[:1000]
        else:
            assert data.startswith(MAGIC["png"])
    # nothing left beside the outputs: the temporary files were renamed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diagram.png", "diagram.svg"]


@needs_dot
def test_pdf_by_format_flag_whatever_the_suffix(in_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "diagram.out"
    code, _ = run_cli("render", "specs/lenet5.arch", "-o", str(out), "--format", "pdf")
    assert code == 0
    assert out.read_bytes().startswith(MAGIC["pdf"])


def test_layers_edges_and_io_are_labelled(in_root: Path) -> None:
    dot = dot_source(shaped("specs/lenet5.arch"))
    assert '":input" [label=<<B>input [1, 28, 28]</B>>' in dot
    assert '":output" [label=<<B>output [10]</B>>' in dot
    assert '"0" [label=<conv 5×5, 6, pad 2>' in dot
    assert '"0" -> "1" [label=<[6, 28, 28]>]' in dot
    assert '":input" -> "0" [label=<[1, 28, 28]>]' in dot


def test_statement_names_are_shown_with_the_op(in_root: Path) -> None:
    dot = dot_source(shaped("specs/resnet18.arch"))
    assert '"conv1" [label=<<B>conv1</B><BR/>conv 7×7, 64, /2, pad 3>' in dot
    assert '"relu" [label=<relu>' in dot  # `relu: relu` is not written twice


def test_concat_joins_parallel_branches_with_the_channel_sum(in_root: Path) -> None:
    dot = dot_source(shaped("specs/googlenet_mini.arch"))
    assert '"3.0:concat" [label=<concat 16+24+24+24 = 88>' in dot
    # four branches leave one fork (after the layer before them) and meet in the concat node, each
    # edge with its branch's shape
    assert len(re.findall(r'^\s*"2:fork" -> ', dot, flags=re.M)) == 4
    assert len(re.findall(r'^\s*"[^"]+" -> "3\.0:concat"', dot, flags=re.M)) == 4
    assert '"3.0.3.0" -> "3.0:concat" [label=<[24, 12, 12]>]' in dot


def test_residual_has_a_skip_edge_to_an_add_node(in_root: Path) -> None:
    dot = dot_source(shaped("specs/resnet_mini.arch"))
    assert '"3.0:add" [label=<<B>+</B>>' in dot
    assert '"2:fork" -> "3.0:add" [style="dashed"]' in dot
    # a projected shortcut is its conv and batchnorm, on the skip path
    dot = dot_source(shaped("specs/resnet18.arch"))
    assert '"layer2.0.0.shortcut.0" [label=<conv 1×1, 128, /2>' in dot
    assert '"layer2.0.0.shortcut.1" [label=<batchnorm>' in dot
    assert '"layer1.0.1:fork" -> "layer2.0.0.shortcut.0" [style="dashed"]' in dot  # layer1 drawn once
    assert '"layer2.0.0.shortcut.1" -> "layer2.0.0:add" [label=<[128, 28, 28]>, style="dashed"]' in dot


def test_blocks_are_labelled_clusters(in_root: Path) -> None:
    dot = dot_source(shaped("specs/resnet18.arch"))
    assert 'subgraph "cluster_layer2" {' in dot
    assert re.search(r'subgraph "cluster_layer2\.0" \{\n\s+graph \[label=<<B>Down', dot)
    assert "graph [label=<<B>layer2: Stage" in dot


def test_block_titles_show_the_arguments_of_the_call(in_root: Path) -> None:
    model = shaped("specs/vgg16.arch")
    assert "graph [label=<<B>Stage(width=64, convs=2)</B>>" in dot_source(model)
    assert "<B>0</B>" not in dot_source(model, depth=0)  # an unnamed call shows no position
    assert "Stage(width=64, convs=2)<BR/>" in dot_source(model, depth=0)


def test_depth_zero_collapses_every_top_level_block(in_root: Path) -> None:
    model = shaped("specs/resnet18.arch")
    dot = dot_source(model, depth=0)
    assert "cluster_layer2" not in dot
    assert re.search(r'^\s*"layer2" \[label=<<B>layer2</B><BR/>Stage.*peripheries="2"', dot, flags=re.M)
    assert '"layer2" -> "layer3" [label=<[128, 28, 28]>]' in dot
    assert not any(i.startswith("layer2.") for i in node_ids(dot))
    # depth 1: the top-level block is a cluster, the blocks inside it one node each
    dot = dot_source(model, depth=1)
    assert 'subgraph "cluster_layer2" {' in dot
    assert "cluster_layer2.0" not in dot
    assert {"layer2.0", "layer2.1"} <= set(node_ids(dot))
    assert not any(i.startswith("layer2.0.") for i in node_ids(dot))


def test_depth_through_the_cli(in_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.dot"
    code, _ = run_cli("render", "specs/vgg_cifar_bn.arch", "-o", str(out), "--depth", "0")
    assert code == 0
    assert "subgraph" not in out.read_text(encoding="utf-8")
    code, _ = run_cli("render", "specs/vgg_cifar_bn.arch", "-o", str(out), "--depth", "-1")
    assert code == 2


def test_repeat_is_drawn_once_and_marked_unless_expanded(in_root: Path) -> None:
    model = shaped("specs/vgg16.arch")
    once = dot_source(model)
    assert "repeat ×3" in once
    ids = node_ids(once)
    assert "2.0.0" in ids and "2.0.4" not in ids  # Stage(256, 3): the first pass only
    expanded = dot_source(model, expand=True)
    ids = node_ids(expanded)
    assert {"2.0.0", "2.0.2", "2.0.4"} <= set(ids)  # the passes' convs, numbered on
    assert "pass 3" in expanded
    assert len(ids) > len(node_ids(once))


def test_repeat_drawn_once_shows_first_and_last_pass_shapes(tmp_path: Path) -> None:
    path = spec(
        tmp_path,
        "model Net {\n    input [8, 32, 32]\n"
        "    repeat 3 { conv(same, kernel=3, stride=2, padding=1) relu }\n    flatten\n}\n",
    )
    dot = dot_source(shaped(path))
    assert "repeat ×3" in dot
    # conv → relu carries [8, 16, 16] in pass 1 and [8, 4, 4] in pass 3
    assert '"0.0" -> "0.1" [label=<[8, 16, 16] → … → [8, 4, 4]>]' in dot
    # into the repeat the model's input, out of it the last pass's output
    assert '":input" -> "0.0" [label=<[8, 32, 32]>]' in dot
    assert '"0.1" -> "1" [label=<[8, 4, 4]>]' in dot
    expanded = dot_source(shaped(path), expand=True)
    assert '"0.3" -> "0.4" [label=<[8, 8, 8]>]' in expanded


def test_ids_stay_when_a_layer_is_added_at_the_end(tmp_path: Path) -> None:
    text = (ROOT / "specs" / "googlenet_mini.arch").read_text(encoding="utf-8")
    before = dot_source(shaped(spec(tmp_path, text, "a.arch")))
    after = dot_source(shaped(spec(tmp_path, text.replace("linear(10)\n", "linear(10) relu\n"), "a.arch")))
    old, new = node_ids(before), node_ids(after)
    assert len(new) == len(old) + 1
    assert new[: len(old) - 1] == old[:-1]  # every layer keeps its id; `output` stays last


HOSTILE = 'a"b\\c\n<i>&amp;]; evil [label="x"'


def test_hostile_strings_cannot_inject_dot(tmp_path: Path) -> None:
    path = spec(
        tmp_path,
        'block B(mode: str) { relu }\nmodel Net {\n    input [4]\n    B("x")\n    linear(2)\n}\n',
        name='we"ird\\ <b>&\n.arch',
    )
    model = shaped(path)
    model.layers[0].args = {"mode": HOSTILE}  # worse than a spec string can be: it holds a newline
    dot = dot_source(model)
    # the text survives escaped: quotes, markup and the newline cannot end a label
    assert "we&quot;ird\\ &lt;b&gt;&amp;\\n.arch" in dot
    assert "B(mode=&quot;a\\&quot;b\\\\c\\n&lt;i&gt;&amp;amp;]; evil [label=\\&quot;x\\&quot;&quot;)" in dot
    # every line that starts with an id is one of the nodes drawn: nothing else was declared
    assert node_ids(dot) == [":input", "0:spacer", "0.0", "1", ":output"]
    if shutil.which("dot") is not None:
        result = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=False)
        assert result.returncode == 0, result.stderr
        # input, relu, linear, output and the cluster's spacer: no node was injected
        assert svg_nodes(result.stdout.decode()) == 5


@needs_dot
def test_hostile_file_name_renders_through_the_cli(tmp_path: Path) -> None:
    path = spec(tmp_path, "model Net {\n    input [4]\n    linear(2)\n}\n", name='q"uo\\te<&>\n.arch')
    out = tmp_path / "net.svg"
    code, text = run_cli("render", str(path), "-o", str(out))
    assert code == 0, text
    svg = out.read_text(encoding="utf-8")
    assert "q&quot;uo\\te&lt;&amp;&gt;\\n.arch" in svg
    assert svg_nodes(svg) == 3


def _without_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_missing_dot_is_a_usage_error_and_dot_format_still_works(
    in_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_dot(monkeypatch, tmp_path)
    out = tmp_path / "lenet.svg"
    code, _ = run_cli("render", "specs/lenet5.arch", "-o", str(out))
    assert code == 2
    assert f"archdsl: error: {DOT_MISSING}" in capsys.readouterr().err
    assert not out.exists()
    for target in ("lenet.dot", "lenet.gv"):
        code, text = run_cli("render", "specs/lenet5.arch", "-o", str(tmp_path / target))
        assert code == 0, text
    code, _ = run_cli("render", "specs/lenet5.arch", "-o", str(out), "--format", "dot")
    assert code == 0
    assert out.read_text(encoding="utf-8").startswith('digraph "LeNet5" {')


def test_render_dot_raises_render_error_without_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_dot(monkeypatch, tmp_path)
    with pytest.raises(RenderError, match="apt-get install graphviz"):
        render_dot("digraph {}", str(tmp_path / "x.png"), "png")


def test_a_failing_dot_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\necho 'syntax error in line 1' >&2\nexit 1\n", encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    target = tmp_path / "out" / "x.svg"
    with pytest.raises(RenderError, match="syntax error in line 1"):
        render_dot("digraph {}", str(target), "svg")
    assert list((tmp_path / "out").iterdir()) == []


def test_format_from_suffix_or_a_usage_error(in_root: Path, tmp_path: Path) -> None:
    code, _ = run_cli("render", "specs/lenet5.arch", "-o", str(tmp_path / "x.jpeg"))
    assert code == 2
    code, _ = run_cli("render", "specs/lenet5.arch")  # -o is required
    assert code == 2


def test_spec_errors_are_rendered_with_exit_1(in_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.dot"
    code, text = run_cli("render", "tests/fixtures/errors/groups.arch", "-o", str(out))
    assert code == 1
    assert "error[E104]" in text
    assert not out.exists()


def test_a_file_with_several_models_needs_model(tmp_path: Path) -> None:
    path = spec(
        tmp_path,
        "model A {\n    input [4]\n    linear(2)\n}\nmodel B {\n    input [4]\n    linear(3)\n}\n",
    )
    out = tmp_path / "x.dot"
    code, _ = run_cli("render", str(path), "-o", str(out))
    assert code == 2
    code, _ = run_cli("render", str(path), "-o", str(out), "--model", "B")
    assert code == 0
    assert "output [3]" in out.read_text(encoding="utf-8")


def test_rankdir_lr(in_root: Path) -> None:
    dot = dot_source(shaped("specs/resnet_mini.arch"), rankdir="LR")
    assert 'rankdir="LR"' in dot
    assert ":spacer" not in dot  # titles only need room when edges enter clusters from the top
    with pytest.raises(ValueError):
        dot_source(shaped("specs/resnet_mini.arch"), rankdir="BT")


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
@pytest.mark.parametrize("rankdir", ["TB", "LR"])
def test_concat_branches_are_laid_out_in_spec_order_in_either_direction(rankdir: str, in_root: Path) -> None:
    dot = dot_source(shaped("specs/googlenet_mini.arch"), rankdir=rankdir)
    plain = subprocess.run(["dot", "-Tplain"], input=dot, capture_output=True, text=True, check=True).stdout
    # `node NAME X Y ...`: the first layer of each of the first Inception's four branches
    place = {
        m[1]: (float(m[2]), float(m[3]))
        for m in re.finditer(r'^node "(3\.0\.\d)\.0" (\S+) (\S+)', plain, re.M)
    }
    heads = [place[f"3.0.{i}"] for i in range(4)]
    if rankdir == "TB":
        assert [x for x, _ in heads] == sorted(x for x, _ in heads)  # first branch leftmost
    else:
        assert [y for _, y in heads] == sorted((y for _, y in heads), reverse=True)  # first on top (y up)


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
@pytest.mark.parametrize("rankdir", ["TB", "LR"])
def test_a_top_level_concat_keeps_its_branches_in_spec_order(rankdir: str, tmp_path: Path) -> None:
    # Left to right, the branches of a concat at the model's top level were drawn last first.
    path = spec(
        tmp_path,
        "model C {\n    input [4, 8, 8]\n    concat {\n"
        + "".join(
            f"        branch {b} {{ conv({n}, kernel=1) }}\n" for b, n in zip("abc", (2, 3, 4), strict=True)
        )
        + "    }\n}\n",
    )
    dot = dot_source(shaped(path), rankdir=rankdir)
    plain = subprocess.run(["dot", "-Tplain"], input=dot, capture_output=True, text=True, check=True).stdout
    place = {
        m[1]: (float(m[2]), float(m[3]))
        for m in re.finditer(r'^node "0\.([abc])\.0" (\S+) (\S+)', plain, re.M)
    }
    if rankdir == "TB":
        assert [place[b][0] for b in "abc"] == sorted(place[b][0] for b in "abc")  # first leftmost
    else:
        assert [place[b][1] for b in "abc"] == sorted(
            (place[b][1] for b in "abc"), reverse=True
        )  # first on top


def test_dot_text_is_deterministic(in_root: Path) -> None:
    assert dot_source(shaped("specs/resnet18.arch")) == dot_source(shaped("specs/resnet18.arch"))


@pytest.mark.slow
def test_render_does_not_import_torch(in_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.dot"
    code = (
        "import sys\nfrom archdsl.cli import main\n"
        f"assert main(['render', 'specs/resnet18.arch', '-o', {str(out)!r}]) == 0\n"
        "assert 'torch' not in sys.modules, 'render imported torch'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stderr
