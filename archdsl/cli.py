"""The command line: argument parsing, exit codes, and the one place diagnostics are printed.

Exit codes: 0 clean, 1 the spec has errors (or warnings under --strict), 2 usage errors (a bad
flag, a missing file, a directory without specs, graphviz's `dot` missing for `render`). `check`,
`summary` and `render` never import torch.

Its length (about a thousand lines) is the twelve commands' arguments and their short functions,
which share the compile-and-report preamble and the rendering of diagnostics; what each command does
is in its own module.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from .codes import UNKNOWN_MODEL
from .converters import command_line_value
from .errors import Diagnostic, SourceCache, did_you_mean, render, strict
from .extras import MissingExtra, extra_of, require
from .layers import PluginError
from .loader import Loader
from .pipeline import Program, compile_file, compile_files, find_specs, several_models
from .version import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """A problem with how archdsl was called (not with a spec): exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


#: How a command without --model chooses (the one rule, README "Choosing a model").
MODEL_HELP = {
    "every": "only the model called NAME (default: every model of the file)",
    "one": "the model called NAME (needed when FILE defines several)",
}
PATHS_HELP = "spec files, or directories searched for *.arch"
FILE_HELP = "the .arch spec file"


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each command's own (whose usage a mistake in that command shows)."""
    parser = _Parser(prog="archdsl", description="Check, summarise and build .arch network specs.")
    parser.add_argument("--version", action="version", version=f"archdsl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    check = commands.add_parser("check", help="check specs statically (shapes, parameters, errors)")
    check.add_argument("paths", nargs="+", metavar="PATH", help=PATHS_HELP)
    _model_option(check, "every")
    check.add_argument(
        "--strict",
        action="store_true",
        help="treat warnings as errors (but those an `archdsl: allow CODE` comment on their line allows)",
    )
    check.add_argument(
        "--format",
        choices=("text", "json", "github", "sarif"),
        default="text",
        help="text (default), one JSON document, GitHub Actions annotations, or SARIF 2.1.0",
    )
    check.add_argument("-q", "--quiet", action="store_true", help="print only diagnostics")
    _param_option(check)

    summary = commands.add_parser("summary", help="per-layer table: output shapes, parameters, MACs")
    summary.add_argument("file", metavar="FILE", help=FILE_HELP)
    _model_option(summary, "every")
    summary.add_argument(
        "--verify",
        action="store_true",
        help="build the model and check every layer's shape and parameters against torchinfo "
        "(needs archdsl[torch])",
    )
    _param_option(summary)

    render_ = commands.add_parser("render", help="draw a model as a graphviz diagram (svg, png, pdf or dot)")
    render_.add_argument("file", metavar="FILE", help=FILE_HELP)
    _model_option(render_, "one")
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

    docs = commands.add_parser(
        "docs",
        help="write per model a Markdown page, its SVG diagram and the diagram's DOT source; and an index",
    )
    docs.add_argument("paths", nargs="+", metavar="PATH", help=PATHS_HELP)
    _model_option(docs, "every")
    docs.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="directory for the pages (NAME.md, NAME.svg, NAME.dot, index.md)",
    )
    docs.add_argument("--depth", type=int, metavar="N", help="draw blocks nested deeper than N as one node")

    fmt = commands.add_parser("fmt", help="rewrite specs in the one canonical layout, keeping every comment")
    fmt.add_argument(
        "paths", nargs="+", metavar="PATH", help=f"{PATHS_HELP}; - formats standard input to standard output"
    )
    fmt.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 listing the files it would change"
    )
    fmt.add_argument(
        "--diff",
        action="store_true",
        help="write nothing; print the changes as a unified diff (exit 1 if so)",
    )
    fmt.add_argument(
        "--shapes",
        action="store_true",
        help="also write a true `# [C, H, W]` comment on each statement line of a model, and fix stale ones",
    )

    commands.add_parser(
        "lsp", help="run the language server on standard input and output (needs archdsl[lsp])"
    )

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of `check --format json`'s document, for CI tools"
    )
    schema.add_argument("-o", "--output", metavar="OUT", help="the file to write (default: stdout)")

    emit = commands.add_parser("emit", help="write a model as plain PyTorch source (needs only torch)")
    emit.add_argument("file", metavar="FILE", help=FILE_HELP)
    _model_option(emit, "every")
    emit.add_argument("-o", "--output", metavar="OUT", help="the .py file to write (default: stdout)")
    _param_option(emit)

    export = commands.add_parser(
        "export", help="write a model as ONNX, for onnxruntime or Netron (needs archdsl[onnx])"
    )
    export.add_argument("file", metavar="FILE", help=FILE_HELP)
    _model_option(export, "one")
    export.add_argument("-o", "--output", required=True, metavar="OUT", help="the .onnx file to write")
    export.add_argument(
        "--weights",
        metavar="STATE_DICT",
        help="a state_dict saved by torch.save to load first (archdsl train's model.pt)",
    )
    export.add_argument(
        "--opset", type=_positive(int), metavar="N", help="the ONNX opset (default: torch.onnx's)"
    )
    _param_option(export)

    import_ = commands.add_parser(
        "import",
        help="write an existing nn.Module as a spec (runs the factory's Python code; needs archdsl[torch])",
        description="Calls MODULE:FACTORY (with --arg values as keyword arguments), traces the module "
        "it returns with torch.fx and writes it as a spec whose module loads the original's "
        "state_dict strictly and gives its outputs (checked before anything is written). This "
        "imports MODULE and runs its code, as `python -c` would: import only code you trust.",
    )
    import_.add_argument(
        "target", metavar="MODULE:FACTORY", help="e.g. torchvision.models:resnet18, or mypkg.nets:Net"
    )
    import_.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="C,H,W",
        help="the per-sample input shape (default: from the first layer, 224×224); once for each "
        "input of a module whose forward takes several, in order (--input 3,64,64 --input 1,64,64)",
    )
    import_.add_argument("-o", "--output", metavar="FILE.arch", help="the spec to write (default: stdout)")
    import_.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a keyword argument for the factory, as a Python literal (--arg num_classes=10, "
        "--arg aux_logits=False, --arg weights=None); a bare word is a string (repeatable)",
    )
    import_.add_argument(
        "--name",
        help="the model's name in the spec (default: the factory's, `resnet18`; give one for a "
        "generic factory such as timm:create_model)",
    )

    train = commands.add_parser(
        "train", help="train a model on its dataset (its train section's recipe; needs archdsl[train])"
    )
    train.add_argument("file", metavar="FILE", help=FILE_HELP)
    _model_option(train, "one")
    train.add_argument(
        "--task",
        choices=("classification", "segmentation", "reconstruction"),
        help="override the spec's task (default: its train section's, else classification, or "
        "segmentation for a segmentation dataset)",
    )
    train.add_argument("--epochs", type=_positive(int), metavar="N", help="override the spec's epochs")
    train.add_argument("--batch", type=_positive(int), metavar="N", help="override the batch size")
    train.add_argument("--lr", type=_positive(float), metavar="X", help="override the learning rate")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    train.add_argument("--data-root", metavar="DIR", help="where the dataset files are (or go)")
    train.add_argument("--out", metavar="DIR", help="output directory (default: runs/MODEL)")
    again = train.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="continue the run in DIR from its last checkpoint"
    )
    again.add_argument(
        "--force", action="store_true", help="replace the earlier run in DIR (without it, train refuses)"
    )
    train.add_argument("--seed", type=_nonnegative_int, metavar="N", help="override the random seed")
    train.add_argument("--compile", action="store_true", help="compile the model with torch.compile")
    train.add_argument(
        "--layout",
        choices=("auto", "contiguous", "channels_last"),
        default="auto",
        help="the activations' memory layout (default: auto, the faster of the two, timed on the model)",
    )
    train.add_argument(
        "--limit",
        type=_positive(int),
        metavar="N",
        help="train on the first N training images only (the test set stays whole)",
    )
    train.add_argument(
        "--test-limit", type=_positive(int), metavar="N", help="test on the first N test images only"
    )
    train.add_argument(
        "--max-params",
        type=_positive(int),
        metavar="N",
        help="refuse a model with more parameters (default: what this machine's memory holds)",
    )
    train.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="write TensorBoard event files to DIR while training (overrides the spec's train "
        "setting tensorboard; needs archdsl[tensorboard])",
    )
    _param_option(train)
    _sweep_parser(commands)
    return parser, dict(commands.choices)


