"""Optional dependencies: which pip extra brings which module, and the error that names the extra.

`pip install archdsl` is the checker alone (lark, pydantic): `check`, `summary`, `render`, `docs`,
`emit` and `load` never import torch. `archdsl[torch]` adds what building needs (`build`,
`summary --verify`, `pretrained(...)` layers), `archdsl[train]` the training runner, `archdsl[lsp]`
the language server (`archdsl lsp`), `archdsl[onnx]` `archdsl export` (and onnxruntime, to run
what it writes), `archdsl[tensorboard]` `train --tensorboard`, `archdsl[sweep]` `archdsl sweep`
and `archdsl[docs]` the mkdocs plugin. A command that needs a missing extra raises
`MissingExtra` before it starts, naming the extra to install; the CLI prints it and exits 2.
"""

from __future__ import annotations

import importlib.util

#: The modules each extra brings (what `pyproject.toml` lists under it).
EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch", "torchvision", "torchinfo"),
    "train": ("torch", "torchvision", "matplotlib", "tqdm"),
    "lsp": ("pygls", "lsprotocol"),
    "onnx": ("torch", "torchvision", "onnx", "onnxscript", "onnxruntime"),
    "tensorboard": ("tensorboard", "torch", "torchvision", "matplotlib", "tqdm"),
    "sweep": ("optuna", "torch", "torchvision", "matplotlib", "tqdm"),
    "docs": ("mkdocs", "material"),
}


class MissingExtra(ImportError):
    """A feature needs an optional dependency that is not installed; the message says which extra
    to install (`pip install 'archdsl[torch]'`)."""

    def __init__(self, what: str, module: str, extra: str):
        super().__init__(
            f"{what} needs {module}, which is not installed: pip install 'archdsl[{extra}]'", name=module
        )
        self.extra = extra


def extra_of(module: str) -> str | None:
    """The first extra that brings `module` (a dotted name's top package), if any."""
    top = module.split(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)


def require(what: str, extra: str, modules: tuple[str, ...] | None = None) -> None:
    """Raises `MissingExtra` unless every module of `extra` (or just `modules`) can be imported.

    Looks the modules up without importing them, so a check costs microseconds; `what` names the
    feature for the message ("archdsl train", "archdsl.build").
    """
    for module in modules or EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a module without a spec
            found = False
        if not found:
            raise MissingExtra(what, module, extra)
