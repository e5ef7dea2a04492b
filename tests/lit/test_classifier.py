"""The shared classification module's test metrics on logits whose answer is known: top-1 and
top-5 errors that differ, accumulated over several batches."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from quantsurvey.config import OptimConfig, SchedConfig
from quantsurvey.errors import RunFailedError
from quantsurvey.lit.classifier import ClassifierModule


def _logits_with_label_at_rank(ranks: list[int], num_classes: int) -> tuple[torch.Tensor,
                                                                             torch.Tensor]:
    """One row per sample whose true class has the given rank (1 = the largest logit)."""
    gen = torch.Generator().manual_seed(0)
    rows, labels = [], []
    for rank in ranks:
        order = torch.randperm(num_classes, generator=gen)  # order[0] gets the largest logit
        logits = torch.empty(num_classes)
        logits[order] = torch.linspace(5.0, -5.0, num_classes)  # distinct: no ties
        rows.append(logits)
        labels.append(int(order[rank - 1]))
    return torch.stack(rows), torch.tensor(labels)


def _test_metrics(ranks: list[int], num_classes: int, batch_size: int) -> dict[str, float]:
    x, y = _logits_with_label_at_rank(ranks, num_classes)
    module = ClassifierModule(nn.Identity(), "identity", num_classes, OptimConfig(),
                              SchedConfig(), max_epochs=1)  # the logits are the inputs
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    return trainer.test(module, dataloaders=loader, verbose=False)[0]


def test_top1_and_top5_errors_are_exact_and_differ():
    # 20 samples in 3 batches of ≤ 8: 8 right at rank 1, 5 more inside the top 5 (ranks 2–5),
    # 7 outside it (ranks 6–10): top-1 error 12/20 = 60%, top-5 error 7/20 = 35%
    ranks = [1, 6, 1, 2, 1, 7, 5, 1, 10, 3, 1, 8, 1, 4, 6, 1, 9, 1, 3, 6]
    assert sum(r == 1 for r in ranks) == 8 and sum(r > 5 for r in ranks) == 7
    m = _test_metrics(ranks, num_classes=10, batch_size=8)
    assert m["test/err"] == pytest.approx(60.0)
    assert m["test/acc"] == pytest.approx(40.0)
    assert m["test/top5_err"] == pytest.approx(35.0)


def test_top5_counts_rank_five_in_and_rank_six_out():
    m = _test_metrics([5, 5, 5, 6], num_classes=10, batch_size=3)
    assert m["test/err"] == pytest.approx(100.0)
    assert m["test/top5_err"] == pytest.approx(25.0)


def test_fewer_than_five_classes_logs_top_k_of_all_classes():
    m = _test_metrics([1, 2, 3, 3], num_classes=3, batch_size=4)
    assert m["test/err"] == pytest.approx(75.0)
    assert m["test/top3_err"] == pytest.approx(0.0) and "test/top5_err" not in m


@pytest.mark.parametrize("deferred,every", [(False, 50), (True, 2), (True, 100)],
                         ids=["checked each step (CPU)", "read every 2 batches (GPU way)",
                              "read at the epoch's end (GPU way)"])
def test_a_non_finite_loss_names_its_first_batch_however_it_is_checked(deferred, every):
    """On an accelerator the flag stays on the device and is read every few batches and at the
    epoch's end; the message still names the first bad batch and its value, not a later one."""
    x, y = _logits_with_label_at_rank([1] * 20, num_classes=4)
    x[9, 0] = float("inf")  # batch 2 (of 4 rows each) has a non-finite loss; so does batch 4
    x[17, 1] = float("nan")
    module = ClassifierModule(nn.Identity(), "identity", 4, OptimConfig(), SchedConfig(),
                              max_epochs=1)
    module.defer_finite_check, module.FINITE_CHECK_EVERY = deferred, every
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    with pytest.raises(RunFailedError, match=r"the test loss became nan at epoch 0, step 0 "
                                             r"\(batch 2\)"):
        trainer.test(module, dataloaders=DataLoader(TensorDataset(x, y), batch_size=4),
                     verbose=False)