def _sweep_parser(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="search model parameters and train settings with Optuna (needs archdsl[sweep])",
        description="Each trial trains the model (as archdsl train does) with values drawn for the "
        "--param NAMEs; the study is kept in DIR/study.db, so running again adds trials to it.",
    )
    sweep.add_argument("file", metavar="FILE", help=FILE_HELP)
    _model_option(sweep, "one")
    sweep.add_argument(
        "--trials", type=_positive(int), metavar="N", required=True, help="trials to add this run"
    )
    sweep.add_argument(
        "-p",
        "--param",
        dest="spaces",
        action="append",
        default=[],
        metavar="NAME=SPACE",
        help="a model parameter or train setting (lr, momentum, weight_decay, epochs, batch, seed) and "
        "where to draw it from: 16,32,64 (a choice), 0.01..0.5 (uniform), 0.001..0.1:log "
        "(log-uniform); integers when both bounds are (repeatable)",
    )
    sweep.add_argument(
        "--storage", metavar="URL", help="the Optuna storage (default: sqlite:///DIR/study.db)"
    )
    sweep.add_argument("--study", metavar="NAME", help="the study's name (default: the model's)")
    sweep.add_argument("-o", "--out", metavar="DIR", help="output directory (default: sweeps/MODEL)")
    sweep.add_argument("--epochs", type=_positive(int), metavar="N", help="override the spec's epochs")
    sweep.add_argument("--batch", type=_positive(int), metavar="N", help="override the batch size")
    sweep.add_argument("--seed", type=_nonnegative_int, metavar="N", help="override the random seed")
    sweep.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    sweep.add_argument("--data-root", metavar="DIR", help="where the dataset files are (or go)")
    sweep.add_argument(
        "--limit", type=_positive(int), metavar="N", help="train on the first N training images only"
    )
    sweep.add_argument(
        "--test-limit", type=_positive(int), metavar="N", help="test on the first N test images only"
    )
    sweep.set_defaults(param=[])


