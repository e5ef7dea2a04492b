"""What the data module's loaders hand to a run: training, validation and test draw from their
own splits (no training image is ever validated on), and only training batches are augmented,
checked through the loaders and a real Lightning fit/validate/test."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from quantsurvey.data.synthetic import SyntheticDataModule


def _image_keys(images: torch.Tensor) -> dict[bytes, int]:
    keys = {img.numpy().tobytes(): i for i, img in enumerate(images)}
    assert len(keys) == len(images)  # the synthetic images are all different: keys identify them
    return keys


def _drawn(loader, keys: dict[bytes, int]) -> list[int]:
    """The indices (into the split's images) of every image the loader yields, in order."""
    out = []
    for x, _ in loader:
        assert x.dtype == torch.uint8
        out += [keys[img.numpy().tobytes()] for img in x]
    return out


def test_each_loader_draws_only_from_its_own_split(tmp_path):
    dm = SyntheticDataModule(tmp_path, tmp_path, batch_size=50, eval_batch_size=30,
                             val_size=100, train_size=400, test_size=70, split_seed=3)
    dm.setup()
    train_images, train_labels = dm._data["train"]
    keys = _image_keys(train_images)

    train = _drawn(dm.train_dataloader(), keys)
    val = _drawn(dm.val_dataloader(), keys)
    # every training image once per epoch, every validation image once, in a fixed order
    assert sorted(train) == sorted(dm.train_idx.tolist()) and len(train) == 300
    assert val == dm.val_idx.tolist() and len(set(val)) == 100
    assert set(train).isdisjoint(val)  # no validation image is ever trained on
    assert sorted(train + val) == list(range(400))
    # labels travel with their images
    for x, y in dm.val_dataloader():
        assert torch.equal(y, train_labels[[keys[i.numpy().tobytes()] for i in x]])

    # the test loader yields the test split, whole and in order, none of it training data
    test_images, test_labels = dm._data["test"]
    got = list(dm.test_dataloader())
    assert torch.equal(torch.cat([x for x, _ in got]), test_images)
    assert torch.equal(torch.cat([y for _, y in got]), test_labels)
    assert not set(keys) & {img.numpy().tobytes() for img in test_images}


def test_validation_is_the_same_images_in_every_epoch_and_training_covers_the_rest(tmp_path):
    dm = SyntheticDataModule(tmp_path, tmp_path, batch_size=64, val_size=128)
    dm.setup()
    keys = _image_keys(dm._data["train"][0])
    loader = dm.train_dataloader()
    epochs = []
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)  # what Lightning calls before each training epoch
        epochs.append(_drawn(loader, keys))
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1])  # reshuffled
    val = set(_drawn(dm.val_dataloader(), keys))
    assert val.isdisjoint(epochs[0]) and len(val) == 128 and len(epochs[0]) == 512 - 128


