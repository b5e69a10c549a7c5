"""Watching a run: TensorBoard event files written while it trains, and the per-layer diagnostics
of its report. Consumes the model as it trains (its parameters and gradients, its activations on
the test set) and each epoch's `EpochMetrics`; produces event files, a table in report.md and
report.json, layers.png, and a warning that names the layers whose gradients vanish.

Names: a layer is named by its module path, the spec's statement names with `/` between them
(`features/c1`; an unnamed statement by its position, `0`), as TensorBoard groups tags by `/`.

- A *layer* is a module with parameters of its own (a conv, a linear, a batchnorm). Its *gradient
  norm* is the L2 norm of all its parameters' gradients together, taken after every backward pass
  and averaged over the epoch's steps. All on the device: one read per epoch, no wait per step.
- An *activation* is a ReLU-family module (`relu`, `relu6`), whose output is exactly 0 where a
  unit is off. A *unit* is one slice of the output's axis 1: a channel of [C, H, W] (or [C, L]), a
  feature of [F]. A unit is *dead* when it is 0 at every position for every test image: it passes
  no signal and, since ReLU's gradient is 0 there, gets none back. Measured on each epoch's test
  pass (fixed images, no extra forward pass). leakyrelu, elu, gelu and silu are never exactly 0,
  so they have no dead units in this sense and are not counted.
- Gradients *vanish* in a layer whose gradient norm over the last epoch is below `VANISHING` (1e-3)
  times the largest layer's. Healthy nets stay within about an order of magnitude (LeNet-5:
  within 5×, see docs/training.md); at 1e-3 a layer learns a thousand times slower than the rest
  with the same learning rate, which is the signature of saturating activations (sigmoid, tanh)
  in a deep plain stack, not of a layer's size.
- A unit's axis is 1 whatever the output's rank, so for a token sequence [L, D] a "unit" is a
  position, not a feature: transformers use gelu, which is not counted, so this rarely arises.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_path, write_text
from ..extras import require
from .metrics import REPORT_JSON, REPORT_MD, EpochMetrics, _pyplot

if TYPE_CHECKING:
    from collections.abc import Iterator

    import torch
    from torch import nn

LAYERS_PNG = "layers.png"
#: A layer's gradient norm below this fraction of the largest layer's is reported as vanishing.
VANISHING = 1e-3


def tag_name(module_path: str) -> str:
    """A module's path as TensorBoard and the report name it: `features.c1` → `features/c1`."""
    return module_path.replace(".", "/")


