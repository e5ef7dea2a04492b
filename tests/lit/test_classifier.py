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
