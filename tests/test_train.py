"""End-to-end runs on tiny synthetic data: smoke per experiment, determinism, resume after
SIGKILL, W&B offline, the run summary, and the errors a user can run into."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest
import pytorch_lightning as pl
import torch

from quantsurvey.assemble import WANDB_SUMMARY_KEY
from quantsurvey.errors import CheckpointError, ConfigError, RunDirError
from quantsurvey.pipeline import run_pipeline, stage_configs, stage_dir
from quantsurvey.report.wandb_records import history, read_finished_records, run_info, run_summary
from quantsurvey.train import train
from tests.conftest import EXPERIMENTS, REPO, compose_cfg, need_shared
from tests.data.test_svhn_imagenet_synthetic import write_imagenet


def _smoke_overrides(experiment, tmp_path):
    """Tiny data in the experiment's own format: synthetic digits, or a small ImageFolder."""
    cfg = compose_cfg([f"experiment={experiment}"])
    data = cfg.data.name
    if data == "imagewoof":  # its own wnids and folder; a subset must be allowed explicitly
        from quantsurvey.data.imagenet import IMAGEWOOF_WNIDS

        write_imagenet(tmp_path / "data", per_class=2, wnids=sorted(IMAGEWOOF_WNIDS),
                       folder="imagewoof2-128")
        crop = 64 if cfg.model.name == "alexnet_xnor" else 32  # BN-AlexNet needs 63 px
        return [f"paths.data_dir={tmp_path / 'data'}", f"data.params.resize={crop + 8}",
                f"data.params.crop={crop}", "data.val_size=4", "data.batch_size=8",
                "data.eval_batch_size=8", "data.num_workers=0", "+data.params.allow_subset=true"]
    if data != "imagenet":
        return ["data=synthetic"]
    if not (tmp_path / "data" / "imagenet").is_dir():  # the same files for every big pipeline
        write_imagenet(tmp_path / "data", classes=3, per_class=3)
    return [f"paths.data_dir={tmp_path / 'data'}", "data.params.resize=80",
            "data.params.crop=72", "data.params.num_classes=3", "data.val_size=2",
            "data.batch_size=4", "data.eval_batch_size=4", "data.num_workers=0"]


# methods that export model.qsdc
WRITES_QSDC = ("encode", "ttq", "ternary_fixed_scale", "fixed_point", "fixed_point_allocated",
               "bnn", "bwn", "xnor")
BIG = ("alexnet_imagenet", "vgg16")  # 61M and 138M weights: minutes per pipeline on 2 cores


@pytest.mark.parametrize("experiment", [e for e in EXPERIMENTS if not any(b in e for b in BIG)])
def test_every_experiment_smoke_runs_all_its_stages(experiment, tmp_path):
    _smoke_all_stages(experiment, tmp_path)


@pytest.fixture(scope="module")
def big_outputs(tmp_path_factory):
    """One output folder for the AlexNet / VGG-16 pipelines: their shared float stages (Han
    2015's, borrowed by the other papers, as in a real run) train once and are reused."""
    return tmp_path_factory.mktemp("big")


@pytest.mark.slow
@pytest.mark.parametrize("experiment", [e for e in EXPERIMENTS if any(b in e for b in BIG)])
def test_big_imagenet_experiments_smoke_run_all_their_stages(experiment, big_outputs):
    _smoke_all_stages(experiment, big_outputs)  # trainer=smoke caps each stage's own epochs


def _smoke_all_stages(experiment, tmp_path, *extra):
    cfg = compose_cfg([f"experiment={experiment}", "trainer=smoke", "trainer.max_epochs=1",
                       f"paths.output_dir={tmp_path / 'out'}",
                       *_smoke_overrides(experiment, tmp_path), *extra])
    results = run_pipeline(cfg)
    assert list(results) == list(cfg.pipeline)
    dirs = [stage_dir(rc) for _, _, rc in stage_configs(cfg)]
    summaries = [json.loads((d / "summary.json").read_text()) for d in dirs]
    assert [s["stage"] for s in summaries] == list(cfg.pipeline)  # each stage's own folder
    for s in summaries:
        assert 0 <= s["metrics"]["test/err"] <= 100
    encoded = [d / "model.qsdc" for d in dirs if (d / "model.qsdc").is_file()]
    assert len(encoded) == sum(any(rc.compress.get(m) for m in WRITES_QSDC)
                               for _, _, rc in stage_configs(cfg))
    for s in summaries:
        if "encoded" in s["compression"]:
            assert s["compression"]["encoded"]["identical_outputs"] is True
            assert s["metrics"]["compress/ratio"] > 1
    # `identical_outputs` is only ever written as True (the export raises otherwise), so check
    # independently: the encoded file decodes to the stage's trained model (its model.pt)
    for qsdc in encoded:
        _check_decodes_to_the_trained_model(qsdc)
    return summaries


