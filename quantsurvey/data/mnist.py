"""MNIST from torchvision's IDX files (`<root>/MNIST/raw/*-ubyte`), downloaded where allowed."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import torch
import torchvision

from quantsurvey.data.base import TensorDataModule
from quantsurvey.errors import DataError

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# IDX magic number: 0x0000, type 0x08 (unsigned byte), number of dimensions
IDX_MAGIC = {"images": (0x0803, 3), "labels": (0x0801, 1)}


def check_idx_file(path: Path, kind: str) -> int:
    """The item count of the uncompressed IDX `kind` ("images" or "labels") file at `path`;
    a DataError naming the file if its header or size is not that of an MNIST IDX file."""
    magic, ndim = IDX_MAGIC[kind]
    fix = (f"Replace {path.name} with an intact, uncompressed copy of the original file "
           f"(torchvision's MNIST/raw layout), or delete it and set data.download=true on a "
           f"machine with internet.")
    try:
        with open(path, "rb") as f:
            header = f.read(4 + 4 * ndim)
            size = f.seek(0, 2)
    except OSError as err:
        raise DataError(f"MNIST file {path} could not be read ({type(err).__name__}: {err}). "
                        f"{fix}") from None

    def damaged(why: str) -> DataError:
        return DataError(f"MNIST file {path} could not be read: it is damaged ({why}). {fix}")

    if header[:2] == b"\x1f\x8b":
        raise DataError(f"MNIST file {path} is gzip-compressed; the loader reads uncompressed "
                        f"IDX files. Decompress it (gunzip) under the name {path.name}, or "
                        f"replace it with the uncompressed original.")
    if len(header) < 4 + 4 * ndim:
        raise damaged(f"{size} bytes, shorter than the {4 + 4 * ndim}-byte IDX header")
    found, *dims = struct.unpack(f">{1 + ndim}I", header)
    if found != magic:
        raise damaged(f"magic number {found} (0x{found:08x}) where an IDX {kind} file has "
                      f"{magic} (0x{magic:08x})")
    if kind == "images" and dims[1:] != [28, 28]:
        raise damaged(f"images of {dims[1]}x{dims[2]} pixels where MNIST has 28x28")
    expected = 4 + 4 * ndim + math.prod(dims)
    if size != expected:
        raise damaged(f"{size:,} bytes where its header ({' x '.join(map(str, dims))}) needs "
                      f"{expected:,}; it is truncated or has extra bytes")
    return dims[0]


class MNISTDataModule(TensorDataModule):
    num_classes = 10
    input_shape = (1, 28, 28)
    mean = (0.1307,)
    std = (0.3081,)
    default_augment = "none"
    full_sizes = {"train": 60_000, "test": 10_000}

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.root / "MNIST" / "raw"
        missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
        if missing and not self.download:
            raise DataError(
                f"MNIST not found: {raw} lacks {', '.join(missing)}. Put the four uncompressed "
                f"IDX files there (torchvision's layout), point data.root (or QUANTSURVEY_DATA) "
                f"at a folder holding MNIST/raw/, or set data.download=true on a machine with "
                f"internet.")
        if missing:
            try:
                torchvision.datasets.MNIST(str(self.root), train=train, download=True)
            except Exception as err:  # no internet, or the mirror refused
                raise DataError(
                    f"MNIST could not be downloaded into {raw} ({type(err).__name__}: {err}). "
                    f"Put the four uncompressed IDX files ({', '.join(MNIST_FILES)}) there, or "
                    f"point data.root (or QUANTSURVEY_DATA) at a folder holding MNIST/raw/."
                ) from None
        prefix = "train" if train else "t10k"
        images_path = raw / f"{prefix}-images-idx3-ubyte"
        labels_path = raw / f"{prefix}-labels-idx1-ubyte"
        n_images = check_idx_file(images_path, "images")
        n_labels = check_idx_file(labels_path, "labels")
        if n_images != n_labels:
            raise DataError(f"MNIST files {images_path} ({n_images:,} images) and {labels_path} "
                            f"({n_labels:,} labels) do not belong together: replace both with "
                            f"the original files.")
        self._sources["train" if train else "test"] = images_path
        try:
            ds = torchvision.datasets.MNIST(str(self.root), train=train, download=False)
        except Exception as err:  # checked above: should not happen, but name the folder
            raise DataError(
                f"MNIST could not be read under {raw} ({type(err).__name__}: {err}). Put the "
                f"four uncompressed IDX files ({', '.join(MNIST_FILES)}) there, or point "
                f"data.root (or QUANTSURVEY_DATA) at a folder holding MNIST/raw/.") from None
        return ds.data.unsqueeze(1).contiguous(), ds.targets.long()
