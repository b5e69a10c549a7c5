"""Every diagnostic code, defined once: its constant, its code and what it means.

The stages report through these constants (`error(RANK, …)`), `CODES` gives each its meaning (the
SARIF report's rules read it), and `markdown_table` renders the table docs/language.md shows (a
test holds the two equal). A new code is one constant and one row here. This module imports
nothing, so every stage, the layer catalog included, may import it.
"""

from __future__ import annotations

# Errors about the text and its names: parsing and resolving.
SYNTAX = "E001"
UNKNOWN_LAYER = "E002"
UNKNOWN_ARGUMENT = "E003"
ARGUMENT_COUNT = "E004"
BAD_VALUE = "E005"
UNKNOWN_NAME = "E006"
IMPORT = "E007"
IMPORT_CYCLE = "E008"
DUPLICATE = "E009"
RECURSION = "E010"
MODEL_STRUCTURE = "E011"
TRAIN_SETTING = "E012"
UNKNOWN_MODEL = "E013"
VALUES = "E015"

# Errors about shapes and sizes.
EMPTY_OUTPUT = "E101"
RANK = "E102"
CHANNELS = "E103"
GROUPS = "E104"
CONCAT_MISMATCH = "E105"
RESIDUAL_MISMATCH = "E106"
VIEW_SIZE = "E107"
POOL_PADDING = "E108"
SAME_PADDING = "E109"
TOO_LARGE = "E110"
PRETRAINED = "E111"
PERMUTATION = "E112"
GATE_MISMATCH = "E113"
NARROW = "E114"
OUTPUT_PADDING = "E115"
FACTOR = "E116"
PAD_SIZE = "E117"
AXES_LENGTH = "E118"
MATMUL = "E119"
TOKEN_GRID = "E120"

# Warnings.
INEXACT = "W001"
NO_GRADIENT = "W002"
BATCH_AXIS = "W003"
DEFINES_NOTHING = "W004"
STALE_SHAPE = "W005"
UNUSED = "W006"

#: What each code means, in the order the docs list them. The test suite holds a golden fixture
#: for each (tests/fixtures/errors).
CODES: dict[str, str] = {
    SYNTAX: "syntax error",
    UNKNOWN_LAYER: "unknown layer or block",
    UNKNOWN_ARGUMENT: "unknown argument",
    ARGUMENT_COUNT: "missing, repeated or surplus argument",
    BAD_VALUE: "bad argument value",
    UNKNOWN_NAME: "unknown name",
    IMPORT: "import: the file is missing, unreadable or not UTF-8",
    IMPORT_CYCLE: "import cycle",
    DUPLICATE: "duplicate or reserved name",
    RECURSION: "a block calls itself",
    MODEL_STRUCTURE: "model structure: the input statement, where input and train may stand",
    TRAIN_SETTING: "train setting",
    UNKNOWN_MODEL: "model selection: no such model in the file, no model at all, or several to choose from",
    VALUES: "values: a tensor where a number belongs (or the reverse), or several values where one does",
    EMPTY_OUTPUT: "empty output: the input is too small for the window",
    RANK: "wrong rank for the layer",
    CHANNELS: "in= assertion does not hold",
    GROUPS: "groups do not divide the channels",
    CONCAT_MISMATCH: "values joined on the channels (concat, cat, split) disagree",
    RESIDUAL_MISMATCH: "values added (residual, add) disagree",
    VIEW_SIZE: "view cannot reshape",
    POOL_PADDING: "pooling padding more than half the kernel",
    SAME_PADDING: 'padding="same" with a stride',
    TOO_LARGE: "too large or too deep",
    PRETRAINED: "pretrained model fails on its input, or its weights cannot be loaded",
    PERMUTATION: "permute dims are not an order of the sample's axes",
    GATE_MISMATCH: "a gate's (or mul's) shape cannot scale its input",
    NARROW: "narrow or select reaches past the axis",
    OUTPUT_PADDING: "transposed convolution: output_padding not below the stride or dilation",
    FACTOR: "a factor (pixel shuffle, a partition) does not divide the size it splits",
    PAD_SIZE: "padding the input cannot give (reflect: not below its size; circular: over it)",
    AXES_LENGTH: "a size per axis (kernel, stride, …) for another number of spatial axes than the input has",
    MATMUL: "matmul: the samples' ranks or the matrices' inner sizes differ, or leading axes don't broadcast",
    TOKEN_GRID: "a clip's token grid [t, h, w] does not hold the tokens it is given (MViT's layers)",
    INEXACT: "inexact division in a size rule: input rows or columns are dropped",
    NO_GRADIENT: "no gradient reaches earlier layers",
    BATCH_AXIS: "softmax over the batch axis",
    DEFINES_NOTHING: "the file defines nothing: no model and no block",
    STALE_SHAPE: "a shape comment disagrees with the inferred shape",
    UNUSED: "a value is made and never used",
}


def markdown_table() -> str:
    """The code table as docs/language.md shows it under "Diagnostics"."""
    rows = ["| code | meaning |", "|---|---|"]
    rows += [f"| {code} | {meaning} |" for code, meaning in CODES.items()]
    return "\n".join(rows) + "\n"
