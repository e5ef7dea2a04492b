"""In-memory image classification data module: uint8 tensors, seeded validation split,
batch-wise normalisation and augmentation after the batch reaches the device."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from quantsurvey.data.augment import AUGMENTATIONS, augment_batch
from quantsurvey.data.sampler import EpochBatchSampler
from quantsurvey.errors import ConfigError, DataError


class _IndexedTensors(torch.utils.data.Dataset):
    """Dataset whose item is a whole batch: `ds[idx_tensor] -> (images, labels)`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[idx], self.labels[idx]


class TensorDataModule(pl.LightningDataModule):
    """Subclasses set `num_classes`, `input_shape`, `mean`, `std` and implement `load_split`."""

    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    default_augment: str = "none"

    def __init__(self, root: str | Path, cache_dir: str | Path, batch_size: int = 128,
                 eval_batch_size: int = 1000, val_size: int = 5000, split_seed: int = 0,
                 augment: str | None = None, pad: int = 2, download: bool = True,
                 num_workers: int = 0, shuffle_seed: int = 0):
        super().__init__()
        if augment is not None and augment not in AUGMENTATIONS:
            raise ConfigError(f"data.augment={augment!r} is not allowed; choose one of: "
                              f"{', '.join(AUGMENTATIONS)}.")
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.augment = self.default_augment if augment is None else augment
        self.pad = pad
        self.download = download
        self.shuffle_seed = shuffle_seed
        self._data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._aug_gen = torch.Generator()
        self._aug_epoch: int | None = None

    # -- subclasses ---------------------------------------------------------------------------
    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images (N, C, H, W), int64 labels (N,)) of the official train or test split."""
        raise NotImplementedError

    # -- Lightning ------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        pass  # loading happens in setup(); downloads are triggered there when allowed

    def setup(self, stage: str | None = None) -> None:
        if "train" not in self._data:
            images, labels = self._checked(*self.load_split(train=True), "train")
            if not 0 < self.val_size < len(labels):
                raise ConfigError(
                    f"data.val_size={self.val_size} must be between 1 and {len(labels) - 1} "
                    f"(the training split has {len(labels)} images)")
            gen = torch.Generator().manual_seed(self.split_seed)
            perm = torch.randperm(len(labels), generator=gen)
            self.val_idx, self.train_idx = perm[: self.val_size], perm[self.val_size :]
            self._data["train"] = (images, labels)
        if "test" not in self._data:
            self._data["test"] = self._checked(*self.load_split(train=False), "test")

    def _checked(self, images: torch.Tensor, labels: torch.Tensor, split: str):
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != tuple(self.input_shape):
            raise DataError(f"{type(self).__name__} {split} images have shape "
                            f"{tuple(images.shape)} and dtype {images.dtype}; expected "
                            f"(N, {', '.join(map(str, self.input_shape))}) uint8")
        if len(labels) != len(images) or int(labels.min()) < 0 or \
                int(labels.max()) >= self.num_classes:
            raise DataError(f"{type(self).__name__} {split} labels are inconsistent: "
                            f"{len(labels)} labels for {len(images)} images, range "
                            f"[{int(labels.min())}, {int(labels.max())}] for "
                            f"{self.num_classes} classes")
        return images, labels.long()

    def _loader(self, split: str, indices: torch.Tensor, shuffle: bool) -> DataLoader:
        images, labels = self._data[split]
        size = self.batch_size if shuffle else self.eval_batch_size
        sampler = EpochBatchSampler(indices, size, shuffle=shuffle, seed=self.shuffle_seed)
        return DataLoader(_IndexedTensors(images, labels), batch_size=None, sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.train_idx, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("train", self.val_idx, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", torch.arange(len(self._data["test"][1])), shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        x = x.float().div_(255.0)
        if self.trainer is not None and self.trainer.training:
            x = augment_batch(x, self.augment, self.pad, self._augment_generator())
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std, y

    def _augment_generator(self) -> torch.Generator:
        # reseeded from (seed, epoch): a run resumed at epoch k draws what the full run drew
        epoch = self.trainer.current_epoch
        if self._aug_epoch != epoch:
            self._aug_gen.manual_seed(self.shuffle_seed * 1_000_003 + epoch)
            self._aug_epoch = epoch
        return self._aug_gen

    def split_sizes(self) -> dict[str, int]:
        return {"train": len(self.train_idx), "val": len(self.val_idx),
                "test": len(self._data["test"][1])}
