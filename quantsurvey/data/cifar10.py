"""CIFAR-10 from torchvision's pickled batches (`<root>/cifar-10-batches-py`) or from an
ImageFolder copy (`<root>/cifar10/{train,test}/<class>/*.png`), decoded once into a cached
tensor."""

from __future__ import annotations

import hashlib
import pickle
import struct
import zlib
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
    """Read the python-pickle batches of the official CIFAR-10 archive; a DataError names the
    batch file that cannot be read."""
    images, labels = [], []
    for name in _BATCHES[train]:
        path = folder / name
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            if len(data) != len(entry["labels"]):
                raise ValueError(f"{len(data)} images but {len(entry['labels'])} labels")
        except (OSError, pickle.UnpicklingError, KeyError, ValueError, TypeError, EOFError,
                AttributeError, IndexError, ImportError) as err:
            raise DataError(f"CIFAR-10 batch file {path} could not be read "
                            f"({type(err).__name__}: {err}); it is damaged: replace it with the "
                            f"one from the official cifar-10-python.tar.gz.") from None
        images.append(data)
        labels.extend(entry["labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


# what PIL raises for a damaged, truncated or non-image file
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error,
                  Image.DecompressionBombError)


def _decode_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except _DECODE_ERRORS as err:
        raise DataError(f"Image {path} could not be decoded ({type(err).__name__}: {err}); it "
                        f"is damaged or not an image: replace it with an intact copy of that "
                        f"file.") from None


def decode_image_folder(folder: Path, classes: tuple[str, ...],
                        shape: tuple[int, int, int] | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode `<folder>/<class>/*` images in sorted order into (N, C, H, W) uint8 and labels;
    every image must have `shape` (H, W, C), or the first image's when None. A DataError
    names the folder or the file that is wrong."""
    try:
        found = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if tuple(found) != classes:
            raise DataError(f"{folder} has class folders {found}; expected {list(classes)}: "
                            f"point data.root at a complete copy of the data set.")
        files, labels = [], []
        for label, name in enumerate(classes):
            members = sorted((folder / name).iterdir())
            files += members
            labels += [label] * len(members)
    except OSError as err:
        where = err.filename or folder
        raise DataError(f"{where} could not be listed ({type(err).__name__}: {err}): make it "
                        f"readable, or point data.root at a readable copy.") from None
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(_decode_image, files))
    if not arrays:
        h, w, c = shape or (0, 0, 3)
        return torch.empty((0, c, h, w), dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    want = shape or arrays[0].shape
    for path, a in zip(files, arrays, strict=True):
        if a.shape != want:
            raise DataError(f"Image {path} is {a.shape[1]}x{a.shape[0]} pixels where the data "
                            f"set's images are {want[1]}x{want[0]}: replace it with the "
                            f"original file.")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(labels, dtype=torch.long)


class CIFAR10DataModule(TensorDataModule):
    num_classes = 10
    input_shape = (3, 32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    default_augment = "crop_flip"
    full_sizes = {"train": 50_000, "test": 10_000}
    title = "CIFAR-10"

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        split = "train" if train else "test"
        batches = self.root / "cifar-10-batches-py"
        folder = self.root / "cifar10" / split
        if all((batches / b).is_file() for b in _BATCHES[train]):
            self._sources[split] = batches
            return read_cifar_batches(batches, train)
        if folder.is_dir():
            self._sources[split] = folder
            return self._cached_folder(folder, split)
        if self.download:
            try:
                torchvision.datasets.CIFAR10(str(self.root), train=train, download=True)
            except Exception as err:
                raise DataError(self._missing(f" Download failed: {type(err).__name__}: {err}.")
                                ) from None
            self._sources[split] = batches
            return read_cifar_batches(batches, train)
        raise DataError(self._missing(""))

    def _missing(self, extra: str) -> str:
        return (f"CIFAR-10 not found under {self.root}: expected torchvision's "
                f"cifar-10-batches-py/ or an ImageFolder copy cifar10/{{train,test}}/<class>/*.png."
                f"{extra} Point data.root (or QUANTSURVEY_DATA) at such a folder, or set "
                f"data.download=true on a machine with internet.")

    def _cached_folder(self, folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        # the key covers the folder's path and its file list, so a changed copy is re-decoded
        try:
            names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        except OSError as err:
            raise DataError(f"{err.filename or folder} could not be listed "
                            f"({type(err).__name__}: {err}): make it readable, or point "
                            f"data.root at a readable copy.") from None
        key = hashlib.sha1((str(folder.resolve()) + "\n".join(names)).encode()).hexdigest()[:12]
        path = self.cache_dir / f"cifar10-{split}-{key}.pt"
        cached = load_tensors(path)
        if cached is not None:
            return cached["images"], cached["labels"]
        images, labels = decode_image_folder(folder, CIFAR10_CLASSES, shape=(32, 32, 3))
        save_tensors_atomic(path, {"images": images, "labels": labels})  # DataError if it can't
        return images, labels