@dataclass
class Diagnostics:
    """Per epoch, each layer's mean gradient norm and each activation's dead fraction (plain
    numbers: saved with checkpoints, written to report.json)."""

    #: (name, kind) of each layer with parameters, in model order.
    layers: list[tuple[str, str]]
    #: (name, kind, units) of each ReLU-family activation, in model order.
    activations: list[tuple[str, str, int]] = field(default_factory=list)
    #: Per epoch, a gradient norm per layer.
    gradient_norms: list[list[float]] = field(default_factory=list)
    #: Per epoch, a dead fraction per activation.
    dead: list[list[float]] = field(default_factory=list)
    #: The names of both, in model order (the table's rows).
    order: list[str] = field(default_factory=list)

    def vanishing(self) -> list[str]:
        """The layers whose gradients vanish over the last epoch (see the module's docstring)."""
        if not self.gradient_norms:
            return []
        last = self.gradient_norms[-1]
        largest = max(last, default=0.0)
        return [name for (name, _), norm in zip(self.layers, last, strict=True) if norm < VANISHING * largest]

    def warning(self) -> str | None:
        vanishing = self.vanishing()
        if not vanishing:
            return None
        last = self.gradient_norms[-1]
        top = max(range(len(last)), key=last.__getitem__)
        return (
            f"gradients vanish in {', '.join(vanishing)}: over the last epoch their gradient norms are "
            f"below {VANISHING:g} × the largest layer's ({self.layers[top][0]}, {last[top]:.2e}), so "
            "they hardly learn. Saturating activations (sigmoid, tanh) in a deep plain stack do this: "
            "try relu, batchnorm, residual connections or a better initialisation"
        )

    def state(self) -> dict[str, Any]:
        return {
            "layers": [list(pair) for pair in self.layers],
            "activations": [list(triple) for triple in self.activations],
            "gradient_norms": self.gradient_norms,
            "dead": self.dead,
        }

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continues a resumed run's history (only if it watched the same layers)."""
        if state is None or [tuple(pair) for pair in state.get("layers", [])] != self.layers:
            return
        activations = [
            (str(name), str(kind), int(units)) for name, kind, units in state.get("activations", [])
        ]
        if [a[:2] for a in activations] != [a[:2] for a in self.activations]:
            return
        self.activations = activations
        self.gradient_norms = [list(row) for row in state.get("gradient_norms", [])]
        self.dead = [list(row) for row in state.get("dead", [])]

    def table(self) -> str:
        """The report's section: a row per layer and per activation, in model order; the first and
        the last epoch's gradient norms (one column after one epoch), the last's ratio to the
        largest, and a dead-unit column when the model has ReLU-family activations."""
        if not self.gradient_norms:
            return ""
        first, last = self.gradient_norms[0], self.gradient_norms[-1]
        largest = max(last, default=0.0) or 1.0
        vanishing = set(self.vanishing())
        dead = self.dead[-1] if self.dead else [0.0] * len(self.activations)
        epochs = len(self.gradient_norms)
        norms = {name: (i, kind) for i, (name, kind) in enumerate(self.layers)}
        units = {name: (j, kind, n) for j, (name, kind, n) in enumerate(self.activations)}
        rows: list[list[str]] = []
        for name in self.order or [*norms, *units]:
            if name in norms:
                i, kind = norms[name]
                ratio = f"{last[i] / largest:.1e}" + (" vanishing" if name in vanishing else "")
                rows.append([name, kind, f"{first[i]:.2e}", f"{last[i]:.2e}", ratio, ""])
            else:
                j, kind, n = units[name]
                rows.append([name, kind, "", "", "", f"{100 * dead[j]:.1f} % ({round(dead[j] * n)} of {n})"])
        head = [
            "layer",
            "kind",
            "grad norm, epoch 1",
            f"grad norm, epoch {epochs}",
            "÷ largest",
            "dead units",
        ]
        keep = [c for c in range(len(head)) if not ((c == 2 and epochs == 1) or (c == 5 and not units))]
        if epochs == 1:
            head[3] = "grad norm"
        head, rows = [head[c] for c in keep], [[row[c] for c in keep] for row in rows]
        widths = [max(len(head[c]), *(len(r[c]) for r in rows)) for c in range(len(head))]
        lines = [
            "## Layers",
            "",
            "grad norm: the mean over an epoch's steps of the L2 norm of the layer's gradients.",
        ]
        if units:
            lines.append("dead units: the channels (or features) after a ReLU-family activation that are 0")
            lines.append("for every test image (last epoch).")
        lines += [
            "",
            "| "
            + " | ".join(
                h.ljust(w) if c < 2 else h.rjust(w) for c, (h, w) in enumerate(zip(head, widths, strict=True))
            )
            + " |",
            "|" + "|".join("-" * (w + 1) + (":" if c >= 2 else "-") for c, w in enumerate(widths)) + "|",
        ]
        for row in rows:
            cells = [
                v.ljust(w) if c < 2 else v.rjust(w) for c, (v, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("| " + " | ".join(cells) + " |")
        warning = self.warning()
        if warning:
            lines += ["", f"warning: {warning}"]
        return "\n".join(lines) + "\n"


class Watch:
    """Collects the diagnostics of a model as it trains, and writes TensorBoard files when given a
    directory (rank 0 only)."""

    def __init__(self, model: nn.Module, tensorboard: str | Path | None = None) -> None:
        import torch
        from torch import nn

        self.model = model
        relu_family = (nn.ReLU, nn.ReLU6)
        self._layers: list[list[torch.nn.Parameter]] = []
        self._activations: list[nn.Module] = []
        layers: list[tuple[str, str]] = []
        activations: list[tuple[str, str, int]] = []
        order: list[str] = []
        for path, module in model.named_modules():
            own = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if own:
                layers.append((tag_name(path), type(module).__name__))
                self._layers.append(own)
                order.append(tag_name(path))
            elif isinstance(module, relu_family):
                activations.append((tag_name(path), type(module).__name__, 0))
                self._activations.append(module)
                order.append(tag_name(path))
        self.diagnostics = Diagnostics(layers, activations, order=order)
        device = next(model.parameters()).device if layers else torch.device("cpu")
        self._sums = torch.zeros(len(layers), dtype=torch.float64, device=device)
        self._steps = 0
        self._owner = torch.tensor(
            [i for i, params in enumerate(self._layers) for _ in params], dtype=torch.long, device=device
        )
        self._peaks: list[torch.Tensor | None] = [None] * len(activations)
        self.board = Board(tensorboard) if tensorboard is not None else None

    # --- gradient norms -------------------------------------------------------------------------

    def after_backward(self) -> None:
        """Adds each layer's gradient norm of this step, on the device (no wait for it)."""
        import torch

        params = [p for group in self._layers for p in group]
        if not params:
            return
        grads = [p.grad if p.grad is not None else torch.zeros((), device=p.device) for p in params]
        squares = torch.stack(torch._foreach_norm(grads)).double().square()
        per_layer = torch.zeros_like(self._sums).index_add_(0, self._owner, squares)
        self._sums += per_layer.sqrt()
        self._steps += 1

    # --- dead units -----------------------------------------------------------------------------

    @contextmanager
    def measuring(self) -> Iterator[None]:
        """Within it, forward passes record each activation's largest output per unit."""
        self._peaks = [None] * len(self._activations)
        handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self._activations)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, index: int) -> Any:
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            peak = unit_peaks(output)
            if peak is None:
                return
            known = self._peaks[index]
            self._peaks[index] = peak if known is None or known.shape != peak.shape else known.maximum(peak)

        return record

    # --- an epoch -------------------------------------------------------------------------------

    def end_epoch(self, reduce_max: Any = None) -> None:
        """Closes the epoch's figures: mean gradient norms, dead fractions (`reduce_max`, under DDP,
        takes the largest peak over the ranks, each of which saw its own share of the test set)."""
        norms = (self._sums / max(1, self._steps)).tolist()
        self._sums.zero_()
        self._steps = 0
        dead: list[float] = []
        activations = []
        for (name, kind, _), peak in zip(self.diagnostics.activations, self._peaks, strict=True):
            if peak is None:
                dead.append(0.0)
                activations.append((name, kind, 0))
                continue
            if reduce_max is not None:
                reduce_max(peak)
            dead.append(int((peak <= 0).sum()) / max(1, peak.numel()))
            activations.append((name, kind, int(peak.numel())))
        self.diagnostics.activations = activations
        self.diagnostics.gradient_norms.append(norms)
        self.diagnostics.dead.append(dead)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def unit_peaks(output: Any) -> torch.Tensor | None:
    """The largest value of each unit (axis 1) over the batch and every position, or None for an
    output that is not one tensor of at least [N, F]."""
    import torch

    if not isinstance(output, torch.Tensor) or output.ndim < 2:
        return None
    dims = [d for d in range(output.ndim) if d != 1]
    return output.detach().float().amax(dim=dims)


