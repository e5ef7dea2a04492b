"""SVHN (.mat) and ImageNet (ImageFolder JPEG) on small files in the real formats."""

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from quantsurvey.data.imagenet import IMAGEWOOF_WNIDS, ImageNetDataModule, ImagewoofDataModule
from quantsurvey.data.svhn import SVHNDataModule
from quantsurvey.data.synthetic import SyntheticDataModule
from quantsurvey.errors import DataError
from tests.conftest import need_shared


def test_svhn_mat_layout_and_label_ten_is_zero(tmp_path):
    folder = tmp_path / "SVHN"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 5)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [2], [3], [4], [5], [6], [7], [8], [9], [10], [1]][:n])
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        if split == "train":
            x_train = x
    with pytest.raises(DataError) as info:
        SVHNDataModule(tmp_path, tmp_path / "c", val_size=2, download=False).setup()
    assert str(folder / "train_32x32.mat") in str(info.value)
    assert "12 images" in str(info.value) and "73,257" in str(info.value)
    dm = SVHNDataModule(tmp_path, tmp_path / "c", val_size=2, download=False, allow_subset=True)
    dm.setup()
    images, labels = dm._data["train"]
    assert labels[:3].tolist() == [0, 1, 2]
    assert torch.equal(images[3], torch.from_numpy(x_train[:, :, :, 3]).permute(2, 0, 1))
    assert dm.split_sizes() == {"train": 10, "val": 2, "test": 5}


def test_svhn_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="train_32x32.mat"):
        SVHNDataModule(tmp_path, tmp_path, download=False).setup()
    (tmp_path / "SVHN").mkdir()
    (tmp_path / "SVHN" / "train_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="could not be read"):
        SVHNDataModule(tmp_path, tmp_path, download=False).setup()


def write_imagenet(root, classes=3, per_class=4, wnids=None, folder="imagenet"):
    rng = np.random.default_rng(0)
    wnids = wnids or [f"n0000000{c}" for c in range(classes)]
    for split in ("train", "val"):
        for wnid in wnids:
            folder_ = root / folder / split / wnid
            folder_.mkdir(parents=True)
            for i in range(per_class):
                size = (rng.integers(240, 320), rng.integers(240, 320), 3)
                Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(
                    folder_ / f"img_{i}.JPEG", format="JPEG")


def test_imagenet_folder_resize_256_crop_224(tmp_path):
    write_imagenet(tmp_path)
    dm = ImageNetDataModule(tmp_path, tmp_path, batch_size=4, eval_batch_size=5, val_size=2,
                            num_workers=0, num_classes=3)
    dm.setup()
    assert dm.split_sizes() == {"train": 10, "val": 2, "test": 12}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (5, 3, 224, 224) and y.tolist() == [0, 0, 0, 0, 1]


def test_imagenet_missing_or_wrong_class_count(tmp_path):
    with pytest.raises(DataError, match="cannot be downloaded automatically"):
        ImageNetDataModule(tmp_path, tmp_path).setup()
    write_imagenet(tmp_path)
    with pytest.raises(DataError, match="3 class folders; the model expects 1000"):
        ImageNetDataModule(tmp_path, tmp_path, val_size=2).setup()


def test_imagewoof_subset_is_refused_with_counts_unless_allowed(tmp_path):
    """Imagewoof is known by its ten wnids (whatever its folder is called): its splits must
    hold the official 9,025 / 3,929 images. Tiny sets of other classes are not checked (above)."""
    write_imagenet(tmp_path, per_class=1, wnids=sorted(IMAGEWOOF_WNIDS), folder="woof")
    kw = dict(val_size=2, num_workers=0, num_classes=10, folder="woof")
    with pytest.raises(DataError) as info:
        ImageNetDataModule(tmp_path, tmp_path, **kw).setup()
    msg = str(info.value)
    assert str(tmp_path / "woof" / "train") in msg and "Imagewoof" in msg
    assert "10 images" in msg and "9,025" in msg and "data.params.allow_subset=true" in msg
    dm = ImageNetDataModule(tmp_path, tmp_path, allow_subset=True, **kw)
    dm.setup()
    assert dm.split_sizes() == {"train": 8, "val": 2, "test": 10}


@pytest.mark.parametrize("workers", [0, 1], ids=["in process", "in a loader worker"])
def test_a_truncated_jpeg_met_mid_epoch_is_named(tmp_path, workers):
    """Images are decoded lazily: a damaged one among thousands surfaces mid-training, and
    used to say `image file is truncated` without the file (from a worker: with its traceback)."""
    write_imagenet(tmp_path)
    bad = tmp_path / "imagenet" / "train" / "n00000001" / "img_2.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])
    dm = ImageNetDataModule(tmp_path, tmp_path, batch_size=12, val_size=1, num_workers=workers,
                            num_classes=3)
    dm.setup()  # the folder scan does not open the images
    with pytest.raises(DataError) as info:
        list(dm.train_dataloader())
    message = info.value.user_message()
    assert message.startswith(f"image {bad} could not be decoded"), message
    assert "Traceback" not in message and "resume=true" in message


@pytest.mark.data
def test_real_imagewoof_has_its_full_counts(tmp_path):
    root = need_shared("imagewoof2-128")
    dm = ImagewoofDataModule(root, tmp_path, val_size=500, num_workers=0)
    dm.setup()  # allow_subset=False: the 9,025 / 3,929 check passes
    assert dm.split_sizes() == {"train": 8_525, "val": 500, "test": 3_929}


def test_synthetic_is_deterministic_and_learnable_shape(tmp_path):
    a = SyntheticDataModule(tmp_path, tmp_path, input_shape=[3, 8, 8], num_classes=4)
    b = SyntheticDataModule(tmp_path, tmp_path, input_shape=[3, 8, 8], num_classes=4)
    a.setup(), b.setup()
    assert torch.equal(a._data["train"][0], b._data["train"][0])
    assert a._data["train"][0].shape == (512, 3, 8, 8) and len(a.mean) == 3