def _check_decodes_to_the_trained_model(qsdc):
    from quantsurvey.compress.container import read_container
    from quantsurvey.export import load_model
    from quantsurvey.stages import STAGE_MODEL

    decoded = load_model(qsdc).eval()
    if not (qsdc.parent / STAGE_MODEL).exists():  # an evaluate-only stage: nothing was trained
        assert json.loads((qsdc.parent / "summary.json").read_text())["mode"] == "evaluate"
        return
    trained = torch.load(qsdc.parent / STAGE_MODEL, map_location="cpu", weights_only=True)
    # the activation quantizers' steps travel in the file's header, not in model.pt
    state = {k: v for k, v in decoded.state_dict().items() if "_quantizer." not in k}
    header = read_container(qsdc)[0]
    quantized = all(m.get("kind") in ("ternary", "fixed_point", "binary")
                    for m in header["layers"].values())
    assert set(state) == set(trained["state_dict"]) and (trained["masks"] or quantized)
    for key, value in trained["state_dict"].items():
        assert torch.equal(state[key], value), key  # the file stores the very same weights
    for layer, mask in trained["masks"].items():  # and the trained model's zeros
        assert torch.equal(state[f"{layer}.weight"] != 0, mask.bool()), layer
    shape = header["model"]["input_shape"]
    x = torch.randn(8, *shape, generator=torch.Generator().manual_seed(0))
    reference = copy.deepcopy(decoded)
    missing = reference.load_state_dict(trained["state_dict"], strict=False).missing_keys
    assert all("_quantizer." in k for k in missing)
    with torch.no_grad():
        assert torch.equal(decoded(x), reference.eval()(x))