class Board:
    """TensorBoard event files: per epoch the losses, accuracies and learning rate, every step's
    loss, and a histogram of each parameter and of its gradient."""

    def __init__(self, directory: str | Path) -> None:
        require("archdsl train --tensorboard", "tensorboard", ("tensorboard",))
        from torch.utils.tensorboard import SummaryWriter

        self.directory = Path(directory)
        self.writer = SummaryWriter(log_dir=str(self.directory))

    def epoch(
        self, row: EpochMetrics, step_losses: list[float], steps_per_epoch: int, model: nn.Module
    ) -> None:
        """Writes an epoch: scalars at step `epoch`, the step losses at their global steps (counted
        from 1 over the whole run), and the histograms of the parameters and of the gradients of
        the epoch's last step."""
        writer, epoch = self.writer, row.epoch
        first = (epoch - 1) * steps_per_epoch
        for i, loss in enumerate(step_losses):
            writer.add_scalar("loss/step", loss, first + i + 1)
        scalars = {
            "loss/train": row.train_loss,
            "loss/test": row.test_loss,
            "accuracy/train": row.train_accuracy,
            "accuracy/test": row.test_accuracy,
            "mean_iou/test": row.test_mean_iou,
            "mse/test": row.test_mse,
            "lr": row.lr,
        }
        for tag, value in scalars.items():
            if value is not None:
                writer.add_scalar(tag, value, epoch)
        for path, param in model.named_parameters():
            name = tag_name(path)
            writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), epoch)
            if param.grad is not None:
                writer.add_histogram(f"gradients/{name}", param.grad.detach().float().cpu(), epoch)
        writer.flush()

    def close(self) -> None:
        self.writer.close()


