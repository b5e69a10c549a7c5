"""The release, in one place: pyproject.toml reads it (`[tool.setuptools.dynamic]`), `archdsl
--version`, the language server, SARIF and ONNX files print it. A module of the ground, so the
stages that name the release need not import the package's `__init__`, which loads the API."""

__version__ = "0.1.0"
