"""The results table: ours (mean ± std over seeds) beside the paper's, never in one column."""

import csv
import io
import json
import shutil
import subprocess

import pytest

from quantsurvey.report.build import (
    COLUMNS,
    ReportError,
    build_rows,
    collect,
    load_reported,
    main,
    render_csv,
)


def _summary(seed, err, budget="cpu-30ep", **extra):
    return {"paper": "han2015_pruning", "setting": "lenet300_100_mnist", "method": "float",
            "model": "lenet300_100", "dataset": "mnist", "seed": seed, "budget": budget,
            "name": "float", "metrics": {"test/err": err, "val/err": 9.0},
            "hardware": {"device": "cpu 2 cores"}, "git": {"commit": "a" * 40, "dirty": False},
            **extra}


REPORTED = [{"paper": "han2015_pruning", "setting": "lenet300_100_mnist", "method": "float",
             "model": "lenet300_100", "dataset": "mnist", "metric": "test_err",
             "reported": 1.64},
            {"paper": "han2015_pruning", "setting": "lenet300_100_mnist", "method": "pruned",
             "model": "lenet300_100", "dataset": "mnist", "metric": "ratio", "reported": 12}]


def test_mean_and_sample_std_over_seeds_beside_the_papers_figure():
    rows = build_rows([_summary(0, 1.0), _summary(1, 1.2), _summary(2, 1.4)], REPORTED)
    (row,) = [r for r in rows if r["method"] == "float"]
    assert row["reported"] == "1.640" and row["ours"] == "1.200" and row["ours_std"] == "0.200"
    assert row["seeds"] == "3" and row["budget"] == "cpu-30ep" and row["commit"] == "a" * 12
    (paper_only,) = [r for r in rows if r["method"] == "pruned"]
    assert paper_only["reported"] == "12.000" and paper_only["ours"] == ""


def test_budgets_are_never_averaged_together():
    rows = build_rows([_summary(0, 1.0), _summary(1, 1.4), _summary(0, 3.0, budget="paper")], [])
    assert {r["budget"]: (r["ours"], r["ours_std"], r["seeds"]) for r in rows} == {
        "cpu-30ep": ("1.200", "0.283", "2"), "paper": ("3.000", "", "1")}


def test_imagenet_errors_are_top1_and_top5():
    s = _summary(0, 40.0, dataset="imagenet")
    s["metrics"]["test/top5_err"] = 18.0
    assert {r["metric"]: r["ours"] for r in build_rows([s], [])} == {"top1_err": "40.000",
                                                                     "top5_err": "18.000"}
    # elsewhere the error is test_err, and a top-5 error (logged by every run) is no row
    m = _summary(0, 1.5)
    m["metrics"]["test/top5_err"] = 0.1
    assert {r["metric"]: r["ours"] for r in build_rows([m], [])} == {"test_err": "1.500"}


def test_csv_has_the_agreed_columns():
    rows = build_rows([_summary(0, 1.0), _summary(1, 2.0)], REPORTED)
    text = render_csv(rows)
    assert next(csv.reader(io.StringIO(text))) == COLUMNS
    assert list(csv.DictReader(io.StringIO(text))) == rows  # every row, every cell, in order
    assert [(r["method"], r["metric"], r["reported"], r["ours"], r["ours_std"], r["seeds"])
            for r in rows] == [("float", "test_err", "1.640", "1.500", "0.707", "2"),
                               ("pruned", "ratio", "12.000", "", "", "")]


def test_reported_yaml_is_checked(tmp_path):
    folder = tmp_path / "han2015_pruning"
    folder.mkdir()
    (folder / "reported.yaml").write_text(
        "paper: han2015_pruning\nrows:\n  - {setting: s, model: m, dataset: d, method: float,"
        " metrics: {test_error: 1.0}}\n")
    with pytest.raises(ReportError, match="unknown metric"):
        load_reported(tmp_path)
    (folder / "reported.yaml").write_text("paper: other\nrows: []\n")
    with pytest.raises(ReportError, match="must equal its folder name"):
        load_reported(tmp_path)
    (folder / "reported.yaml").write_text(  # a misspelt key would silently drop the paper's figures
        "paper: han2015_pruning\nrows:\n  - {setting: s, model: m, dataset: d, method: pruned,"
        " metrics: {test_err: 1.0}, layer_kept: {fc1: 8}}\n")
    with pytest.raises(ReportError, match=r"unknown key\(s\) \['layer_kept'\]"):
        load_reported(tmp_path)
    for bad in ("[8, 9]", "{fc1: 0}", "{fc1: 108}", "{fc1: eight}"):
        (folder / "reported.yaml").write_text(  # the kept-per-layer figure reads these
            "paper: han2015_pruning\nrows:\n  - {setting: s, model: m, dataset: d, method: p,"
            f" metrics: {{test_err: 1.0}}, layer_kept_pct: {bad}}}\n")
        with pytest.raises(ReportError, match="must map layer names to kept percentages"):
            load_reported(tmp_path)


