"""Layer-wise sensitivity (Anwar, Hwang, Sung 2015): one layer's weights quantized at a time
(2–8 bits, the L2-optimal step of the experiment's `fixed_point` section), every other layer
float, each point an ordinary evaluate-only run (`quantsurvey.evaluate`, mode=evaluate) of the
experiment's `direct` recipe in outputs/<paper>/<setting>/sens_<layer>_w<bits>/seed=<seed>/.

    python scripts/anwar_sensitivity.py --seed 0 \
        --float-run outputs/han2015_pruning/lenet5_mnist/float/seed=0
    python scripts/anwar_sensitivity.py --experiment anwar2015_fixed_point/resnet20_cifar10 \
        --seed 0 --float-run outputs/zhu2017_ttq/resnet20_cifar10/float_cpu15ep/seed=0
    # → results/anwar2015_fixed_point/sensitivity_<setting>_seed<s>.{json,md} and a figure

The runs' summaries are collected like any others (quantsurvey-report --collect outputs/…).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hydra import compose, initialize_config_dir  # noqa: E402

from quantsurvey.assemble import build_datamodule  # noqa: E402
from quantsurvey.atomic_io import write_json_atomic  # noqa: E402
from quantsurvey.cli import CONF_DIR  # noqa: E402
from quantsurvey.config import validate_config  # noqa: E402
from quantsurvey.evaluate import evaluate  # noqa: E402
from quantsurvey.models import create_model  # noqa: E402
from quantsurvey.nn.layers import weight_layers  # noqa: E402
from quantsurvey.pipeline import stage_dir  # noqa: E402
from quantsurvey.provenance import git_state  # noqa: E402
from quantsurvey.report.fixed_point_figures import draw_anwar_sensitivity  # noqa: E402
from quantsurvey.report.fixed_point_tables import anwar_sensitivity_md  # noqa: E402

BITS = (2, 3, 4, 6, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="anwar2015_fixed_point/lenet5_mnist")
    parser.add_argument("--float-run", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bits", type=int, nargs="+", default=list(BITS),
                        help="weight bit-widths to try per layer (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "anwar2015_fixed_point")
    parser.add_argument("--figures", type=Path, default=REPO / "results" / "figures")
    args = parser.parse_args()
    start, git = time.time(), git_state()
    base = [f"experiment={args.experiment}", "~pipeline", "mode=evaluate", "method=fixed_point",
            "budget=sensitivity", f"seed={args.seed}", f"trainer.threads={args.threads}",
            f"init_from='{args.float_run.resolve()}'", "trainer.progress_bar=none"]
    rows = []
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        probe = compose(config_name="config", overrides=base)
        rc = validate_config(probe)
        dm = build_datamodule(rc, setup=False)  # classes and input shape only, nothing read
        model = create_model(rc.model.name, num_classes=dm.num_classes,
                             input_shape=dm.input_shape, **rc.model.params)
        layers = list(weight_layers(model))
        for layer in layers:
            for bits in args.bits:
                name = f"sens_{layer.replace('.', '_')}_w{bits}"
                cfg = compose(config_name="config", overrides=[
                    *base, f"name={name}", f"compress.fixed_point.weight_bits={{{layer}: {bits}}}",
                    "compress.fixed_point.input_bits=float"])
                run_dir = stage_dir(validate_config(cfg))
                metrics = evaluate(cfg, run_dir)
                rows.append({"layer": layer, "bits": bits, "test_err": metrics["test/err"],
                             "val_err": metrics["val/err"], "run_dir": str(run_dir)})
                print(rows[-1], flush=True)
    setting = f"{rc.model.setting_name}_{rc.data.name}"
    floats = json.loads((args.float_run / "summary.json").read_text())["metrics"]
    result = {"what": "Anwar et al. 2015 layer-wise sensitivity: one layer's weights quantized "
                      "(L2-optimal step), the others float; no retraining",
              "experiment": args.experiment, "float_run": str(args.float_run),
              "float_test_err": floats["test/err"], "rows": rows,
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "git": git,
              "wall_time_s": round(time.time() - start, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"sensitivity_{setting}_seed{args.seed}"
    write_json_atomic(args.out / f"{stem}.json", result)
    record = json.loads((args.out / f"{stem}.json").read_text())  # as quantsurvey-report reads it
    (args.out / f"{stem}.md").write_text(anwar_sensitivity_md(record, setting, args.seed))
    draw_anwar_sensitivity(result, f"{setting}_seed{args.seed}", args.figures)  # as the report
    print(f"wrote {args.out / stem}.{{json,md}}")


if __name__ == "__main__":
    main()
