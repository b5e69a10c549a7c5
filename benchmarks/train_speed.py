"""Training speed: archdsl's runner against pure compute and against the tutorials' DataLoader loop.

For each network (LeNet-5 at batch 256, ResNet-mini and GoogLeNet-mini at batch 128, all from
specs/; on the CPU, or on a GPU with --device cuda), the same model, batch size and optimiser (SGD,
the spec's learning rate) train on the first `--images` Fashion-MNIST training images, timed
three ways:

- tutorials: torchvision's FashionMNIST dataset with per-sample `ToTensor()` + `Normalize()`,
  batched by a shuffling `DataLoader` (num_workers=0, as in the tutorials), one SGD step per batch;
- runner: `archdsl.train.loop.train` as `archdsl train` runs it: the data decoded once into a
  uint8 tensor, batched by shuffled index, the memory layout timed per model (`layout=auto`);
- ceiling: the machine's limit for this network: the same built model trained over and over on one
  batch already normalised in memory (no data path, no bookkeeping), forward + backward + SGD
  step, in the faster of the two memory layouts (both are timed; on CUDA in the runner's bf16
  autocast).

The runner's figure is its second epoch's training throughput (the first pays for oneDNN's or
cuDNN's kernel set-up); the tutorials' loop counts without its first 3 batches, the ceiling after
3 untimed steps. Figures are medians of `--runs` alternating runs; the target is the runner at
≥ 0.9 of the ceiling.

    .venv/bin/python benchmarks/train_speed.py                          # ~4 minutes on 2 cores
    .venv/bin/python benchmarks/train_speed.py --images 3000 --runs 1   # a smoke run
    .venv/bin/python benchmarks/train_speed.py --device cuda            # the same on a GPU

It reads /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist) or --data-root, and
writes only to a temporary directory (torchvision wants uncompressed files in its own layout).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.builder import build_model  # noqa: E402
from archdsl.pipeline import compile_file  # noqa: E402
from archdsl.train import data  # noqa: E402
from archdsl.train.loop import Options, train  # noqa: E402
from archdsl.train.settings import Overrides, resolve  # noqa: E402
from archdsl.trainspec import DatasetSpec, NormalizeSpec  # noqa: E402

NETWORKS = (
    ("LeNet-5", "specs/lenet5.arch", 256),
    ("ResNet-mini", "specs/resnet_mini.arch", 128),
    ("GoogLeNet-mini", "specs/googlenet_mini.arch", 128),
)
SEED_NORMALIZE = NormalizeSpec(mean=(0.1307,), std=(0.3081,))
CEILING_STEPS = 30


def torchvision_root(source: Path, target: Path) -> Path:
    """torchvision's FashionMNIST reads uncompressed files from ROOT/FashionMNIST/raw."""
    raw = target / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stems in data.IDX_FILES.values():
        for stem in stems:
            with gzip.open(source / f"{stem}.gz", "rb") as packed, open(raw / stem, "wb") as plain:
                shutil.copyfileobj(packed, plain)
    return target


def seed_loop(spec: str, batch: int, lr: float, images: int, root: Path, device: str) -> float:
    """The tutorials' loop; returns images/s after the first 3 batches."""
    from torch import nn
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    dataset = datasets.FashionMNIST(str(root), train=True, download=False, transform=transform)
    subset = torch.utils.data.Subset(dataset, range(images))
    loader = torch.utils.data.DataLoader(subset, batch_size=batch, shuffle=True, num_workers=0)
    torch.manual_seed(0)
    model = build_model(compile_file(spec).model()).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    model.train()
    seen, began = 0, 0.0
    for step, (x, y) in enumerate(loader):
        if step == 3:
            seen, began = 0, time.perf_counter()
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        seen += len(y)
    if device == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - began)