def _model_option(parser: argparse.ArgumentParser, rule: str) -> None:
    parser.add_argument("--model", metavar="NAME", help=MODEL_HELP[rule])


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


def _assignment(text: str, flag: str) -> tuple[str, str]:
    """`NAME=VALUE` split, NAME an identifier; anything else is a usage error of `flag`."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise UsageError(f"{flag} takes NAME=VALUE, got '{text}'")
    return name, raw


def parse_param(text: str) -> tuple[str, Any]:
    name, raw = _assignment(text, "--param")
    return name, command_line_value(raw)


def parse_factory_arg(text: str) -> tuple[str, Any]:
    """`--arg NAME=VALUE`: the value as Python writes it (`False`, `None`, `0.5`, `(3, 3)`,
    `'name'`), since it goes to a Python factory; the spec's `true`/`false` too; anything else is
    the string itself (`--arg weights=DEFAULT`)."""
    import ast

    name, raw = _assignment(text, "--arg")
    if raw in ("true", "false"):
        return name, raw == "true"
    try:
        return name, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return name, raw


def _color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _unreadable(exc: OSError, fallback: str) -> UsageError:
    return UsageError(f"{exc.filename or fallback}: {exc.strerror or exc}")


def _compile_all(
    paths: Sequence[str], params: dict[str, Any], model: str | None
) -> tuple[list[str], list[Program], list[Diagnostic], Loader]:
    """Compiles the spec files among `paths` for check and docs. An unknown --model is a usage
    error when no file defines it (and the files have no other error)."""
    try:
        files = find_specs(paths)
        programs, diagnostics, loader = compile_files(files, params, model)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise _unreadable(exc, ", ".join(paths)) from None
    _unknown_model(diagnostics, model, [n for p in programs for n in p.model_names], len(files))
    _unknown_params(params, programs)
    return files, programs, diagnostics, loader


def _unknown_params(params: dict[str, Any], programs: Sequence[Program]) -> None:
    """`-p NAME=VALUE` naming no parameter of the models it is given to is a mistake in the
    command, as an unknown --model is: a usage error (exit 2), with the parameters they have."""
    models = [m for program in programs for m in program.model_defs.values()]
    if not models:
        return  # nothing parsed: the spec's own errors say why
    names = list(dict.fromkeys(param.name for m in models for param in m.params))
    for name in params:
        if name in names:
            continue
        if len(models) == 1:
            whose, listed = f"model {models[0].name} has no", f" (its parameters: {', '.join(names)})"
        else:
            whose, listed = f"none of the {len(models)} models has a", f" (theirs: {', '.join(names)})"
        listed = listed if names else ""
        raise UsageError(f"-p {name}: {whose} parameter '{name}'{did_you_mean(name, names)}{listed}")


def _unknown_model(diagnostics: list[Diagnostic], model: str | None, names: list[str], files: int) -> None:
    """--model naming no model is a mistake in the command, not in a spec: a usage error without a
    source line, unless the spec has errors of its own (then it is reported among them)."""
    unknown = [d for d in diagnostics if d.code == UNKNOWN_MODEL]
    if model is None or not unknown or any(d.is_error and d.code != UNKNOWN_MODEL for d in diagnostics):
        return
    if files == 1:
        raise UsageError(unknown[0].message)
    listed = f" (models: {', '.join(dict.fromkeys(names))})" if names else ""
    raise UsageError(f"no model '{model}' in the {files} files{listed}{did_you_mean(model, names)}")


def _write_diagnostics(stream: TextIO, diagnostics: Sequence[Diagnostic], cache: SourceCache) -> None:
    for diagnostic in diagnostics:
        stream.write(render(diagnostic, cache, color=_color(stream)) + "\n\n")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from .table import model_line

    params = dict(parse_param(p) for p in args.param)
    files, programs, diagnostics, loader = _compile_all(args.paths, params, args.model)
    if args.strict:
        diagnostics = strict(diagnostics)
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    models = [m for p in programs for m in p.models]
    _RETAINED.append((programs, diagnostics, loader))

    if args.format == "json":
        from .report import check_json, json_text

        out.write(json_text(check_json(diagnostics, models)) + "\n")
    elif args.format == "sarif":
        from .report import sarif

        json.dump(sarif(diagnostics), out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif args.format == "github":
        from .report import github_annotation

        for diagnostic in diagnostics:
            # A warning an `archdsl: allow` comment allows is a choice the spec states: no
            # annotation on every pull request (SARIF marks it suppressed instead).
            if not diagnostic.allowed:
                out.write(github_annotation(diagnostic) + "\n")
        allowed = sum(d.allowed for d in diagnostics)
        out.write(
            f"archdsl: {_plural(len(files), 'file')}, {_plural(errors, 'error')}, "
            f"{_plural(warnings, 'warning')}{f' ({allowed} allowed)' if allowed else ''}\n"
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
            allowed = sum(d.allowed for d in diagnostics)
            out.write(
                f"checked {_plural(len(files), 'file')}, {_plural(len(models), 'model')}: "
                f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
                f"{f' ({allowed} allowed)' if allowed else ''}\n"
            )
    return EXIT_FAILED if errors else EXIT_OK


class SpecFailed(Exception):
    """The spec has errors, whose diagnostics are printed: the command exits 1 (`main`)."""


def _compile_one(args: argparse.Namespace, out: TextIO, one: bool) -> tuple[Program, SourceCache]:
    """Compiles FILE for a command that works on one spec (its --model and -p options). Prints
    the diagnostics and raises `SpecFailed` when the spec has errors. A file without a model, an
    unknown --model and, for a command that makes one thing from one model (`one`), a file of
    several models without --model are usage errors."""
    params = dict(parse_param(p) for p in args.param)
    if not os.path.isfile(args.file):
        raise UsageError(
            f"{args.file}: no such file" if not os.path.exists(args.file) else f"{args.file}: not a file"
        )
    loader = Loader()
    try:
        program = compile_file(args.file, loader=loader, model=args.model, params=params or None)
    except OSError as exc:
        raise _unreadable(exc, args.file) from None
    _unknown_model(program.diagnostics, args.model, program.model_names, 1)
    _unknown_params(params, [program])
    cache = SourceCache(loader.sources)
    if program.errors:
        for diagnostic in program.diagnostics:
            out.write(render(diagnostic, cache, color=_color(out)) + "\n\n")
        raise SpecFailed
    if not program.models:
        raise UsageError(f"{args.file}: defines no model")
    if one and len(program.models) > 1:
        raise UsageError(several_models(args.file, program.model_names, "--model").message)
    return program, cache


def cmd_summary(args: argparse.Namespace, out: TextIO) -> int:
    from .table import table

    if args.verify:
        require("summary --verify", "torch", ("torch", "torchinfo"))
    program, cache = _compile_one(args, out, one=False)
    out.write("\n\n".join(table(model) for model in program.models) + "\n")
    for diagnostic in program.warnings:
        out.write("\n" + render(diagnostic, cache, color=_color(out)) + "\n")
    if args.verify:
        return _verify(program.models, cache, out)
    return EXIT_OK


def _verify(models: list[Any], cache: SourceCache, out: TextIO) -> int:
    """summary --verify: torchinfo's shapes and parameter counts against archdsl's, layer by layer."""
    from .errors import ArchError
    from .verify import verify

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


def cmd_train(args: argparse.Namespace, out: TextIO) -> int:
    require("archdsl train", "train")
    program, cache = _compile_one(args, out, one=True)
    shaped = program.models[0]
    rank = int(os.environ.get("RANK", "0"))
    # Only rank 0 of a torchrun group talks; the others train silently.
    talk: TextIO = out if rank == 0 else open(os.devnull, "w")  # noqa: SIM115

    from .errors import ArchError
    from .train import TrainError
    from .train.settings import Overrides, resolve

    try:
        settings = resolve(
            shaped,
            Overrides(
                epochs=args.epochs,
                batch=args.batch,
                lr=args.lr,
                seed=args.seed,
                limit=args.limit,
                test_limit=args.test_limit,
                task=args.task,
                tensorboard=args.tensorboard,
            ),
        )
        if settings.tensorboard is not None:
            # Before the dataset loads: a missing package is a usage problem, said in a second.
            require("archdsl train --tensorboard", "tensorboard", ("tensorboard",))
        if settings.notes:
            talk.write(f"note: {'; '.join(settings.notes)}\n")
        from .train.loop import Options, train

        destination = args.out or os.path.join("runs", shaped.name)
        options = Options(
            device=args.device,
            data_root=args.data_root,
            out=destination,
            resume=args.resume,
            force=args.force,
            compile=args.compile,
            layout=args.layout,
            max_params=args.max_params,
        )
        from .train.progress import Progress

        result = train(shaped, settings, options, Progress(talk, settings.task))
    except TrainError as exc:
        sys.stderr.write(f"archdsl: error: {exc}\n")
        return EXIT_FAILED
    except ArchError as exc:  # the builder's: too many parameters, pretrained weights that fail
        _write_diagnostics(talk, exc.diagnostics, cache)
        return EXIT_FAILED
    finally:
        if talk is not out:
            talk.close()
    if rank == 0:
        out.write("\n" + result.report)
        processes = f" on {result.world_size} processes" if result.world_size > 1 else ""
        out.write(f"\ntrained on {result.device}{processes}; outputs in {destination}\n")
        if settings.tensorboard is not None:
            board = settings.tensorboard
            out.write(f"TensorBoard event files in {board}: tensorboard --logdir {board}\n")
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace, out: TextIO) -> int:
    from . import sweep

    try:
        spaces = tuple(sweep.parse_param(text) for text in args.spaces)
    except sweep.SweepUsage as exc:
        raise UsageError(str(exc)) from None
    if not spaces:
        raise UsageError(f"sweep needs at least one --param NAME=SPACE; {sweep.SPACE_GRAMMAR}")
    require("archdsl sweep", "sweep")
    program, cache = _compile_one(args, out, one=True)
    shaped = program.models[0]
    request = sweep.Request(
        spec=args.file,
        model=shaped.name,
        spaces=spaces,
        trials=args.trials,
        out=args.out or os.path.join("sweeps", shaped.name),
        storage=args.storage,
        study=args.study,
        epochs=args.epochs,
        batch=args.batch,
        seed=args.seed,
        limit=args.limit,
        test_limit=args.test_limit,
        device=args.device,
        data_root=args.data_root,
    )

    def started(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    def finished(row: sweep.Row) -> None:
        value = "" if row.value is None else f" {row.value:.4f}"
        chosen = ", ".join(f"{k}={sweep.shown(v)}" for k, v in row.params.items())
        note = f": {row.note}" if row.note else ""
        out.write(
            f"trial {row.number} {row.state}{value} ({chosen}; {_plural(row.epochs, 'epoch')}, "
            f"{row.seconds:.1f} s){note}\n"
        )
        out.flush()

    from .errors import ArchError
    from .train import TrainError

    try:
        outcome = sweep.run(request, finished, started)
    except sweep.SweepUsage as exc:
        raise UsageError(str(exc)) from None
    except TrainError as exc:
        sys.stderr.write(f"archdsl: error: {exc}\n")
        return EXIT_FAILED
    except ArchError as exc:
        _write_diagnostics(out, exc.diagnostics, cache)
        return EXIT_FAILED
    for note in outcome.notes:
        out.write(f"note: {note}\n")
    best = outcome.best
    if best is not None:
        out.write(f"best: trial {best.number}, {outcome.metric} {best.value:.4f}\n")
    out.write(
        f"{_plural(outcome.added, 'trial')} added, {len(outcome.rows)} finished in study {outcome.study}; "
        f"outputs in {outcome.out}: {', '.join(outcome.files)}\n"
    )
    return EXIT_OK if best is not None else EXIT_FAILED


def cmd_render(args: argparse.Namespace, out: TextIO) -> int:
    """Exit 2 (a usage error) when graphviz's `dot` is missing: the spec is fine, the machine
    lacks a program, and `--format dot` still works."""
    from .diagram import dot_source, format_of, render_dot
    from .errors import RenderError

    try:
        fmt = args.format or format_of(args.output, "--format ")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.depth is not None and args.depth < 0:
        raise UsageError(f"--depth takes an integer ≥ 0, got {args.depth}")
    program, cache = _compile_one(args, out, one=True)
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
    from .errors import RenderError
    from .pages import entries, pages, write_pages
    from .table import model_line

    if args.depth is not None and args.depth < 0:
        raise UsageError(f"--depth takes an integer ≥ 0, got {args.depth}")
    _, programs, diagnostics, loader = _compile_all(args.paths, {}, args.model)
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


def cmd_fmt(args: argparse.Namespace, out: TextIO) -> int:
    """Exit 1 when a file has syntax errors (or, with --shapes, any error; it is left as it is),
    or when --check or --diff finds a file to change."""
    import difflib

    from .atomic import write_text
    from .fmt import FormatError, format_text

    stdin = "-" in args.paths
    if stdin and len(args.paths) > 1:
        raise UsageError("fmt - reads standard input: give it no other path")
    try:
        files = ["-"] if stdin else find_specs(args.paths)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    changed: list[str] = []
    failed: list[str] = []
    # With --diff, standard output is the diff; what fmt says goes to standard error.
    talk = sys.stderr if args.diff or stdin else out
    for file in files:
        name = "<stdin>" if stdin else file
        text = sys.stdin.read() if stdin else _read_spec(file)
        try:
            formatted = format_text(text, name, shapes=args.shapes)
        except FormatError as exc:
            failed.append(file)
            cache = SourceCache({name: text})
            for diagnostic in exc.diagnostics:
                talk.write(render(diagnostic, cache, color=_color(talk)) + "\n\n")
            if not exc.diagnostics:
                talk.write(f"archdsl: error: {exc}\n")
            if stdin and not (args.check or args.diff):
                out.write(text)  # an editor piping its buffer through fmt keeps it
            continue
        if formatted != text:
            changed.append(file)
        if args.diff:
            diff = difflib.unified_diff(text.splitlines(True), formatted.splitlines(True), name, name)
            out.writelines(diff)
        elif stdin:
            out.write("" if args.check else formatted)
        elif formatted == text:
            continue
        elif args.check:
            talk.write(f"would reformat {file}\n")
        else:
            try:
                write_text(file, formatted)
            except OSError as exc:
                raise UsageError(f"{file}: {exc.strerror or exc}") from None
            talk.write(f"reformatted {file}\n")
    if not stdin:
        verb = "would be reformatted" if args.check or args.diff else "reformatted"
        unchanged = len(files) - len(changed) - len(failed)
        broken = f", {len(failed)} not formatted" if failed else ""
        talk.write(f"{_plural(len(changed), 'file')} {verb}, {unchanged} unchanged{broken}\n")
    if failed:
        return EXIT_FAILED
    return EXIT_FAILED if changed and (args.check or args.diff) else EXIT_OK


def _read_spec(file: str) -> str:
    """A spec's text for fmt (a byte-order mark kept). Unreadable or not UTF-8: a usage error."""
    try:
        with open(file, encoding="utf-8", newline="") as handle:
            return handle.read()
    except UnicodeDecodeError:
        raise UsageError(f"{file}: not UTF-8 text") from None
    except OSError as exc:
        raise _unreadable(exc, file) from None


