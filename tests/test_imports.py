"""Layering: the algorithms, layers, models and methods load no Lightning, Hydra, omegaconf or
W&B; the command line is the only module that imports Hydra's entry point."""

import subprocess
import sys

from tests.conftest import REPO

FRAMEWORKS = ("pytorch_lightning", "lightning", "lightning_fabric", "hydra", "omegaconf",
              "wandb", "torchmetrics")


def test_lower_layers_import_no_framework():
    code = ("import sys\n"
            "import quantsurvey.compress, quantsurvey.nn, quantsurvey.models, quantsurvey.losses\n"
            "import quantsurvey.methods, quantsurvey.export\n"
            "import quantsurvey.nn.quant, quantsurvey.nn.masking, quantsurvey.nn.weight_sharing\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FRAMEWORKS!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_train_and_pipeline_do_not_import_the_command_line():
    code = ("import sys\nimport quantsurvey.pipeline, quantsurvey.train, quantsurvey.evaluate\n"
            "print('quantsurvey.cli' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
