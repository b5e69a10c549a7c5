"""torchvision models as layers: the static facts about `pretrained(...)` and the real module.

The shapes stage calls `check` and `probe` (lazily, so a spec without `pretrained` never imports
torch): `check` validates the name against torchvision's registry of classification models, the
part against the model's submodules and the weights against the model's weights enum; `probe`
finds the output shape, parameter count and MACs by running the part on PyTorch's `meta` device,
where tensors have shapes but no data, so nothing is allocated or computed. The builder calls
`build` for the real module, which is where weights are downloaded, and only when asked for.
The layer reaches this module through `layers.zoo.Torchvision`, which `pipeline.py` installs; the
data and exceptions both share (`CONSTRUCTOR_ARGS`, `Refused`, `LoadFailed`, `Probe`, `title`)
are defined there and importable from here.

Nothing here runs what the spec did not name: names, parts and weights are looked up in
torchvision's own tables (`list_models`, `Module._modules`, the weights enum's members), never
through `getattr` or an import of a user-given string.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .codes import PRETRAINED
from .errors import did_you_mean
from .layers import LAYERS
from .layers.zoo import CONSTRUCTOR_ARGS, LoadFailed, Probe, Refused, title
from .sizes import fmt

if TYPE_CHECKING:
    from torch import nn

#: PyTorch's messages can run to several lines of tensor sizes; the first line, cut here, says it.
_MESSAGE_CHARS = 200


def _torchvision() -> Any:
    try:
        import torchvision.models
    except ImportError as exc:
        raise Refused(
            f"pretrained(...) needs torch and torchvision, which cannot be imported ({exc}): "
            "pip install 'archdsl[torch]'",
            None,
            PRETRAINED,
        ) from None
    return torchvision.models


@functools.cache
def model_names() -> tuple[str, ...]:
    """torchvision's registered classification models (not detection, segmentation, video...)."""
    models = _torchvision()
    return tuple(models.list_models(module=models))


def weights_names(name: str) -> tuple[str, ...]:
    """The members of `name`'s weights enum, `DEFAULT` included (an alias, so not in iteration)."""
    return tuple(_torchvision().get_model_weights(name).__members__)


def check(name: str, part: str | None, weights: str | None) -> None:
    """Raises `Refused` for an unregistered name, a missing part or unknown weights."""
    names = model_names()
    if name not in names:
        hint = did_you_mean(name, names)
        listed = "" if hint else " (see torchvision.models.list_models())"
        raise Refused(f'"{name}" is not a torchvision classification model{listed}{hint}', "name")
    if weights is not None:
        known = weights_names(name)
        if weights not in known:
            listed = ", ".join(known)
            raise Refused(
                f'{name} has no weights "{weights}" (it has {listed}){did_you_mean(weights, known)}',
                "weights",
            )
    if part is not None:
        select(_meta_model(name), name, part)


def select(model: nn.Module, name: str, part: str) -> nn.Module:
    """The submodule at dotted `part` ("features", "layer4.1"), looked up among registered children."""
    module, where = model, name
    for component in part.split("."):
        children = {key: child for key, child in module._modules.items() if child is not None}
        child = children.get(component)
        if child is None:
            listed = ", ".join(children) if children else "none"
            raise Refused(
                f'{where} has no part "{component}" (its parts: {listed}){did_you_mean(component, children)}',
                "part",
            )
        module, where = child, f"{where}.{component}"
    return module


@contextmanager
def _on_meta() -> Iterator[None]:
    """Every parameter and buffer a module registers goes to the meta device.

    `with torch.device("meta")` would also put the constructors' own arithmetic on meta, and some
    constructors read values back (regnet computes its widths with tensors), which meta cannot do.
    Moving only what modules register keeps that arithmetic real, and initialisation then runs on
    meta tensors, which costs nothing (vit_h_14's 632M parameters take no memory).
    """
    from torch import nn

    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def buffer_on_meta(module: nn.Module, name: str, tensor: Any, persistent: bool = True) -> None:
        register_buffer(module, name, None if tensor is None else tensor.to("meta"), persistent)

    nn.Module.register_parameter = parameter_on_meta  # type: ignore[method-assign, assignment]
    nn.Module.register_buffer = buffer_on_meta  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


