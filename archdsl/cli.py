"""The command line: argument parsing, exit codes, and the one place diagnostics are printed.

Exit codes: 0 clean, 1 the spec has errors (or warnings under --strict), 2 usage errors (a bad
flag, a missing file, a directory without specs). `check` and `summary` never import torch.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from . import __version__
from .errors import Diagnostic, SourceCache, render, sort_key
from .loader import Loader
from .program import Program, compile_file

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """A problem with how archdsl was called (not with a spec): exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="archdsl", description="Check, summarise and build .arch network specs.")
    parser.add_argument("--version", action="version", version=f"archdsl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    check = commands.add_parser("check", help="check specs statically (shapes, parameters, errors)")
    check.add_argument(
        "paths", nargs="+", metavar="PATH", help="spec files, or directories searched for *.arch"
    )
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text (default), one JSON document, or GitHub Actions annotations",
    )
    check.add_argument("-q", "--quiet", action="store_true", help="print only diagnostics")
    _param_option(check)

    summary = commands.add_parser("summary", help="per-layer table: output shapes, parameters, MACs")
    summary.add_argument("file", metavar="FILE")
    summary.add_argument("--model", metavar="NAME", help="the model to summarise (default: every model)")
    _param_option(summary)
    return parser


def _param_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a model parameter, e.g. -p classes=100 (repeatable)",
    )


def parse_param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise UsageError(f"--param takes NAME=VALUE, got '{text}'")
    value: Any
    if raw in ("true", "false"):
        value = raw == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    return name, value


def spec_files(paths: Sequence[str]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, _dirs, names in os.walk(path)
                for name in names
                if name.endswith(".arch")
            )
            if not found:
                raise UsageError(f"{path}: no .arch files in this directory")
            files.extend(found)
        elif os.path.exists(path):
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    return list(dict.fromkeys(os.path.normpath(f) for f in files))


def _color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _compile_all(files: list[str], params: dict[str, Any]) -> tuple[list[Program], list[Diagnostic], Loader]:
    loader = Loader()
    programs = []
    for file in files:
        try:
            programs.append(compile_file(file, loader=loader, params=params or None))
        except OSError as exc:
            raise UsageError(f"{file}: {exc.strerror or exc}") from None
    seen: set[tuple[Any, ...]] = set()
    diagnostics: list[Diagnostic] = []
    for program in programs:
        for diagnostic in program.diagnostics:
            key = (diagnostic.span, diagnostic.code, diagnostic.message)
            if key not in seen:
                seen.add(key)
                diagnostics.append(diagnostic)
    diagnostics.sort(key=sort_key)
    return programs, diagnostics, loader


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from .summary import model_line

    files = spec_files(args.paths)
    params = dict(parse_param(p) for p in args.param)
    programs, diagnostics, loader = _compile_all(files, params)
    if args.strict:
        diagnostics = [d if d.is_error else d.as_error() for d in diagnostics]
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    models = [m for p in programs for m in p.models]

    if args.format == "json":
        from .report import check_json

        json.dump(check_json(diagnostics, models), out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif args.format == "github":
        from .report import github_annotation

        for diagnostic in diagnostics:
            out.write(github_annotation(diagnostic) + "\n")
        out.write(
            f"archdsl: {_plural(len(files), 'file')}, {_plural(errors, 'error')}, "
            f"{_plural(warnings, 'warning')}\n"
        )
    else:
        color = _color(out)
        cache = SourceCache(loader.sources)
        for diagnostic in diagnostics:
            out.write(render(diagnostic, cache, color=color) + "\n\n")
        if not args.quiet:
            for program in programs:
                for model in program.models:
                    if model.complete and not program.errors:
                        out.write(f"{program.path}: {model_line(model)}\n")
            out.write(
                f"checked {_plural(len(files), 'file')}, {_plural(len(models), 'model')}: "
                f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}\n"
            )
    return EXIT_FAILED if errors else EXIT_OK


def cmd_summary(args: argparse.Namespace, out: TextIO) -> int:
    from .summary import table

    params = dict(parse_param(p) for p in args.param)
    if not os.path.isfile(args.file):
        raise UsageError(
            f"{args.file}: no such file" if not os.path.exists(args.file) else f"{args.file}: not a file"
        )
    loader = Loader()
    try:
        program = compile_file(args.file, loader=loader, model=args.model, params=params or None)
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror or exc}") from None
    cache = SourceCache(loader.sources)
    errors = program.errors
    if errors:
        for diagnostic in program.diagnostics:
            out.write(render(diagnostic, cache, color=_color(out)) + "\n\n")
        return EXIT_FAILED
    if not program.models:
        raise UsageError(f"{args.file}: defines no model")
    out.write("\n\n".join(table(model) for model in program.models) + "\n")
    for diagnostic in program.warnings:
        out.write("\n" + render(diagnostic, cache, color=_color(out)) + "\n")
    return EXIT_OK


COMMANDS = {"check": cmd_check, "summary": cmd_summary}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    # A short-lived process that makes no reference cycles: the cyclic collector would only rescan
    # the compiler's objects (compile_file pauses it too, but re-enabling costs one full sweep).
    gc.disable()
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args, out)
    except UsageError as exc:
        sys.stderr.write(f"archdsl: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if os.environ.get("ARCHDSL_DEBUG"):
            raise
        sys.stderr.write(
            f"archdsl: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in archdsl; set ARCHDSL_DEBUG=1 for the traceback and please report it.\n"
        )
        return EXIT_INTERNAL
    finally:
        gc.enable()