def test_summary_holds_provenance(smoke_cfg, tmp_path):
    train(smoke_cfg("seed=3", "trainer.max_epochs=2"), tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    for key in ("config", "git", "seed", "versions", "hardware", "wall_time_s", "metrics",
                "budget", "data"):
        assert key in s
    assert s["seed"] == 3 and s["epochs"] == 2 and s["config"]["optim"]["lr"] > 0
    # the installed torch's own version (wheels may add a local tag such as +cpu)
    assert s["versions"]["torch"] == metadata.version("torch")
    assert s["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert set(s["metrics"]) >= {"test/err", "test/acc", "test/top5_err", "val/err",
                                 "train/loss_epoch"}
    assert s["metrics"]["test/err"] == pytest.approx(100 - s["metrics"]["test/acc"])
    # the logged errors are those of the saved model on the test split, top-1 and top-5
    top1, top5 = _test_errors_of_saved_model(smoke_cfg("seed=3", "trainer.max_epochs=2"),
                                             tmp_path)
    assert top1 != top5  # this model's top-5 error differs from its top-1, so both are checked
    assert s["metrics"]["test/err"] == pytest.approx(top1, abs=1e-4)
    assert s["metrics"]["test/top5_err"] == pytest.approx(top5, abs=1e-4)
    assert not list(tmp_path.glob("*.tmp"))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_checkpoint_false_writes_no_checkpoint(smoke_cfg, tmp_path):
    # Lightning's own default checkpoint (csv/checkpoints/*.ckpt, with the optimiser's state)
    # was written at every epoch end although callbacks.checkpoint was false
    train(smoke_cfg("callbacks.checkpoint=false", "trainer.max_epochs=2"), tmp_path)
    assert (tmp_path / "summary.json").is_file()
    assert not list(tmp_path.rglob("*.ckpt"))


def _test_errors_of_saved_model(cfg, run_dir) -> tuple[float, float]:
    """Top-1 and top-5 error (%) of the run's model.pt on the test batches the run tested."""
    from quantsurvey.assemble import build_datamodule
    from quantsurvey.config import validate_config
    from quantsurvey.models import create_model
    from quantsurvey.stages import load_stage

    rc = validate_config(cfg)
    dm = build_datamodule(rc)
    model = create_model(rc.model.name, num_classes=dm.num_classes, input_shape=dm.input_shape,
                         **rc.model.params)
    load_stage(model, run_dir)
    model.eval()
    wrong1 = wrong5 = n = 0
    loader = dm.test_dataloader()
    assert rc.trainer.limit_test_batches == 1 and len(loader) == 1  # the run tested it all
    with torch.no_grad():
        for batch in loader:
            x, y = dm.on_after_batch_transfer(batch, 0)
            top = model(x).topk(5, dim=1).indices
            wrong1 += int((top[:, 0] != y).sum())
            wrong5 += int((top != y[:, None]).all(1).sum())
            n += len(y)
    return 100.0 * wrong1 / n, 100.0 * wrong5 / n


def test_learns_the_synthetic_task(smoke_cfg, tmp_path):
    cfg = smoke_cfg("trainer.max_epochs=3", "trainer.limit_train_batches=1.0",
                    "optim.lr=0.05")
    metrics = train(cfg, tmp_path)
    # chance is 90%; the class prototypes are easy to tell apart, and three epochs get every
    # test and validation image right (0.0%); allow one test image of 256 at most
    assert metrics["test/err"] <= 100 / 256 and metrics["val/err"] <= 100 / 256
    assert metrics["test/top5_err"] == 0.0


def test_same_seed_same_metrics_twice(smoke_cfg, tmp_path):
    over = ("model.params.dropout=0.3", "data.augment=shift", "trainer.max_epochs=2",
            "seed=0")
    a = train(smoke_cfg(*over), tmp_path / "a")
    b = train(smoke_cfg(*over), tmp_path / "b")
    c = train(smoke_cfg(*over[:-1], "seed=1"), tmp_path / "c")
    assert a == b
    assert a != c


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import pytorch_lightning as pl
    from tests.conftest import compose_cfg
    from quantsurvey.train import train

    class KillAfterEpoch(pl.Callback):
        # at the start of the next epoch: Lightning runs checkpoint callbacks last at epoch end
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == int(sys.argv[2]) + 1:
                os.kill(os.getpid(), signal.SIGKILL)

    overrides = sys.argv[3:]
    kill = int(sys.argv[2]) >= 0
    train(compose_cfg(overrides), sys.argv[1], [KillAfterEpoch()] if kill else [])
""")


def _run_script(run_dir, kill_epoch, overrides):
    return subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(run_dir), str(kill_epoch),
                           *overrides], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    over = ["data=synthetic", "trainer=smoke", "trainer.max_epochs=3",
            "trainer.limit_train_batches=4", "model.params.dropout=0.2", "data.augment=shift",
            "sched=cosine", f"paths.output_dir={tmp_path}", "seed=5"]
    full = train(compose_cfg(over), tmp_path / "full")

    killed = _run_script(tmp_path / "resumed", 1, over)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "resumed" / "summary.json").exists()
    ckpt = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1

    with pytest.raises(RunDirError, match="resume=true"):
        train(compose_cfg(over), tmp_path / "resumed")
    done = _run_script(tmp_path / "resumed", -1, [*over, "resume=true"])
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert resumed["resumed"] and resumed["epochs"] == 3
    # the wall time counts the killed part too (up to its last checkpoint)
    assert 0 < resumed["wall_time_before_resume_s"] < resumed["wall_time_s"]
    for key in ("test/err", "test/loss", "val/loss", "train/loss_epoch"):
        assert resumed["metrics"][key] == full[key], key
    # one metrics.csv that reads like the uninterrupted run's
    full_log = _epoch_rows(tmp_path / "full")
    assert _epoch_rows(tmp_path / "resumed") == full_log and len(full_log) == 3


def _epoch_rows(run_dir):
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/loss")]
    return [(r["epoch"], r["step"], float(r["val/loss"])) for r in rows]


def test_checkpoint_from_another_model_is_refused(smoke_cfg, tmp_path):
    train(smoke_cfg("model=lenet300_100"), tmp_path)
    (tmp_path / "summary.json").unlink()  # as if killed before finishing
    with pytest.raises(RunDirError, match="unfinished run started with another recipe.*model"):
        train(smoke_cfg("model=lenet5", "resume=true"), tmp_path)
    (tmp_path / "config.yaml").unlink()  # a checkpoint copied in from another run
    with pytest.raises(CheckpointError, match="written by lenet300_100.*builds lenet5"):
        train(smoke_cfg("model=lenet5", "resume=true"), tmp_path)


def test_corrupt_checkpoint_is_refused(smoke_cfg, tmp_path):
    train(smoke_cfg(), tmp_path)
    (tmp_path / "summary.json").unlink()
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train(smoke_cfg("resume=true"), tmp_path)


def test_unknown_model_parameter_stops_before_writing(smoke_cfg, tmp_path):
    with pytest.raises(ConfigError, match="dropuot"):
        train(smoke_cfg("+model.params.dropuot=0.5"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


class _CrashAtEpoch(pl.Callback):
    """Raise at the start of an epoch, after the previous epoch's checkpoint was written."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_wandb_offline_logs_the_run_and_resumes_into_it(smoke_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    over = ("logger=wandb", "trainer.max_epochs=2", "tags=[smoke]")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(smoke_cfg(*over), tmp_path, [_CrashAtEpoch(1)])
    assert not (tmp_path / "summary.json").exists()
    run_id = (tmp_path / "wandb_id.txt").read_text().strip()
    final = train(smoke_cfg(*over, "resume=true"), tmp_path)
    files = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2 and all(f.name == f"run-{run_id}.wandb" for f in files)
    # read each file only once W&B's writer has finished it (reading earlier was flaky)
    info = run_info(read_finished_records(files[0]))
    assert (info["group"], info["job_type"]) == ("han2015_pruning", "float")
    assert info["tags"] == ["smoke", "method:float", "model:lenet300_100", "data:synthetic",
                            "budget:cpu-30ep"]
    assert info["config"]["optim.lr"] == smoke_cfg(*over).optim.lr  # flat keys for W&B's table
    assert info["config"]["data.name"] == "synthetic"
    resumed = history(read_finished_records(files[-1]))
    logged = {k: v for row in resumed for k, v in row.items()}
    assert logged["test/err"] == pytest.approx(final["test/err"])
    assert {"val/err", "train/loss_epoch", "test/top5_err"} <= set(logged)
    for key in ("test/top5_err", "val/err", "test/loss"):  # the run's own values, not just names
        assert logged[key] == pytest.approx(final[key]), key
    assert 1 in {row.get("epoch") for row in resumed}  # epoch 1 logs into the same run id


def test_wandb_summary_mirrors_summary_json_compression_figures_included(smoke_cfg, tmp_path,
                                                                       monkeypatch):
    """compress/ratio, compress/size_bytes and compress/kept_pct never reached W&B."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    final = train(smoke_cfg("logger=wandb", "method=pruned", "+compress.prune.quality.fc=1.0"),
                  tmp_path)
    (path,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    records = read_finished_records(path)
    logged = run_summary(records)
    on_disk = json.loads((tmp_path / "summary.json").read_text())["metrics"]
    assert {"compress/ratio", "compress/weight_ratio", "compress/kept_pct", "test/err"} <= set(
        final)
    for key, value in on_disk.items():
        assert logged[key] == pytest.approx(value), key
    assert 0 < logged["compress/kept_pct"] < 100 and logged["compress/ratio"] > 1
    assert run_info(records)["tags"][0] == "method:pruned"
    # the whole summary.json (what `quantsurvey-report --from-wandb` rebuilds tables from)
    whole = json.loads((tmp_path / "summary.json").read_text())
    assert logged[WANDB_SUMMARY_KEY] == whole
    # each per-layer record as a W&B Table: the kept % of every pruned layer
    (table_file,) = path.parent.glob("files/media/table/compression/prune_kept_pct_*.table.json")
    table = json.loads(table_file.read_text())
    kept = whole["compression"]["prune_kept_pct"]
    assert table["columns"] == ["layer", "value"] and len(kept) >= 3
    assert table["data"] == [[layer, value] for layer, value in kept.items()]


@pytest.mark.data
def test_one_epoch_on_real_mnist_learns(tmp_path):
    root = need_shared("MNIST", "raw")
    cfg = compose_cfg([f"paths.data_dir={root}", "trainer.max_epochs=1",
                       "trainer.progress_bar=none", "data.download=false",
                       f"paths.output_dir={tmp_path}"])
    metrics = train(cfg, tmp_path / "run")
    assert metrics["test/err"] < 8.0  # one epoch of LeNet-300-100 on the real digits
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["train"] == 55_000 and summary["data"]["test"] == 10_000


def test_resume_of_a_finished_run_reuses_its_summary(smoke_cfg, tmp_path):
    first = train(smoke_cfg(), tmp_path)
    before = (tmp_path / "summary.json").stat().st_mtime_ns
    assert train(smoke_cfg("resume=true"), tmp_path) == first
    assert (tmp_path / "summary.json").stat().st_mtime_ns == before


def test_the_svhn_experiment_runs_on_files_in_svhns_mat_format(tmp_path):
    """No SVHN here: both stages run on small train/test files written in the real layout
    (X: 32×32×3×N uint8, y: N×1 with label 10 for the digit 0)."""
    import numpy as np
    import scipy.io

    folder = tmp_path / "data" / "SVHN"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1))
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
    cfg = compose_cfg(["experiment=courbariaux2016_bnn/bnn_convnet_svhn", "trainer=smoke",
                       "trainer.max_epochs=1", f"paths.output_dir={tmp_path / 'out'}",
                       f"paths.data_dir={tmp_path / 'data'}", "data.val_size=8",
                       "data.download=false", "+data.params.allow_subset=true"])
    results = run_pipeline(cfg)
    assert list(results) == ["float", "bnn"]
    summary = json.loads(next((tmp_path / "out").rglob("bnn/seed=0/summary.json")).read_text())
    assert summary["dataset"] == "svhn" and summary["data"]["test"] == 20
    assert summary["compression"]["encoded"]["identical_outputs"] is True
    assert summary["report"] is False  # a subset is never a reportable row
