"""CIFAR-10 from the pickled batches or an ImageFolder copy, cached as a uint8 tensor."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import quantsurvey.data.cifar10 as cifar
from quantsurvey.data.cifar10 import CIFAR10_CLASSES, CIFAR10DataModule
from quantsurvey.errors import DataError
from tests.conftest import need_shared


def write_image_folder(root, per_class=3, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split in ("train", "test"):
        for c in CIFAR10_CLASSES:
            folder = root / "cifar10" / split / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(a).save(folder / f"{c}_{i}.png")
                arrays[(split, c, i)] = a
    return arrays


def _dm(root, cache, **kw):
    return CIFAR10DataModule(root, cache, download=False, val_size=kw.pop("val_size", 5), **kw)


def test_image_folder_decodes_losslessly_in_label_order(tmp_path):
    arrays = write_image_folder(tmp_path)
    dm = _dm(tmp_path, tmp_path / "cache")
    images, labels = dm.load_split(train=True)
    assert images.shape == (30, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]
    assert torch.equal(images[4], torch.from_numpy(arrays[("train", "automobile", 1)])
                       .permute(2, 0, 1))


def test_decoded_folder_is_cached(tmp_path, monkeypatch):
    write_image_folder(tmp_path)
    first = _dm(tmp_path, tmp_path / "cache").load_split(train=False)
    assert len(list((tmp_path / "cache").glob("cifar10-test-*.pt"))) == 1

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cifar, "decode_image_folder", boom)
    second = _dm(tmp_path, tmp_path / "cache").load_split(train=False)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_reads_torchvision_pickled_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": [1, 2, 3, 4]}, f)
    images, labels = _dm(tmp_path, tmp_path / "c").load_split(train=True)
    assert images.shape == (20, 3, 32, 32) and labels.tolist() == [1, 2, 3, 4] * 5
    last = np.frombuffer(pickle.load(open(folder / "data_batch_5", "rb"))["data"].tobytes(),
                         dtype=np.uint8)
    assert torch.equal(images[-4:].flatten(), torch.from_numpy(last.copy()))


def test_missing_copy_names_both_layouts(tmp_path):
    with pytest.raises(DataError) as info:
        _dm(tmp_path, tmp_path / "c").setup()
    assert "cifar-10-batches-py" in str(info.value) and "cifar10/{train,test}" in str(info.value)


def test_wrong_class_folders_are_a_clear_error(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / "cifar10" / "train" / "truck").rename(tmp_path / "cifar10" / "train" / "lorry")
    with pytest.raises(DataError, match="class folders"):
        _dm(tmp_path, tmp_path / "c").setup()


@pytest.mark.data
@pytest.mark.slow
def test_real_cifar10_matches_the_published_statistics(tmp_path):
    root = need_shared("cifar10")
    images, labels = _dm(root, tmp_path).load_split(train=True)
    assert images.shape == (50_000, 3, 32, 32)
    assert torch.bincount(labels).tolist() == [5000] * 10
    mean = images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=1e-3)
