"""The command line: argument parsing, exit codes, and the one place diagnostics are printed.

Exit codes: 0 clean, 1 the spec has errors (or warnings under --strict), 2 usage errors (a bad
flag, a missing file, a directory without specs, graphviz's `dot` missing for `render`). `check`,
`summary` and `render` never import torch.
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
from .layers import PluginError
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
    summary.add_argument(
        "--verify",
        action="store_true",
        help="build the model and check every layer's shape and parameters against torchinfo",
    )
    _param_option(summary)

    render_ = commands.add_parser("render", help="draw a model as a graphviz diagram (svg, png, pdf or dot)")
    render_.add_argument("file", metavar="FILE")
    render_.add_argument("--model", metavar="NAME", help="the model to draw (needed if FILE has several)")
    render_.add_argument("-o", "--output", required=True, metavar="OUT", help="out.svg, .png, .pdf or .dot")
    render_.add_argument(
        "--format", choices=("svg", "png", "pdf", "dot"), help="output format (default: from OUT's suffix)"
    )
    render_.add_argument(
        "--depth", type=int, metavar="N", help="draw blocks nested deeper than N as one node"
    )
    render_.add_argument("--expand", action="store_true", help="draw every pass of a repeat, not one ×N")
    render_.add_argument(
        "--rankdir", choices=("TB", "LR"), default="TB", help="top to bottom or left to right"
    )
    _param_option(render_)

    docs = commands.add_parser("docs", help="write a Markdown page and SVG diagram per model, and an index")
    docs.add_argument(
        "paths", nargs="+", metavar="PATH", help="spec files, or directories searched for *.arch"
    )
    docs.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the pages")
    docs.add_argument("--depth", type=int, metavar="N", help="draw blocks nested deeper than N as one node")

    emit = commands.add_parser("emit", help="write a model as plain PyTorch source (needs only torch)")
    emit.add_argument("file", metavar="FILE")
    emit.add_argument("--model", metavar="NAME", help="the model to write (default: every model)")
    emit.add_argument("-o", "--output", metavar="OUT", help="the .py file to write (default: stdout)")
    _param_option(emit)

    train = commands.add_parser("train", help="train a model on its dataset (its train section's recipe)")
    train.add_argument("file", metavar="FILE")
    train.add_argument("--model", metavar="NAME", help="the model to train (default: the file's first)")
    train.add_argument("--epochs", type=_positive(int), metavar="N", help="override the spec's epochs")
    train.add_argument("--batch", type=_positive(int), metavar="N", help="override the batch size")
    train.add_argument("--lr", type=_positive(float), metavar="X", help="override the learning rate")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    train.add_argument("--data-root", metavar="DIR", help="where the dataset files are (or go)")
    train.add_argument("--out", metavar="DIR", help="output directory (default: runs/MODEL)")
    train.add_argument("--resume", action="store_true", help="continue from DIR's last checkpoint")
    train.add_argument("--seed", type=_nonnegative_int, metavar="N", help="override the random seed")
    train.add_argument("--compile", action="store_true", help="compile the model with torch.compile")
    train.add_argument("--limit", type=_positive(int), metavar="N", help="train on the first N images only")
    train.add_argument(
        "--max-params",
        type=_positive(int),
        metavar="N",
        help="refuse a model with more parameters (default: what this machine's memory holds)",
    )
    _param_option(train)
    return parser


def _positive(kind: type) -> Any:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
        return value

    convert.__name__ = kind.__name__
    return convert


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got '{text}'")
    return value


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


def _compile_one(args: argparse.Namespace, out: TextIO) -> tuple[Program, SourceCache] | None:
    """Compiles FILE for a command that works on one spec (its --model and -p options). Prints
    the diagnostics and returns None when the spec has errors; a file without a model is a usage
    error."""
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
    if program.errors:
        for diagnostic in program.diagnostics:
            out.write(render(diagnostic, cache, color=_color(out)) + "\n\n")
        return None
    if not program.models:
        raise UsageError(f"{args.file}: defines no model")
    return program, cache


def cmd_summary(args: argparse.Namespace, out: TextIO) -> int:
    from .summary import table

    compiled = _compile_one(args, out)
    if compiled is None:
        return EXIT_FAILED
    program, cache = compiled
    out.write("\n\n".join(table(model) for model in program.models) + "\n")
    for diagnostic in program.warnings:
        out.write("\n" + render(diagnostic, cache, color=_color(out)) + "\n")
    if args.verify:
        return _verify(program.models, cache, out)
    return EXIT_OK


def _verify(models: list[Any], cache: SourceCache, out: TextIO) -> int:
    """summary --verify: torchinfo's shapes and parameter counts against archdsl's, layer by layer."""
    from .errors import ArchError

    try:
        from .verify import verify
    except ImportError as exc:
        raise UsageError(f"--verify needs torch and torchinfo ({exc}); pip install torchinfo") from None
    failed = False
    for model in models:
        name = f" {model.name}" if len(models) > 1 else ""
        try:
            result = verify(model)
        except ArchError as exc:
            for diagnostic in exc.diagnostics:
                out.write("\n" + render(diagnostic, cache, color=_color(out)) + "\n")
            failed = True
            continue
        if result.ok:
            out.write(f"\nverified{name} against torchinfo: {_plural(result.compared, 'layer')} agree\n")
            continue
        failed = True
        count = len(result.disagreements)
        out.write(
            f"\ntorchinfo disagrees with archdsl on {model.name} "
            f"({_plural(count, 'difference')} in {_plural(result.compared, 'layer')} compared):\n"
        )
        for disagreement in result.disagreements:
            out.write(f"  {disagreement.text()}\n")
    return EXIT_FAILED if failed else EXIT_OK


class _TrainProgress:
    """The training observer: a tqdm bar per epoch on a terminal, one line per epoch otherwise."""

    def __init__(self, out: TextIO):
        self.out = out
        self.bar: Any = None
        self.tty = sys.stderr.isatty()

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            self.out.write(text + "\n")

    def epoch_start(self, epoch: int, epochs: int, images: int) -> None:
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=images, desc=f"epoch {epoch}/{epochs}", unit="img", leave=False)

    def progress(self, images: int, loss: float, accuracy: float, images_per_s: float) -> None:
        if self.bar is not None:
            self.bar.n = images
            self.bar.set_postfix_str(f"loss {loss:.4f}  acc {100 * accuracy:.2f}%  {images_per_s:,.0f} img/s")

    def epoch_end(self, result: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.out.write(
            f"epoch {result.epoch}: train loss {result.train_loss:.4f} "
            f"acc {100 * result.train_accuracy:.2f}% "
            f"({result.train_images_per_s:,.0f} img/s, {result.train_time:.1f} s) | "
            f"test loss {result.test_loss:.4f} acc {100 * result.test_accuracy:.2f}%\n"
        )
        self.out.flush()


def cmd_train(args: argparse.Namespace, out: TextIO) -> int:
    compiled = _compile_one(args, out)
    if compiled is None:
        return EXIT_FAILED
    program, cache = compiled
    shaped = program.model(args.model)
    rank = int(os.environ.get("RANK", "0"))
    # Only rank 0 of a torchrun group talks; the others train silently.
    talk: TextIO = out if rank == 0 else open(os.devnull, "w")  # noqa: SIM115

    from .errors import ArchError
    from .train import TrainError
    from .train.settings import Overrides, resolve

    try:
        settings = resolve(
            shaped,
            Overrides(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, limit=args.limit),
        )
        if settings.notes:
            talk.write(f"note: {'; '.join(settings.notes)}\n")
        from .train.loop import Options, train

        destination = args.out or os.path.join("runs", shaped.name)
        options = Options(
            device=args.device,
            data_root=args.data_root,
            out=destination,
            resume=args.resume,
            compile=args.compile,
            max_params=args.max_params,
        )
        result = train(shaped, settings, options, _TrainProgress(talk))
    except TrainError as exc:
        sys.stderr.write(f"archdsl: error: {exc}\n")
        return EXIT_FAILED
    except ArchError as exc:  # the builder's: too many parameters, pretrained weights that fail
        for diagnostic in exc.diagnostics:
            talk.write(render(diagnostic, cache, color=_color(talk)) + "\n\n")
        return EXIT_FAILED
    finally:
        if talk is not out:
            talk.close()
    if rank == 0:
        out.write("\n" + result.report)
        processes = f" on {result.world_size} processes" if result.world_size > 1 else ""
        out.write(f"\ntrained on {result.device}{processes}; outputs in {destination}\n")
    return EXIT_OK


RENDER_SUFFIXES = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}


def cmd_render(args: argparse.Namespace, out: TextIO) -> int:
    """Exit 2 (a usage error) when graphviz's `dot` is missing: the spec is fine, the machine
    lacks a program, and `--format dot` still works."""
    from .render import RenderError, dot_source, render_dot

    suffix = os.path.splitext(args.output)[1].lower()
    fmt = args.format or RENDER_SUFFIXES.get(suffix)
    if fmt is None:
        raise UsageError(
            f"{args.output}: cannot tell the format from '{suffix}'; use --format svg|png|pdf|dot"
        )
    if args.depth is not None and args.depth < 0:
        raise UsageError(f"--depth takes an integer ≥ 0, got {args.depth}")
    compiled = _compile_one(args, out)
    if compiled is None:
        return EXIT_FAILED
    program, cache = compiled
    if len(program.models) > 1:
        names = ", ".join(m.name for m in program.models)
        raise UsageError(
            f"{args.file} defines {len(program.models)} models ({names}); choose one with --model"
        )
    model = program.models[0]
    dot = dot_source(model, depth=args.depth, expand=args.expand, rankdir=args.rankdir)
    try:
        render_dot(dot, args.output, fmt)
    except RenderError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{args.output}: {exc.strerror or exc}") from None
    for diagnostic in program.warnings:
        out.write(render(diagnostic, cache, color=_color(out)) + "\n\n")
    out.write(f"wrote {args.output} ({model.name}, {fmt})\n")
    return EXIT_OK


def cmd_docs(args: argparse.Namespace, out: TextIO) -> int:
    """Exit 1 and write nothing when any spec has errors; exit 2 when graphviz's `dot` is missing."""
    from .docs import entries, pages, write_pages
    from .render import RenderError
    from .summary import model_line

    if args.depth is not None and args.depth < 0:
        raise UsageError(f"--depth takes an integer ≥ 0, got {args.depth}")
    programs, diagnostics, loader = _compile_all(spec_files(args.paths), {})
    cache = SourceCache(loader.sources)
    for diagnostic in diagnostics:
        out.write(render(diagnostic, cache, color=_color(out)) + "\n\n")
    if any(d.is_error for d in diagnostics):
        return EXIT_FAILED
    found = entries(programs, cache)
    if not found:
        raise UsageError(f"{', '.join(args.paths)}: defines no model")
    try:
        write_pages(args.output, pages(found, depth=args.depth))
    except RenderError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{args.output}: {exc.strerror or exc}") from None
    for entry in found:
        out.write(f"{os.path.join(args.output, entry.stem + '.md')}: {model_line(entry.model)}\n")
    out.write(f"wrote {_plural(len(found), 'page')} and {os.path.join(args.output, 'index.md')}\n")
    return EXIT_OK


