"""Stage 5c: a built model → ONNX, for onnxruntime, Netron and other ONNX tools (imports torch).

Consumes a `ShapedModel` (built by `builder.py`) or any `nn.Module` with a per-sample input shape,
and produces an ONNX file through torch.onnx's exporter: the one torch 2.14 runs by default
(`dynamo=True`, `torch.export` underneath, onnxscript's translation and optimiser). The older
TorchScript exporter is deprecated, and cannot write `nn.ChannelShuffle` (ShuffleNet) or an
adaptive pool whose output size does not divide its input (AlexNet and VGG at small sizes); this
one writes every network of the repository, the builder's flow interpreter (`builder.Graph`) and
`runtime.py`'s modules included.

The graph takes `input` of shape [batch, *the spec's input] with `batch` dynamic, and gives
`output`; a model with several inputs or outputs names each as the spec does (`image`, `mask`;
the keys of a dict of outputs, `out` and `aux`), or numbers them (`input0`, `output1`). Weights
keep their `state_dict` names; the optimiser folds batchnorm into the convolution before it. Each
node's metadata keeps its module path (`name_scopes`), and drops the stack trace torch records,
which names this machine's files.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx
    from torch import nn

    from .shapes import ShapedModel

#: The names of the graph's input and output, as Netron and onnxruntime show them.
INPUT, OUTPUT = "input", "output"
#: The example batch the exporter traces: 2, since torch.export specialises a batch of 1.
EXAMPLE_BATCH = 2
#: Node metadata torch.onnx records that is about the exporting machine, not the model.
_DROPPED_METADATA = ("pkg.torch.onnx.stack_trace",)
#: protobuf's limit on one message: larger models keep their weights in a file beside the graph.
_PROTOBUF_LIMIT = 2**31 - 1


@contextlib.contextmanager
def _quiet() -> Any:
    """torch.onnx reports progress on stdout and logs each fallback it takes (a failed opset
    conversion with its traceback); `to_onnx` says what matters in its own words instead."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # Several inputs share the one `batch` axis, which is what is meant.
            warnings.filterwarnings("ignore", message=r".*axis name: batch will not be used")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class ExportError(Exception):
    """The model cannot be exported (weights that do not fit it, an exporter failure); the message
    says why, in the user's terms."""


@dataclass(frozen=True)
class Exported:
    """What `export_model` wrote."""

    path: str
    opset: int
    size: int
    #: The file beside `path` holding the weights, for a model over protobuf's 2 GiB.
    data: str | None = None


