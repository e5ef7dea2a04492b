"""Multi-stage experiments: every stage is checked before any runs; stages chain and are reused."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quantsurvey.errors import CheckpointError, ConfigError, RunDirError
from quantsurvey.pipeline import run_pipeline, stage_configs
from quantsurvey.stages import STAGE_MODEL
from quantsurvey.train import train
from tests.conftest import compose_cfg


def _cfg(tmp_path, *extra):
    return compose_cfg(["experiment=han2016_deep_compression/lenet300_100_mnist",
                        "data=synthetic", "trainer=smoke", "trainer.max_epochs=1",
                        f"paths.output_dir={tmp_path}", *extra])


def test_stages_chain_in_order_across_papers(tmp_path):
    stages = stage_configs(_cfg(tmp_path))
    names = [n for n, _, _ in stages]
    assert names[0] == "float" and names[-1] == "quantize" and len(names) >= 4
    assert all(n == f"prune{i}" for i, n in enumerate(names[1:-1], 1))
    assert [rc.init_from for _, _, rc in stages] == [None, *names[:-1]]
    assert stages[0][2].paper == "han2015_pruning" and stages[-1][2].paper == \
        "han2016_deep_compression"
    assert all(rc.resume for _, _, rc in stages)


def test_every_stage_logs_to_its_experiments_wandb_group(tmp_path, monkeypatch):
    """Deep Compression borrows Han 2015's stages; all of them land in one W&B group."""
    from quantsurvey.report.wandb_records import read_finished_records, run_info

    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = compose_cfg(["experiment=han2016_deep_compression/lenet5_mnist", "data=synthetic",
                       "trainer=smoke", "trainer.max_epochs=1", "logger=wandb",
                       f"paths.output_dir={tmp_path}"])
    stages = stage_configs(cfg)
    assert {rc.paper for _, _, rc in stages} == {"han2015_pruning", "han2016_deep_compression"}
    run_pipeline(cfg)
    seen = {}
    for run_file in tmp_path.rglob("run-*.wandb"):
        info = run_info(read_finished_records(run_file))
        seen[info["job_type"]] = info["group"]
    assert seen == {name: "han2016_deep_compression" for name, _, _ in stages}


