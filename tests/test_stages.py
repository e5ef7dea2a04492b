"""What one stage hands to the next (quantsurvey/stages.py): model.pt holds the dense effective
weights and the kept masks; a run starts from a stage's folder or its model.pt, or from a
finished plain run's last checkpoint; a missing or unfitting source is one CheckpointError."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from torch import nn

from quantsurvey.errors import CheckpointError
from quantsurvey.nn.layers import weight_layers
from quantsurvey.nn.masking import apply_masks
from quantsurvey.nn.quant import kept_mask, latent_weight
from quantsurvey.stages import STAGE_MODEL, load_stage, save_stage, start_identity

MASK = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_a_stage_hands_on_its_effective_weights_and_its_masks(tmp_path):
    first = _net(0)
    (name, layer), (other, _) = weight_layers(first).items()
    apply_masks(first, {name: MASK})
    save_stage(first, tmp_path)
    saved = torch.load(tmp_path / STAGE_MODEL, weights_only=True)
    assert set(saved) == {"state_dict", "masks"} and list(saved["masks"]) == [name]
    assert torch.equal(saved["masks"][name], MASK)
    dense = saved["state_dict"][f"{name}.weight"]  # effective: zero where pruned, else as is
    assert torch.equal(dense == 0, ~MASK) and set(saved["state_dict"]) == {
        f"{name}.weight", f"{name}.bias", f"{other}.weight", f"{other}.bias"}
    x = torch.randn(5, 4)
    for source in (tmp_path, tmp_path / STAGE_MODEL):  # the stage's folder or its file
        second = _net(1)
        load_stage(second, source)
        assert torch.equal(kept_mask(weight_layers(second)[name]), MASK)
        assert kept_mask(weight_layers(second)[other]) is None
        assert torch.equal(second(x), first(x))
        with torch.no_grad():  # the mask holds: a pruned weight stays zero when its latent
            latent_weight(weight_layers(second)[name]).add_(1.0)  # value moves
        assert torch.equal(weight_layers(second)[name].weight == 0, ~MASK)


def test_a_finished_plain_run_hands_on_its_last_checkpoints_model(tmp_path):
    trained = _net(0)
    (tmp_path / "checkpoints").mkdir()
    state = {f"model.{k}": v for k, v in trained.state_dict().items()}
    torch.save({"state_dict": {**state, "loss_fn.weight": torch.ones(2)}, "epoch": 3},
               tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError, match="does not exist"):  # not finished: no summary
        load_stage(_net(1), tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"status": "finished"}))
    started = _net(1)
    load_stage(started, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(started.state_dict().values(),
                                                trained.state_dict().values(), strict=True))
    save_stage(_net(2), tmp_path)  # a stage's model.pt, where there is one, comes first
    load_stage(started, tmp_path)
    assert torch.equal(started[0].weight, _net(2)[0].weight)


def test_a_missing_or_unfitting_source_is_one_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match=rf"init_from: {tmp_path / STAGE_MODEL} does not "
                                              r"exist. Run \(or finish\) the stage"):
        load_stage(_net(0), tmp_path)
    save_stage(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)), tmp_path)
    with pytest.raises(CheckpointError, match=rf"init_from: {tmp_path} does not fit this model "
                                              r"\(RuntimeError: Error\(s\) in loading "
                                              r"state_dict for Sequential:\)"):
        load_stage(_net(0), tmp_path)
    data = (tmp_path / STAGE_MODEL).read_bytes()
    (tmp_path / STAGE_MODEL).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"init_from: {tmp_path} does not fit this model "
                                              r"\(\w+Error: "):
        load_stage(_net(0), tmp_path)


def test_the_start_is_identified_by_the_file_read_and_its_runs_summary(tmp_path):
    stage, plain, collected = tmp_path / "stage", tmp_path / "plain", tmp_path / "runs"
    save_stage(_net(0), stage)
    (stage / "summary.json").write_text(json.dumps(
        {"git": {"commit": "c" * 40, "dirty": False}, "metrics": {"test/err": 1.5}}))
    digest = hashlib.sha256((stage / STAGE_MODEL).read_bytes()).hexdigest()
    want = {"file": str(stage / STAGE_MODEL), "sha256": digest, "commit": "c" * 40,
            "dirty": False, "test_err": 1.5}
    assert start_identity(stage) == want == start_identity(stage / STAGE_MODEL)
    (plain / "checkpoints").mkdir(parents=True)  # a finished plain run: its last checkpoint
    (plain / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    (plain / "summary.json").write_text("{not json")
    assert start_identity(plain) == {"file": str(plain / "checkpoints" / "last.ckpt"),
                                     "sha256": hashlib.sha256(b"weights").hexdigest()}
    collected.mkdir()  # a collected encoded file: its summary is seed=0.json beside it
    (collected / "seed=0.qsdc").write_bytes(b"codes")
    (collected / "seed=0.json").write_text(json.dumps(
        {"git": {"commit": "d" * 40, "dirty": True}, "metrics": {"test/err": 2.0}}))
    assert start_identity(collected / "seed=0.qsdc")["commit"] == "d" * 40
    assert start_identity(tmp_path / "nowhere") == {}
