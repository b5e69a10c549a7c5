"""Training speed: archdsl's fast path against the classic tutorials' DataLoader loop, side by side.

For each network (LeNet-5 at batch 256, ResNet-mini at batch 128, both from specs/; on the CPU,
or on a GPU with --device cuda), the same model, data, batch size and optimiser (SGD, the spec's
learning rate) train on the first `--images` Fashion-MNIST training images, timed four ways:

- seed: torchvision's FashionMNIST dataset with per-sample `ToTensor()` + `Normalize()`, batched by a
  shuffling `DataLoader` (num_workers=0, as in the tutorials), one SGD step per batch;
- archdsl (contiguous): `archdsl.train.loop.train` with the data decoded once into a uint8 tensor
  and batched by shuffled index, channels_last off;
- archdsl: the same with channels_last on (the runner's default);
- archdsl --compile: the same under `torch.compile` (inductor: C++ on the CPU, Triton on a GPU).

Every figure is steady state: archdsl trains two epochs and its second epoch counts (the first pays
for oneDNN's kernel set-up and, with --compile, for compiling, which is reported separately); the
seed loop's epoch counts without its first 3 batches. Figures are medians of `--runs` alternating
runs; the target is archdsl ≥ 3× the seed loop.

    .venv/bin/python benchmarks/train_speed.py                 # ~4 minutes on 2 cores
    .venv/bin/python benchmarks/train_speed.py --images 6000 --runs 1   # a smoke run
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
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.builder import build_model  # noqa: E402
from archdsl.program import compile_file  # noqa: E402
from archdsl.train import data  # noqa: E402
from archdsl.train.loop import Options, train  # noqa: E402
from archdsl.train.settings import Overrides, resolve  # noqa: E402
from archdsl.trainspec import NormalizeSpec  # noqa: E402

NETWORKS = (("LeNet-5", "specs/lenet5.arch", 256), ("ResNet-mini", "specs/resnet_mini.arch", 128))
SEED_NORMALIZE = NormalizeSpec(mean=(0.1307,), std=(0.3081,))
#: variant → (channels_last, torch.compile); "seed" is the tutorials' loop.
VARIANTS = {
    "seed": (False, False),
    "archdsl contiguous": (False, False),
    "archdsl": (True, False),
    "archdsl --compile": (True, True),
}


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


def archdsl_loop(
    spec: str, images: int, channels_last: bool, compile: bool, data_root: str | None, device: str
) -> tuple[float, float]:
    """Returns the second epoch's images/s and how much longer the first epoch took (set-up, compile)."""
    shaped = compile_file(spec).model()
    # The test set cut in proportion (Fashion-MNIST: 10,000 test to 60,000 training images): only
    # training is timed, and a whole test set would only lengthen each run.
    settings = resolve(shaped, Overrides(limit=images, test_limit=max(1, images // 6), epochs=2))
    # The seed recipe's normalisation, so both loops do the same work.
    settings = dataclasses.replace(settings, normalize=SEED_NORMALIZE)
    options = Options(device=device, data_root=data_root, channels_last=channels_last, compile=compile)
    first, second = train(shaped, settings, options).history
    return second.train_images_per_s, first.train_time - second.train_time


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
        for name, spec, batch in NETWORKS:
            lr = compile_file(str(ROOT / spec)).model().train.optimizer.lr  # type: ignore[union-attr]
            figures: dict[str, list[float]] = {v: [] for v in VARIANTS}
            set_up: list[float] = []
            for _ in range(args.runs):
                figures["seed"].append(seed_loop(str(ROOT / spec), batch, lr, args.images, root, args.device))
                for variant, (channels_last, compile) in VARIANTS.items():
                    if variant != "seed":
                        rate, extra = archdsl_loop(
                            str(ROOT / spec), args.images, channels_last, compile, args.data_root, args.device
                        )
                        figures[variant].append(rate)
                        if compile:
                            set_up.append(extra)
            medians = {k: statistics.median(v) for k, v in figures.items()}
            rows.append((name, batch, medians, max(set_up)))
            print(f"  {name}: " + ", ".join(f"{k} {[round(x) for x in v]}" for k, v in figures.items()))
    print()
    print(f"{'network':<12} {'batch':>5} " + " ".join(f"{v:>22}" for v in VARIANTS) + "  compiling")
    for name, batch, m, compiling in rows:
        cells = [f"{m['seed']:>22,.0f}"]
        cells += [f"{m[v]:>14,.0f} ({m[v] / m['seed']:.1f}×)" for v in VARIANTS if v != "seed"]
        print(f"{name:<12} {batch:>5} " + " ".join(cells) + f"  {compiling:.1f} s")
    print("images/s, steady state; target: archdsl ≥ 3× the seed loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
