"""The one classification LightningModule that every paper's runs share, so that all log the
same metric names: `train/loss`, `train/acc`, `val/loss`, `val/acc`, `val/err`, `test/loss`,
`test/acc`, `test/err`, `test/top5_err`. Accuracies and errors are in percent.

A compression method enters through the `methods` it is given: their regularisers are added to
the loss (logged as `train/reg_loss`; `train/loss` stays the task loss), their parameter groups
(and the model's own `param_groups()`, if it has one) set per-group learning-rate scales."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from quantsurvey.config import OptimConfig, SchedConfig
from quantsurvey.errors import CheckpointError, RunFailedError
from quantsurvey.lit.optim import build_optimizer, build_scheduler, param_groups
from quantsurvey.losses import get_loss
from quantsurvey.methods import Method


class ClassifierModule(pl.LightningModule):
    FINITE_CHECK_EVERY = 50  # batches between reads of the non-finite flag off a GPU
    defer_finite_check = False  # True: the accelerator's way on CPU too (tests)

    def __init__(self, model: nn.Module, model_name: str, num_classes: int, optim: OptimConfig,
                 sched: SchedConfig, max_epochs: int, loss: str = "cross_entropy",
                 methods: Sequence[Method] = ()):
        super().__init__()
        self.model = model
        self.model_name = model_name
        self.optim_cfg, self.sched_cfg, self.max_epochs = optim, sched, max_epochs
        self.loss_fn = get_loss(loss)
        self.methods = list(methods)
        self._regularizers = [m for m in self.methods if m.overrides("regularizer")]
        self.top_k = min(5, num_classes)
        self.acc = nn.ModuleDict({f"{s}_": MulticlassAccuracy(num_classes, average="micro")
                                  for s in ("train", "val", "test")})
        self.test_topk = MulticlassAccuracy(num_classes, top_k=self.top_k, average="micro")
        self._first_bad: dict[str, torch.Tensor] = {}  # split → (step, batch, value) on device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch, split: str, batch_idx: int = 0) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        self._watch_finite(loss, split, batch_idx)
        self.acc[f"{split}_"].update(logits, y)
        if split == "test":
            self.test_topk.update(logits, y)
        self.log(f"{split}/loss", loss, on_step=split == "train", on_epoch=True,
                 prog_bar=split != "test", batch_size=len(y))
        if split == "train" and self._regularizers:
            terms = [r for m in self._regularizers if (r := m.regularizer(self.model)) is not None]
            if terms:
                reg = torch.stack(terms).sum()
                self.log("train/reg_loss", reg, on_step=True, on_epoch=True, batch_size=len(y))
                loss = loss + reg
        return loss

    # -- a non-finite loss stops the run -------------------------------------------------------
    def _watch_finite(self, loss: torch.Tensor, split: str, batch_idx: int) -> None:
        """On CPU every step is checked at once (free). On an accelerator reading the flag would
        wait for the device every step, so the first bad (step, batch, value) is kept on the
        device and read every FINITE_CHECK_EVERY batches and at every epoch's end, before the
        epoch's checkpoint is written: a bad run stops within that many steps, never saved."""
        if loss.device.type == "cpu" and not self.defer_finite_check:
            if not torch.isfinite(loss):
                self._fail(split, self.current_epoch, self.global_step, batch_idx, loss.item())
            return
        value = loss.detach().float().reshape(1)
        here = torch.tensor([self.global_step, batch_idx], dtype=torch.float32, device=loss.device)
        found = torch.cat([here, value])
        first = self._first_bad.get(split)
        if first is None:
            first = torch.full((3,), float("nan"), device=loss.device)
        keep_new = torch.isnan(first[0]) & ~torch.isfinite(value[0])
        self._first_bad[split] = torch.where(keep_new, found, first)
        if (batch_idx + 1) % self.FINITE_CHECK_EVERY == 0:
            self._raise_if_bad(split)

    def _raise_if_bad(self, split: str) -> None:
        first = self._first_bad.pop(split, None)
        if first is not None and not torch.isnan(first[0]):  # the one read of the device
            step, batch, value = first.tolist()
            self._fail(split, self.current_epoch, int(step), int(batch), value)

    def _fail(self, split: str, epoch: int, step: int, batch: int, value: float) -> None:
        raise RunFailedError(
            f"the {split} loss became {value} at epoch {epoch}, step {step} (batch {batch}); "
            f"the run is stopped, marked failed and not reportable. Lower optim.lr (now "
            f"{self.optim_cfg.lr}) or check the data.")

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", batch_idx)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val", batch_idx)

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test", batch_idx)

    def _log_accuracy(self, split: str) -> None:
        acc = 100.0 * self.acc[f"{split}_"].compute()
        self.acc[f"{split}_"].reset()
        self.log(f"{split}/acc", acc, prog_bar=split == "val")
        if split != "train":
            self.log(f"{split}/err", 100.0 - acc)

    def on_train_epoch_end(self) -> None:  # runs before the checkpoint callback saves
        self._raise_if_bad("train")
        self._log_accuracy("train")

    def on_validation_epoch_end(self) -> None:
        self._raise_if_bad("val")
        self._log_accuracy("val")

    def on_test_epoch_end(self) -> None:
        self._raise_if_bad("test")
        self._log_accuracy("test")
        top = 100.0 * self.test_topk.compute()
        self.test_topk.reset()
        self.log(f"test/top{self.top_k}_err", 100.0 - top)

    def configure_optimizers(self):
        optimizer = build_optimizer(param_groups(self.model, self.methods), self.optim_cfg)
        scheduler = build_scheduler(optimizer, self.sched_cfg, self.optim_cfg.lr, self.max_epochs)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                         "interval": "epoch"}}

    # -- checkpoints know which model wrote them -----------------------------------------------
    def _fingerprint(self) -> dict:
        return {"model": self.model_name,
                "shapes": {k: list(v.shape) for k, v in self.model.state_dict().items()}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["quantsurvey"] = self._fingerprint()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        theirs = checkpoint.get("quantsurvey")
        mine = self._fingerprint()
        old_layout = theirs and any(k.rpartition(".")[2] in ("weight_orig", "weight_centroids")
                                    for k in theirs["shapes"])
        if old_layout:
            raise CheckpointError(
                "the checkpoint holds masked or shared layers in the layout written before the "
                "quantized-layer mechanism (weight_orig / weight_centroids); it cannot resume "
                "this stage. Delete the stage's checkpoints/ folder to rerun the stage from its "
                "init_from.")
        if theirs != mine:
            got = theirs["model"] if theirs else "an unknown model"
            raise CheckpointError(
                f"the checkpoint was written by {got} with other layer shapes; this run builds "
                f"{mine['model']}. Resume with the config that wrote it, or start a new run "
                f"(resume=false, another name=...).")