def cmd_schema(args: argparse.Namespace, out: TextIO) -> int:
    from .schema import schema_text

    text = schema_text()
    if args.output is None:
        out.write(text)
        return EXIT_OK
    try:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise UsageError(f"{args.output}: {exc.strerror or exc}") from None
    out.write(f"wrote {args.output}\n")
    return EXIT_OK


def cmd_lsp(args: argparse.Namespace, out: TextIO) -> int:
    require("archdsl lsp", "lsp")
    from .ide.server import serve

    serve()
    return EXIT_OK


def cmd_emit(args: argparse.Namespace, out: TextIO) -> int:
    """Warnings go to stderr: without -o, stdout is the source and must stay valid Python."""
    from .atomic import write_text
    from .codegen.source import emit_source

    program, cache = _compile_one(args, out, one=False)
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


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    """Exit 1 when the weights do not fit the model or torch.onnx fails; nothing is written then."""
    require("archdsl export", "onnx", ("torch", "onnx", "onnxscript"))
    if args.weights is not None and not os.path.isfile(args.weights):
        raise UsageError(f"{args.weights}: no such file")
    program, cache = _compile_one(args, out, one=True)
    model = program.models[0]
    _write_diagnostics(out, program.warnings, cache)

    from .errors import ArchError
    from .export import ExportError, export_model

    try:
        exported = export_model(model, args.output, weights=args.weights, opset=args.opset)
    except ExportError as exc:
        sys.stderr.write(f"archdsl: error: {exc}\n")
        return EXIT_FAILED
    except ArchError as exc:  # the builder's: too many parameters, pretrained weights that fail
        _write_diagnostics(out, exc.diagnostics, cache)
        return EXIT_FAILED
    except OSError as exc:
        raise UsageError(f"{args.output}: {exc.strerror or exc}") from None
    beside = f", weights in {exported.data}" if exported.data else ""
    inputs = ", ".join(
        (f"{name} " if name and len(model.inputs) > 1 else "") + f"[batch, {', '.join(map(str, shape))}]"
        for name, shape in model.inputs
    )
    out.write(
        f"wrote {exported.path} ({model.name}, ONNX opset {exported.opset}, "
        f"input{'s' if len(model.inputs) > 1 else ''} {inputs}{beside})\n"
    )
    return EXIT_OK


