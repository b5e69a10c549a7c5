"""Datasets, decoded once into memory, and the per-batch pipeline that feeds the model.

Consumes a `DatasetSpec`; produces a `Dataset` whose splits are uint8 tensors [N, C, H, W] with
int64 labels [N], or, for a segmentation set, uint8 masks [N, H, W] (a class per pixel). The fast
path never touches one sample at a time during training: an epoch is a shuffled index, a batch is
one gather, and resizing, augmentation and normalisation run on the whole batch on the training
device (`Pipeline`).

Where the files are looked for, in order: `--data-root DIR` (the files themselves, or torchvision's
layout below it), `$ARCHDSL_DATA` or `~/.cache/archdsl/data`, then Debian's dataset packages under
`/usr/share/datasets/`. If none has them, torchvision downloads them into the data root (unless
`ARCHDSL_NO_DOWNLOAD=1`); if that fails too, a `TrainError` says where to put the files.

A segmentation set is derived, never downloaded: `fashion-mnist-segmentation` is Fashion-MNIST with
each image's pixels brighter than `SEGMENTATION_THRESHOLD` labelled with its item's class (1–10)
and the others with the background (0), computed in memory as the images are loaded.
"""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..trainspec import AugmentSpec, DatasetSpec, NormalizeSpec
from .errors import TrainError

if TYPE_CHECKING:
    import torch

DEBIAN_DATASETS = Path("/usr/share/datasets")

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: torchvision's folder name for each IDX dataset (`ROOT/<folder>/raw/*.gz`).
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
DEBIAN_PACKAGES = {"mnist": "dataset-mnist", "fashion-mnist": "dataset-fashion-mnist"}
CIFAR_FOLDER = "cifar-10-batches-py"
#: Each segmentation set: the classification set it is derived from.
SEGMENTATION_SOURCES = {"fashion-mnist-segmentation": "fashion-mnist"}
#: A pixel of a segmentation set's image belongs to the item when its value (0–255) is above this,
#: to the background otherwise. Half of Fashion-MNIST's pixels are exactly 0; the faint values just
#: above it are specks and the halo the dataset's downscaling left around each item. Above 10
#: (about 4 % of the range) gives solid items with clean edges; 25 and more open holes in dark
#: items (a black coat, a dark check), 1 keeps the specks.
SEGMENTATION_THRESHOLD = 10
BACKGROUND = "background"

CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
#: Per-channel mean and std of each training set (pixels scaled to [0, 1]): `normalize = true`.
STATISTICS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]: a class per image; or uint8 [N, H, W]: a class per pixel

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def first(self, n: int) -> Split:
        return Split(self.images[:n], self.labels[:n])


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    classes: list[str]
    #: Where the files were found (shown to the user).
    source: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train.images.shape[1:])

    @property
    def masks(self) -> bool:
        """Whether its labels are masks, a class per pixel (a segmentation set)."""
        return self.train.labels.dim() == 3

    def limited(self, limit: int | None, test_limit: int | None = None) -> Dataset:
        """The first `limit` training images and the first `test_limit` test images (None: all);
        each limit applies to its own split only."""
        if (limit is None or limit >= len(self.train)) and (
            test_limit is None or test_limit >= len(self.test)
        ):
            return self
        return Dataset(
            self.name,
            self.train.first(limit) if limit is not None else self.train,
            self.test.first(test_limit) if test_limit is not None else self.test,
            self.classes,
            self.source,
            self.mean,
            self.std,
        )


def default_root() -> Path:
    return Path(os.environ.get("ARCHDSL_DATA") or Path.home() / ".cache" / "archdsl" / "data")


def load(
    spec: DatasetSpec,
    root: str | os.PathLike[str] | None,
    channels: int,
    resize: tuple[int, int] | None = None,
) -> Dataset:
    """Decodes `spec`'s train and test splits. For an imagefolder, `channels` (what the model takes)
    picks grey or RGB, and `resize` ([h, w]) is applied while decoding: photos come in many sizes,
    and holding them at full size would take far more memory than the model's input."""
    if spec.name in SEGMENTATION_SOURCES:
        return segmentation_set(_load_idx(SEGMENTATION_SOURCES[spec.name], root), spec.name)
    if spec.name in TORCHVISION_FOLDERS:
        return _load_idx(spec.name, root)
    if spec.name == "cifar10":
        return _load_cifar(root)
    assert spec.path is not None
    return _load_imagefolder(Path(spec.path), channels, resize)


# --- MNIST and Fashion-MNIST: IDX files ------------------------------------------------------------


