"""`quantsurvey-list`: every experiment config, its stages and the papers' figures."""

import pytest

from quantsurvey.report.listing import main
from tests.conftest import EXPERIMENTS


def test_every_experiment_is_listed_with_its_stages_and_the_papers_figure(capsys):
    main([])
    out = capsys.readouterr().out
    for experiment in EXPERIMENTS:
        assert f"  run:    quantsurvey experiment={experiment}\n" in out
    block = out.split("\nzhang2018_admm/lenet5_mnist\n")[1].split("\n\n")[0]
    assert "stages: float → admm → retrain → oneshot" in block
    assert "paper:  admm weight_ratio 71.2" in block


def test_one_paper_and_an_unknown_one(capsys):
    main(["lin2016_fixed_point"])
    out = capsys.readouterr().out
    assert out.startswith("lin2016_fixed_point/resnet20_cifar10") and "zhang" not in out
    assert "paper:  fixed_point test_err 6.78" in out
    with pytest.raises(SystemExit, match="no experiments for 'nope'; papers: anwar2015"):
        main(["nope"])


def test_a_listing_by_hand(tmp_path):
    """Every line of three experiments' entries, from small files written here: the header's
    first line as the target ('#' stripped, with or without a space) and its first later line
    about time (never the target line), the stages in order, the paper's
    figures, and ours (test error, top-1 error and ratio only; at most 8; the spread when
    there is one)."""
    from quantsurvey.report.listing import render

    conf = tmp_path / "conf" / "experiment" / "p1"
    conf.mkdir(parents=True)
    (conf / "s1.yaml").write_text(
        "# @package _global_\n#Target: the paper's table 1\n"
        "# Budget: 10 epochs; Time per epoch about 3 min\n# time again: not shown\n"
        "defaults: []\npipeline:\n  float: {}\n  prune: {}\n  retrain: {}\n")
    (conf / "s2.yaml").write_text("seed: 0\n# a comment after the header is not a header\n")
    (conf / "s3.yaml").write_text("# Target, whose time is not the time line\n# no word\n")
    (conf.parent / "p2").mkdir()
    (conf.parent / "p2" / "s9.yaml").write_text("# other paper\n")
    experiments = tmp_path / "experiments" / "p1"
    experiments.mkdir(parents=True)
    (experiments / "reported.yaml").write_text(
        "paper: p1\nrows:\n  - {setting: s1, method: pruned, metrics: {test_err: 1.5, "
        "ratio: 12}}\n")
    results = tmp_path / "results"
    results.mkdir()
    head = "paper,setting,method,model,dataset,metric,reported,ours,ours_std,seeds,budget\n"
    rows = ["p1,s1,pruned,m,d,test_err,1.5,1.61234,0.05,3,cpu-10ep",
            "p1,s1,pruned,m,d,ratio,12,11.5,,3,cpu-10ep",
            "p1,s1,pruned,m,d,val_err,,2.0,,3,cpu-10ep",  # not a listed metric
            "p1,s1,float,m,d,top1_err,,30,,1,gpu",
            "p1,s1,other,m,d,test_err,9,,,0,",  # no figure of ours
            *[f"p1,s2,m{i},m,d,test_err,,{i},,1,b" for i in range(10)]]
    (results / "results.csv").write_text(head + "\n".join(rows) + "\n")
    text = render(tmp_path / "conf", results, tmp_path / "experiments", "p1")
    assert text == (
        "p1/s1\n"
        "  run:    quantsurvey experiment=p1/s1\n"
        "  stages: float → prune → retrain\n"
        "  target: Target: the paper's table 1\n"
        "  time:   Budget: 10 epochs; Time per epoch about 3 min\n"
        "  paper:  pruned test_err 1.5\n"
        "  paper:  pruned ratio 12\n"
        "  ours:   pruned test_err 1.61 ± 0.05 (3 seed(s), cpu-10ep)\n"
        "  ours:   pruned ratio 11.5 (3 seed(s), cpu-10ep)\n"
        "  ours:   float top1_err 30 (1 seed(s), gpu)\n"
        "\n"
        "p1/s2\n"
        "  run:    quantsurvey experiment=p1/s2\n"
        "  stages: (one run)\n"
        "  paper:  —\n"
        + "".join(f"  ours:   m{i} test_err {i} (1 seed(s), b)\n" for i in range(8))
        + "\n"
        "p1/s3\n"
        "  run:    quantsurvey experiment=p1/s3\n"
        "  stages: (one run)\n"
        "  target: Target, whose time is not the time line\n"
        "  paper:  —\n"
        "  ours:   —\n")
    assert render(tmp_path / "conf", tmp_path / "none", tmp_path / "none", None).count(
        "  ours:   —\n") == 4  # no results.csv: every experiment, none of ours


def test_help_and_running_as_a_module(capsys):
    """The help's description is the docstring's first line; `python -m` lists like the
    console script."""
    import subprocess
    import sys

    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps it
    assert "`quantsurvey-list`: every experiment config with its stages, the paper's figures" \
        in help_text
    done = subprocess.run([sys.executable, "-m", "quantsurvey.report.listing",
                           "lin2016_fixed_point"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("lin2016_fixed_point/resnet20_cifar10\n")
