"""`archdsl schema`: the JSON Schema of `check --format json`'s document holds every document the
checker writes, field for field, and the copy published in docs/ is the one the code generates."""

from __future__ import annotations

import json

import pytest

from archdsl.schema import CheckDocument, check_schema, schema_text

from conftest import ROOT, SPECS, run_cli

FIXTURES = sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "fixtures" / "errors").glob("*.arch")
)
PUBLISHED = ROOT / "docs" / "schema" / "check.schema.json"


def documents() -> list[dict]:
    """The documents of a clean spec, and of every example spec and every error fixture together:
    warnings, errors, notes, models that stopped, files that failed to parse."""
    found = []
    for paths in (["specs/lenet5.arch"], SPECS + FIXTURES):
        code, out = run_cli("check", "--format", "json", *paths)
        assert code == (0 if len(paths) == 1 else 1)
        found.append(json.loads(out))
    return found


@pytest.fixture(scope="module")
def checked(request: pytest.FixtureRequest) -> list[dict]:
    import os

    here = os.getcwd()
    os.chdir(ROOT)
    try:
        return documents()
    finally:
        os.chdir(here)


def test_every_document_the_checker_writes_fits_the_models_field_for_field(checked: list[dict]) -> None:
    for document in checked:
        parsed = CheckDocument.model_validate(document)  # extra fields are refused, none may be missing
        assert parsed.model_dump(mode="json") == document
    assert sum(len(d["diagnostics"]) for d in checked) > 50
    assert any(d["models"] for d in checked)


def test_every_document_validates_against_the_published_json_schema(checked: list[dict]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(check_schema())
    for document in checked:
        assert list(validator.iter_errors(document)) == []
    broken = json.loads(json.dumps(checked[1]))
    broken["diagnostics"][0]["severity"] = "fatal"
    del broken["diagnostics"][0]["notes"]
    assert sorted(e.message for e in validator.iter_errors(broken)) == [
        "'fatal' is not one of ['error', 'warning']",
        "'notes' is a required property",
    ]


def test_the_published_schema_is_the_generated_one(tmp_path) -> None:
    assert PUBLISHED.read_text(encoding="utf-8") == schema_text(), (
        "run: archdsl schema -o docs/schema/check.schema.json"
    )
    code, out = run_cli("schema")
    assert (code, out) == (0, schema_text())
    code, out = run_cli("schema", "-o", str(tmp_path / "s.json"))
    assert (code, out) == (0, f"wrote {tmp_path / 's.json'}\n")
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == schema_text()
