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
