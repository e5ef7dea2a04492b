"""W&B both ways: runs pulled back into the report format (`--from-wandb-offline`, and the
online path through a stand-in for W&B's API), the report pushed as a Table and images
(`--to-wandb`), and each summary's per-layer records as tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from quantsurvey.assemble import WANDB_SUMMARY_KEY, log_summary_to
from quantsurvey.report import wandb_pull
from quantsurvey.report.build import COLUMNS, main
from quantsurvey.report.layer_tables import layer_tables
from quantsurvey.report.wandb_records import read_finished_records, run_info
from tests.conftest import REPO

RUNS = REPO / "results" / "runs"
# three seeds of one committed row, and an intermediate stage (report: false) of the same setting
DEEP = sorted((RUNS / "han2016_deep_compression" / "lenet300_100_mnist" / "quantize").glob(
    "seed=*.json"))


@pytest.fixture
def quiet_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)


def _log_offline(summary: dict, where: Path, run_id: str) -> Path:
    """Log a summary the way a finished run does (assemble.log_summary), offline."""
    import wandb

    run = wandb.init(project="p", id=run_id, dir=str(where), mode="offline",
                     group=summary["paper"], job_type=summary["stage"])
    log_summary_to(run, summary)
    run.finish()
    (path,) = where.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")
    return path


def _rows(results: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((results / "results.csv").read_text().splitlines()))


def test_offline_runs_pulled_back_give_the_committed_rows(tmp_path, quiet_wandb, capsys):
    assert len(DEEP) == 3
    originals = [json.loads(p.read_text()) for p in DEEP]
    for i, summary in enumerate(originals):
        _log_offline(summary, tmp_path / "wb" / str(i), f"deep{i}")
    # a W&B run that is not ours (no summary.json in it) is counted and left out
    import wandb

    other = wandb.init(project="p", id="other1", dir=str(tmp_path / "wb" / "x"), mode="offline")
    other.summary.update({"test/err": 1.0})
    other.finish()

    out = tmp_path / "pulled"
    main(["--from-wandb-offline", str(tmp_path / "wb"), "--results", str(out)])
    said = capsys.readouterr().out
    assert "pulled 3 run summaries from W&B (1 runs without one left out)" in said
    for path, summary in zip(DEEP, originals, strict=True):
        pulled = out / "runs" / path.relative_to(RUNS)
        assert json.loads(pulled.read_text()) == summary  # the summary.json, whole
    def ours(results: Path) -> list[dict[str, str]]:
        return [r for r in _rows(results) if r["ours"]]

    committed = [r for r in ours(REPO / "results") if r["paper"] == "han2016_deep_compression"
                 and r["setting"] == "lenet300_100_mnist" and r["method"] == "deep_compression"]
    assert committed and ours(out) == committed  # the same rows, figures and provenance


def test_the_online_path_reads_each_runs_summary_through_the_api():
    summary = json.loads(DEEP[0].read_text())

    class Sub(dict):  # W&B hands back its own mapping types
        pass

    runs = [SimpleNamespace(id="a1", summary={WANDB_SUMMARY_KEY: Sub(summary)}),
            SimpleNamespace(id="b2", summary={"test/err": 3.0})]
    asked = []

    class Api:
        def runs(self, project):
            asked.append(project)
            return runs

    pulled = wandb_pull.from_api("me/quantsurvey", api=Api())
    assert asked == ["me/quantsurvey"]
    assert pulled.summaries == {"a1": summary} and pulled.without_summary == 1
    assert type(pulled.summaries["a1"]) is dict


@pytest.mark.parametrize("args, message", [
    (["--from-wandb-offline", "{tmp}/nowhere"], "does not exist"),
    (["--from-wandb-offline", "{tmp}"], "no run-*.wandb file under"),
])
def test_pulling_nothing_is_an_error_that_writes_nothing(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main([a.format(tmp=tmp_path) for a in args] + ["--results", str(tmp_path / "res")])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_the_report_goes_to_wandb_as_a_table_and_images(tmp_path, quiet_wandb, monkeypatch,
                                                       capsys):
    monkeypatch.setenv("QUANTSURVEY_OUTPUT", str(tmp_path / "outputs"))
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    for path in DEEP:
        dest = results / "runs" / path.relative_to(RUNS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(path.read_text())
    main(["--results", str(results), "--to-wandb", "me/quantsurvey", "--wandb-offline"])
    assert "to W&B run" in capsys.readouterr().out
    (run_file,) = (tmp_path / "outputs").glob("wandb/offline-run-*/run-*.wandb")
    info = run_info(read_finished_records(run_file))
    assert (info["group"], info["job_type"]) == ("report", "report")
    (table_file,) = run_file.parent.glob("files/media/table/results_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == COLUMNS
    assert table["data"] == [[r[c] for c in COLUMNS] for r in _rows(results)]
    pngs = sorted(p.stem for p in (results / "figures").glob("survey_*.png"))
    logged = sorted(p.name.rsplit("_", 2)[0] for p in
                    run_file.parent.glob("files/media/images/figures/*.png"))
    assert pngs and logged == pngs


def test_per_layer_records_become_tables():
    compression = {
        "share_bits": {"fc1": 6, "fc2": 5},
        "encoded": {"size_bytes": 10, "identical_outputs": True,
                    "layers": {"fc1": {"params": 4, "kept_pct": 50.0},
                               "fc2": {"params": 2, "ratio": 3.0}}},
        "fixed_point_layers": {"conv1": {"weight": {"bits": 4, "step": 0.5}}},
        "dropout": {},
        "note": "not a table",
    }
    assert layer_tables(compression) == {
        "share_bits": (["layer", "value"], [["fc1", 6], ["fc2", 5]]),
        "encoded.layers": (["layer", "params", "kept_pct", "ratio"],
                           [["fc1", 4, 50.0, None], ["fc2", 2, None, 3.0]]),
        "fixed_point_layers": (["layer", "weight.bits", "weight.step"],
                               [["conv1", 4, 0.5]]),
    }
