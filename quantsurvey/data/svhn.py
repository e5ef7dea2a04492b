"""SVHN cropped digits from torchvision's .mat files (`<root>/SVHN/{train,test}_32x32.mat`)."""

from __future__ import annotations

import numpy as np
import scipy.io
import torch
import torchvision

from quantsurvey.data.base import TensorDataModule
from quantsurvey.errors import DataError


def read_svhn_mat(path) -> tuple[torch.Tensor, torch.Tensor]:
    """X is (32, 32, 3, N) uint8, y is (N, 1) with label 10 standing for the digit 0."""
    mat = scipy.io.loadmat(str(path))
    images = torch.from_numpy(np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1)))
    labels = torch.from_numpy(mat["y"].astype(np.int64).reshape(-1) % 10)
    return images, labels


class SVHNDataModule(TensorDataModule):
    num_classes = 10
    input_shape = (3, 32, 32)
    mean = (0.4377, 0.4438, 0.4728)
    std = (0.1980, 0.2010, 0.1970)
    default_augment = "none"
    full_sizes = {"train": 73_257, "test": 26_032}

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        split = "train" if train else "test"
        folder = self.root / "SVHN"
        path = folder / f"{split}_32x32.mat"
        if not path.is_file():
            if not self.download:
                raise DataError(f"SVHN not found: {path} is missing. Put torchvision's "
                                f"{split}_32x32.mat there, point data.root (or QUANTSURVEY_DATA) "
                                f"at a folder holding SVHN/, or set data.download=true on a "
                                f"machine with internet.")
            try:
                torchvision.datasets.SVHN(str(folder), split=split, download=True)
            except Exception as err:
                raise DataError(f"SVHN could not be downloaded into {folder} "
                                f"({type(err).__name__}: {err}); put {split}_32x32.mat there "
                                f"by hand.") from None
        self._sources[split] = path
        try:
            return read_svhn_mat(path)
        except Exception as err:
            raise DataError(f"SVHN file {path} could not be read ({type(err).__name__}: {err}); "
                            f"replace it with torchvision's {split}_32x32.mat.") from None
