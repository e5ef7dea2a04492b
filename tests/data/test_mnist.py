"""MNIST from IDX files: tiny files in the real format, the real copy when it is here."""

import struct
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from quantsurvey.config import validate_config
from quantsurvey.data import create_datamodule
from quantsurvey.data.mnist import MNIST_FILES, MNISTDataModule
from quantsurvey.errors import ConfigError, DataError
from tests.conftest import compose_cfg, need_shared


def write_idx(root, n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + labels.tobytes())
        data[prefix] = (images, labels)
    return data


def _dm(root, tmp_path, **kw):
    """A data module on the tiny files of `write_idx`: a subset, accepted knowingly."""
    kw.setdefault("val_size", 10)
    kw.setdefault("allow_subset", True)
    return MNISTDataModule(root, tmp_path / "cache", download=False, **kw)


def test_reads_idx_files_exactly(tmp_path):
    data = write_idx(tmp_path)
    dm = _dm(tmp_path, tmp_path)
    dm.setup()
    images, labels = dm._data["train"]
    assert torch.equal(images[:, 0], torch.from_numpy(data["train"][0]))
    assert torch.equal(labels, torch.from_numpy(data["train"][1]).long())
    assert dm.split_sizes() == {"train": 50, "val": 10, "test": 20}


def test_validation_split_is_seeded_and_disjoint(tmp_path):
    write_idx(tmp_path)
    a, b, c = (_dm(tmp_path, tmp_path, split_seed=s) for s in (0, 0, 1))
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.val_idx, b.val_idx)
    assert not torch.equal(a.val_idx, c.val_idx)
    assert set(a.val_idx.tolist()).isdisjoint(a.train_idx.tolist())
    assert len(set(a.val_idx.tolist()) | set(a.train_idx.tolist())) == 60


def test_batches_are_normalised_and_augmented_only_in_training(tmp_path):
    write_idx(tmp_path)
    dm = _dm(tmp_path, tmp_path, augment="shift", batch_size=8)
    dm.setup()
    x, y = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.uint8 and x.shape[1:] == (1, 28, 28)
    xn, yn = dm.on_after_batch_transfer((x, y), 0)  # no trainer: evaluation path, no augment
    expected = (x.float() / 255 - 0.1307) / 0.3081
    assert torch.allclose(xn, expected) and torch.equal(yn, y)

    # a trainer that is validating or testing: still not augmented
    for stage in ("validating", "testing"):
        dm.trainer = SimpleNamespace(training=False, current_epoch=0, global_rank=0,
                                     **{stage: True})
        assert torch.allclose(dm.on_after_batch_transfer((x, y), 0)[0], expected), stage

    # a training batch: every image shifted by at most `pad` (2) pixels with zero fill, then
    # normalised; the shift is drawn per image, so most images of the batch move
    dm.trainer = SimpleNamespace(training=True, current_epoch=0, global_rank=0)
    xt, yt = dm.on_after_batch_transfer((x, y), 0)
    assert xt.shape == x.shape and torch.equal(yt, y)
    padded = torch.nn.functional.pad(x.float() / 255, (2, 2, 2, 2))
    for i in range(len(x)):
        shifts = [(padded[i, :, dy:dy + 28, dx:dx + 28] - 0.1307) / 0.3081
                  for dy in range(5) for dx in range(5)]
        assert any(torch.allclose(xt[i], s, atol=1e-5) for s in shifts), i
    moved = ~torch.isclose(xt, expected).flatten(1).all(1)
    assert moved.sum() >= len(x) // 2
    # the draws depend on (shuffle_seed, epoch) only: the same epoch gives the same batch
    dm._aug_epoch = None
    assert torch.equal(dm.on_after_batch_transfer((x, y), 0)[0], xt)


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(DataError) as info:
        _dm(tmp_path, tmp_path).setup()
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)
    assert MNIST_FILES[0] in str(info.value)


def test_truncated_file_is_a_clear_error(tmp_path):
    write_idx(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="could not be read"):
        _dm(tmp_path, tmp_path).setup()


@pytest.mark.parametrize("name", MNIST_FILES)
def test_wrong_magic_number_names_the_damaged_file(tmp_path, name):
    write_idx(tmp_path)
    path = tmp_path / "MNIST" / "raw" / name
    path.write_bytes(struct.pack(">I", 0x12345678) + path.read_bytes()[4:])
    with pytest.raises(DataError) as info:
        _dm(tmp_path, tmp_path).setup()
    msg = str(info.value)
    assert str(path) in msg and "magic number" in msg and "Replace" in msg
    assert "AssertionError" not in msg
    assert all(other not in msg for other in MNIST_FILES if other != name)


def test_gzipped_file_says_to_decompress(tmp_path):
    import gzip

    write_idx(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    path.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataError, match="gunzip") as info:
        _dm(tmp_path, tmp_path).setup()
    assert str(path) in str(info.value)


def test_image_and_label_counts_must_agree(tmp_path):
    write_idx(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.write_bytes(struct.pack(">II", 2049, 19) + labels.read_bytes()[8:27])
    with pytest.raises(DataError) as info:
        _dm(tmp_path, tmp_path).setup()
    assert str(labels) in str(info.value) and str(raw / "t10k-images-idx3-ubyte") in \
        str(info.value)


def test_subset_is_refused_with_counts_unless_allowed(tmp_path):
    write_idx(tmp_path)
    with pytest.raises(DataError) as info:
        _dm(tmp_path, tmp_path, allow_subset=False).setup()
    msg = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in msg
    assert "60 images" in msg and "60,000" in msg and "data.params.allow_subset=true" in msg
    dm = _dm(tmp_path, tmp_path, allow_subset=True)
    dm.setup()
    assert dm.split_sizes() == {"train": 50, "val": 10, "test": 20}


def test_allow_subset_comes_through_data_params(tmp_path):
    write_idx(tmp_path)
    rc = validate_config(compose_cfg([
        "data=mnist", f"paths.data_dir={tmp_path}", f"paths.cache_dir={tmp_path / 'c'}",
        "data.download=false", "data.val_size=10", "+data.params.allow_subset=true"]))
    dm = create_datamodule(rc.data.name, root=rc.data.root, cache_dir=rc.paths.cache_dir,
                           val_size=rc.data.val_size, download=rc.data.download,
                           **rc.data.params)
    dm.setup()
    assert dm.allow_subset is True and dm.split_sizes()["test"] == 20
    with pytest.raises(ConfigError, match="allow_subset"):
        create_datamodule("mnist", root=tmp_path, cache_dir=tmp_path, allow_subset="yes")


@pytest.mark.data
def test_real_mnist(tmp_path):
    root = need_shared("MNIST", "raw")
    dm = MNISTDataModule(root, tmp_path, download=False)  # allow_subset=False: full counts
    dm.setup()
    assert dm.split_sizes() == {"train": 55_000, "val": 5_000, "test": 10_000}
    images, labels = dm._data["train"]
    assert labels[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first training labels
    assert abs(images.float().mean().item() / 255 - 0.1307) < 1e-3
