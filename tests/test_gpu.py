"""The same runs on a CUDA GPU (`pytest -m gpu`; skipped where there is none): the ImageNet
pipelines run every stage there, the encoded file still decodes to the trained model's outputs,
a fixed seed repeats its metrics, and stage files written on the GPU load on a CPU."""

from __future__ import annotations

import json

import pytest
import torch

from quantsurvey.models import create_model
from quantsurvey.stages import load_stage
from quantsurvey.train import train
from tests.conftest import EXPERIMENTS
from tests.test_train import _smoke_all_stages

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
GPU = ["trainer.accelerator=gpu", "trainer.devices=1"]


def test_fixed_seed_repeats_on_gpu(smoke_cfg, tmp_path):
    runs = []
    for i in range(2):
        cfg = smoke_cfg("experiment=han2015_pruning/lenet5_mnist", "pipeline={}", "seed=5",
                        "trainer.max_epochs=2", *GPU)
        runs.append(train(cfg, tmp_path / f"run{i}"))
    assert runs[0]["test/loss"] == runs[1]["test/loss"]
    assert runs[0]["train/loss_epoch"] == runs[1]["train/loss_epoch"]


def test_stage_written_on_gpu_loads_on_cpu(smoke_cfg, tmp_path):
    cfg = smoke_cfg("experiment=han2015_pruning/lenet5_mnist", "pipeline={}", *GPU,
                    "+compress.prune={quality: {fc: 0.5}}")
    train(cfg, tmp_path / "run")
    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    load_stage(model, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    kept = (model.fc1.weight != 0).float().mean().item()
    assert 0 < kept < 1
    assert summary["hardware"]["gpus"]


# the han2016 pipelines run han2015's stages first; VGG-16 (138M weights) last
IMAGENET = sorted((e for e in EXPERIMENTS if "imagenet" in e and not e.startswith("han2015")),
                  key=lambda e: "vgg16" in e)


@pytest.mark.parametrize("experiment", IMAGENET)
def test_imagenet_pipelines_run_every_stage_on_gpu(experiment, tmp_path):
    summaries = _smoke_all_stages(experiment, tmp_path, *GPU)
    assert all(s["hardware"]["gpus"] for s in summaries)