def _construct(name: str, weights: Any = None) -> nn.Module:
    with warnings.catch_warnings():
        # googlenet and inception_v3 warn that their default initialisation will change one day.
        warnings.simplefilter("ignore", FutureWarning)
        model: nn.Module = _torchvision().get_model(name, weights=weights, **CONSTRUCTOR_ARGS.get(name, {}))
    return model


@functools.cache
def _meta_model(name: str) -> nn.Module:
    with _on_meta():
        return _construct(name).eval()


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"


@functools.cache
def probe(name: str, part: str | None, shape: tuple[int, ...]) -> Probe:
    """Output shape, parameters and MACs of the (part of the) model on one `shape` sample.

    Eval mode, as batch 1 in training mode would trip batchnorm on a 1×1 map. MACs are counted by
    PyTorch's FlopCounterMode (half its FLOPs: convolutions and matrix products, as archdsl counts
    its own layers). Call `check` first: this assumes the name and part exist.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = _meta_model(name)
    module = select(model, name, part) if part else model
    sample = torch.empty((1, *shape), device="meta")
    counter = FlopCounterMode(display=False)
    running: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    try:
        with counter, torch.no_grad(), _tracked(module, title(name, part), running):
            output = module(sample)
    except Exception as exc:  # PyTorch raises RuntimeError, ValueError, AssertionError... for bad input
        where = ""
        if running and running[-1][1] is not module:
            # Meta kernels say less than CPU ones ("Invalid channel dimensions"): name the module.
            path, inner, size = running[-1]
            # The failing submodule's own input, when the layers before it changed the shape.
            given = f" on {fmt(size)}" if tuple(size) != tuple(shape) else ""
            where = f" at {path} ({_module_text(inner)}){given}"
        raise Refused(
            f"pretrained {title(name, part)} fails on a {fmt(shape)} input{where}: {_first_line(exc)}",
            None,
            PRETRAINED,
        ) from None
    if not isinstance(output, torch.Tensor):
        raise Refused(
            f"pretrained {title(name, part)} gives a {type(output).__name__}, not one tensor; "
            "choose a part that does",
            "part" if part else "name",
            PRETRAINED,
        )
    params = sum(p.numel() for p in module.parameters())
    return Probe(tuple(output.shape[1:]), params, counter.get_total_flops() // 2)


@contextmanager
def _tracked(
    root: nn.Module, prefix: str, running: list[tuple[str, nn.Module, tuple[int, ...]]]
) -> Iterator[None]:
    """Keeps in `running` the modules whose forward has started and not finished, innermost last,
    with their input's per-sample shape; after an exception the last one is where it happened."""
    handles = []
    for path, module in root.named_modules(prefix=prefix):

        def enter(module: nn.Module, args: tuple[Any, ...], path: str = path) -> None:
            size = tuple(args[0].shape[1:]) if args and hasattr(args[0], "shape") else ()
            running.append((path, module, size))

        def leave(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            running.pop()

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _module_text(module: nn.Module) -> str:
    """`Conv2d(256, 512, kernel_size=(3, 3), ...)`: the module's own repr line, not its children."""
    extra = module.extra_repr()
    return f"{type(module).__name__}({extra})" if "\n" not in extra else type(module).__name__


def build(name: str, part: str | None, weights: str | None, freeze: bool) -> nn.Module:
    """The real module: torchvision's model (downloading `weights` if named and not cached), cut to
    `part`, with `requires_grad` off when `freeze`."""
    if weights is None:
        model = _construct(name)
    else:
        enum = _torchvision().get_model_weights(name)[weights]
        try:
            model = _construct(name, enum)
        except Exception as exc:  # urllib, hash and unpickling failures all end up here
            raise LoadFailed(
                f"cannot load the {weights} weights of {name} from {enum.url}: {_first_line(exc)} "
                "(torchvision keeps downloaded weights under $TORCH_HOME/hub)"
            ) from None
    module = select(model, name, part) if part else model
    if freeze:
        module.requires_grad_(False)
    return module


# --- the zoo: torchvision's networks as specs, checked without torch ------------------------------

#: `specs/torchvision/<name>.arch`, shipped in the package: each is torchvision's network exactly.
ZOO = Path(__file__).with_name("zoo")

#: The members of each zoo network's weights enum (`DEFAULT` is an alias, listed last), so that
#: `weights=` is checked without torchvision; `tests/test_pretrained.py` holds them to torchvision's.
ZOO_WEIGHTS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        (
            "alexnet",
            "vgg16_bn",
            "vgg11",
            "vgg11_bn",
            "vgg13",
            "vgg13_bn",
            "vgg19",
            "vgg19_bn",
            "resnet18",
            "resnet34",
            "resnext101_64x4d",
            "squeezenet1_1",
            "squeezenet1_0",
            "googlenet",
            "inception_v3",
            "densenet121",
            "densenet161",
            "densenet169",
            "densenet201",
            "mnasnet1_0",
            "mnasnet0_5",
            "mnasnet0_75",
            "mnasnet1_3",
            "mobilenet_v3_small",
            "shufflenet_v2_x1_0",
            "shufflenet_v2_x0_5",
            "shufflenet_v2_x1_5",
            "shufflenet_v2_x2_0",
            "efficientnet_b0",
            "efficientnet_b2",
            "efficientnet_b3",
            "efficientnet_b4",
            "efficientnet_b5",
            "efficientnet_b6",
            "efficientnet_b7",
            "efficientnet_v2_s",
            "efficientnet_v2_m",
            "efficientnet_v2_l",
            "convnext_tiny",
            "convnext_small",
            "convnext_base",
            "convnext_large",
            "vit_b_32",
            "vit_l_32",
            "swin_t",
            "swin_s",
            "swin_b",
            "swin_v2_t",
            "swin_v2_s",
            "swin_v2_b",
            "maxvit_t",
        ),
        ("IMAGENET1K_V1", "DEFAULT"),
    ),
    **dict.fromkeys(
        (
            "resnet50",
            "resnet101",
            "resnet152",
            "resnext50_32x4d",
            "resnext101_32x8d",
            "wide_resnet50_2",
            "wide_resnet101_2",
            "mobilenet_v2",
            "mobilenet_v3_large",
            "regnet_x_400mf",
            "regnet_x_800mf",
            "regnet_x_1_6gf",
            "regnet_x_3_2gf",
            "regnet_x_8gf",
            "regnet_x_16gf",
            "regnet_x_32gf",
            "regnet_y_400mf",
            "regnet_y_800mf",
            "regnet_y_1_6gf",
            "regnet_y_3_2gf",
            "regnet_y_8gf",
            "efficientnet_b1",
        ),
        ("IMAGENET1K_V1", "IMAGENET1K_V2", "DEFAULT"),
    ),
    **dict.fromkeys(
        ("vit_b_16", "vit_l_16"),
        ("IMAGENET1K_V1", "IMAGENET1K_SWAG_E2E_V1", "IMAGENET1K_SWAG_LINEAR_V1", "DEFAULT"),
    ),
    "vit_h_14": ("IMAGENET1K_SWAG_E2E_V1", "IMAGENET1K_SWAG_LINEAR_V1", "DEFAULT"),
    "vgg16": ("IMAGENET1K_V1", "IMAGENET1K_FEATURES", "DEFAULT"),
    **dict.fromkeys(
        ("regnet_y_16gf", "regnet_y_32gf"),
        ("IMAGENET1K_V1", "IMAGENET1K_V2", "IMAGENET1K_SWAG_E2E_V1", "IMAGENET1K_SWAG_LINEAR_V1", "DEFAULT"),
    ),
    "regnet_y_128gf": ("IMAGENET1K_SWAG_E2E_V1", "IMAGENET1K_SWAG_LINEAR_V1", "DEFAULT"),
    # torchvision.models.video's: they take a clip [3, T, H, W]
    **dict.fromkeys(
        ("r3d_18", "mc3_18", "r2plus1d_18", "s3d", "swin3d_t", "swin3d_s", "mvit_v1_b", "mvit_v2_s"),
        ("KINETICS400_V1", "DEFAULT"),
    ),
    "swin3d_b": ("KINETICS400_V1", "KINETICS400_IMAGENET22K_V1", "DEFAULT"),
}


