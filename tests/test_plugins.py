"""A user's own layer plugs in through the `archdsl.layers` entry point, the interface the built-in
layers use: checked without torch, built, emitted, and refused when it takes a name in use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PLUGIN = ROOT / "tests" / "layer_plugin"

SPEC = """model Swishy {
    input [3, 8, 8]
    conv(4, kernel=3) swish(beta=2) flatten   # [144]
    linear(2)
}
"""


def install_entry_point(site: Path, value: str) -> None:
    """What `pip install` of a package declaring the entry point leaves in site-packages."""
    info = site / "archdsl_swish-0.1.dist-info"
    info.mkdir(parents=True)
    metadata = "Metadata-Version: 2.1\nName: archdsl-swish\nVersion: 0.1\n"
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[archdsl.layers]\nswish = {value}\n", encoding="utf-8")


def run(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(site), str(PLUGIN), str(ROOT)])
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    install_entry_point(tmp_path / "site", "swish_layer:SwishLayer")
    path = tmp_path / "swishy.arch"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_a_plugin_layer_is_checked_without_importing_torch(spec: Path) -> None:
    code = (
        "import json, sys, archdsl\n"
        "model = archdsl.load('swishy.arch').model()\n"
        "print(json.dumps([model.output, model.params, 'torch' in sys.modules]))\n"
    )
    result = run(spec.parent / "site", "-c", code, cwd=spec.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[2], 4 * 3 * 9 + 4 + 144 * 2 + 2, False]
    summary = run(spec.parent / "site", "-m", "archdsl", "summary", "swishy.arch", cwd=spec.parent)
    assert "swish β=2" in summary.stdout


def test_a_plugin_layer_builds_and_emits_the_plugins_module(spec: Path) -> None:
    code = (
        "import torch, archdsl\n"
        "net = archdsl.build('swishy.arch').eval()\n"
        "torch.manual_seed(0)\n"
        "x = torch.randn(2, 3, 8, 8)\n"
        "conv = net[0](x)\n"
        "assert torch.equal(net[1](conv), conv * torch.sigmoid(2 * conv))\n"
        "namespace = {}\n"
        "exec(archdsl.emit('swishy.arch'), namespace)\n"  # the emitted module imports swish_torch
        "emitted = namespace['Swishy']().eval()\n"
        "emitted.load_state_dict(net.state_dict(), strict=True)\n"
        "assert torch.equal(emitted(x), net(x))\n"
        "print('ok')\n"
    )
    result = run(spec.parent / "site", "-c", code, cwd=spec.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_a_plugin_may_not_take_a_built_in_layers_name(tmp_path: Path) -> None:
    install_entry_point(tmp_path / "site", "swish_layer:Clash")
    (tmp_path / "uses.arch").write_text("model M { input [4] swish }\n", encoding="utf-8")
    result = run(tmp_path / "site", "-m", "archdsl", "check", "uses.arch", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "archdsl: error: the layer name 'relu' (from swish_layer:Clash) is already taken\n"
    )


def test_a_plugin_that_fails_to_import_is_a_clear_error(tmp_path: Path) -> None:
    install_entry_point(tmp_path / "site", "no_such_module:Layer")
    (tmp_path / "uses.arch").write_text("model M { input [4] swish }\n", encoding="utf-8")
    result = run(tmp_path / "site", "-m", "archdsl", "check", "uses.arch", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "archdsl: error: the archdsl layer plugin 'swish' (no_such_module:Layer) failed to load: "
        "No module named 'no_such_module'\n"
    )