def cmd_import(args: argparse.Namespace, out: TextIO) -> int:
    """Exit 1 when the module cannot be written as a spec; nothing is written then."""
    require("archdsl import", "torch", ("torch",))
    samples: list[tuple[int, ...]] = []
    for given in args.input:
        try:
            sample = tuple(int(part) for part in given.split(","))
        except ValueError:
            sample = ()
        if not sample or min(sample) < 1:
            raise UsageError(f"--input takes positive sizes separated by commas (3,224,224), got '{given}'")
        samples.append(sample)
    if ":" not in args.target:
        raise UsageError(f"expected MODULE:FACTORY (torchvision.models:resnet18), got '{args.target}'")
    arguments = dict(parse_factory_arg(a) for a in args.arg)

    from .atomic import write_text
    from .grammar import keywords
    from .importer import ImportFailed, import_module, load_factory

    if args.name is not None and (not args.name.isidentifier() or args.name in keywords()):
        raise UsageError(f"--name takes a name for the model (letters, digits, _), got '{args.name}'")

    command = " ".join(
        ["archdsl import", args.target]
        + [f"--input {given}" for given in args.input]
        + [f"--arg {a}" for a in args.arg]
        + ([f"--name {args.name}"] if args.name else [])
    )
    try:
        module, name = load_factory(args.target, arguments)
        name = args.name or name
        kind = f"{type(module).__module__}.{type(module).__qualname__}"
        header = [f"Imported by `{command}` ({kind})."]
        imported = import_module(module, name, samples or None, header)
    except ImportFailed as exc:
        sys.stderr.write(f"archdsl: error: {exc}\n")
        return EXIT_FAILED
    if args.output is None:
        out.write(imported.text)
        return EXIT_OK
    try:
        write_text(args.output, imported.text)
    except OSError as exc:
        raise UsageError(f"{args.output}: {exc.strerror or exc}") from None
    out.write(
        f"wrote {args.output} ({imported.name}: {imported.params:,} parameters, {imported.lines} lines; "
        "it loads the module's state_dict strictly and gives its outputs)\n"
    )
    return EXIT_OK


