"""`archdsl check --format sarif`: a SARIF 2.1.0 log for code-scanning upload, checked against the
fields the SARIF 2.1.0 schema requires (written out here: nothing is downloaded at test time)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from archdsl.errors import CODES

from conftest import run_cli

LEVELS = {"none", "note", "warning", "error"}


def schema_problems(log: dict[str, Any]) -> list[str]:
    """What the SARIF 2.1.0 JSON schema requires of the parts archdsl writes: a sarifLog has
    `version` "2.1.0" and `runs`; a run a `tool` with a `driver` with a `name`; a rule (a
    reportingDescriptor) an `id`; a result a `message` with `text`; a region's lines and columns are
    integers ≥ 1; a level one of none, note, warning, error; a ruleIndex ≥ 0 naming the rule of the
    result's ruleId."""
    problems = []
    if log.get("version") != "2.1.0":
        problems.append("version must be 2.1.0")
    if not isinstance(log.get("runs"), list):
        return [*problems, "runs must be an array"]
    for r, run in enumerate(log["runs"]):
        driver = run.get("tool", {}).get("driver", {})
        if not isinstance(driver.get("name"), str):
            problems.append(f"runs[{r}].tool.driver.name is required")
        rules = driver.get("rules", [])
        ids = [rule.get("id") for rule in rules]
        if not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
            problems.append(f"runs[{r}] rules need unique string ids")
        for n, result in enumerate(run.get("results", [])):
            where = f"runs[{r}].results[{n}]"
            if not isinstance(result.get("message", {}).get("text"), str):
                problems.append(f"{where}.message.text is required")
            if result.get("level", "warning") not in LEVELS:
                problems.append(f"{where}.level {result.get('level')!r}")
            index = result.get("ruleIndex")
            if index is not None and not (0 <= index < len(rules) and ids[index] == result.get("ruleId")):
                problems.append(f"{where}.ruleIndex does not name its ruleId")
            for location in result.get("locations", []):
                physical = location.get("physicalLocation", {})
                if "artifactLocation" not in physical:
                    problems.append(f"{where}: a physicalLocation needs an artifactLocation")
                region = physical.get("region")
                if region is None:
                    continue
                for key in ("startLine", "startColumn", "endLine", "endColumn"):
                    if key in region and not (isinstance(region[key], int) and region[key] >= 1):
                        problems.append(f"{where}.region.{key} must be an integer ≥ 1")
    return problems


def test_sarif_log_of_several_files_is_one_run_meeting_the_schema(in_root: Path) -> None:
    code, out = run_cli(
        "check",
        "--format",
        "sarif",
        "tests/fixtures/errors/alexnet_28.arch",
        "tests/fixtures/errors/groups.arch",
    )
    assert code == 1
    log = json.loads(out)
    assert schema_problems(log) == []
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    (run,) = log["runs"]
    assert run["tool"]["driver"]["name"] == "archdsl"
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]] == list(CODES)
    assert run["columnKind"] == "unicodeCodePoints"
    results = run["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("W001", "warning"),
        ("E101", "error"),
        ("E104", "error"),
    ]
    empty = results[1]
    assert empty["locations"] == [
        {
            "physicalLocation": {
                "artifactLocation": {"uri": "tests/fixtures/errors/alexnet_28.arch"},
                "region": {"startLine": 9, "startColumn": 5, "endLine": 9, "endColumn": 25},
            }
        }
    ]
    assert empty["message"]["text"].endswith(
        "\nnote: the input to this model is [1, 28, 28] (line 2); this network expects larger images"
    )


def test_a_clean_check_is_a_run_without_results(in_root: Path) -> None:
    code, out = run_cli("check", "--format", "sarif", "specs/lenet5.arch")
    assert code == 0
    log = json.loads(out)
    assert schema_problems(log) == [] and log["runs"][0]["results"] == []


def test_a_whole_file_finding_has_no_region_and_paths_are_uri_references(tmp_path: Path) -> None:
    spec = tmp_path / "a b#1.arch"
    spec.write_text("# nothing yet\n", encoding="utf-8")
    _, out = run_cli("check", "--format", "sarif", str(spec))
    log = json.loads(out)
    assert schema_problems(log) == []
    (result,) = log["runs"][0]["results"]
    assert result["ruleId"] == "W004" and result["level"] == "warning"
    (location,) = result["locations"]
    assert "region" not in location["physicalLocation"]
    uri = location["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.startswith("file:///") and uri.endswith("/a%20b%231.arch")
    assert re.fullmatch(r"[A-Za-z0-9/%._~:-]+", uri)


def test_the_schema_checks_catch_what_they_claim_to() -> None:
    bad = {
        "version": "2.0.0",
        "runs": [
            {
                "tool": {"driver": {"rules": [{"id": "E001"}]}},
                "results": [
                    {
                        "ruleId": "E002",
                        "ruleIndex": 0,
                        "level": "fatal",
                        "message": {},
                        "locations": [{"physicalLocation": {"region": {"startLine": 0}}}],
                    }
                ],
            }
        ],
    }
    assert len(schema_problems(bad)) == 7
