"""CIFAR-10 from the pickled batches or an ImageFolder copy, cached as a uint8 tensor."""

import errno
import os
import pickle
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

import quantsurvey.data.cache as cache
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


def _dm(root, cache_dir, **kw):
    """A data module on the tiny copies of these tests: subsets, accepted knowingly."""
    kw.setdefault("allow_subset", True)
    return CIFAR10DataModule(root, cache_dir, download=False, val_size=kw.pop("val_size", 5),
                             **kw)


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


def test_truncated_png_names_the_file(tmp_path):
    write_image_folder(tmp_path)
    path = tmp_path / "cifar10" / "train" / "dog" / "dog_1.png"
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(DataError) as info:
        _dm(tmp_path, tmp_path / "cache").setup()
    msg = str(info.value)
    assert str(path) in msg and "replace it" in msg
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_image_of_another_size_names_the_file(tmp_path):
    write_image_folder(tmp_path)
    path = tmp_path / "cifar10" / "test" / "ship" / "ship_2.png"
    Image.fromarray(np.zeros((30, 32, 3), dtype=np.uint8)).save(path)
    with pytest.raises(DataError) as info:
        _dm(tmp_path, tmp_path / "cache").setup()
    assert str(path) in str(info.value) and "32x30" in str(info.value)


def test_damaged_pickled_batch_names_the_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": np.zeros((2, 3072), dtype=np.uint8), "labels": [0, 1]}, f)
    (folder / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError) as info:
        _dm(tmp_path, tmp_path / "c").setup()
    assert str(folder / "data_batch_3") in str(info.value)


def _assert_blames_the_cache(info, cache_dir):
    msg = str(info.value)
    assert str(cache_dir) in msg and "paths.cache_dir=" in msg
    assert "damaged" not in msg and "replace" not in msg.lower()


def test_read_only_cache_dir_is_blamed_not_the_data(tmp_path, monkeypatch):
    """A cache folder without write permission (chmod 0o500). Tests may run as root, where
    chmod does not stop writes: then the refusal is simulated by monkeypatching the cache's
    temp-file creation (tempfile.mkstemp in that folder) to raise PermissionError(EACCES)."""
    write_image_folder(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cache_dir.chmod(0o500)
    try:
        probe = cache_dir / "probe"
        try:
            probe.write_bytes(b"")
            probe.unlink()
            real_mkstemp = tempfile.mkstemp

            def refuse(*args, dir=None, **kwargs):
                if dir is not None and os.path.samefile(dir, cache_dir):
                    raise PermissionError(errno.EACCES, "Permission denied", str(dir))
                return real_mkstemp(*args, dir=dir, **kwargs)

            monkeypatch.setattr(cache.tempfile, "mkstemp", refuse)
        except PermissionError:
            pass  # not root: the chmod itself refuses the write
        with pytest.raises(DataError) as info:
            _dm(tmp_path, cache_dir).setup()
    finally:
        cache_dir.chmod(0o700)
    _assert_blames_the_cache(info, cache_dir)
    assert "not writable" in str(info.value)


@pytest.mark.parametrize("code, says", [(errno.EROFS, "read-only file system"),
                                        (errno.EPERM, "not writable"),
                                        (errno.ENOSPC, "Free at least"),
                                        (errno.EDQUOT, "Free at least")])
def test_unwritable_or_full_cache_is_blamed_not_the_data(tmp_path, monkeypatch, code, says):
    """A read-only file system or a full disk cannot be made in a test: torch.save, which
    writes the cache file, is monkeypatched to raise that OSError; the half-written temp file
    must be gone afterwards."""
    write_image_folder(tmp_path)

    def fail(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(cache.torch, "save", fail)
    with pytest.raises(DataError) as info:
        _dm(tmp_path, tmp_path / "cache").setup()
    _assert_blames_the_cache(info, tmp_path / "cache")
    assert says in str(info.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_subset_of_ten_per_class_is_refused_with_counts_unless_allowed(tmp_path):
    write_image_folder(tmp_path, per_class=10)
    with pytest.raises(DataError) as info:
        _dm(tmp_path, tmp_path / "cache", allow_subset=False).setup()
    msg = str(info.value)
    assert str(tmp_path / "cifar10" / "train") in msg
    assert "100 images" in msg and "50,000" in msg and "data.params.allow_subset=true" in msg
    dm = _dm(tmp_path, tmp_path / "cache", allow_subset=True)
    dm.setup()
    assert dm.split_sizes() == {"train": 95, "val": 5, "test": 100}


@pytest.mark.data
@pytest.mark.slow
def test_real_cifar10_matches_the_published_statistics(tmp_path):
    root = need_shared("cifar10")
    images, labels = _dm(root, tmp_path).load_split(train=True)
    assert images.shape == (50_000, 3, 32, 32)
    assert torch.bincount(labels).tolist() == [5000] * 10
    mean = images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=1e-3)
