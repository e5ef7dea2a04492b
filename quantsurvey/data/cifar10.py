"""CIFAR-10 from torchvision's pickled batches (`<root>/cifar-10-batches-py`) or from an
ImageFolder copy (`<root>/cifar10/{train,test}/<class>/*.png`), decoded once into a cached
tensor."""

from __future__ import annotations

import hashlib
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from quantsurvey.data.base import TensorDataModule
from quantsurvey.data.cache import load_tensors, save_tensors_atomic
from quantsurvey.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
_BATCHES = {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]}


def read_cifar_batches(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the python-pickle batches of the official CIFAR-10 archive."""
    images, labels = [], []
    for name in _BATCHES[train]:
        with open(folder / name, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


def _decode_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_image_folder(folder: Path, classes: tuple[str, ...]) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """Decode `<folder>/<class>/*` images in sorted order into (N, C, H, W) uint8 and labels."""
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if tuple(found) != classes:
        raise DataError(f"{folder} has class folders {found}; expected {list(classes)}")
    files, labels = [], []
    for label, name in enumerate(classes):
        members = sorted((folder / name).iterdir())
        files += members
        labels += [label] * len(members)
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(_decode_png, files))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(f"{folder}: images of several sizes {sorted(shapes)[:3]}")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(labels, dtype=torch.long)


class CIFAR10DataModule(TensorDataModule):
    num_classes = 10
    input_shape = (3, 32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    default_augment = "crop_flip"

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        split = "train" if train else "test"
        batches = self.root / "cifar-10-batches-py"
        folder = self.root / "cifar10" / split
        try:
            if all((batches / b).is_file() for b in _BATCHES[train]):
                return read_cifar_batches(batches, train)
            if folder.is_dir():
                return self._cached_folder(folder, split)
        except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as err:
            raise DataError(f"CIFAR-10 {split} split under {self.root} could not be read "
                            f"({type(err).__name__}: {err}); replace the damaged files.") from None
        if self.download:
            try:
                torchvision.datasets.CIFAR10(str(self.root), train=train, download=True)
            except Exception as err:
                raise DataError(self._missing(f" Download failed: {type(err).__name__}: {err}.")
                                ) from None
            return read_cifar_batches(batches, train)
        raise DataError(self._missing(""))

    def _missing(self, extra: str) -> str:
        return (f"CIFAR-10 not found under {self.root}: expected torchvision's "
                f"cifar-10-batches-py/ or an ImageFolder copy cifar10/{{train,test}}/<class>/*.png."
                f"{extra} Point data.root (or QUANTSURVEY_DATA) at such a folder, or set "
                f"data.download=true on a machine with internet.")

    def _cached_folder(self, folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        # the key covers the folder's path and its file list, so a changed copy is re-decoded
        names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        key = hashlib.sha1((str(folder.resolve()) + "\n".join(names)).encode()).hexdigest()[:12]
        path = self.cache_dir / f"cifar10-{split}-{key}.pt"
        cached = load_tensors(path)
        if cached is not None:
            return cached["images"], cached["labels"]
        images, labels = decode_image_folder(folder, CIFAR10_CLASSES)
        save_tensors_atomic(path, {"images": images, "labels": labels})
        return images, labels