# --- the report --------------------------------------------------------------------------------------


def write_report(out: Path, text: str, diagnostics: Diagnostics, title: str) -> None:
    """report.md as `text` (the task's report and the layers' table), the diagnostics added to
    report.json, and layers.png."""
    import json

    write_text(out / REPORT_MD, text)
    path = out / REPORT_JSON
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data["layers"] = {
        "gradient_norms": {
            name: [epoch[i] for epoch in diagnostics.gradient_norms]
            for i, (name, _) in enumerate(diagnostics.layers)
        },
        "dead_units": {
            name: [epoch[j] for epoch in diagnostics.dead]
            for j, (name, _, _) in enumerate(diagnostics.activations)
        },
        "vanishing": diagnostics.vanishing(),
        "vanishing_below": VANISHING,
    }
    write_text(path, json.dumps(data, indent=2) + "\n")
    plot_layers(out / LAYERS_PNG, diagnostics, title)


def plot_layers(path: Path, diagnostics: Diagnostics, title: str) -> None:
    """Left: each layer's gradient norm (log scale), a line per epoch; right: each activation's
    dead units, a bar per activation (the last epoch) with the first epoch's marked."""
    plt = _pyplot()
    figure, (norm_axes, dead_axes) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [name for name, _ in diagnostics.layers]
    epochs = len(diagnostics.gradient_norms)
    colours = plt.get_cmap("viridis")
    for e, norms in enumerate(diagnostics.gradient_norms):
        shown = [max(n, 1e-30) for n in norms]
        norm_axes.plot(
            range(len(names)), shown, "o-", color=colours(e / max(1, epochs - 1)), label=f"epoch {e + 1}"
        )
    if diagnostics.gradient_norms:
        largest = max(diagnostics.gradient_norms[-1], default=0.0)
        if largest > 0:
            norm_axes.axhline(
                VANISHING * largest, color="C3", ls="--", lw=1, label=f"{VANISHING:g} × largest"
            )
    norm_axes.set_yscale("log")
    norm_axes.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    norm_axes.set(ylabel="gradient norm (mean over the epoch)", title="gradient norm per layer")
    norm_axes.grid(alpha=0.3)
    if epochs <= 12:
        norm_axes.legend(fontsize=8)
    active = [name for name, _, _ in diagnostics.activations]
    if active and diagnostics.dead:
        last = [100 * d for d in diagnostics.dead[-1]]
        dead_axes.bar(range(len(active)), last, width=0.6, color="C1", label=f"epoch {epochs}")
        dead_axes.set_xlim(-1, len(active))
        dead_axes.plot(
            range(len(active)), [100 * d for d in diagnostics.dead[0]], "k_", ms=20, label="epoch 1"
        )
        dead_axes.set_xticks(range(len(active)), active, rotation=45, ha="right", fontsize=8)
        dead_axes.set_ylim(0, 100)
        dead_axes.legend(fontsize=8)
    else:
        dead_axes.text(0.5, 0.5, "no ReLU-family activations", ha="center", va="center")
        dead_axes.set_xticks([])
    dead_axes.set(ylabel="dead units (%)", title="dead units after each ReLU-family activation")
    dead_axes.grid(alpha=0.3, axis="y")
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
