"""The JSON Schema of `archdsl check --format json`'s document, from pydantic models.

CI tools that read the document validate it against this schema (`archdsl schema`, and the copy
published as `docs/schema/check.schema.json`). The models state each field's type and meaning once,
and the schema is generated from them. `report.py` still writes the document as plain dicts: a model
per layer and a `model_dump` cost more than the check itself on a 10,000-layer spec, and the document
must stay as fast as the text report (`benchmarks/check_speed.py`). tests/test_schema.py holds the two
together: every document the test specs and error fixtures give validates against the schema (with
no field left out or added), and the published copy equals what this module generates.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
Dimension = int
Shape = list[Dimension]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Diagnostic(_Strict):
    """A problem found in a spec, as `archdsl check` prints it."""

    file: str = Field(description="the spec file, as given on the command line")
    line: int | None = Field(description="1-based; null for a finding about the whole file")
    column: int | None = Field(description="1-based, in characters; null with line")
    end_line: int | None = Field(description="where the span ends (inclusive line)")
    end_column: int | None = Field(description="where the span ends (exclusive column)")
    severity: Literal["error", "warning"]
    code: str = Field(pattern=r"^[EW][0-9]{3}$", description="see the language reference's table")
    message: str
    notes: list[str] = Field(description="further lines: where values came from, likely fixes")
    allowed: bool = Field(description="a warning that an `archdsl: allow CODE` comment allows")


class Layer(_Strict):
    """One statement of a model with its shapes; a composite's statements are its children."""

    name: str = Field(description="its module's name in its namespace; `*` when it has none")
    op: str = Field(description="the layer op, the block's name, or the construct")
    kind: str = Field(description="layer, block, repeat, iteration, concat, branch, residual, ...")
    path: str = Field(description="its module's dotted path in the built network")
    spliced: bool = Field(description="written with `*`: its members are its namespace's")
    line: int
    column: int
    input: Shape
    output: Shape
    params: int = Field(ge=0)
    macs: int = Field(ge=0, description="multiply-accumulates for one sample")
    children: list[Layer]


class NamedShape(_Strict):
    name: str | None
    shape: Shape


class KeyedShape(_Strict):
    key: str | None = Field(description="the key in a model's dict of outputs, else null")
    shape: Shape


class Model(_Strict):
    """A model whose shapes were inferred."""

    file: str
    name: str
    line: int
    input: Shape = Field(description="its first input's shape, without the batch")
    output: Shape | None = Field(description="its first output's shape; null where inference stopped")
    inputs: list[NamedShape]
    outputs: list[KeyedShape]
    params: int = Field(ge=0)
    macs: int = Field(ge=0)
    layers: list[Layer]


class CheckDocument(_Strict):
    """What `archdsl check --format json` writes: every diagnostic (by position) and every model shaped."""

    diagnostics: list[Diagnostic]
    models: list[Model]


def check_schema() -> dict[str, Any]:
    schema = CheckDocument.model_json_schema()
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "archdsl check --format json",
        "description": schema.pop("description"),
        **{key: value for key, value in schema.items() if key != "title"},
    }


def schema_text() -> str:
    return json.dumps(check_schema(), indent=2, ensure_ascii=False) + "\n"