def test_kept_per_layer_figure_takes_ours_per_seed_and_the_papers_per_layer(tmp_path):
    from quantsurvey.report.layer_kept_figure import draw_all, ours_per_layer, papers_per_layer

    pruned = [_summary(seed, 1.5, method="pruned", compression={"prune_kept_pct": kept})
              for seed, kept in ((1, {"fc1": 8.0, "fc2": 9.5}), (0, {"fc1": 7.0, "fc2": 9.0}))]
    other = _summary(0, 1.4, setting="lenet5_mnist", compression={"dropout": {}})
    ours = ours_per_layer([*pruned, other, _summary(0, 1.3)])
    assert ours == {"lenet300_100_mnist": {"han2015_pruning: pruned [cpu-30ep]": [
        {"fc1": 7.0, "fc2": 9.0}, {"fc1": 8.0, "fc2": 9.5}]}}  # seed order; unpruned runs left out
    folder = tmp_path / "exp" / "han2015_pruning"
    folder.mkdir(parents=True)
    (folder / "reported.yaml").write_text(
        "paper: han2015_pruning\nrows:\n  - {setting: lenet300_100_mnist, model: m, dataset: d,"
        " method: pruned, metrics: {ratio: 12}, layer_kept_pct: {fc1: 8, fc2: 9}}\n"
        "  - {setting: lenet300_100_mnist, model: m, dataset: d, method: float,"
        " metrics: {test_err: 1.64}}\n")
    assert papers_per_layer(tmp_path / "exp") == {
        "lenet300_100_mnist": {"han2015_pruning: pruned (paper)": {"fc1": 8.0, "fc2": 9.0}}}
    paths = draw_all([*pruned, other], tmp_path / "exp", tmp_path / "fig")
    assert [p.name for p in paths] == ["kept_per_layer_lenet300_100_mnist.png",
                                       "kept_per_layer_lenet300_100_mnist.pdf"]
    again = draw_all([*pruned, other], tmp_path / "exp", tmp_path / "fig2")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]


def test_cli_collects_and_rebuilds(tmp_path, capsys):
    for seed in (0, 1):
        run = tmp_path / "outputs" / f"seed={seed}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps(_summary(seed, 1.0 + seed)))
        (run / "model.qsdc").write_bytes(b"QSDC" + bytes([seed]))
    (tmp_path / "exp").mkdir()
    main(["--collect", str(tmp_path / "outputs"), "--results", str(tmp_path / "res"),
          "--experiments", str(tmp_path / "exp")])
    assert (tmp_path / "res" / "runs" / "han2015_pruning" / "lenet300_100_mnist" / "float"
            / "seed=1.json").is_file()
    assert (tmp_path / "res" / "runs" / "han2015_pruning" / "lenet300_100_mnist" / "float"
            / "seed=1.qsdc").read_bytes() == b"QSDC\x01"
    runs = tmp_path / "res" / "runs" / "han2015_pruning" / "lenet300_100_mnist" / "float"
    assert sorted(p.name for p in runs.iterdir()) == ["seed=0.json", "seed=0.qsdc",
                                                       "seed=1.json", "seed=1.qsdc"]
    assert json.loads((runs / "seed=0.json").read_text()) == _summary(0, 1.0)
    assert (runs / "seed=0.qsdc").read_bytes() == b"QSDC\x00"
    rows = list(csv.DictReader(open(tmp_path / "res" / "results.csv")))
    assert [(r["metric"], r["ours"], r["ours_std"], r["seeds"]) for r in rows] == [
        ("test_err", "1.500", "0.707", "2")]
    readme = (tmp_path / "res" / "README.md").read_text()
    assert ("| lenet300_100_mnist | float | test_err |  | 1.500 ± 0.707 | 2 | cpu-30ep | "
            "cpu 2 cores | " + "a" * 12 + " |") in readme
    assert "collected 2 summaries" in capsys.readouterr().out