def in_zoo(name: str) -> bool:
    """Whether `name` is checked from its spec, without torch."""
    return name in ZOO_WEIGHTS and (ZOO / f"{name}.arch").is_file()


@functools.cache
def zoo_model(name: str) -> Any:
    """The zoo spec's first model's definition, and the blocks it sees."""
    from .loader import Loader
    from .resolve import block_scopes

    path = str(ZOO / f"{name}.arch")
    closure = Loader().closure(path)
    scopes, _ = block_scopes(closure.files, closure.graph)
    definition = closure.files[closure.root].models[0]
    return definition, scopes.get(closure.root, {})


@functools.cache
def zoo_parts(name: str) -> dict[str, tuple[int, ...]]:
    """The parts of a zoo network, as torchvision's module tree has them, with the input each
    receives at the spec's default size. torchvision registers every module it names; the spec's
    unnamed statements beside named ones are its functional ops (`torch.flatten`), no parts."""
    shaped = _default(name)
    parts: dict[str, tuple[int, ...]] = {}

    def visit(nodes: list[Any]) -> None:
        members = _shaped_members(nodes)
        named = any(not key.isdigit() for key, _ in members)
        for key, node in members:
            if (named and key.isdigit()) or getattr(node, "parameter", False) or key.startswith("."):
                continue  # a bare parameter, or a function, is no part
            parts[node.path] = node.input
            if node.kind != "layer":
                visit(node.children)

    visit(shaped.layers)
    return parts