class _TwoGroupNet(nn.Module):
    """A linear classifier whose first layer asks for half the learning rate (as BNN's
    per-layer scaling does through `param_groups()`)."""

    def __init__(self):
        super().__init__()
        self.first, self.last = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.last(self.first(x))

    def param_groups(self):
        return [{"params": list(self.first.parameters()), "lr_scale": 0.5}]


@pytest.mark.parametrize("two_groups", [False, True], ids=["one group", "two groups"])
def test_the_learning_rate_is_logged_at_each_epoch_start_under_lr_monitors_names(two_groups):
    """`callbacks.lr_monitor`: at every epoch's start the module logs each parameter group's
    learning rate as LearningRateMonitor names it (`lr-SGD`, or `lr-SGD/pg<i>` for several
    groups); here a cosine schedule from 0.1 over 4 epochs, the first group at half of it."""
    import math

    torch.manual_seed(0)
    model = _TwoGroupNet() if two_groups else nn.Linear(4, 3)
    module = ClassifierModule(model, "net", 3, OptimConfig(lr=0.1), SchedConfig(name="cosine"),
                              max_epochs=4, log_lr=True)
    seen: list[dict[str, float]] = []

    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            seen.append({k: float(v) for k, v in trainer.callback_metrics.items()
                         if k.startswith("lr-")})

    trainer = pl.Trainer(max_epochs=4, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", callbacks=[Record()])
    data = DataLoader(TensorDataset(torch.randn(16, 4), torch.randint(0, 3, (16,))),
                      batch_size=8)
    trainer.fit(module, train_dataloaders=data)
    cosine = [0.1 * (1 + math.cos(math.pi * epoch / 4)) / 2 for epoch in range(4)]
    if two_groups:
        assert [sorted(s) for s in seen] == [["lr-SGD/pg1", "lr-SGD/pg2"]] * 4
        assert [s["lr-SGD/pg1"] for s in seen] == pytest.approx([lr / 2 for lr in cosine])
        assert [s["lr-SGD/pg2"] for s in seen] == pytest.approx(cosine)
    else:
        assert [list(s) for s in seen] == [["lr-SGD"]] * 4
        assert [s["lr-SGD"] for s in seen] == pytest.approx(cosine)
    quiet = ClassifierModule(nn.Linear(4, 3), "net", 3, OptimConfig(lr=0.1), SchedConfig(),
                             max_epochs=1)  # log_lr off: nothing logged
    seen.clear()
    pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, accelerator="cpu",
               callbacks=[Record()]).fit(quiet, train_dataloaders=data)
    assert seen == [{}]


def test_a_checkpoint_is_loaded_only_into_the_model_that_wrote_it_and_brings_its_clock():
    from quantsurvey.errors import CheckpointError

    def module():
        return ClassifierModule(nn.Linear(4, 3), "net", 3, OptimConfig(), SchedConfig(),
                                max_epochs=1)

    writer = module()
    checkpoint: dict = {}
    writer.on_save_checkpoint(checkpoint)
    assert checkpoint["quantsurvey"] == {"model": "net",
                                         "shapes": {"weight": [3, 4], "bias": [3]}}
    checkpoint["wall_clock"] = {"elapsed_s": 123.5}
    reader = module()
    reader.on_load_checkpoint(checkpoint)
    assert reader.clock.before_resume == 123.5
    # checkpoints from before the clock moved into the module kept it as a callback's state
    old = {"quantsurvey": checkpoint["quantsurvey"],
           "callbacks": {"WallClock": {"elapsed_s": 7.0}}}
    reader.on_load_checkpoint(old)
    assert reader.clock.before_resume == 7.0
    with pytest.raises(CheckpointError, match="written by net with other layer shapes; this "
                                              "run builds net"):
        module().on_load_checkpoint(
            {"quantsurvey": {"model": "net", "shapes": {"weight": [3, 5], "bias": [3]}}})
    with pytest.raises(CheckpointError, match="written by an unknown model"):
        module().on_load_checkpoint({})
    with pytest.raises(CheckpointError, match="layout written before the quantized-layer "
                                              "mechanism"):
        module().on_load_checkpoint(
            {"quantsurvey": {"model": "net", "shapes": {"weight_orig": [3, 4], "bias": [3]}}})
