"""`quantsurvey-report --collect`: every summary is checked before anything is written, a
committed run is never replaced silently, and only seeds of one recipe share a row. Every test
works on a results folder it writes under tmp_path, never on the committed results/."""

import copy
import csv
import json
import math
from pathlib import Path

import pytest

from quantsurvey.report.build import ReportError, build_rows, collect, main, recipe

PAPER, SETTING = "han2015_pruning", "lenet300_100_mnist"


def _summary(seed, err=0.8, max_epochs=30, budget="cpu-30ep", data="mnist", commit="a" * 40,
             **extra):
    """A finished float run, laid out like results/runs/han2015_pruning/*/float/seed=*.json."""
    config = {
        "budget": budget, "callbacks": {"checkpoint": True, "lr_monitor": True},
        "compress": {"encode": None, "prune": None, "share": None},
        "data": {"augment": "shift", "batch_size": 128, "download": True,
                 "eval_batch_size": 1000, "name": data, "num_workers": 0, "pad": 0,
                 "params": {}, "root": "/data", "split_seed": 0, "val_size": 5000},
        "init_from": None, "loss": "cross_entropy", "method": "float",
        "model": {"name": "lenet300_100", "params": {}}, "name": "float",
        "optim": {"lr": 0.05, "momentum": 0.9, "name": "sgd", "weight_decay": 0.0005},
        "paper": PAPER, "report": True, "sched": {"name": "cosine", "milestones": []},
        "seed": seed, "setting": SETTING, "stage": "float",
        "trainer": {"max_epochs": max_epochs, "deterministic": True}}
    return {"paper": PAPER, "setting": SETTING, "method": "float", "stage": "float",
            "name": "float", "model": "lenet300_100", "dataset": data, "seed": seed,
            "budget": budget, "epochs": max_epochs,
            "metrics": {"test/err": err, "val/err": 0.9},
            "config": config, "git": {"commit": commit, "dirty": False},
            "hardware": {"device": "cpu 2 cores"}, "report": True, "init_from": None,
            "compression": {}, **extra}


def _dest(res, seed, name="float"):
    return res / "runs" / PAPER / SETTING / name / f"seed={seed}.json"


@pytest.fixture
def res(tmp_path):
    """A results folder holding two committed seeds of one row, and its table built from them."""
    res = tmp_path / "res"
    for seed, err in ((0, 0.8), (1, 0.85)):
        _dest(res, seed).parent.mkdir(parents=True, exist_ok=True)
        _dest(res, seed).write_text(json.dumps(_summary(seed, err), indent=2))
    (tmp_path / "exp").mkdir()
    main(["--results", str(res), "--experiments", str(tmp_path / "exp")])
    return res


def _run(tmp_path, summary, where="outputs", model=None, raw=None):
    """A finished run's folder under tmp_path/<where>: its summary.json (or `raw` text) and
    optionally its model.qsdc."""
    folder = tmp_path / where / f"run{len(list(tmp_path.glob(f'{where}/run*')))}"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(raw if raw is not None else json.dumps(summary))
    if model is not None:
        (folder / "model.qsdc").write_bytes(model)
    return folder / "summary.json"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _report(tmp_path, res, *args):
    return main(["--results", str(res), "--experiments", str(tmp_path / "exp"), *args])