def _idx_dirs(name: str, root: str | os.PathLike[str] | None) -> list[Path]:
    roots = [Path(root)] if root is not None else []
    roots.append(default_root())
    dirs: list[Path] = []
    for base in roots:
        dirs += [base, base / TORCHVISION_FOLDERS[name] / "raw", base / name]
    dirs.append(DEBIAN_DATASETS / name)
    return dirs


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _idx_files(directory: Path) -> dict[str, list[Path]] | None:
    found: dict[str, list[Path]] = {}
    for split, stems in IDX_FILES.items():
        paths = [_find(directory, stem) for stem in stems]
        if any(p is None for p in paths):
            return None
        found[split] = [p for p in paths if p is not None]
    return found


def _load_idx(name: str, root: str | os.PathLike[str] | None) -> Dataset:
    dirs = _idx_dirs(name, root)
    located = next(((d, f) for d in dirs if (f := _idx_files(d)) is not None), None)
    if located is None:
        failure = _download(name, root)
        located = next(((d, f) for d in dirs if (f := _idx_files(d)) is not None), None)
        if located is None:
            target = Path(root) if root is not None else default_root()
            wanted = ", ".join(f"{stem}.gz" for stems in IDX_FILES.values() for stem in stems)
            raise TrainError(
                f"no {name} data found (looked in {', '.join(str(d) for d in dirs)}).\n"
                f"Put {wanted} in {target} (or pass --data-root DIR), "
                f"install Debian's {DEBIAN_PACKAGES[name]} package, "
                f"or run online to let torchvision download it{failure}"
            )
    directory, files = located
    splits = {split: Split(_idx_images(paths[0]), _idx_labels(paths[1])) for split, paths in files.items()}
    for split in splits.values():
        if len(split.images) != len(split.labels):
            raise TrainError(f"{directory}: {len(split.images)} images but {len(split.labels)} labels")
    mean, std = STATISTICS[name]
    return Dataset(name, splits["train"], splits["test"], CLASSES[name], str(directory), mean, std)


def _read(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise TrainError(f"{path}: cannot read ({exc})") from None


def _idx_images(path: Path) -> torch.Tensor:
    import torch

    data = _read(path)
    if len(data) < 16 or int.from_bytes(data[:4], "big") != 0x803:
        raise TrainError(f"{path}: not an IDX image file")
    n, rows, cols = (int.from_bytes(data[i : i + 4], "big") for i in (4, 8, 12))
    if len(data) != 16 + n * rows * cols:
        raise TrainError(f"{path}: truncated ({len(data)} bytes for {n} images of {rows}×{cols})")
    # bytearray: frombuffer wants a writable buffer, and the copy is made once.
    return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).reshape(n, 1, rows, cols)


def _idx_labels(path: Path) -> torch.Tensor:
    import torch

    data = _read(path)
    if len(data) < 8 or int.from_bytes(data[:4], "big") != 0x801:
        raise TrainError(f"{path}: not an IDX label file")
    n = int.from_bytes(data[4:8], "big")
    if len(data) != 8 + n:
        raise TrainError(f"{path}: truncated ({len(data)} bytes for {n} labels)")
    return torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).long()


def _download(name: str, root: str | os.PathLike[str] | None) -> str:
    """Lets torchvision fetch the dataset into the data root; returns why it failed ('' on success)."""
    if os.environ.get("ARCHDSL_NO_DOWNLOAD"):
        return " (downloads are off: ARCHDSL_NO_DOWNLOAD is set)"
    import torchvision

    target = Path(root) if root is not None else default_root()
    kind = {
        "mnist": torchvision.datasets.MNIST,
        "fashion-mnist": torchvision.datasets.FashionMNIST,
        "cifar10": torchvision.datasets.CIFAR10,
    }[name]
    try:
        kind(str(target), train=True, download=True)
        kind(str(target), train=False, download=True)
    except Exception as exc:  # network errors come in many types; the user needs only the gist
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        detail = detail if len(detail) <= 300 else detail[:297] + "..."
        return f" (the download failed: {type(exc).__name__}: {detail})"
    return ""


# --- segmentation sets, derived from classification sets ------------------------------------------


