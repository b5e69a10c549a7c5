"""What the `pretrained` layer asks of torchvision and of the zoo, as an interface at the layers' level.

The layer's shape comes from torchvision's model (a forward pass on the meta device) or, for a
network in the zoo, from its spec — which takes the loader, the resolver and shape inference, the
stages above the layers. So the layer does not import them: it asks a `Torchvision` source, which
`archdsl/pretrained.py` implements and the analysis (`pipeline.py`, loaded before any shape is
inferred) installs. The data and exceptions both sides share live here, below both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..codes import BAD_VALUE

#: googlenet and inception_v3 return (logits, aux logits) in training mode; a layer must give one
#: tensor, so they are built without the auxiliary heads (torchvision drops them after loading
#: weights too).
CONSTRUCTOR_ARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False},
    "inception_v3": {"aux_logits": False},
}


class Refused(Exception):
    """A `pretrained(...)` call that cannot work; `arg` names the argument at fault (for the span)."""

    def __init__(self, message: str, arg: str | None = None, code: str = BAD_VALUE):
        super().__init__(message)
        self.message = message
        self.arg = arg
        self.code = code


class LoadFailed(Exception):
    """The weights could not be fetched or read; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Probe:
    """What the meta-device forward pass found, per sample (batch axis dropped)."""

    output: tuple[int, ...]
    params: int
    macs: int


def title(name: str, part: str | None) -> str:
    """`vgg11.features`: the model and part, as messages name them."""
    return f"{name}.{part}" if part else name


class Torchvision(Protocol):
    """torchvision's models, and the zoo's specs of them, as the `pretrained` layer reads them."""

    def in_zoo(self, name: str) -> bool:
        """Whether `name` is checked from its spec, without torch."""
        ...

    def static(self, name: str, part: str | None, weights: str | None, shape: tuple[int, ...]) -> Probe:
        """What `probe` finds, from the zoo spec; raises `Refused`."""
        ...

    def check(self, name: str, part: str | None, weights: str | None) -> None:
        """Raises `Refused` for an unregistered name, a missing part or unknown weights."""
        ...

    def probe(self, name: str, part: str | None, shape: tuple[int, ...]) -> Probe:
        """Output shape, parameters and MACs of the (part of the) model; raises `Refused`."""
        ...

    def build(self, name: str, part: str | None, weights: str | None, freeze: bool) -> Any:
        """The real module (downloading weights); raises `LoadFailed`."""
        ...


_load: Callable[[], Torchvision] | None = None


def install(load: Callable[[], Torchvision]) -> None:
    """Makes `load()` the source the `pretrained` layer asks (done once, by the analysis). It is
    called at the layer's first question, so a spec without `pretrained` never loads the source."""
    global _load
    _load = load


def source() -> Torchvision:
    """The installed source; the analysis installs it before it infers a shape."""
    if _load is None:
        raise RuntimeError("no torchvision source is installed: importing archdsl.pipeline installs it")
    return _load()
