"""In-memory image classification data module: uint8 tensors, seeded validation split,
batch-wise normalisation and augmentation after the batch reaches the device.

On an accelerator the uint8 tensors themselves move to the device once (CIFAR-10's 60,000
images are 184 MB): batches are gathered, augmented and normalised there, so an epoch copies
only the index tensors. The random draws stay on the CPU generators, so a run sees the same
batches and augmentations on every device."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from quantsurvey.data.augment import AUGMENTATIONS, augment_batch
from quantsurvey.data.sampler import EpochBatchSampler
from quantsurvey.distributed import check_global_batch, rank_seed
from quantsurvey.errors import ConfigError, DataError


def check_full_size(dataset: str, split: str, where: Path, found: int, expected: int,
                    allow_subset: bool) -> None:
    """A known data set's split must hold its published number of images, unless the user set
    `data.params.allow_subset=true`: a copy that lost files would otherwise train and report
    figures not comparable with the papers'. (`allow_subset` is a keyword of the data modules,
    absent from conf/data/*.yaml so that the recipe, `data.params`, of past runs is unchanged;
    Hydra therefore needs the `+` to add it on the command line.)"""
    if found == expected or allow_subset:
        return
    state = "is incomplete" if found < expected else "holds extra images"
    raise DataError(
        f"{dataset} {split} split at {where} has {found:,} images; the full {dataset} {split} "
        f"split has {expected:,}, so this copy {state}. Replace it with the complete data set, "
        f"or set data.params.allow_subset=true (on the command line "
        f"+data.params.allow_subset=true) to use these {found:,} images knowingly.")


def check_allow_subset(allow_subset) -> bool:
    if not isinstance(allow_subset, bool):
        raise ConfigError(f"data.params.allow_subset={allow_subset!r} is not allowed; choose "
                          f"true or false.")
    return allow_subset


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
    # the published size of each split ("train", "test"); None: not a known data set, unchecked
    full_sizes: dict[str, int] | None = None
    title: str = ""  # the data set's name in messages; default: the class name

    def __init__(self, root: str | Path, cache_dir: str | Path, batch_size: int = 128,
                 eval_batch_size: int = 1000, val_size: int = 5000, split_seed: int = 0,
                 augment: str | None = None, pad: int = 2, download: bool = True,
                 num_workers: int = 0, shuffle_seed: int = 0, allow_subset: bool = False):
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
        self.allow_subset = check_allow_subset(allow_subset)
        self._sources: dict[str, Path] = {}  # split -> the file or folder load_split read
        self._data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._aug_gen = torch.Generator()
        self._aug_epoch: int | None = None

    # -- subclasses ---------------------------------------------------------------------------
    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images (N, C, H, W), int64 labels (N,)) of the official train or test split;
        records in `self._sources[split]` the file or folder it read, for error messages."""
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
        where = self._sources.get(split, self.root)
        if len(labels) == 0:
            raise DataError(f"{self.dataset_name} {split} split at {where} holds no images: "
                            f"point data.root at a complete copy of the data set.")
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != tuple(self.input_shape):
            raise DataError(f"{self.dataset_name} {split} images read from {where} have "
                            f"shape {tuple(images.shape)} and dtype {images.dtype}; expected "
                            f"(N, {', '.join(map(str, self.input_shape))}) uint8: replace "
                            f"them with the data set's own files.")
        if len(labels) != len(images) or int(labels.min()) < 0 or \
                int(labels.max()) >= self.num_classes:
            raise DataError(f"{self.dataset_name} {split} labels read from {where} are "
                            f"inconsistent: {len(labels)} labels for {len(images)} images, range "
                            f"[{int(labels.min())}, {int(labels.max())}] for "
                            f"{self.num_classes} classes: replace them with the data set's own "
                            f"files.")
        if self.full_sizes is not None:
            check_full_size(self.dataset_name, split, where, len(labels), self.full_sizes[split],
                            self.allow_subset)
        return images, labels.long()

    @property
    def dataset_name(self) -> str:
        return self.title or type(self).__name__.removesuffix("DataModule")

    def _resident(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's tensors, moved once to the trainer's accelerator if there is one."""
        images, labels = self._data[split]
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        if device is not None and device.type != "cpu" and images.device != device:
            images, labels = images.to(device), labels.to(device)
            self._data[split] = (images, labels)
        return images, labels

    def _shard(self) -> tuple[int, int]:
        """(rank, processes) of a data-parallel run; (0, 1) otherwise."""
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return 0, 1
        check_global_batch(self.batch_size, trainer.world_size)
        return trainer.global_rank, trainer.world_size

    def _loader(self, split: str, indices: torch.Tensor, shuffle: bool) -> DataLoader:
        images, labels = self._resident(split)
        size = self.batch_size if shuffle else self.eval_batch_size
        rank, world = self._shard()
        sampler = EpochBatchSampler(indices, size, shuffle=shuffle, seed=self.shuffle_seed,
                                    rank=rank, world=world)
        return DataLoader(_IndexedTensors(images, labels), batch_size=None, sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.train_idx, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("train", self.val_idx, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", torch.arange(len(self._data["test"][1])), shuffle=False)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """(images, labels) straight to the device: Lightning's generic walk over the batch
        costs more than a small model's step; on the CPU nothing moves at all."""
        x, y = batch
        if x.device == device:
            return batch
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        x = x.float().div_(255.0)
        if self.trainer is not None and self.trainer.training:
            x = augment_batch(x, self.augment, self.pad, self._augment_generator())
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std, y

    def _augment_generator(self) -> torch.Generator:
        # reseeded from (seed, epoch): a run resumed at epoch k draws what the full run drew;
        # each process of a data-parallel run draws its own (rank 0: a single process's draws)
        epoch = self.trainer.current_epoch
        if self._aug_epoch != epoch:
            self._aug_gen.manual_seed(rank_seed(self.shuffle_seed * 1_000_003 + epoch,
                                                self.trainer.global_rank))
            self._aug_epoch = epoch
        return self._aug_gen

    def split_sizes(self) -> dict[str, int]:
        return {"train": len(self.train_idx), "val": len(self.val_idx),
                "test": len(self._data["test"][1])}