COMMANDS = {
    "check": cmd_check,
    "import": cmd_import,
    "export": cmd_export,
    "summary": cmd_summary,
    "train": cmd_train,
    "sweep": cmd_sweep,
    "render": cmd_render,
    "docs": cmd_docs,
    "emit": cmd_emit,
    "fmt": cmd_fmt,
    "lsp": cmd_lsp,
    "schema": cmd_schema,
}


#: What a finished `check` leaves for the process's end to drop: see `run`.
_RETAINED: list[object] = []


def run() -> NoReturn:
    """The `archdsl` command. After a `check`, the process ends with `os._exit`, as mypy's does:
    tearing down the compiler's objects and the imported modules, which nothing needs, took 40 ms
    of a 10,000-statement check's 0.55 s (`benchmarks/check_speed.py`). Other commands, which
    write files and may hold torch, exit normally."""
    code = main()
    if _RETAINED:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            pass
        os._exit(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    _RETAINED.clear()
    # A short-lived process that makes no reference cycles: the cyclic collector would only rescan
    # the compiler's objects (compile_file pauses it too, but re-enabling costs one full sweep).
    gc.disable()
    try:
        parser, commands = _parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # reported with the command's usage, not the top level's
            commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
        return COMMANDS[args.command](args, out)
    except SpecFailed:
        return EXIT_FAILED
    except (UsageError, MissingExtra, PluginError) as exc:
        sys.stderr.write(f"archdsl: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        module = (exc.name or "") if isinstance(exc, ImportError) else ""
        extra = extra_of(module)
        if extra is not None:
            # An optional dependency missing where no `require` foresaw it: still the extra's
            # name, never a traceback.
            command = " ".join(["archdsl", *list(argv or sys.argv[1:])[:1]])
            sys.stderr.write(f"archdsl: error: {MissingExtra(command, module, extra)}\n")
            return EXIT_USAGE
        if os.environ.get("ARCHDSL_DEBUG"):
            raise
        sys.stderr.write(
            f"archdsl: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in archdsl; set ARCHDSL_DEBUG=1 for the traceback and please report it.\n"
        )
        return EXIT_INTERNAL
    finally:
        gc.enable()
