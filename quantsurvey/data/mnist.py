"""MNIST from torchvision's IDX files (`<root>/MNIST/raw/*-ubyte`), downloaded where allowed."""

from __future__ import annotations

import torch
import torchvision

from quantsurvey.data.base import TensorDataModule
from quantsurvey.errors import DataError

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class MNISTDataModule(TensorDataModule):
    num_classes = 10
    input_shape = (1, 28, 28)
    mean = (0.1307,)
    std = (0.3081,)
    default_augment = "none"

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.root / "MNIST" / "raw"
        missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
        if missing and not self.download:
            raise DataError(
                f"MNIST not found: {raw} lacks {', '.join(missing)}. Put the four uncompressed "
                f"IDX files there (torchvision's layout), point data.root (or QUANTSURVEY_DATA) "
                f"at a folder holding MNIST/raw/, or set data.download=true on a machine with "
                f"internet.")
        try:
            ds = torchvision.datasets.MNIST(str(self.root), train=train, download=bool(missing))
        except Exception as err:  # download refused, truncated or corrupt IDX file
            what = "could not be downloaded" if missing else "could not be read"
            raise DataError(
                f"MNIST {what} under {raw} ({type(err).__name__}: {err}). Put the four "
                f"uncompressed IDX files ({', '.join(MNIST_FILES)}) there, or point data.root "
                f"(or QUANTSURVEY_DATA) at a folder holding MNIST/raw/.") from None
        return ds.data.unsqueeze(1).contiguous(), ds.targets.long()