def masks_of(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """uint8 masks [N, H, W] of single-channel uint8 images [N, 1, H, W] labelled [N]: label + 1
    where the pixel is above `SEGMENTATION_THRESHOLD`, 0 (the background) elsewhere."""
    import torch

    item = (labels.to(torch.uint8) + 1).reshape(-1, 1, 1)
    return torch.where(images[:, 0] > SEGMENTATION_THRESHOLD, item, torch.zeros_like(item))


def segmentation_set(source: Dataset, name: str) -> Dataset:
    """`source` (grey images labelled by class) with a mask per image instead of its label: 11
    classes for Fashion-MNIST's 10, the background first."""
    return Dataset(
        name,
        Split(source.train.images, masks_of(source.train.images, source.train.labels)),
        Split(source.test.images, masks_of(source.test.images, source.test.labels)),
        [BACKGROUND, *source.classes],
        source.source,
        source.mean,
        source.std,
    )


# --- CIFAR-10: python pickles ----------------------------------------------------------------------


def _load_cifar(root: str | os.PathLike[str] | None) -> Dataset:
    bases = ([Path(root)] if root is not None else []) + [default_root(), DEBIAN_DATASETS / "cifar10"]
    dirs = [d for base in bases for d in (base / CIFAR_FOLDER, base)]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    directory = next((d for d in dirs if all((d / n).is_file() for n in names)), None)
    if directory is None:
        failure = _download("cifar10", root)
        directory = next((d for d in dirs if all((d / n).is_file() for n in names)), None)
        if directory is None:
            target = Path(root) if root is not None else default_root()
            raise TrainError(
                f"no cifar10 data found (looked in {', '.join(str(d) for d in dirs)}).\n"
                f"Extract cifar-10-python.tar.gz into {target} (giving {target / CIFAR_FOLDER}), "
                f"pass --data-root DIR, or run online to let torchvision download it{failure}"
            )
    train = _cifar_split([directory / n for n in names[:5]])
    test = _cifar_split([directory / names[5]])
    mean, std = STATISTICS["cifar10"]
    return Dataset("cifar10", train, test, CLASSES["cifar10"], str(directory), mean, std)


class _CifarUnpickler(pickle.Unpickler):
    """The CIFAR batches are pickles (the format the dataset is published in), and a pickle can run
    any code it names: a file dropped into the data directory must not. This one builds only what a
    CIFAR batch holds, dicts of lists, strings and numpy arrays."""

    ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("_codecs", "encode"),  # how protocol 2 spells bytes
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch does not hold")
        return super().find_class(module, name)


def _cifar_split(paths: Sequence[Path]) -> Split:
    import torch

    images, labels = [], []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                batch = _CifarUnpickler(handle, encoding="latin1").load()
            data = torch.as_tensor(batch["data"], dtype=torch.uint8).reshape(-1, 3, 32, 32)
            targets = torch.as_tensor(batch["labels"], dtype=torch.int64).reshape(-1)
            if len(targets) != len(data) or bool(((targets < 0) | (targets > 9)).any()):
                raise ValueError(f"{len(data)} images but {len(targets)} labels, or a label outside 0..9")
        except Exception as exc:
            raise TrainError(f"{path}: not a CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
        images.append(data)
        labels.append(targets)
    return Split(torch.cat(images), torch.cat(labels))


# --- imagefolder: one folder per class -------------------------------------------------------------


def _class_images(folder: Path) -> dict[str, list[Path]]:
    return {
        d.name: sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for d in sorted(folder.iterdir())
        if d.is_dir()
    }


def _load_imagefolder(path: Path, channels: int, resize: tuple[int, int] | None) -> Dataset:
    """`path/train` and `path/test` (or `path/val`) when both exist; otherwise every 10th image of
    each class (in name order) is held out for testing."""
    if not path.is_dir():
        raise TrainError(f'imagefolder("{path}"): no such directory')
    test_dir = next((path / n for n in ("test", "val") if (path / n).is_dir()), None)
    if (path / "train").is_dir() and test_dir is not None:
        train_files, test_files = _class_images(path / "train"), _class_images(test_dir)
    else:
        everything = _class_images(path)
        train_files = {c: [p for i, p in enumerate(ps) if i % 10 != 9] for c, ps in everything.items()}
        test_files = {c: [p for i, p in enumerate(ps) if i % 10 == 9] for c, ps in everything.items()}
    classes = sorted(train_files)
    if not classes or not any(train_files.values()):
        raise TrainError(
            f'imagefolder("{path}"): expected one folder of images per class (e.g. {path}/cat/1.png)'
        )
    train = _decode(train_files, classes, channels, path, resize)
    test = _decode(test_files, classes, channels, path, resize)
    mean, std = statistics(train.images)
    return Dataset("imagefolder", train, test, classes, str(path), mean, std)


def _decode(
    files: dict[str, list[Path]],
    classes: list[str],
    channels: int,
    root: Path,
    resize: tuple[int, int] | None,
) -> Split:
    import numpy as np
    import torch
    from PIL import Image

    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise TrainError(f"imagefolder gives 1- or 3-channel images; the model takes {channels} channels")
    arrays, labels = [], []
    for label, name in enumerate(classes):
        for file in files.get(name, []):
            try:
                with Image.open(file) as image:
                    converted = image.convert(mode)
                    if resize is not None and converted.size != (resize[1], resize[0]):
                        converted = converted.resize((resize[1], resize[0]), Image.Resampling.BILINEAR)
                    array = np.asarray(converted, dtype=np.uint8)
            except Exception as exc:
                raise TrainError(f"{file}: not a readable image ({exc})") from None
            arrays.append(array.reshape(array.shape[0], array.shape[1], channels))
            labels.append(label)
    if not arrays:
        return Split(torch.zeros((0, channels, 1, 1), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        raise TrainError(
            f"imagefolder({str(root)!r}): images of {len(sizes)} different sizes "
            f"({', '.join(f'{h}×{w}' for h, w, _ in sorted(sizes)[:3])}{', …' if len(sizes) > 3 else ''}); "
            "add resize = [h, w] to the train section to bring them to one size"
        )
    stacked = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return Split(stacked, torch.tensor(labels, dtype=torch.int64))


def statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    import torch

    mean, square = [], []
    for c in range(images.shape[1]):
        channel = images[:, c].to(torch.float64) / 255
        mean.append(float(channel.mean()))
        square.append(float((channel * channel).mean()))
    std = tuple(max(s - m * m, 0.0) ** 0.5 or 1.0 for m, s in zip(mean, square, strict=True))
    return tuple(mean), std


# --- the batch pipeline ----------------------------------------------------------------------------


class Pipeline:
    """uint8 batch → the model's input: resize, augment (training only), normalise, memory layout.

    All of it runs on whole batches on the training device; the random numbers come from a CPU
    `torch.Generator` so a run is reproducible and its state can be checkpointed.
    """

    def __init__(
        self,
        device: torch.device,
        normalize: NormalizeSpec | bool,
        dataset: Dataset,
        resize: tuple[int, int] | None,
        augment: AugmentSpec,
        channels_last: bool,
        generator: torch.Generator,
    ):
        import torch

        channels = dataset.image_shape[0]
        if normalize is True:
            mean, std = dataset.mean, dataset.std
        elif normalize is False:
            mean, std = (0.0,), (1.0,)
        else:
            mean, std = normalize.mean, normalize.std
        mean_t = torch.tensor(mean, dtype=torch.float32).expand(channels).reshape(1, channels, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).expand(channels).reshape(1, channels, 1, 1)
        # x/255 then (x - mean)/std, folded into one multiply-add.
        self.scale = (1.0 / (255.0 * std_t)).to(device)
        self.shift = (-mean_t / std_t).to(device)
        self.resize = resize
        self.augment = augment
        self.channels_last = channels_last
        self.generator = generator
        self.device = device

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        return self.pair(images, None, train)[0]

    def pair(
        self, images: torch.Tensor, masks: torch.Tensor | None, train: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The model's input and, where `masks` ([N, H, W], a class per pixel) are given, the
        masks as int64 that went through the same resize (nearest), crop and flip as the images,
        pixel for pixel. A crop's padding is background (class 0)."""
        import torch
        import torch.nn.functional as F

        x = images.to(self.device, non_blocking=True).float()
        if self.resize is not None and tuple(x.shape[-2:]) != tuple(self.resize):
            # Interpolating 0..255 values keeps black at 0, so padding below still means black.
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False, antialias=True)
        channels = x.shape[1]
        if masks is not None:
            # The masks ride along as one more channel, so each random crop and flip moves both.
            m = masks.to(self.device, non_blocking=True).unsqueeze(1).float()
            if tuple(m.shape[-2:]) != tuple(x.shape[-2:]):
                m = F.interpolate(m, size=tuple(x.shape[-2:]), mode="nearest")
            x = torch.cat([x, m], 1)
        if train and self.augment.crop_padding:
            x = self._crop(x, self.augment.crop_padding)
        if train and self.augment.flip:
            flip = torch.rand(x.shape[0], generator=self.generator) < self.augment.flip
            x = torch.where(flip.to(self.device).reshape(-1, 1, 1, 1), x.flip(-1), x)
        y = None
        if masks is not None:
            x, y = x[:, :channels], x[:, channels].long()
        x = torch.addcmul(self.shift, x, self.scale)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        """A prepared batch (or a model's output in its units) back to pixel values in [0, 1]."""
        return ((x - self.shift) / (255.0 * self.scale)).clamp(0.0, 1.0)

    def _crop(self, x: torch.Tensor, padding: int) -> torch.Tensor:
        """A random crop of the zero-padded images, a different offset per image, in one gather."""
        import torch
        import torch.nn.functional as F

        n, _c, h, w = x.shape
        padded = F.pad(x, (padding, padding, padding, padding))
        offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=self.generator).to(self.device)
        rows = (offsets[0].reshape(n, 1) + torch.arange(h, device=self.device)).reshape(n, 1, h, 1)
        cols = (offsets[1].reshape(n, 1) + torch.arange(w, device=self.device)).reshape(n, 1, 1, w)
        batch = torch.arange(n, device=self.device).reshape(n, 1, 1, 1)
        channel = torch.arange(x.shape[1], device=self.device).reshape(1, -1, 1, 1)
        return padded[batch, channel, rows, cols]
