"""The one classification LightningModule that every paper's runs share, so that all log the
same metric names: `train/loss`, `train/acc`, `val/loss`, `val/acc`, `val/err`, `test/loss`,
`test/acc`, `test/err`, `test/top5_err`. Accuracies and errors are in percent.

A compression method enters through the `methods` it is given: their regularisers are added to
the loss (logged as `train/reg_loss`; `train/loss` stays the task loss), their parameter groups
(and the model's own `param_groups()`, if it has one) set per-group learning-rate scales."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from quantsurvey.config import OptimConfig, SchedConfig
from quantsurvey.errors import CheckpointError, RunFailedError
from quantsurvey.lit.optim import build_optimizer, build_scheduler, param_groups
from quantsurvey.lit.run_state import WallClock, reseed_batch
from quantsurvey.losses import get_loss
from quantsurvey.methods import Method


class ClassifierModule(pl.LightningModule):
    FINITE_CHECK_EVERY = 50  # batches between reads of the non-finite flag off a GPU
    defer_finite_check = False  # True: the accelerator's way on CPU too (tests)

    def __init__(self, model: nn.Module, model_name: str, num_classes: int, optim: OptimConfig,
                 sched: SchedConfig, max_epochs: int, loss: str = "cross_entropy",
                 methods: Sequence[Method] = (), seed: int = 0, clock: WallClock | None = None,
                 log_lr: bool = False):
        super().__init__()
        self.model = model
        self.model_name = model_name
        self.optim_cfg, self.sched_cfg, self.max_epochs = optim, sched, max_epochs
        self.loss_fn = get_loss(loss)
        self.methods = list(methods)
        self._regularizers = [m for m in self.methods if m.overrides("regularizer")]
        self.top_k = min(5, num_classes)
        self.seed, self.log_lr = seed, log_lr
        self.clock = clock or WallClock()
        self._hits: dict[str, tuple] = {}  # split → ([top-1 hits, top-k hits], images seen)
        self._first_bad: dict[str, torch.Tensor] = {}  # split → (step, batch, value) on device
        self._epoch_sums: dict[str, tuple[torch.Tensor, int]] = {}  # train loss sums, this epoch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch, split: str, batch_idx: int = 0) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        self._watch_finite(loss, split, batch_idx)
        self._count_hits(logits, y, split)
        if split == "train":
            return self._training_loss(loss, len(y))
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=split != "test",
                 batch_size=len(y), sync_dist=self._parallel)
        return loss

    # -- training losses: summed on the device, logged when the loggers write -------------------
    def _training_loss(self, loss: torch.Tensor, n: int) -> torch.Tensor:
        """Task loss plus the methods' regularisers. `self.log` costs about 1 ms a call on a CPU
        (Lightning moves its record of the value to the device each time), a third of a LeNet
        step; so the epoch means (`train/loss_epoch`, `train/reg_loss_epoch`, weighted by batch
        size as Lightning's are) are summed here and logged once an epoch, and the step values
        (`train/loss_step`, …) only on the steps the loggers write (every log_every_n_steps)."""
        parts = {"loss": loss}
        if self._regularizers:
            terms = [r for m in self._regularizers if (r := m.regularizer(self.model)) is not None]
            if terms:
                parts["reg_loss"] = torch.stack(terms).sum()
        log_now = (self.global_step + 1) % self.trainer.log_every_n_steps == 0
        for name, value in parts.items():
            total, count = self._epoch_sums.get(name, (0.0, 0))
            self._epoch_sums[name] = (total + value.detach() * n, count + n)
            if log_now:
                self.log(f"train/{name}_step", value, prog_bar=name == "loss", batch_size=n)
        return sum(parts.values())

    @property
    def _parallel(self) -> bool:
        """A data-parallel run: accuracies and training-loss means come from counts and sums
        over all processes (equal on every process, so Lightning's mean of them changes
        nothing, and it would warn without it); the validation and test loss means are
        Lightning's mean of the per-process means (exact for equal shares)."""
        return self.trainer.world_size > 1

    def _sum_over_processes(self, values: torch.Tensor) -> torch.Tensor:
        """The sum of `values` over the processes of a data-parallel run (exact counts and sums,
        so its epoch figures are those of one process seeing every batch)."""
        return self.trainer.strategy.reduce(values, reduce_op="sum") if self._parallel else values

    def _log_training_means(self) -> None:
        for name, (total, count) in self._epoch_sums.items():
            if self._parallel:
                both = torch.stack([total.double(), total.new_tensor(count, dtype=torch.float64)])
                total, count = self._sum_over_processes(both)
            mean = total / count
            self.log(f"train/{name}_epoch", mean, sync_dist=self._parallel)
            # the name the summary reports
            self.log(f"train/{name}", mean, logger=False, sync_dist=self._parallel)
        self._epoch_sums = {}

    # -- a non-finite loss stops the run -------------------------------------------------------
    def _watch_finite(self, loss: torch.Tensor, split: str, batch_idx: int) -> None:
        """On CPU every step is checked at once (free). On an accelerator reading the flag would
        wait for the device every step, so the first bad (step, batch, value) is kept on the
        device and read every FINITE_CHECK_EVERY batches and at every epoch's end, before the
        epoch's checkpoint is written: a bad run stops within that many steps, never saved."""
        if loss.device.type == "cpu" and not self.defer_finite_check:
            value = loss.item()
            if not math.isfinite(value):
                self._fail(split, self.current_epoch, self.global_step, batch_idx, value)
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

    # -- accuracy: counted on the device, read once an epoch ---------------------------------
    def _count_hits(self, logits: torch.Tensor, y: torch.Tensor, split: str) -> None:
        """Top-1 (and, in testing, top-k) hits. Not torchmetrics: under deterministic algorithms
        its bincount falls back to a loop over classes, 0.5 ms a step, a seventh of a LeNet
        step; a count is exact and needs no bincount."""
        logits = logits.detach()
        hits = [(logits.argmax(1) == y).sum()]
        if split == "test":
            hits.append((logits.topk(self.top_k, dim=1).indices == y[:, None]).any(1).sum())
        before, seen = self._hits.get(split, (None, 0))
        hits_so_far = hits if before is None else [a + b for a, b in zip(before, hits, strict=True)]
        self._hits[split] = (hits_so_far, seen + len(y))

    def _log_accuracy(self, split: str) -> None:
        hits, seen = self._hits.pop(split, (None, 0))
        if self._parallel:  # every process takes part, with or without batches
            counts = torch.zeros(2 + (split == "test"), dtype=torch.int64, device=self.device)
            if hits is not None:
                counts[: len(hits)] = torch.stack(hits)
            counts[-1] = seen
            *hits, seen = self._sum_over_processes(counts).tolist()
        if not seen:  # no batch in this loop
            return
        top1 = 100.0 * float(hits[0]) / seen
        self.log(f"{split}/acc", top1, prog_bar=split == "val", sync_dist=self._parallel)
        if split != "train":
            self.log(f"{split}/err", 100.0 - top1, sync_dist=self._parallel)
        if split == "test":
            self.log(f"test/top{self.top_k}_err", 100.0 - 100.0 * float(hits[1]) / seen,
                     sync_dist=self._parallel)

    def on_train_epoch_end(self) -> None:  # runs before the checkpoint callback saves
        self._raise_if_bad("train")
        self._log_training_means()
        self._log_accuracy("train")

    def on_validation_epoch_end(self) -> None:
        self._raise_if_bad("val")
        self._log_accuracy("val")

    def on_test_epoch_end(self) -> None:
        self._raise_if_bad("test")
        self._log_accuracy("test")

    # -- run state: the per-batch seed, the wall clock, the learning rate --------------------------
    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        reseed_batch(self.seed, self.current_epoch, batch_idx, self.device, self.global_rank)

    def on_train_epoch_start(self) -> None:
        if not self.log_lr:
            return
        optimizer = self.optimizers(use_pl_optimizer=False)
        name = f"lr-{type(optimizer).__name__}"  # LearningRateMonitor's names
        groups = optimizer.param_groups
        for i, group in enumerate(groups):
            self.log(name if len(groups) == 1 else f"{name}/pg{i + 1}", group["lr"],
                     sync_dist=self._parallel)

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
        checkpoint["wall_clock"] = self.clock.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # checkpoints written before the clock moved here kept it as a callback's state
        old_clock = checkpoint.get("callbacks", {}).get("WallClock", {})
        self.clock.load_state_dict(checkpoint.get("wall_clock", old_clock))
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
