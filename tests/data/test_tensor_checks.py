"""What every in-memory data set checks when it loads a split: images present, in the declared
shape and dtype, labels consistent with them and with the class count, the published split
size (unless a subset is allowed), and a validation split that leaves training images; the
split itself is a seeded partition of the training set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from quantsurvey.data.base import TensorDataModule
from quantsurvey.errors import ConfigError, DataError


class _Given(TensorDataModule):
    """A data set whose splits are the tensors given; its files are named for the messages."""

    num_classes, input_shape, mean, std, title = 3, (1, 2, 2), (0.5,), (0.5,), "Tiny"

    def __init__(self, train, test, full_sizes=None, **kw):
        super().__init__("/nowhere", "/nowhere", **kw)
        self.given, self.full_sizes = {True: train, False: test}, full_sizes

    def load_split(self, train: bool):
        self._sources["train" if train else "test"] = Path("/data") / f"{train}.bin"
        return self.given[train]


def _split(n: int, labels=None):
    images = torch.randint(0, 256, (n, 1, 2, 2), dtype=torch.uint8)
    return images, torch.arange(n) % 3 if labels is None else torch.tensor(labels)


def test_a_good_split_loads_and_validation_is_a_seeded_partition_of_training():
    dm = _Given(_split(10), _split(4), val_size=3, split_seed=5)
    dm.setup()
    assert sorted(torch.cat([dm.val_idx, dm.train_idx]).tolist()) == list(range(10))
    assert len(dm.val_idx) == 3 and dm.split_sizes() == {"train": 7, "val": 3, "test": 4}
    again = _Given(*[(x.clone(), y.clone()) for x, y in (dm._data["train"], dm._data["test"])],
                   val_size=3, split_seed=5)
    again.setup()
    assert torch.equal(again.val_idx, dm.val_idx)
    other = _Given(_split(10), _split(4), val_size=3, split_seed=6)
    other.setup()
    assert not torch.equal(other.val_idx, dm.val_idx)
    assert dm._data["train"][1].dtype == torch.int64
    for size in (1, 9):  # the edges: one image either side
        _Given(_split(10), _split(4), val_size=size).setup()


@pytest.mark.parametrize("val_size", [0, 10, -1])
def test_a_validation_split_that_leaves_no_training_image_or_none_is_refused(val_size):
    with pytest.raises(ConfigError, match=rf"data.val_size={val_size} must be between 1 and 9 "
                                          r"\(the training split has 10 images\)"):
        _Given(_split(10), _split(4), val_size=val_size).setup()


@pytest.mark.parametrize("train,test,message", [
    (_split(10), _split(0), r"Tiny test split at /data/False.bin holds no images"),
    ((torch.zeros(10, 1, 2, 2), torch.zeros(10, dtype=torch.long)), _split(4),
     r"Tiny train images read from /data/True.bin have shape \(10, 1, 2, 2\) and dtype "
     r"torch.float32; expected \(N, 1, 2, 2\) uint8"),
    (_split(10), (torch.zeros(4, 1, 3, 2, dtype=torch.uint8), torch.zeros(4)),
     r"Tiny test images read from /data/False.bin have shape \(4, 1, 3, 2\)"),
    (_split(10, [0] * 9), _split(4), r"inconsistent: 9 labels for 10 images"),
    (_split(10), _split(4, [0, 1, 2, 3]), r"test labels read from /data/False.bin are "
                                          r"inconsistent: 4 labels for 4 images, range \[0, 3\] "
                                          r"for 3 classes"),
    (_split(10, [0] * 9 + [-1]), _split(4), r"range \[-1, 0\] for 3 classes"),
], ids=["empty", "float images", "wrong shape", "labels missing", "label too large",
        "negative label"])
def test_a_damaged_split_is_one_data_error_naming_its_file(train, test, message):
    with pytest.raises(DataError, match=message):
        _Given(train, test, val_size=2).setup()


def test_a_known_data_set_must_hold_its_published_size_unless_a_subset_is_allowed():
    full = {"train": 10, "test": 5}
    with pytest.raises(DataError, match=r"Tiny test split at /data/False.bin has 4 images; the "
                                        r"full Tiny test split has 5, so this copy is "
                                        r"incomplete"):
        _Given(_split(10), _split(4), full_sizes=full, val_size=2).setup()
    with pytest.raises(DataError, match="has 11 images; the full Tiny train split has 10, so "
                                        "this copy holds extra images"):
        _Given(_split(11), _split(5), full_sizes=full, val_size=2).setup()
    _Given(_split(10), _split(5), full_sizes=full, val_size=2).setup()
    _Given(_split(10), _split(4), full_sizes=full, val_size=2, allow_subset=True).setup()
    with pytest.raises(ConfigError, match="allow_subset='yes' is not allowed; choose true or "
                                          "false"):
        _Given(_split(10), _split(4), allow_subset="yes")