def _refused(tmp_path, res, capsys, *args) -> str:
    """Run the command expecting a refusal: exit 2, one line on stderr, nothing written."""
    before = _snapshot(res)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        _report(tmp_path, res, *args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("quantsurvey-report: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert _snapshot(res) == before  # every file under the results folder, byte for byte
    return err


def _rows(res):
    return {(r["method"], r["metric"]): r for r in csv.DictReader(open(res / "results.csv"))}


def test_a_run_of_another_recipe_with_the_rows_budget_label_is_refused(tmp_path, res, capsys):
    """A 3-epoch run that kept the label cpu-30ep never joins the 30-epoch seeds' row."""
    src = _run(tmp_path, _summary(2, err=3.1, max_epochs=3))
    err = _refused(tmp_path, res, capsys, "--collect", str(tmp_path / "outputs"))
    assert "trainer.max_epochs (30 vs 3)" in err
    assert str(_dest(res, 0)) in err and str(src) in err
    assert not _dest(res, 2).exists()


def test_build_rows_refuses_seeds_of_different_recipes_or_datasets():
    with pytest.raises(ReportError, match=r"differ in config trainer.max_epochs \(30 vs 3\)"):
        build_rows([_summary(0), _summary(1, max_epochs=3)], [])
    with pytest.raises(ReportError, match=r"differ in dataset \(mnist vs synthetic\)"):
        build_rows([_summary(0), _summary(1, data="synthetic")], [])
    # another budget label is another row
    rows = build_rows([_summary(0), _summary(1, max_epochs=3, budget="cpu-3ep")], [])
    assert sorted(r["budget"] for r in rows) == ["cpu-30ep", "cpu-3ep"]


def test_a_new_seed_of_the_same_recipe_is_added(tmp_path, res, capsys):
    _run(tmp_path, _summary(2, err=0.9), model=b"QSDC2")
    _report(tmp_path, res, "--collect", str(tmp_path / "outputs"))
    assert json.loads(_dest(res, 2).read_text()) == _summary(2, err=0.9)
    assert _dest(res, 2).with_suffix(".qsdc").read_bytes() == b"QSDC2"
    row = _rows(res)[("float", "test_err")]
    assert (row["ours"], row["seeds"]) == ("0.850", "3")
    assert "collected 1 summaries" in capsys.readouterr().out


def test_a_different_run_at_a_committed_destination_is_refused_with_a_diff(tmp_path, res,
                                                                           capsys):
    src = _run(tmp_path, _summary(0, err=1.2, commit="b" * 40))
    err = _refused(tmp_path, res, capsys, "--collect", str(tmp_path / "outputs"))
    assert f"{_dest(res, 0)} already holds a different run than {src}" in err
    assert "test/err 0.8 -> 1.2" in err and "git commit aaaaaaaaaaaa -> bbbbbbbbbbbb" in err
    assert "--replace" in err


def test_replace_overwrites_and_drops_a_stale_model_file(tmp_path, res, capsys):
    _dest(res, 0).with_suffix(".qsdc").write_bytes(b"OLD")
    new = _summary(0, err=1.2, commit="b" * 40)
    _run(tmp_path, new)
    _report(tmp_path, res, "--collect", str(tmp_path / "outputs"), "--replace")
    assert json.loads(_dest(res, 0).read_text()) == new
    assert not _dest(res, 0).with_suffix(".qsdc").exists()
    assert _rows(res)[("float", "test_err")]["ours"] == "1.025"
    assert "1 replaced" in capsys.readouterr().out


def test_replace_never_mixes_recipes_or_datasets_in_a_row(tmp_path, res, capsys):
    """A smoke run on synthetic data may not replace a real MNIST seed beside another one."""
    _run(tmp_path, _summary(0, err=50.0, data="synthetic", max_epochs=1))
    err = _refused(tmp_path, res, capsys, "--collect", str(tmp_path / "outputs"), "--replace")
    assert "differ in dataset (synthetic vs mnist)" in err  # the new seed 0 vs seed 1
    assert str(tmp_path / "outputs") in err and str(_dest(res, 1)) in err


def test_an_identical_run_is_skipped_quietly(tmp_path, res, capsys):
    committed = _dest(res, 1).read_bytes()
    _run(tmp_path, json.loads(committed))  # same content, other formatting
    before = _snapshot(res)
    capsys.readouterr()
    _report(tmp_path, res, "--collect", str(tmp_path / "outputs"))
    assert _snapshot(res) == before
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "collected 0 summaries (1 already there, unchanged)" in captured.out


@pytest.mark.parametrize("text, reason", [
    ('{"paper": "han2015_pruning", "setting": "lenet', "is not valid JSON"),
    ('{"metrics": {"test/err": 1.0}}', "is not a run summary: it lacks paper"),
    ("[1, 2]", "is not a run summary"),
])
def test_a_cut_or_schemaless_summary_is_named_and_nothing_is_copied(tmp_path, res, capsys, text,
                                                                    reason):
    _run(tmp_path, _summary(2))  # a good run, found before the bad one: not copied either
    bad = _run(tmp_path, None, raw=text)
    err = _refused(tmp_path, res, capsys, "--collect", str(tmp_path / "outputs"))
    assert f"{bad}: {reason}" in err and "nothing was collected" in err
    assert not _dest(res, 2).exists()


def test_wrong_types_are_named(tmp_path, res, capsys):
    _run(tmp_path, {**_summary(2), "seed": "2"})
    err = _refused(tmp_path, res, capsys, "--collect", str(tmp_path / "outputs"))
    assert "seed must be an integer" in err
    with pytest.raises(ReportError, match="metric test/err must be a number"):
        collect([_run(tmp_path, _summary(3, err="0.8"), where="o2").parent], res / "runs")


@pytest.mark.parametrize("summary, reason", [
    (_summary(2, err=math.nan), "metric(s) not finite: test/err=nan"),
    (_summary(2, err=math.inf), "metric(s) not finite: test/err=inf"),
    ({**_summary(2), "status": "failed"}, "the run failed (status: failed)"),
])
def test_a_failed_run_or_a_non_finite_metric_is_refused(tmp_path, res, capsys, summary, reason):
    src = _run(tmp_path, summary)
    err = _refused(tmp_path, res, capsys, "--collect", str(tmp_path / "outputs"))
    assert f"{src}: {reason}" in err


def test_a_missing_or_empty_folder_is_an_error(tmp_path, res, capsys):
    err = _refused(tmp_path, res, capsys, "--collect", str(tmp_path / "no_such_outputs"))
    assert f"{tmp_path / 'no_such_outputs'} does not exist" in err
    (tmp_path / "empty" / "run").mkdir(parents=True)
    (tmp_path / "empty" / "run" / "config.yaml").write_text("x: 1")
    err = _refused(tmp_path, res, capsys, "--collect", str(tmp_path / "empty"))
    assert f"{tmp_path / 'empty'} holds no summary.json" in err


def test_intermediate_stages_are_skipped(tmp_path, res):
    _run(tmp_path, {**_summary(2, err=math.nan), "name": "prune1", "report": False})
    _run(tmp_path, _summary(2))
    assert collect([tmp_path / "outputs"], res / "runs") == [_dest(res, 2)]
    assert not (res / "runs" / PAPER / SETTING / "prune1").exists()


def test_two_different_runs_for_one_destination_are_refused(tmp_path, res, capsys):
    _run(tmp_path, _summary(2, err=0.9))
    _run(tmp_path, _summary(2, err=0.95), where="outputs_again")
    err = _refused(tmp_path, res, capsys, "--collect", str(tmp_path / "outputs"),
                   str(tmp_path / "outputs_again"), "--replace")
    assert f"are both {PAPER}/{SETTING}/float/seed=2 but differ (test/err 0.9 -> 0.95" in err


def test_a_bad_committed_summary_stops_the_collection(tmp_path, res, capsys):
    s = _summary(1)
    s["metrics"]["test/err"] = None
    _dest(res, 1).write_text(json.dumps(s))
    _run(tmp_path, _summary(2))
    err = _refused(tmp_path, res, capsys, "--collect", str(tmp_path / "outputs"))
    assert f"{_dest(res, 1)}: metric(s) not finite: test/err=None" in err


def test_recipe_fingerprint():
    s = _summary(1)
    fp = recipe(s)
    assert fp["trainer.max_epochs"] == 30 and fp["data.name"] == "mnist"
    assert fp["compress"] is None  # all of its entries null
    old = copy.deepcopy(s)  # an older summary whose config had no compress or init_from
    del old["config"]["compress"], old["config"]["init_from"]
    assert recipe(old) == fp
    # a key a summary lacks takes today's default (as when the run directory reuses a run)
    assert recipe({k: v for k, v in s.items() if k != "config"})["method"] == "float"

    def stage(seed, init_from, **compress):
        t = _summary(seed)
        t["config"]["init_from"], t["config"]["compress"]["prune"] = init_from, compress or None
        return t

    # seeds start from their own seed's previous stage, wherever the outputs folder was
    a = stage(0, "outputs/han2015_pruning/lenet300_100_mnist/prune1/seed=0", q=0.6)
    b = stage(1, "/work/main/outputs_x/han2015_pruning/lenet300_100_mnist/prune1/seed=1", q=0.6)
    assert recipe(a) == recipe(b)
    assert recipe(a)["init_from"] == "han2015_pruning/lenet300_100_mnist/prune1/seed=*"
    assert recipe(a)["compress"] == {"prune": {"q": 0.6}}
    assert len(build_rows([a, b], [])) == 1
    c = stage(1, "outputs/han2015_pruning/lenet300_100_mnist/prune2/seed=1", q=0.6)
    with pytest.raises(ReportError, match="differ in config init_from"):
        build_rows([a, c], [])
    d = stage(1, "outputs/han2015_pruning/lenet300_100_mnist/prune1/seed=1", q=0.7)
    with pytest.raises(ReportError, match=r"differ in config compress.prune.q \(0.6 vs 0.7\)"):
        build_rows([a, d], [])