def load_weights(module: nn.Module, path: str | os.PathLike[str]) -> None:
    """Loads a `state_dict` saved with `torch.save` into `module` (strictly: every name, every
    shape). `archdsl train`'s `model.pt` is one; its `checkpoint.pt` holds one under "model"."""
    import torch

    target = os.fspath(path)
    try:
        state = torch.load(target, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise ExportError(
            f"{target}: not a state_dict saved by torch.save ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    if isinstance(state, dict) and "format" in state and isinstance(state.get("model"), dict):
        state = state["model"]  # an archdsl training checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError(f"{target}: not a state_dict (a mapping of names to tensors)")
    expected = module.state_dict()
    problems = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        problems.append(f"missing {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected {_names(unexpected)}")
    for key, tensor in state.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            problems.append(
                f"{key} has shape {list(tensor.shape)}, the model's is {list(expected[key].shape)}"
            )
    if problems:
        raise ExportError(f"{target} does not fit the model: {'; '.join(problems)}")
    module.load_state_dict(state, strict=True)


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:5])
    return f"{shown} and {len(keys) - 5} more" if len(keys) > 5 else shown


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def to_onnx(
    module: nn.Module,
    sample: tuple[int, ...],
    opset: int | None = None,
    name: str | None = None,
    *,
    inputs: list[tuple[str, tuple[int, ...]]] | None = None,
    outputs: list[str] | None = None,
) -> onnx.ModelProto:
    """`module` in eval mode as an ONNX model taking [batch, *sample], `batch` dynamic (or, with
    `inputs`, one input of each name and per-sample shape); its outputs are `outputs` by name. The
    graph is called `name` (by default the module's class). Raises `ExportError` when torch.onnx
    fails or cannot write the opset asked for."""
    import torch

    module = module.eval()
    given = inputs if inputs is not None else [(INPUT, sample)]
    examples = tuple(torch.zeros(EXAMPLE_BATCH, *shape) for _, shape in given)
    batch = torch.export.Dim("batch")
    dynamic: tuple[Any, ...] = tuple({0: batch} for _ in given)
    signature = inspect.signature(module.forward).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature):
        dynamic = (dynamic,)  # `forward(*inputs)` (the builder's graph modules): one tuple of them
    try:
        with _quiet(), torch.no_grad():
            program: Any = torch.onnx.export(
                module,
                examples,
                None,
                dynamo=True,
                input_names=[input_name for input_name, _ in given],
                output_names=outputs if outputs is not None else [OUTPUT],
                dynamic_shapes=dynamic,
                opset_version=opset,
                verbose=False,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx cannot export it: {type(exc).__name__}: {_first_line(exc)}") from None
    proto = program.model_proto
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:
        # The exporter writes its own opset and converts down; where it cannot, it keeps its own.
        raise ExportError(
            f"torch.onnx cannot write this model at opset {opset} (it wrote opset {written}); "
            f"ask for {written} or later"
        )
    proto.graph.name = name or type(module).__name__
    for node in proto.graph.node:
        kept = [p for p in node.metadata_props if p.key not in _DROPPED_METADATA]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    return proto


def graph_names(model: ShapedModel) -> tuple[list[tuple[str, tuple[int, ...]]], list[str]]:
    """The ONNX graph's inputs (name, per-sample shape) and outputs, named as the spec names them
    (an input's `as` name, a dict's keys, the values a tuple returns): `input` and `output` where
    there is one, else `input0`, `output1`, … where the spec gives none."""
    inputs = [
        (name or (INPUT if len(model.inputs) == 1 else f"{INPUT}{index}"), tuple(shape))
        for index, (name, shape) in enumerate(model.inputs)
    ]
    # A tuple's outputs by the names of the values the spec returns (`output p3, p4`), where
    # those are distinct and no input's.
    names = (model.graph.output_names if model.graph is not None else None) or []
    taken = {name for name, _ in inputs}
    by_value = 1 < len(model.outputs) == len(set(names)) == len(names) and not taken & set(names)
    outputs = [
        key
        or (names[index] if by_value and names[index] else None)
        or (OUTPUT if len(model.outputs) == 1 else f"{OUTPUT}{index}")
        for index, (key, _) in enumerate(model.outputs)
    ]
    return inputs, outputs


def export_model(
    model: ShapedModel,
    out: str | os.PathLike[str],
    weights: str | os.PathLike[str] | None = None,
    opset: int | None = None,
    max_params: int | None = None,
) -> Exported:
    """Builds `model` (with the `state_dict` at `weights`, if given) and writes it to `out` as
    ONNX, atomically. Raises `ExportError` when the weights do not fit or the export fails."""
    from .atomic import write_bytes
    from .builder import build_model
    from .version import __version__

    net = build_model(model, max_params=max_params)
    if weights is not None:
        load_weights(net, weights)
    inputs, outputs = graph_names(model)
    proto = to_onnx(net, tuple(model.input), opset, name=model.name, inputs=inputs, outputs=outputs)
    proto.producer_name, proto.producer_version = "archdsl", __version__
    proto.doc_string = f"{model.name} from {model.file}: {model.params:,} parameters"
    version = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    target = os.fspath(out)
    if proto.ByteSize() < _PROTOBUF_LIMIT:
        data = proto.SerializeToString()
        write_bytes(target, data)
        return Exported(target, version, len(data))
    import onnx

    location = os.path.basename(target) + ".data"
    onnx.save_model(proto, target, save_as_external_data=True, location=location)
    return Exported(target, version, os.path.getsize(target), os.path.join(os.path.dirname(target), location))