def _shaped_members(nodes: list[Any]) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for node in nodes:
        if node.spliced:
            found += _shaped_members(node.children)
        else:
            found.append((node.key, node))
    return found


def static(name: str, part: str | None, weights: str | None, shape: tuple[int, ...]) -> Probe:
    """What `probe` finds, from the zoo spec: no torch. Raises `Refused` as `check` does, and for an
    input the part cannot take (E111, with the spec's own message)."""
    from .elaborate import elaborate_part

    if weights is not None and weights not in ZOO_WEIGHTS[name]:
        known = ZOO_WEIGHTS[name]
        raise Refused(
            f'{name} has no weights "{weights}" (it has {", ".join(known)}){did_you_mean(weights, known)}',
            "weights",
        )
    parts = zoo_parts(name)
    expected = _default(name).input
    if part is not None:
        where, inner = name, ""
        for component in part.split("."):
            children = [p[len(inner) :] for p in parts if p.startswith(inner) and "." not in p[len(inner) :]]
            if component not in children:
                listed = ", ".join(children) if children else "none"
                raise Refused(
                    f'{where} has no part "{component}" (its parts: {listed})'
                    f"{did_you_mean(component, children)}",
                    "part",
                )
            where, inner = f"{where}.{component}", f"{inner}{component}."
        expected = parts[part]
    # Its layers are torchvision's, made for the channels they were made for: a convolution does
    # not infer its input channels from what it is given, as a spec's own would.
    if len(shape) != len(expected):
        raise Refused(
            f"pretrained {title(name, part)} takes a sample of {len(expected)} axes, {fmt(expected)} at "
            f"the network's default size, not the {fmt(shape)} it is given",
            None,
            PRETRAINED,
        )
    axis = _channel_axis(name, part or "")
    if shape[axis] != expected[axis]:
        raise Refused(
            f"pretrained {title(name, part)} takes {expected[axis]} channels "
            f"({_described(expected, axis)}), not the {fmt(shape)} it is given",
            None,
            PRETRAINED,
        )
    definition, blocks = zoo_model(name)
    made, diagnostics = elaborate_part(definition, blocks, part or "", shape)
    errors = [d for d in diagnostics if d.is_error]
    if errors or made is None or made.record is None:
        reason = errors[0].message if errors else "it cannot take it"
        raise Refused(
            f"pretrained {title(name, part)} cannot take a {fmt(shape)} input: {reason}", None, PRETRAINED
        )
    made_here = made.record
    # torchvision calls some modules with more than a tensor (MViT's attention and pooling take the
    # token grid beside the tokens, `block(x, thw)`), which a part is not given.
    gridded = next((n for n in _walk([made_here]) if n.kind == "layer" and not LAYERS[n.op].runs_alone), None)
    if gridded is not None:
        raise Refused(
            f"pretrained {title(name, part)} cannot take a {fmt(shape)} input alone: torchvision runs "
            f"its {gridded.path} ({gridded.op}) with the tokens' grid beside them; choose a part "
            "that takes one tensor",
            None,
            PRETRAINED,
        )
    # Nor does a linear layer infer its features: every layer's weights must be those it has at
    # the spec's own size (a classifier after `flatten` takes one image size only).
    default = _default_layers(name)
    for node in _walk([made_here]):
        if node.kind == "layer" and node.path in default and node.params != default[node.path].params:
            built = default[node.path]
            raise Refused(
                f"pretrained {title(name, part)} cannot take a {fmt(shape)} input: its {node.path} "
                f"({built.op}) was made for {fmt(built.input)}, and would receive {fmt(node.input)}",
                None,
                PRETRAINED,
            )
    output = made.outputs[0].shape
    assert output is not None
    return Probe(output, made_here.params, made_here.macs)