def cmd_emit(args: argparse.Namespace, out: TextIO) -> int:
    """Warnings go to stderr: without -o, stdout is the source and must stay valid Python."""
    from .atomic import write_text
    from .emit import emit_source

    compiled = _compile_one(args, out)
    if compiled is None:
        return EXIT_FAILED
    program, cache = compiled
    source = emit_source(*program.models, program=program)
    for diagnostic in program.warnings:
        sys.stderr.write(render(diagnostic, cache, color=_color(sys.stderr)) + "\n\n")
    if args.output is None:
        out.write(source)
        return EXIT_OK
    try:
        write_text(args.output, source)
    except OSError as exc:
        raise UsageError(f"{args.output}: {exc.strerror or exc}") from None
    out.write(f"wrote {args.output} ({', '.join(m.name for m in program.models)})\n")
    return EXIT_OK


COMMANDS = {
    "check": cmd_check,
    "summary": cmd_summary,
    "train": cmd_train,
    "render": cmd_render,
    "docs": cmd_docs,
    "emit": cmd_emit,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    # A short-lived process that makes no reference cycles: the cyclic collector would only rescan
    # the compiler's objects (compile_file pauses it too, but re-enabling costs one full sweep).
    gc.disable()
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args, out)
    except (UsageError, PluginError) as exc:
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