def test_corrupt_summary_exits_with_a_message(tmp_path, capsys):
    (tmp_path / "res" / "runs").mkdir(parents=True)
    (tmp_path / "res" / "runs" / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit) as info:
        main(["--results", str(tmp_path / "res"), "--experiments", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("quantsurvey-report: error: ") and len(err.splitlines()) == 1
    assert str(tmp_path / "res" / "runs" / "bad.json") in err and "not valid JSON" in err
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["runs"]  # nothing written


def test_collect_ignores_unfinished_runs(tmp_path):
    (tmp_path / "out" / "run").mkdir(parents=True)
    (tmp_path / "out" / "run" / "config.yaml").write_text("x: 1")
    with pytest.raises(ReportError, match="holds no summary.json"):  # nothing finished at all
        collect([tmp_path / "out"], tmp_path / "runs")
    (tmp_path / "out" / "done").mkdir()
    (tmp_path / "out" / "done" / "summary.json").write_text(json.dumps(_summary(0, 1.0)))
    (written,) = collect([tmp_path / "out"], tmp_path / "runs")
    assert written == tmp_path / "runs/han2015_pruning/lenet300_100_mnist/float/seed=0.json"
    assert json.loads(written.read_text()) == _summary(0, 1.0)
    assert [p for p in (tmp_path / "runs").rglob("*") if p.is_file()] == [written]


def test_per_layer_tables_average_the_seeds():
    from quantsurvey.report.build import render_layer_tables

    def enc(size, wbits):
        layer = {"params": 1000, "kept_pct": 10.0, "weight_bits_pq": 5,
                 "weight_bits_huffman": wbits, "index_bits_pq": 5, "index_bits_huffman": 3.0,
                 "stored_bytes": size - 100, "ratio": 4000 / (size - 100)}
        return {"compression": {"encoded": {"size_bytes": size, "original_bytes": 4400,
                                            "layers": {"fc1": layer}}}}

    text = render_layer_tables([_summary(0, 1.0, **enc(200, 2.0)),
                                _summary(1, 1.0, **enc(300, 3.0))])
    assert "Encoded file 0.2 kB (original 4 kB, 17.6×)" in text
    assert "| fc1 | 1,000 | 10.0 | 5 | 2.50 | 5 | 3.00 | 150 |" in text


def test_storage_accounting_checks_get_their_own_section(tmp_path):
    """Storage-only checks on random-init weights never sit beside the papers' figures."""
    layer = {"params": 1000, "kept_pct": 10.0, "weight_bits_pq": 5, "weight_bits_huffman": 4.0,
             "index_bits_pq": 4, "index_bits_huffman": 3.0, "stored_bytes": 900, "ratio": 4.4}
    check = {"paper": "han2016_deep_compression", "setting": "alexnet_imagenet",
             "method": "storage_accounting", "model": "alexnet_caffe", "dataset": "imagenet",
             "seed": 0, "budget": "storage-only-random-init", "name": "storage-deep_compression",
             "metrics": {"compress/size_bytes": 1000.0, "compress/ratio": 4.0,
                         "compress/kept_pct": 11.2},
             "compression": {"encoded": {"size_bytes": 1000, "original_bytes": 4000,
                                         "layers": {"fc6": layer}}},
             "hardware": {"device": "cpu 2 cores"}, "git": {"commit": "b" * 40, "dirty": False}}
    other = {**check, "name": "storage-deep_compression_6bit", "compression": {},
             "metrics": {"compress/size_bytes": 500.0, "compress/ratio": 8.0}}
    for name, s in (("float", _summary(0, 1.0)), ("storage", check), ("storage6", other)):
        folder = tmp_path / "res" / "runs" / s["paper"] / s["setting"] / name
        folder.mkdir(parents=True)
        (folder / "seed=0.json").write_text(json.dumps(s))
    exp = tmp_path / "exp" / "han2016_deep_compression"
    exp.mkdir(parents=True)
    (exp / "reported.yaml").write_text(
        "paper: han2016_deep_compression\nrows:\n  - {setting: alexnet_imagenet,"
        " model: alexnet_caffe, dataset: imagenet, method: deep_compression,"
        " metrics: {ratio: 35}}\n")
    main(["--results", str(tmp_path / "res"), "--experiments", str(tmp_path / "exp")])

    text = (tmp_path / "res" / "README.md").read_text()
    main_part, accounting = text.split("## Storage accounting checks (random-initialised "
                                       "weights, not reproduced ratios)")
    assert "| lenet300_100_mnist | float | test_err |" in main_part
    assert "| alexnet_imagenet | deep_compression | ratio | 35.000 |  |" in main_part
    assert "storage_accounting |" not in main_part and "4.000" not in main_part
    assert ("| han2016_deep_compression | alexnet_imagenet | storage-deep_compression | 1,000 | "
            "4,000 | 4.0× | 1 |") in accounting
    # a second check of the same setting is its own row, never averaged with the first
    assert ("| alexnet_imagenet | storage-deep_compression_6bit | 500 | 4,000 | 8.0× | 1 |"
            in accounting)
    assert "| fc6 | 1,000 |" in accounting and "| fc6 |" not in main_part
    assert "lenet300_100_mnist" not in accounting

    rows = list(csv.DictReader(open(tmp_path / "res" / "results.csv")))
    kept = [r for r in rows if r["method"] == "storage_accounting"]
    assert {(r["metric"], r["budget"]): r["ours"] for r in kept} == {
        ("ratio", "storage-only-random-init [storage-deep_compression]"): "4.000",
        ("size_kb", "storage-only-random-init [storage-deep_compression]"): "1.000",
        ("kept_pct", "storage-only-random-init [storage-deep_compression]"): "11.200",
        ("ratio", "storage-only-random-init [storage-deep_compression_6bit]"): "8.000",
        ("size_kb", "storage-only-random-init [storage-deep_compression_6bit]"): "0.500"}
    (paper_row,) = [r for r in rows if r["method"] == "deep_compression"]
    assert paper_row["reported"] == "35.000" and paper_row["ours"] == ""


def test_ternary_models_get_their_own_per_layer_columns():
    """A ternary file's layers (zeros, W_p, W_n, bytes) are tabulated, not looked up under
    Deep Compression's columns (a KeyError stopped the first collection of TTQ runs)."""
    from quantsurvey.report.build import render_layer_tables

    layer = {"params": 2304, "zero_pct": 40.0, "w_p": 1.25, "w_n": 0.75, "stored_bytes": 584,
             "ratio": 15.8}
    runs = [{"paper": "zhu2017_ttq", "setting": "resnet20_cifar10", "method": "ttq",
             "budget": "gpu-8ep", "compression": {"encoded": {
                 "size_bytes": 1000 + seed, "original_bytes": 12000,
                 "layers": {"layers.0.conv1": {**layer, "w_p": layer["w_p"] + seed}}}}}
            for seed in (0, 1)]
    text = render_layer_tables(runs)
    assert "| layer | params | zeros % | W_p | W_n | stored bytes | ratio × |" in text
    assert "| layers.0.conv1 | 2,304 | 40.0 | 1.7500 | 0.7500 | 584 | 15.8 |" in text
    assert "ttq (gpu-8ep, 2 seed(s))" in text


def _grid_point(seed, err, w, a, stage="direct"):
    fp = {"weight_bits": w, "input_bits": a}
    return _summary(seed, err, budget=stage, paper="anwar2015_fixed_point",
                    setting="lenet5_mnist", method="fixed_point", model="lenet5",
                    name=f"{stage}_w{w}_a{a}", stage=stage,
                    config={"grid": ["compress.fixed_point.weight_bits"],
                            "compress": {"fixed_point": fp}})


def test_grid_points_are_rows_of_their_own_and_tabulated_by_bits(tmp_path):
    from quantsurvey.report.grid import grid_cells, render

    points = [_grid_point(0, 4.0, 2, 8), _grid_point(1, 4.4, 2, 8), _grid_point(0, 0.8, 3, 8),
              _grid_point(0, 0.7, 3, "float", stage="retrain")]
    rows = build_rows(points, [])
    assert {r["budget"]: (r["ours"], r["seeds"]) for r in rows} == {
        "direct [direct_w2_a8]": ("4.200", "2"), "direct [direct_w3_a8]": ("0.800", "1"),
        "retrain [retrain_w3_afloat]": ("0.700", "1")}
    for p in points:
        path = tmp_path / "anwar2015_fixed_point" / p["setting"] / p["name"] / \
            f"seed={p['seed']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(p))
    cells = grid_cells(tmp_path, "anwar2015_fixed_point")
    assert cells[("lenet5_mnist", "direct", "2", "8")] == [4.0, 4.4]
    table = render("anwar2015_fixed_point", cells)
    assert "| 2 | 4.20 ± 0.28 [2] |" in table and "| 3 | 0.80 [1] |" in table
    assert "## lenet5_mnist, stage `retrain`" in table and "| 3 | 0.70 [1] |" in table
    # quantsurvey-report writes the grid tables and figures with everything else, the same
    # bytes on a second run
    res = tmp_path / "res"
    (res / "runs").mkdir(parents=True)
    (tmp_path / "anwar2015_fixed_point").rename(res / "runs" / "anwar2015_fixed_point")
    main(["--results", str(res), "--experiments", str(tmp_path / "none")])
    assert (res / "anwar2015_fixed_point_grid.md").read_text() == table
    figure = res / "figures" / "anwar2015_fixed_point_lenet5_mnist_direct_grid.png"
    first = figure.read_bytes()
    main(["--results", str(res), "--experiments", str(tmp_path / "none")])
    assert figure.read_bytes() == first


def test_references_bib_holds_every_paper_and_the_framework(tmp_path):
    from quantsurvey.provenance import REPO_ROOT
    from quantsurvey.report.build import render_bib

    bib = render_bib(REPO_ROOT / "experiments")
    papers = sorted(p.parent.name for p in (REPO_ROOT / "experiments").glob("*/citation.bib"))
    assert len(papers) >= 9 and all(f"% {p}\n@" in bib for p in papers)
    assert bib.count("@inproceedings{") + bib.count("@article{") >= len(papers)
    assert "@software{quantsurvey," in bib and render_bib(REPO_ROOT / "experiments") == bib


def test_quantizers_incidental_zeros_are_no_kept_fraction_row():
    s = _grid_point(0, 0.8, 3, 8)
    s["metrics"].update({"compress/kept_pct": 67.6, "compress/weight_ratio": 1.48,
                         "compress/ratio": 10.5})
    pruned = _summary(0, 1.0, method="pruned")
    pruned["metrics"].update({"compress/kept_pct": 8.0, "compress/weight_ratio": 12.5})
    metrics = {(r["method"], r["metric"]) for r in build_rows([s, pruned], [])}
    assert ("fixed_point", "ratio") in metrics and ("fixed_point", "kept_pct") not in metrics
    assert ("fixed_point", "weight_ratio") not in metrics
    assert {("pruned", "kept_pct"), ("pruned", "weight_ratio")} <= metrics


def test_grid_conversions_keep_their_summary_but_not_their_model_file(tmp_path):
    direct = _grid_point(0, 0.8, 3, 8)
    direct["mode"] = "evaluate"
    trained = _grid_point(0, 0.6, 3, 8, stage="retrain")
    for name, s in (("direct", direct), ("retrain", trained)):
        (tmp_path / "out" / name).mkdir(parents=True)
        (tmp_path / "out" / name / "summary.json").write_text(json.dumps(s))
        (tmp_path / "out" / name / "model.qsdc").write_bytes(b"QSDC" + name.encode())
    collect([tmp_path / "out"], tmp_path / "runs")
    files = sorted(p.relative_to(tmp_path / "runs").as_posix()
                   for p in (tmp_path / "runs").rglob("*") if p.is_file())
    root = "anwar2015_fixed_point/lenet5_mnist"
    assert files == [f"{root}/direct_w3_a8/seed=0.json", f"{root}/retrain_w3_a8/seed=0.json",
                     f"{root}/retrain_w3_a8/seed=0.qsdc"]


def test_a_paper_with_more_rows_than_a_page_gets_a_longtable():
    """Over FLOAT_ROWS rows a `table` float runs off the page (pdflatex: "Float too large"), so
    that paper's table is a longtable with its header repeated; shorter ones stay floats."""
    from quantsurvey.report.latex import FLOAT_ROWS, render_latex

    def row(paper, i):
        return {"paper": paper, "setting": "s", "method": f"m{i}", "metric": "test_err",
                "reported": "", "ours": "1.000", "ours_std": "", "seeds": "1", "budget": "b"}

    rows = ([row("long_paper", i) for i in range(FLOAT_ROWS + 1)]
            + [row("short", i) for i in range(FLOAT_ROWS)])
    tex = render_latex(rows)
    assert tex.count("\\begin{longtable}{lllrrrl}") == tex.count("\\end{longtable}") == 1
    assert tex.count("\\begin{table}") == 1
    long_part = tex[tex.index("\\begin{longtable}"):tex.index("\\end{longtable}")]
    assert "\\label{tab:long_paper} \\\\" in long_part and "\\endhead" in long_part
    assert long_part.count("setting & method") == 2  # first page and every later page
    assert long_part.count("\ns & m") == FLOAT_ROWS + 1  # every row once
    assert "\\usepackage{longtable}" in tex.splitlines()[1]


@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="no TeX engine (apt-get install texlive-latex-recommended)")
def test_committed_tables_tex_compiles_with_pdflatex(tmp_path):
    """results/tables.tex \\input into an article with the packages its header names: pdflatex
    succeeds and no float runs off its page."""
    from tests.conftest import REPO

    shutil.copy(REPO / "results" / "tables.tex", tmp_path / "tables.tex")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{longtable}\n"
        "\\begin{document}\n\\input{tables.tex}\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert done.returncode == 0, log[-2000:]
    assert "Float too large" not in log
    assert "Undefined control sequence" not in log
    assert (tmp_path / "doc.pdf").stat().st_size > 10_000


def test_binary_layers_get_their_own_per_layer_table():
    from quantsurvey.report.build import render_layer_tables

    s = _summary(0, 3.5, method="bnn")
    s["compression"] = {"encoded": {"size_bytes": 1000, "original_bytes": 30000, "layers": {
        "fcs.1": {"params": 4096, "bits": 1, "scaled": False, "stored_bytes": 512,
                  "ratio": 32.0}}}}
    table = render_layer_tables([s])
    assert "| layer | params | bits | stored bytes | ratio × |" in table
    assert "| fcs.1 | 4,096 | 1 | 512 | 32.0 |" in table


def test_tables_tex_is_booktabs_per_paper_escaped_and_stable(tmp_path):
    """results/tables.tex: one table per paper, the paper's figure and ours in their own
    columns, LaTeX specials escaped; a rebuild from the same summaries gives the same bytes."""
    from quantsurvey.report.latex import render_latex

    other = {**_summary(0, 2.0), "paper": "zhang2018_admm", "setting": "lenet5_mnist",
             "method": "magnitude_oneshot", "budget": "cpu-10x1ep+10ep"}
    rows = build_rows([_summary(0, 1.0), _summary(1, 1.2), other], REPORTED)
    tex = render_latex(rows)
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 2
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 2
    assert tex.count("\\begin{tabular}{lllrrrl}") == 2
    body = [line for line in tex.splitlines() if line.endswith("\\\\")
            and not line.startswith("setting")]
    assert len(body) == len(rows) == 3
    for line in body:
        assert line.count(" & ") == 6  # seven columns in every row
    assert ("lenet300\\_100\\_mnist & float & test error (\\%) & $1.640$ & $1.100 \\pm 0.141$ "
            "& 2 & cpu-30ep \\\\") in tex
    assert "lenet5\\_mnist & magnitude\\_oneshot & test error (\\%) & -- & $2.000$ & 1" in tex
    assert "pruned & size ratio ($\\times$) & $12.000$ & -- & -- & --" in tex
    for line in tex.splitlines():
        if not line.startswith(("%", "\\label")):
            assert "_" not in line.replace("\\_", ""), line  # every underscore escaped
    assert render_latex(rows) == tex
    # the command writes it beside results.csv, and again byte for byte
    run = tmp_path / "outputs" / "seed=0"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(_summary(0, 1.0)))
    (tmp_path / "exp").mkdir()
    args = ["--results", str(tmp_path / "res"), "--experiments", str(tmp_path / "exp")]
    main(["--collect", str(tmp_path / "outputs"), *args])
    first = (tmp_path / "res" / "tables.tex").read_bytes()
    main(args)
    assert (tmp_path / "res" / "tables.tex").read_bytes() == first
    assert b"\\label{tab:han2015_pruning}" in first


