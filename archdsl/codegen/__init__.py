"""Code generation: a shaped model as plain PyTorch source (`archdsl emit`, `archdsl.emit`).

`source.py` writes the module from the model's dataflow graph; `blocks.py` is the symbolic
analysis that lets a block be written once, as a class taking its parameters. The package is not
named `emit`, as the issue that made it suggested, because `archdsl.emit` is the Python API's
function and a submodule of that name would replace it on the package at its first import.
"""
