"""ImageNet (ILSVRC-2012) as ImageFolder `<root>/imagenet/{train,val}/<wnid>/*.JPEG`:
resize 256, random 224 crop + flip for training, centre 224 crop for evaluation. The official
val set is our test set; validation is carved from train with a seeded generator. Subsets in
the same layout (e.g. Imagewoof: `data.params.folder=imagewoof2-128`, `num_classes=10`) are
read the same way."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from quantsurvey.data.base import check_allow_subset, check_full_size
from quantsurvey.data.sampler import EpochBatchSampler
from quantsurvey.errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# the official imagewoof2 split: 10 dog classes of ImageNet, in ImageNet's layout and wnids
IMAGEWOOF_WNIDS = frozenset({"n02086240", "n02087394", "n02088364", "n02089973", "n02093754",
                             "n02096294", "n02099601", "n02105641", "n02111889", "n02115641"})
FULL_SIZES = {"ImageNet": {"train": 1_281_167, "val": 50_000},
              "Imagewoof": {"train": 9_025, "val": 3_929}}


def known_dataset(classes: list[str]) -> str | None:
    """Which known data set a folder with these class folders is, by its classes.

    Imagewoof is recognised by its ten wnids. A 1000-class folder is taken to be full
    ILSVRC-2012: a subset with all 1000 classes but fewer images cannot be told from it by
    the folders, so it fails the count check and needs allow_subset. Any other class count is
    a subset we do not know (Imagenette, the tests' tiny sets, ...): its size is not checked."""
    if set(classes) == IMAGEWOOF_WNIDS:
        return "Imagewoof"
    if len(classes) == 1000:
        return "ImageNet"
    return None


def load_rgb(path: str) -> Image.Image:
    """torchvision's PIL loader, naming the file when it cannot be decoded: images are decoded
    lazily in the loader, so a damaged one surfaces mid-training, among many thousands."""
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:  # PIL: UnidentifiedImageError is an OSError
        raise DataError(
            f"image {path} could not be decoded ({err}): it is truncated or corrupt. Replace it "
            f"with an intact copy and rerun with resume=true (or delete it and accept the "
            f"smaller set with +data.params.allow_subset=true).") from None


class ImageNetDataModule(pl.LightningDataModule):
    num_classes = 1000

    def __init__(self, root: str | Path, cache_dir: str | Path, batch_size: int = 256,
                 eval_batch_size: int = 256, val_size: int = 10000, split_seed: int = 0,
                 augment: str | None = None, pad: int = 0, download: bool = False,
                 num_workers: int = 8, shuffle_seed: int = 0, resize: int = 256,
                 crop: int = 224, num_classes: int = 1000, folder: str = "imagenet",
                 allow_subset: bool = False):
        super().__init__()
        self.root = Path(root).expanduser() / folder
        self.allow_subset = check_allow_subset(allow_subset)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.split_seed, self.shuffle_seed = val_size, split_seed, shuffle_seed
        self.num_workers = num_workers
        self.num_classes = num_classes
        self.input_shape = (3, crop, crop)
        norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.train_tf = transforms.Compose([
            transforms.Resize(resize), transforms.RandomCrop(crop),
            transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm])
        self.eval_tf = transforms.Compose([
            transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor(), norm])

    def _folder(self, split: str, tf) -> datasets.ImageFolder:
        path = self.root / split
        if not path.is_dir():
            raise DataError(
                f"ImageNet not found: {path} is missing. ImageNet cannot be downloaded "
                f"automatically: put the ILSVRC-2012 train/ and val/ folders, one sub-folder per "
                f"class (wnid), under {self.root}, and point data.root (or QUANTSURVEY_DATA) at "
                f"{self.root.parent}.")
        try:
            ds = datasets.ImageFolder(str(path), transform=tf, loader=load_rgb)
        except (FileNotFoundError, OSError) as err:
            raise DataError(f"ImageNet {split} under {path} could not be read: {err}") from None
        if len(ds.classes) != self.num_classes:
            raise DataError(f"{path} has {len(ds.classes)} class folders; the model expects "
                            f"{self.num_classes} (set data.params.num_classes to match).")
        known = known_dataset(ds.classes)
        if known is not None:
            check_full_size(known, split, path, len(ds), FULL_SIZES[known][split],
                            self.allow_subset)
        return ds

    def setup(self, stage: str | None = None) -> None:
        train_aug = self._folder("train", self.train_tf)
        train_eval = datasets.ImageFolder(str(self.root / "train"), transform=self.eval_tf,
                                         loader=load_rgb)
        n = len(train_aug)
        if not 0 < self.val_size < n:
            raise ConfigError(f"data.val_size={self.val_size} must be between 1 and {n - 1}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        self.val_idx, self.train_idx = perm[: self.val_size], perm[self.val_size :]
        self.train_set = train_aug
        self.val_set = Subset(train_eval, self.val_idx.tolist())
        self.test_set = self._folder("val", self.eval_tf)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochBatchSampler(self.train_idx, self.batch_size, True, self.shuffle_seed)
        return DataLoader(self.train_set, batch_sampler=sampler, num_workers=self.num_workers,
                          pin_memory=torch.cuda.is_available(),
                          persistent_workers=self.num_workers > 0)

    def _eval_loader(self, ds) -> DataLoader:
        return DataLoader(ds, batch_size=self.eval_batch_size, num_workers=self.num_workers,
                          pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)

    def split_sizes(self) -> dict[str, int]:
        return {"train": len(self.train_idx), "val": len(self.val_idx),
                "test": len(self.test_set)}


class ImagewoofDataModule(ImageNetDataModule):
    """Imagewoof (imagewoof2: 10 dog classes of ImageNet, 9,025 / 3,929 images) read like
    ImageNet, under its own data set name so that its runs are filed as `<model>_imagewoof`,
    never among ImageNet's. `<root>/imagewoof2-128/{train,val}/<wnid>/*.JPEG` by default."""

    def __init__(self, root: str | Path, cache_dir: str | Path, batch_size: int = 64,
                 eval_batch_size: int = 256, val_size: int = 1000, split_seed: int = 0,
                 augment: str | None = None, pad: int = 0, download: bool = False,
                 num_workers: int = 4, shuffle_seed: int = 0, resize: int = 128,
                 crop: int = 112, num_classes: int = 10, folder: str = "imagewoof2-128",
                 allow_subset: bool = False):
        args = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__(**args)