def test_a_reused_stage_appears_in_the_borrowing_experiments_group_once(tmp_path, monkeypatch):
    """Han 2015's stages, trained by Han 2015's own pipeline (W&B group han2015_pruning), are
    reused by Deep Compression's: each then has a W&B run in group han2016_deep_compression
    too, tagged `reused`, whose summary is the stage's summary.json, and Deep Compression's own
    stages train after them in the same process (a fresh one, as a user's command is: W&B's
    set-up by the reused stages' runs once made the next stage's offline logger ask for a
    login); reusing them again updates those runs (same ids), it adds none."""
    from quantsurvey.assemble import WANDB_SUMMARY_KEY
    from quantsurvey.report.wandb_records import read_finished_records, run_info, run_summary

    common = ["data=synthetic", "trainer=smoke", "logger=wandb", f"paths.output_dir={tmp_path}"]
    deep = compose_cfg(["experiment=han2016_deep_compression/lenet5_mnist"])
    one_epoch = {  # every stage (Han 2015's too) for one epoch, as the command line says it
        name: f"{'' if 'trainer' in stage else '+'}pipeline.{name}.trainer.max_epochs=1"
        for name, stage in deep.pipeline.items()}
    env = {**os.environ, "WANDB_SILENT": "true", "QUANTSURVEY_CACHE": str(tmp_path / "c")}
    env.pop("WANDB_MODE", None)

    def launch(experiment: str) -> None:
        stages = compose_cfg([f"experiment={experiment}"]).pipeline
        done = subprocess.run([sys.executable, "-m", "quantsurvey.cli",
                               f"experiment={experiment}", *common,
                               *(one_epoch[name] for name in stages)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]

    def runs() -> dict[str, list[tuple[dict, dict, Path]]]:
        out: dict[str, list] = {}
        for run_file in sorted(tmp_path.rglob("run-*.wandb")):
            records = read_finished_records(run_file)
            info = run_info(records)
            out.setdefault(info["group"], []).append((info, run_summary(records), run_file))
        return out

    launch("han2015_pruning/lenet5_mnist")
    before = runs()
    assert set(before) == {"han2015_pruning"}
    han2015 = sorted(info["job_type"] for info, _, _ in before["han2015_pruning"])
    launch("han2016_deep_compression/lenet5_mnist")
    borrowed = runs()["han2016_deep_compression"]
    reused = [r for r in borrowed if "reused" in r[0]["tags"]]
    assert sorted(info["job_type"] for info, _, _ in reused) == han2015
    assert len(borrowed) > len(reused)  # its own stages trained and logged after them
    for info, summary, run_file in reused:
        assert info["id"] in run_file.name
        on_disk = json.loads((run_file.parents[2] / "summary.json").read_text())
        assert summary[WANDB_SUMMARY_KEY] == on_disk
        assert summary["test/err"] == on_disk["metrics"]["test/err"]
    ids = {info["id"] for info, _, _ in borrowed}
    launch("han2016_deep_compression/lenet5_mnist")  # everything reused: the same runs again
    assert {info["id"] for info, _, _ in runs()["han2016_deep_compression"]} == ids
    assert len(runs()["han2015_pruning"]) == len(before["han2015_pruning"])


def test_a_typo_in_a_late_stage_fails_before_anything_runs(tmp_path):
    cfg = _cfg(tmp_path, "+pipeline.quantize.compress.share.bitz=4")
    with pytest.raises(ConfigError, match="pipeline stage 'quantize'.*bitz"):
        run_pipeline(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_init_from_must_name_an_earlier_stage(tmp_path):
    with pytest.raises(ConfigError, match="must name a stage that runs before it"):
        stage_configs(_cfg(tmp_path, "pipeline.prune1.init_from=prune2"))
    with pytest.raises(ConfigError, match="neither an earlier stage"):
        stage_configs(_cfg(tmp_path, "pipeline.prune1.init_from=prune9"))


@pytest.mark.parametrize("preset, cap", [(["trainer=smoke", "trainer.max_epochs=2"], 2),
                                         (["debug=fast"], 1), (["debug=limit"], 3), ([], None)])
def test_smoke_and_debug_runs_cap_the_epochs_a_stage_sets_itself(preset, cap):
    """zhang2018_admm/alexnet_imagenet's ADMM stage sets 484 epochs of its own: under
    trainer=smoke or debug=fast / limit no stage trains more than the top-level max_epochs;
    without them every stage keeps its own (and a stage below the cap is not raised to it)."""
    cfg = compose_cfg(["experiment=zhang2018_admm/alexnet_imagenet", *preset])
    own = {name: (stage or {}).get("trainer", {}).get("max_epochs")
           for name, stage in cfg.pipeline.items()}
    assert max(e for e in own.values() if e) == 484
    got = {name: rc.trainer.max_epochs for name, _, rc in stage_configs(cfg)}
    top = cfg.trainer.max_epochs
    want = {name: min(e or top, cap) if cap else (e or top) for name, e in own.items()}
    assert got == want and (cap is None or max(got.values()) == cap)


def test_a_top_level_epoch_count_is_refused_only_where_it_would_not_reach_the_stages():
    """Stages that set their own epochs ignore a top-level trainer.max_epochs, so the command
    line refuses it, except under trainer=smoke, where it caps them."""
    from quantsurvey.cli import apply_overrides_policy

    plain = ["experiment=zhang2018_admm/lenet5_mnist", "trainer.max_epochs=1"]
    with pytest.raises(ConfigError, match="set by pipeline stage"):
        apply_overrides_policy(compose_cfg(plain), plain)
    smoke = [*plain, "trainer=smoke"]
    cfg = apply_overrides_policy(compose_cfg(smoke), smoke)
    assert {rc.trainer.max_epochs for _, _, rc in stage_configs(cfg)} == {1}


def test_rerun_reuses_finished_stages_and_refuses_another_recipe(tmp_path):
    first = run_pipeline(_cfg(tmp_path))
    float_summary = tmp_path / "han2015_pruning/lenet300_100_synthetic/float/seed=0/summary.json"
    stamp = float_summary.stat().st_mtime_ns
    assert run_pipeline(_cfg(tmp_path)) == first  # nothing retrained
    assert float_summary.stat().st_mtime_ns == stamp
    with pytest.raises(RunDirError, match="another recipe.*optim"):
        run_pipeline(_cfg(tmp_path, "+pipeline.float.optim.lr=0.3"))


def _short_pipeline(tmp_path, *extra):
    """float → prune1 → prune2 (Han 2015's quality recipe) → retrain (no compress section: it
    only trains what prune2 left), one smoke epoch each."""
    return compose_cfg(["experiment=han2015_pruning/lenet300_100_mnist", "data=synthetic",
                        "trainer=smoke", "trainer.max_epochs=1", f"paths.output_dir={tmp_path}",
                        "~pipeline.prune3", "~pipeline.prune4",
                        "+pipeline.retrain.init_from=prune2", "+pipeline.retrain.report=false",
                        *(f"pipeline.{s}.trainer.max_epochs=1" for s in ("prune1", "prune2")),
                        "+pipeline.retrain.trainer.max_epochs=1", *extra])


@pytest.fixture(scope="module")
def short_pipeline(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    cfg = _short_pipeline(out)
    assert [n for n, _, _ in stage_configs(cfg)] == ["float", "prune1", "prune2", "retrain"]
    run_pipeline(cfg)
    return out


def _stage(root, name):
    folder = root / "han2015_pruning/lenet300_100_synthetic" / name / "seed=0"
    return (torch.load(folder / STAGE_MODEL, map_location="cpu", weights_only=True),
            json.loads((folder / "summary.json").read_text()))


def test_pruned_stage_keeps_the_previous_stages_zeros(short_pipeline):
    saved = {name: _stage(short_pipeline, name)[0]
             for name in ("prune1", "prune2", "retrain")}
    layers = ("fc1", "fc2", "fc3")
    assert set(saved["prune1"]["masks"]) == set(layers)
    for before, after in (("prune1", "prune2"), ("prune2", "retrain")):
        for layer in layers:
            old = saved[before]["masks"][layer].bool()
            new = saved[after]["masks"].get(layer)
            assert new is not None, f"{after} lost {before}'s mask of {layer}"
            new = new.bool()
            assert not bool((new & ~old).any()), f"{after} revived pruned weights of {layer}"
            weight = saved[after]["state_dict"][f"{layer}.weight"]
            assert bool((weight[~old] == 0).all()), f"{after}: {layer}'s pruned weights moved"
            assert torch.equal(weight != 0, new), layer  # the mask is where the weights are
    # retrain prunes nothing more: exactly prune2's masks
    for layer in layers:
        assert torch.equal(saved["retrain"]["masks"][layer], saved["prune2"]["masks"][layer])


def test_each_stage_records_the_file_and_run_it_started_from(short_pipeline):
    """A stage's folder is reused by later runs, so its path alone does not say which model a
    run started from: the summary also names the file's sha256 and the source run's commit and
    test error."""
    import hashlib

    for before, after in (("float", "prune1"), ("prune1", "prune2"), ("prune2", "retrain")):
        folder = short_pipeline / "han2015_pruning/lenet300_100_synthetic" / before / "seed=0"
        source = json.loads((folder / "summary.json").read_text())
        identity = _stage(short_pipeline, after)[1]["init_from_identity"]
        assert identity == {
            "file": str(folder / STAGE_MODEL),
            "sha256": hashlib.sha256((folder / STAGE_MODEL).read_bytes()).hexdigest(),
            "commit": source["git"]["commit"], "dirty": source["git"]["dirty"],
            "test_err": source["metrics"]["test/err"]}
    assert "init_from_identity" not in _stage(short_pipeline, "float")[1]


def test_next_prune_step_thresholds_on_the_survivors_only(short_pipeline):
    """Han 2015 §3.3: prune2's threshold is q·std of the weights prune1 left; taken over the
    whole layer (zeros included) it would be lower and keep more (55% instead of 44.7%)."""
    (before, _), (after, summary) = (_stage(short_pipeline, s) for s in ("prune1", "prune2"))
    quality = summary["config"]["compress"]["prune"]["quality"]
    assert set(quality) == {"fc1", "fc2", "fc3"}
    kept = {}
    for layer, q in quality.items():
        old = before["masks"][layer].bool()
        weight = before["state_dict"][f"{layer}.weight"]
        threshold = q * weight[old].double().std().item()
        expected = (weight.abs() > threshold) & old
        assert torch.equal(after["masks"][layer].bool(), expected), layer
        kept[layer] = 100.0 * expected.float().mean().item()
        assert kept[layer] < 100.0 * old.float().mean().item()
    assert summary["compression"]["prune_kept_pct"] == pytest.approx(kept)


@pytest.mark.parametrize("change, stage", [
    ("pipeline.prune1.compress.prune.quality.fc2=0.81", "prune1"),
    ("pipeline.prune2.compress.prune.quality.fc1=0.5", "prune2"),
    ("+pipeline.retrain.compress.prune.quality.fc3=0.5", "retrain"),  # a method added
])
def test_rerun_with_another_compress_recipe_is_refused(short_pipeline, tmp_path, change, stage):
    out = tmp_path / "outputs"
    shutil.copytree(short_pipeline, out)
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    # the same recipe again: every stage reused as it is
    again = run_pipeline(_short_pipeline(out))
    assert again == {name: _stage(out, name)[1]["metrics"] for name in again}
    with pytest.raises(RunDirError) as info:
        run_pipeline(_short_pipeline(out, change))
    assert f"{stage}/seed=0 holds a finished run made with another recipe (compress:" in \
        str(info.value)
    # nothing was retrained or rewritten, and no stage started anywhere else
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == files


def test_missing_init_model_is_a_clear_error(tmp_path):
    cfg = compose_cfg(["data=synthetic", "trainer=smoke", f"init_from={tmp_path / 'nowhere'}",
                       f"paths.output_dir={tmp_path}"])
    with pytest.raises(CheckpointError, match="does not exist"):
        train(cfg, tmp_path / "run")


def test_a_pipeline_says_which_stage_of_how_many_and_ends_with_what_it_reproduced(tmp_path):
    """Each stage opened with 'resume=true but … has no checkpoint' and Lightning's tips; the
    last line was Lightning's test bar."""
    import subprocess
    import sys

    from tests.test_bad_inputs import REPO

    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "quantsurvey.cli",
                          "experiment=han2015_pruning/lenet300_100_mnist", "data=synthetic",
                          "trainer=smoke", f"paths.output_dir={tmp_path}"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    starts = [line for line in out.stdout.splitlines() if line.startswith("quantsurvey: stage ")]
    assert [s.split(" stage ")[1].split(" (")[0] for s in starts] == [
        "1/5 float", "2/5 prune1", "3/5 prune2", "4/5 prune3", "5/5 prune4"]
    assert "left)" in starts[-1] and "left" not in starts[0]  # an estimate once one stage ran
    tail = out.stdout.splitlines()[-6:]
    assert tail[0].startswith("  stage") and [t.split()[0] for t in tail[1:]] == [
        "float", "prune1", "prune2", "prune3", "prune4"]
    assert "pipeline done in" in out.stdout
    for noise in ("has no checkpoint", "litlogger", "was configured so", "LeafSpec",
                  "does not have many workers"):
        assert noise not in text, noise
    again = subprocess.run(out.args, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.stdout.count("finished before: reused") == 5, again.stdout[-2000:]


def test_the_final_table_puts_the_papers_figures_beside_ours():
    from quantsurvey.pipeline import final_table, stage_configs

    stages = stage_configs(compose_cfg(["experiment=han2015_pruning/lenet300_100_mnist"]))
    results = {"float": {"test/err": 1.51}, "prune4": {"test/err": 1.62, "compress/ratio": 11.5}}
    lines = final_table(stages, results, 75.0).splitlines()
    assert lines[0] == "quantsurvey: pipeline done in 75 s"
    by_stage = {line.split()[0]: line for line in lines[2:]}
    assert by_stage["float"].split()[-3:] == ["1.64", "/", "-"]  # Han 2015, Table 1
    assert by_stage["float"].split()[2] == "1.51"
    assert by_stage["prune4"].split()[2:4] == ["1.62", "11.5"]
    assert by_stage["prune4"].split()[-3:] == ["1.59", "/", "12"]
    assert by_stage["prune1"].split()[2:] == ["1.59", "/", "12"]  # no figures of ours yet
