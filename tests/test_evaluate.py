"""Evaluate-only runs: load a finished run, a stage's model.pt or an encoded file, apply a
post-training method, test, and write a summary like any run."""

import json
import subprocess
import sys

import pytest

from quantsurvey.errors import CheckpointError, ConfigError
from quantsurvey.evaluate import evaluate
from quantsurvey.pipeline import run_pipeline
from quantsurvey.train import train
from tests.conftest import REPO, compose_cfg


def test_evaluating_a_finished_run_repeats_its_test_metrics(smoke_cfg, tmp_path):
    trained = train(smoke_cfg("trainer.max_epochs=2", "trainer.limit_test_batches=1.0"),
                    tmp_path / "run")
    got = evaluate(smoke_cfg(f"init_from={tmp_path / 'run'}", "trainer.limit_test_batches=1.0",
                             "name=eval"), tmp_path / "eval")
    for key in ("test/err", "test/loss", "test/top5_err"):
        assert got[key] == trained[key]
    s = json.loads((tmp_path / "eval/summary.json").read_text())
    assert s["mode"] == "evaluate" and s["epochs"] == 0 and s["config"]["mode"] == "evaluate"
    assert not (tmp_path / "eval/checkpoints").exists()


def test_post_training_sharing_without_fine_tuning(smoke_cfg, tmp_path):
    train(smoke_cfg("trainer.max_epochs=2"), tmp_path / "run")
    cfg = smoke_cfg(f"init_from={tmp_path / 'run'}", "+compress.share.bits.fc=2",
                    "+compress.encode.index_bits.fc=5", "name=ptq")
    metrics = evaluate(cfg, tmp_path / "ptq")
    s = json.loads((tmp_path / "ptq/summary.json").read_text())
    assert s["compression"]["share_bits"] == {"fc1": 2, "fc2": 2, "fc3": 2}
    assert s["compression"]["encoded"]["identical_outputs"] is True
    assert all(layer["codebook_used"] <= 3 for layer in
               s["compression"]["encoded"]["layers"].values())
    assert metrics["compress/size_bytes"] == (tmp_path / "ptq/model.qsdc").stat().st_size


def test_evaluating_an_encoded_file_repeats_the_encode_stages_metrics(tmp_path):
    cfg = compose_cfg(["experiment=han2016_deep_compression/lenet5_mnist", "data=synthetic",
                       "trainer=smoke", f"paths.output_dir={tmp_path}"])
    stage = run_pipeline(cfg)["quantize"]
    encoded = next(tmp_path.rglob("model.qsdc"))
    got = evaluate(compose_cfg(["data=synthetic", "trainer=smoke", "model=lenet5",
                                f"init_from='{encoded}'", f"paths.output_dir={tmp_path}"]),
                   tmp_path / "eval")
    assert got["test/err"] == stage["test/err"] and got["test/loss"] == stage["test/loss"]


def test_evaluate_needs_a_model_to_load(smoke_cfg, tmp_path):
    with pytest.raises(ConfigError, match="mode=evaluate needs init_from"):
        evaluate(smoke_cfg(), tmp_path / "eval")
    out = subprocess.run([sys.executable, "-c", "from quantsurvey.cli import eval_main; "
                          "eval_main()", "data=synthetic", f"paths.output_dir={tmp_path}"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "mode=evaluate needs init_from" in out.stderr
    assert not list(tmp_path.rglob("summary.json"))


def test_the_eval_command_tests_one_model_not_the_default_experiments_pipeline(smoke_cfg,
                                                                               tmp_path):
    # `quantsurvey-eval init_from=…` used to run the default experiment's pipeline stages
    trained = train(smoke_cfg("trainer.max_epochs=1", "trainer.limit_test_batches=1.0"),
                    tmp_path / "run")
    out = subprocess.run([sys.executable, "-c", "from quantsurvey.cli import eval_main; "
                          "eval_main()", "data=synthetic", "trainer=smoke",
                          "trainer.limit_test_batches=1.0", f"init_from={tmp_path / 'run'}",
                          "name=evalcli", f"paths.output_dir={tmp_path / 'out'}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (summary,) = (tmp_path / "out").rglob("summary.json")
    s = json.loads(summary.read_text())
    assert s["mode"] == "evaluate" and summary.parent.parent.name == "evalcli"
    assert s["metrics"]["test/err"] == trained["test/err"]


def test_an_encoded_binary_network_is_tested_as_written(tmp_path):
    """Its hidden layers take binary inputs: the file's own quantizers are kept."""
    cfg = compose_cfg(["experiment=courbariaux2016_bnn/bnn_mlp_mnist", "data=synthetic",
                       "trainer=smoke", "model.params.width=32", "~pipeline.float",
                       f"paths.output_dir={tmp_path}"])
    stage = run_pipeline(cfg)["bnn"]
    encoded = next(tmp_path.rglob("model.qsdc"))
    base = ["data=synthetic", "trainer=smoke", "model=bnn_mlp", "loss=squared_hinge",
            f"init_from='{encoded}'", f"paths.output_dir={tmp_path}"]
    got = evaluate(compose_cfg([*base, "model.params.width=32"]), tmp_path / "eval")
    assert got["test/err"] == stage["test/err"] and got["test/loss"] == stage["test/loss"]
    with pytest.raises(CheckpointError, match="does not fit this model: .* differ in name or "
                                              "shape"):
        evaluate(compose_cfg([*base, "model.params.width=16"]), tmp_path / "eval16")