class _Recording(SyntheticDataModule):
    """Records, per trainer stage, what on_after_batch_transfer received and returned."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        out = super().on_after_batch_transfer(batch, dataloader_idx)
        stage = "sanity" if self.trainer.sanity_checking else self.trainer.state.stage.value
        self.seen.append((stage, batch[0].clone(), out[0].clone()))
        return out


class _Linear(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def _loss(self, batch):
        x, y = batch
        return F.cross_entropy(self.fc(x.flatten(1)), y)

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self._loss(batch)

    def test_step(self, batch, batch_idx):
        self._loss(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _normalised(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255.0 - 0.5) / 0.25  # the synthetic set's mean and std


def _is_shift_of(raw: torch.Tensor, out: torch.Tensor, pad: int) -> bool:
    """Is `out` the normalised image `raw` shifted by at most `pad` pixels, zero-filled?"""
    padded = F.pad(raw.float() / 255.0, (pad, pad, pad, pad))
    h, w = raw.shape[-2:]
    return any(torch.allclose((padded[:, dy:dy + h, dx:dx + w] - 0.5) / 0.25, out, atol=1e-6)
               for dy in range(2 * pad + 1) for dx in range(2 * pad + 1))


def test_only_training_batches_are_augmented_in_a_real_run(tmp_path):
    dm = _Recording(tmp_path, tmp_path, augment="shift", pad=2, batch_size=32,
                    eval_batch_size=32)
    trainer = pl.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=1,
                         limit_test_batches=1, num_sanity_val_steps=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    module = _Linear()
    trainer.fit(module, datamodule=dm)
    trainer.validate(module, datamodule=dm, verbose=False)
    trainer.test(module, datamodule=dm, verbose=False)
    stages = [s for s, _, _ in dm.seen]
    assert stages.count("train") == 4 and stages.count("sanity") == 1
    assert stages.count("validate") == 3 and stages.count("test") == 1

    for stage, raw, out in dm.seen:
        if stage == "train":
            # each image shifted by up to 2 px, then normalised; most are actually moved
            assert all(_is_shift_of(raw[i], out[i], 2) for i in range(len(raw)))
            moved = (out != _normalised(raw)).flatten(1).any(1)
            assert moved.float().mean() > 0.5, stage
        else:  # sanity check, validation during fit, validate(), test(): never augmented
            assert torch.equal(out, _normalised(raw)), stage


def _on_device(device: str, tmp_path, rank: int = 0, world: int = 1):
    """A data module whose trainer runs on `device` (only the strategy's root device is read),
    as process `rank` of `world`."""
    from types import SimpleNamespace

    dm = SyntheticDataModule(tmp_path, tmp_path / "cache", batch_size=32, val_size=64)
    dm.setup()
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)),
                                 training=True, current_epoch=0, global_rank=rank,
                                 world_size=world)
    return dm


def test_each_process_of_a_data_parallel_run_loads_its_half_of_each_batch(tmp_path):
    one = _on_device("cpu", tmp_path)
    halves = [_on_device("cpu", tmp_path, rank=r, world=2) for r in range(2)]
    for split in ("train", "val", "test"):
        whole = list(getattr(one, f"{split}_dataloader")())
        parts = [list(getattr(h, f"{split}_dataloader")()) for h in halves]
        assert [len(p) for p in parts] == [len(whole)] * 2, split
        for step, (x, y) in enumerate(whole):
            (xa, ya), (xb, yb) = parts[0][step], parts[1][step]
            assert len(xa) + len(xb) == len(x) and abs(len(xa) - len(xb)) <= 1
            assert torch.equal(torch.cat([xa, xb]).sort(0).values, x.sort(0).values)
            assert sorted(torch.cat([ya, yb]).tolist()) == sorted(y.tolist())
    # each process augments its share with its own draws; rank 0 draws what one process does
    for dm in (one, *halves):
        dm.augment = "shift"
    x0, _ = next(iter(halves[0].train_dataloader()))
    a0 = halves[0].on_after_batch_transfer((x0, torch.zeros(len(x0))), 0)[0]
    a1 = halves[1].on_after_batch_transfer((x0, torch.zeros(len(x0))), 0)[0]
    solo = one.on_after_batch_transfer((x0, torch.zeros(len(x0))), 0)[0]
    assert torch.equal(a0, solo) and not torch.equal(a0, a1)


def test_a_global_batch_that_does_not_split_is_named(tmp_path):
    from quantsurvey.errors import ConfigError

    dm = _on_device("cpu", tmp_path, rank=0, world=3)  # batch_size 32
    with pytest.raises(ConfigError, match=r"data.batch_size=32 is the global batch.*multiple of 3"):
        dm.train_dataloader()


def test_the_in_memory_data_moves_to_the_accelerator_once(tmp_path):
    """On an accelerator ('meta' stands in for one here: tensors with shapes but no storage)
    the uint8 images and labels move to it when the loaders are built, so each batch is
    gathered there and no batch is copied from the host; on the CPU nothing moves."""
    dm = _on_device("meta", tmp_path)
    x, y = next(iter(dm.train_dataloader()))
    assert x.device.type == "meta" and y.device.type == "meta" and x.dtype == torch.uint8
    assert dm._data["train"][0].device.type == "meta"
    assert dm.transfer_batch_to_device((x, y), torch.device("meta"), 0)[0] is x  # no copy
    cpu = _on_device("cpu", tmp_path)
    assert next(iter(cpu.train_dataloader()))[0].device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_batches_on_an_accelerator_are_the_cpu_batches(tmp_path):
    """Same indices and the same augmentation draws (made on the CPU generators) wherever the
    data lives (`pytest -m gpu` on a machine with a CUDA GPU)."""
    cpu, gpu = _on_device("cpu", tmp_path), _on_device("cuda", tmp_path)
    for a, b in zip(cpu.train_dataloader(), gpu.train_dataloader(), strict=True):
        xa, _ = cpu.on_after_batch_transfer(a, 0)
        xb, _ = gpu.on_after_batch_transfer(b, 0)
        assert xb.is_cuda and torch.allclose(xa, xb.cpu(), atol=1e-6)
