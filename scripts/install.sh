#!/usr/bin/env bash
# Installs archdsl for development on a fresh Debian/Ubuntu machine: a virtual environment in
# .venv with archdsl (editable), all its extras and its test tools, and one in .venv-light without
# PyTorch, where scripts/test.sh runs the tests again. Safe to run again. (A user who only checks
# specs needs none of this: `pip install archdsl`, see README "Installing".)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "install.sh: archdsl needs Python 3.10 or newer as $PYTHON (set PYTHON=... to choose one)" >&2
    exit 1
fi

# Debian packages: graphviz's `dot` renders diagrams; dataset-fashion-mnist is the real data the
# training tests and benchmarks use (found in /usr/share/datasets/fashion-mnist without a flag).
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz dataset-fashion-mnist >/dev/null
elif ! command -v dot >/dev/null; then
    echo "install.sh: not root: install Debian's graphviz (and dataset-fashion-mnist) yourself" >&2
fi

"$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# Every extra (torch, train) and the test tools. pyproject.toml asks for lower bounds only; the
# constraints file pins torch and torchvision to the tested releases, so a run is reproducible and
# pip takes the local copy where the machine has one instead of downloading several GB.
.venv/bin/python -m pip install --quiet -c scripts/constraints.txt -e ".[dev]"
# An editable install is not byte-compiled, and where PYTHONDONTWRITEBYTECODE is set nothing ever
# writes the cache: `archdsl check` would compile its own source at every start (~50 ms).
.venv/bin/python -m compileall -q archdsl
# The checker, the language server and their tests without torch (`pip install archdsl` has none):
# the same constraints, so both environments hold the same releases of what they share.
"$PYTHON" -m venv .venv-light
.venv-light/bin/python -m pip install --quiet --upgrade pip
.venv-light/bin/python -m pip install --quiet -c scripts/constraints.txt -e ".[lsp,test]"
.venv/bin/archdsl --version