@functools.cache
def _default(name: str) -> Any:
    """The zoo network shaped at its spec's own size."""
    from .elaborate import elaborate_model

    definition, blocks = zoo_model(name)
    shaped, problems = elaborate_model(definition, blocks)
    assert shaped is not None and not any(d.is_error for d in problems), f"{name} has errors"
    return shaped


@functools.cache
def _default_layers(name: str) -> dict[str, Any]:
    """The zoo network's statements at its spec's own size, by module path."""
    return {node.path: node for node in _walk(_default(name).layers)}


def _walk(nodes: list[Any]) -> Iterator[Any]:
    for node in nodes:
        yield node
        yield from _walk(node.children)


def _channel_axis(name: str, part: str) -> int:
    """The axis of the channels the part's first layer was made for: the first, or the last of a
    channels-last part (Swin's stages take `[H, W, C]`)."""
    from . import layers

    for node in _walk([_default_layers(name)[part]] if part else _default(name).layers):
        spec = layers.LAYERS.get(node.op) if node.kind == "layer" else None
        if spec is not None and spec.member:
            return -1 if spec.channel_axis == -1 else 0
    return 0


def _described(shape: tuple[int, ...], axis: int = 0) -> str:
    """What a part takes, its channels fixed and its sizes free: `[64, H, W]`, a video's
    `[64, T, H, W]`, a signal's `[64, L]`; channels last, `[H, W, 96]`, `[T, H, W, 128]`."""
    sizes = {2: "L", 3: "H, W", 4: "T, H, W"}.get(len(shape))
    if sizes is None:
        return fmt(shape)
    return f"[{sizes}, {shape[-1]}]" if axis == -1 else f"[{shape[0]}, {sizes}]"
