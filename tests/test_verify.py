"""`summary --verify`: archdsl's per-statement output shapes and parameter counts against torchinfo
run on the module the builder makes, for every spec; and the CLI's report when they disagree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import archdsl.verify
from archdsl.graph import Node
from archdsl.pipeline import compile_file
from archdsl.table import walk
from archdsl.verify import Disagreement, compare, record_path, records, verify

from conftest import SPECS, run_cli

# Out of the fast lane (`pytest -m "not slow"`): every statement held to torchinfo, which runs the network.
pytestmark = pytest.mark.slow

pytest.importorskip("torch")
pytest.importorskip("torchinfo")


@pytest.mark.parametrize("spec_path", SPECS)
def test_every_statement_agrees_with_torchinfo(spec_path: str, in_root: Path) -> None:
    program = compile_file(spec_path)
    assert not program.errors
    for model in program.models:
        result = verify(model)
        assert [d.text() for d in result.disagreements] == []
        # every statement that makes a module was found among torchinfo's records and compared,
        # not skipped (a function such as `cat` makes none, a class token is a parameter)
        modules = [
            n
            for _, n in walk(model.layers)
            if not n.spliced and not (isinstance(n, Node) and not n.is_module)
        ]
        assert result.compared == len(modules)


def test_records_are_the_built_modules_with_their_paths(in_root: Path) -> None:
    model = compile_file("specs/resnet18.arch").model()
    infos = {record_path(info): info for info in records(model)}
    # torchvision's names: the builder's submodule paths are what torchinfo records
    assert infos["layer2.0.0.shortcut"].class_name == "Sequential"
    assert infos["layer2.0.0.0"].class_name == "Conv2d"
    assert infos["layer2.0.0.0"].output_size == [1, 128, 28, 28]
    assert infos["fc"].num_params == 512 * 1000 + 1000
    assert infos[""].num_params == model.params == 11_689_512


def test_cli_prints_the_agreement_line(in_root: Path) -> None:
    code, out = run_cli("summary", "specs/lenet5.arch", "--verify")
    assert code == 0
    assert out.endswith("\n\nverified against torchinfo: 12 layers agree\n")


def test_cli_reports_a_disagreement_and_exits_1(in_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = archdsl.verify.records

    def miscounted(model: Any) -> list[Any]:
        infos = real(model)
        for info in infos:
            if record_path(info) == "9":  # LeNet5's linear(84): 120·84 + 84 = 10,164
                info.num_params += 1
            if record_path(info) == "2":  # the first avgpool: [6, 14, 14]
                info.output_size = [1, 6, 14, 13]
        return infos

    monkeypatch.setattr(archdsl.verify, "records", miscounted)
    code, out = run_cli("summary", "specs/lenet5.arch", "--verify")
    assert code == 1
    assert out.endswith(
        "\n\ntorchinfo disagrees with archdsl on LeNet5 (2 differences in 12 layers compared):\n"
        "  2: output shape [6, 14, 14] in archdsl, [6, 14, 13] in torchinfo\n"
        "  9: parameters 10,164 in archdsl, 10,165 in torchinfo\n"
    )


def test_missing_and_extra_modules_are_named(in_root: Path) -> None:
    model = compile_file("specs/lenet5.arch").model()
    infos = [info for info in records(model) if record_path(info) != "3"]
    renamed = next(info for info in infos if record_path(info) == "4")
    renamed.var_name = "tanh"
    result = compare(model, infos)
    assert result.disagreements == [
        Disagreement("3", "missing", "layer conv", ""),
        Disagreement("4", "missing", "layer tanh", ""),
        Disagreement("tanh", "extra", "", "Tanh"),
    ]
    assert [d.text() for d in result.disagreements] == [
        "3: archdsl has layer conv, torchinfo recorded no such module",
        "4: archdsl has layer tanh, torchinfo recorded no such module",
        "tanh: torchinfo recorded Tanh, archdsl has no such statement",
    ]


def test_a_model_of_several_inputs_and_outputs_is_verified_statement_by_statement(tmp_path: Path) -> None:
    spec = tmp_path / "two.arch"
    spec.write_text(
        "model Two {\n    input [3, 8, 8] as a\n    input [5, 6, 6] as b\n"
        "    a -> conv(4, kernel=1) as x\n    b -> conv(7, kernel=3) as y\n    output x, y\n}\n",
        encoding="utf-8",
    )
    result = verify(compile_file(str(spec)).model())
    assert (result.compared, result.disagreements) == (2, [])