def runner(spec: str, images: int, data_root: str | None, device: str) -> tuple[float, str]:
    """The second epoch's training images/s and the memory layout the runner picked."""
    shaped = compile_file(spec).model()
    # The test set cut in proportion (Fashion-MNIST: 10,000 test to 60,000 training images): only
    # training is timed, and a whole test set would only lengthen each run.
    settings = resolve(shaped, Overrides(limit=images, test_limit=max(1, images // 6), epochs=2))
    # The tutorials' normalisation, so both loops do the same work.
    settings = dataclasses.replace(settings, normalize=SEED_NORMALIZE)
    result = train(shaped, settings, Options(device=device, data_root=data_root))
    return result.history[1].train_images_per_s, result.layout


def ceiling(spec: str, batch: int, lr: float, images: torch.Tensor, device: str) -> dict[str, float]:
    """images/s of bare training steps on one in-memory batch, per memory layout."""
    from torch import nn

    cuda = device == "cuda"
    if cuda:  # as the runner sets them
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    x = ((images[:batch].float() / 255 - SEED_NORMALIZE.mean[0]) / SEED_NORMALIZE.std[0]).to(device)
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(0)).to(device)
    rates = {}
    for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        torch.manual_seed(0)
        model = build_model(compile_file(spec).model()).to(device, memory_format=fmt)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        criterion = nn.CrossEntropyLoss()
        batch_x = x.contiguous(memory_format=fmt)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
        began = 0.0
        for step in range(3 + CEILING_STEPS):
            if step == 3:
                if cuda:
                    torch.cuda.synchronize()
                began = time.perf_counter()
            with autocast:
                output = model(batch_x)
            loss = criterion(output.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        rates[name] = CEILING_STEPS * batch / (time.perf_counter() - began)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=15000, help="training images per timed run")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per figure (median)")
    parser.add_argument("--data-root", help="Fashion-MNIST IDX .gz files (default: Debian's)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="the issue's target is for the CPU (default)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    source = Path(args.data_root or data.DEBIAN_DATASETS / "fashion-mnist")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}, {args.images} images/run")
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        root = torchvision_root(source, Path(temporary))
        images = data.load(DatasetSpec(name="fashion-mnist"), args.data_root, 1).train.images
        for name, spec, batch in NETWORKS:
            path = str(ROOT / spec)
            lr = compile_file(path).model().train.optimizer.lr  # type: ignore[union-attr]
            tutorials: list[float] = []
            runs: list[float] = []
            picked: list[str] = []
            ceilings: dict[str, list[float]] = {"contiguous": [], "channels_last": []}
            for _ in range(args.runs):
                tutorials.append(seed_loop(path, batch, lr, args.images, root, args.device))
                rate, layout = runner(path, args.images, args.data_root, args.device)
                runs.append(rate)
                picked.append(layout)
                for kind, value in ceiling(path, batch, lr, images, args.device).items():
                    ceilings[kind].append(value)
            print(
                f"  {name}: tutorials {[round(v) for v in tutorials]}, runner {[round(v) for v in runs]} "
                f"in {', '.join(picked)}, ceiling "
                + ", ".join(f"{kind} {[round(v) for v in values]}" for kind, values in ceilings.items())
            )
            best_layout = max(ceilings, key=lambda kind: statistics.median(ceilings[kind]))
            rows.append(
                (
                    name,
                    batch,
                    statistics.median(tutorials),
                    statistics.median(runs),
                    statistics.median(ceilings[best_layout]),
                    best_layout,
                )
            )
    print()
    print(
        f"{'network':<15} {'batch':>5} {'tutorials':>10} {'runner':>8} {'ceiling':>8}  runner/ceiling  layout"
    )
    for name, batch, tutorials_rate, runner_rate, ceiling_rate, best_layout in rows:
        print(
            f"{name:<15} {batch:>5} {tutorials_rate:>10,.0f} {runner_rate:>8,.0f} {ceiling_rate:>8,.0f}"
            f"  {runner_rate / ceiling_rate:>14.2f}  {best_layout}"
        )
    print("images/s, steady state, medians; the ceiling in its faster layout; target: runner ≥ 0.9 × ceiling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