def test_pareto_front_keeps_exactly_the_undominated_points():
    from quantsurvey.report.survey_figure import Point, pareto_front

    def pt(ratio, err):
        return Point("p", f"m{ratio}-{err}", "b", ratio, 0.0, err, 0.0, True)

    points = [pt(1, 0.5), pt(10, 0.6), pt(10, 0.7), pt(40, 0.9), pt(30, 1.0), pt(40, 0.9),
              pt(5, 0.5)]
    front = pareto_front(points)
    # (1, 0.5) is dominated by (5, 0.5); (10, 0.7) by (10, 0.6); (30, 1.0) by (40, 0.9)
    assert [(p.ratio, p.err) for p in front] == [(5, 0.5), (10, 0.6), (40, 0.9), (40, 0.9)]


def test_survey_figure_shows_ours_with_spread_and_the_papers_hollow(tmp_path):
    from quantsurvey.report.survey_figure import draw_all, survey_points

    pruned = [{**_summary(s, e, method="pruned"),
               "metrics": {"test/err": e, "compress/ratio": r}}
              for s, e, r in ((0, 1.6, 11.0), (1, 1.8, 13.0))]
    reported = [*REPORTED, {**REPORTED[1], "metric": "test_err", "reported": 1.59}]
    sensitivity = {**_summary(0, 9.0, method="fixed_point"), "budget": "sensitivity",
                   "metrics": {"test/err": 9.0, "compress/ratio": 1.0}}
    rows = build_rows([_summary(0, 1.0), _summary(1, 1.2), *pruned, sensitivity], reported)
    assert any(r["budget"] == "sensitivity" for r in rows)  # a row of the table …
    points = {(p.method, p.ours): p for p in survey_points(rows)["lenet300_100_mnist"]}
    assert ("fixed_point", True) not in points  # … but no point of the survey's picture
    float_ours = points[("float", True)]
    assert (float_ours.ratio, float_ours.err) == (1.0, 1.1)
    assert float_ours.err_std == pytest.approx(0.141, abs=1e-3)
    pruned_ours = points[("pruned", True)]
    assert (pruned_ours.ratio, pruned_ours.ratio_std) == (12.0, pytest.approx(1.414, abs=1e-3))
    # the paper's float (error only: ratio 1) and pruned (ratio 12) rows, hollow
    assert (points[("pruned", False)].ratio, points[("pruned", False)].err) == (12.0, 1.59)
    assert points[("float", False)].ratio == 1.0
    paths = draw_all(rows, tmp_path / "a")
    assert [p.name for p in paths] == ["survey_lenet300_100_mnist.png",
                                       "survey_lenet300_100_mnist.pdf"]
    again = draw_all(rows, tmp_path / "b")
    for first, second in zip(paths, again, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_admm_figures_regenerate_from_their_committed_records(tmp_path):
    """results/figures/admm_*.png are drawn from the records beside them (scripts/plot_admm.py
    writes both; quantsurvey-report redraws): the same bytes, twice."""

    from quantsurvey.report.admm_figures import redraw_all
    from tests.conftest import REPO

    figures = REPO / "results" / "figures"
    records = sorted(figures.glob("admm_*.json"))
    assert len(records) == 2
    for record in records:
        shutil.copy(record, tmp_path / record.name)
    drawn = redraw_all(tmp_path)
    assert sorted(p.name for p in drawn) == sorted(r.with_suffix(".png").name for r in records)
    for png in drawn:
        assert png.read_bytes() == (figures / png.name).read_bytes(), png.name


def test_lin_and_anwar_figures_regenerate_from_their_committed_records(tmp_path):
    """results/figures/lin2016_*.png and anwar2015_sensitivity_*.png are drawn from the records
    committed in results/lin2016_fixed_point/ and results/anwar2015_fixed_point/ (the scripts
    write both with the same functions; quantsurvey-report redraws): the same bytes again."""

    from quantsurvey.report.fixed_point_figures import redraw_all
    from tests.conftest import REPO

    results = REPO / "results"
    lin = sorted((results / "lin2016_fixed_point").glob("analysis_*.json"))
    anwar = sorted((results / "anwar2015_fixed_point").glob("sensitivity_*.json"))
    assert len(lin) == 2 and len(anwar) == 2
    for record in lin + anwar:
        (tmp_path / record.parent.name).mkdir(exist_ok=True)
        shutil.copy(record, tmp_path / record.parent.name / record.name)
    (tmp_path / "lin2016_fixed_point" / "optimal_steps.json").write_text("{}")  # not a record
    drawn = redraw_all(tmp_path)
    tags = [r.stem.removeprefix("analysis_") for r in lin]
    assert sorted(p.name for p in drawn) == sorted(
        [f"lin2016_sqnr_predicted_vs_measured_{t}.png" for t in tags]
        + [f"lin2016_size_vs_error_{t}.png" for t in tags]
        + ["anwar2015_sensitivity_lenet5_mnist_seed0.png",
           "anwar2015_sensitivity_resnet20_cifar10_seed0.png"])
    for png in drawn:
        assert png.parent == tmp_path / "figures"
        assert png.read_bytes() == (results / "figures" / png.name).read_bytes(), png.name


@pytest.mark.slow  # ≈ 70 s on 2 cores: a tenth of the default run; .ci/run runs it
def test_one_command_regenerates_every_table_and_figure_in_results(tmp_path):
    """Delete every table, figure, .bib, .tex and .csv from a copy of results/, run
    quantsurvey-report on it: each comes back byte for byte, except the notes written by hand
    that results/README.md lists (HAND_WRITTEN), and nothing else is missing."""
    from quantsurvey.report.build import HAND_WRITTEN, main
    from tests.conftest import REPO

    generated = (".md", ".png", ".pdf", ".tex", ".bib", ".csv")
    committed = REPO / "results"
    copy = tmp_path / "results"
    shutil.copytree(committed, copy)
    for path in list(copy.rglob("*")):
        if path.suffix in generated:
            path.unlink()
    main(["--results", str(copy)])
    missing, differ = [], []
    for path in sorted(committed.rglob("*")):
        if path.suffix not in generated:
            continue
        rel = path.relative_to(committed).as_posix()
        if not (copy / rel).exists():
            missing.append(rel)
        elif (copy / rel).read_bytes() != path.read_bytes():
            differ.append(rel)
    assert not differ
    assert sorted(missing) == sorted(HAND_WRITTEN)
    readme = (copy / "README.md").read_text()
    assert all(f"[{rel}]({rel})" in readme for rel in HAND_WRITTEN)


def test_the_kept_record_is_weights_kept_and_errors_per_seed():
    from quantsurvey.report.admm_figures import kept_record

    def run(seed, ratio, err):
        return {"seed": seed, "budget": "b", "git": {"commit": f"{seed}" * 12},
                "metrics": {"compress/weight_ratio": ratio, "test/err": err}}

    record = kept_record({"retrain": [run(0, 50.0, 0.6), run(1, 80.0, 0.7)], "iter2": [],
                          "iter1": [run(0, 4.0, 0.5)]}, [run(0, 1.0, 0.4)])
    assert record["ADMM + retraining"] == [{"stage": "retrain", "seeds": [0, 1],
                                            "kept_pct": [2.0, 1.25], "test_err": [0.6, 0.7],
                                            "git": ["000000000000", "111111111111"],
                                            "budget": "b"}]
    assert [r["stage"] for r in record["iterative magnitude (Han 2015)"]] == ["iter1"]
    assert "one-shot magnitude + retraining" not in record
    assert record["float"] == [{"seeds": [0], "test_err": [0.4]}]


def test_per_paper_pages_give_the_difference_and_the_deviations_ledger(tmp_path):
    from quantsurvey.report.paper_pages import render_pages

    (tmp_path / "p1").mkdir()
    (tmp_path / "p1" / "README.md").write_text(
        "# p1\n\n## What we reproduce\nx\n\n## Where we deviate\n- fewer epochs (20, not 160)\n"
        "- SGD instead of Adam\n\n## Results\nnot this\n")
    rows = [{"paper": p, "setting": "s", "method": m, "metric": "test_err", "reported": rep,
             "ours": ours, "ours_std": std, "seeds": n, "budget": "cpu-20ep", "device": "cpu",
             "commit": "abc"}
            for p, m, rep, ours, std, n in (("p1", "float", "0.800", "0.667", "0.055", "3"),
                                            ("p1", "pruned", "0.770", "", "", ""),
                                            ("p2", "bnn", "", "1.450", "0.040", "3"),
                                            ("p2", "storage_accounting", "", "1", "", "1"))]
    pages = render_pages(rows, tmp_path, skip_methods=("storage_accounting",))
    assert set(pages) == {"p1", "p2"}
    p1 = pages["p1"].splitlines()
    assert "| s | float | test_err | 0.800 | 0.667 ± 0.055 | -0.133 | 3 | cpu-20ep | cpu | abc |" \
        in p1
    assert "| s | pruned | test_err | 0.770 |  |  |  | cpu-20ep | cpu | abc |" in p1
    ledger = pages["p1"].split("## Deviations ledger", 1)[1]
    assert "- fewer epochs (20, not 160)\n- SGD instead of Adam" in ledger
    assert "not this" not in ledger and "What we reproduce" not in ledger
    assert "storage_accounting" not in pages["p2"]
    assert "| s | bnn | test_err |  | 1.450 ± 0.040 |  | 3 |" in pages["p2"]
    assert "has no such section yet" in pages["p2"]  # p2 has no README
