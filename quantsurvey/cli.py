"""The command lines: `quantsurvey` (a run, a pipeline, or `mode=evaluate`) and
`quantsurvey-eval` (the same with mode=evaluate). Errors a user can cause print one line and
exit with status 2."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from quantsurvey.errors import QuantsurveyError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def run(cfg: DictConfig, run_dir: str) -> dict[str, float]:
    """One job: a pipeline's stages, an evaluation, or a training run."""
    if cfg.get("pipeline"):
        from quantsurvey.pipeline import run_pipeline

        return list(run_pipeline(cfg).values())[-1]
    if cfg.get("mode") == "evaluate":
        from quantsurvey.evaluate import evaluate

        return evaluate(cfg, run_dir)
    from quantsurvey.train import train

    return train(cfg, run_dir)


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    try:
        metrics = run(cfg, HydraConfig.get().runtime.output_dir)
    except QuantsurveyError as err:
        print(f"quantsurvey: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    return metrics.get("val/err", float("nan"))  # what a Hydra sweeper would minimise


def main() -> None:
    _hydra_main()


def eval_main() -> None:
    """`quantsurvey-eval …` = `quantsurvey mode=evaluate …`."""
    sys.argv.insert(1, "mode=evaluate")
    _hydra_main()


if __name__ == "__main__":
    main()
