"""Per-layer weight bit-widths from a layer-wise sensitivity record (scripts/anwar_sensitivity.py):
the mix with the least summed single-layer validation error at the storage of uniform b-bit
weights (quantsurvey.compress.sensitivity_allocation; ours, the paper gives no rule).

    python scripts/anwar_bit_mix.py \
        --sensitivity results/anwar2015_fixed_point/sensitivity_resnet20_cifar10_seed0.json \
        --average-bits 3
    # → results/anwar2015_fixed_point/bit_mix_<setting>_seed<s>_avg<b>.{json,md}; the mapping
    #   goes by hand into the `*_mix3` stages of experiment=anwar2015_fixed_point/
    #   resnet20_cifar10_mix3 (tests/test_config.py checks that it matches).

Validation errors choose the mix, never test errors: the test set stays for the result.
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
from quantsurvey.compress.sensitivity_allocation import sensitivity_bits  # noqa: E402
from quantsurvey.config import validate_config  # noqa: E402
from quantsurvey.models import create_model  # noqa: E402
from quantsurvey.nn.layers import weight_layers  # noqa: E402
from quantsurvey.provenance import git_state  # noqa: E402
from quantsurvey.report.fixed_point_tables import anwar_bit_mix_md  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensitivity", type=Path, required=True)
    parser.add_argument("--average-bits", type=float, default=3.0,
                        help="storage budget, as bits per weight over all weight layers")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "anwar2015_fixed_point")
    args = parser.parse_args()
    start = time.time()
    record = json.loads(args.sensitivity.read_text())
    errors: dict[str, dict[int, float]] = {}
    for row in record["rows"]:
        if row["bits"] in errors.get(row["layer"], {}):
            raise SystemExit(f"anwar_bit_mix: {args.sensitivity} has two rows for "
                             f"{row['layer']} at {row['bits']} bits.")
        errors.setdefault(row["layer"], {})[row["bits"]] = row["val_err"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        rc = validate_config(compose(config_name="config",
                                     overrides=[f"experiment={record['experiment']}"]))
    dm = build_datamodule(rc, setup=False)  # classes and input shape only, nothing read
    model = create_model(rc.model.name, num_classes=dm.num_classes, input_shape=dm.input_shape,
                         **rc.model.params)
    sizes = {name: m.weight.numel() for name, m in weight_layers(model).items()}
    budget = round(args.average_bits * sum(sizes.values()))
    chosen = sensitivity_bits(errors, sizes, budget)
    storage = sum(sizes[name] * b for name, b in chosen.items())
    setting = f"{rc.model.setting_name}_{rc.data.name}"
    seed = int(str(record["float_run"]).rstrip("/").rsplit("seed=", 1)[-1])
    result = {"what": "weight bits per layer: least summed single-layer validation error "
                      "(Anwar-style sensitivity, evaluated alone) within the storage of "
                      f"uniform {args.average_bits:g}-bit weights",
              "setting": setting, "sensitivity_seed": seed,
              "sensitivity": str(args.sensitivity), "average_bits_budget": args.average_bits,
              "budget_weight_bits": budget, "weight_bits": chosen,
              "storage_weight_bits": storage,
              "average_bits": round(storage / sum(sizes.values()), 4),
              "layers": [{"layer": n, "weights": sizes[n], "bits": b,
                          "val_err_alone": errors[n][b]} for n, b in chosen.items()],
              "summed_val_err": round(sum(errors[n][b] for n, b in chosen.items()), 4),
              "uniform_summed_val_err": (round(sum(e[int(args.average_bits)]
                                                   for e in errors.values()), 4)
                                         if all(args.average_bits in e for e in errors.values())
                                         else None),
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "git": git_state(),
              "wall_time_s": round(time.time() - start, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"bit_mix_{setting}_seed{seed}_avg{args.average_bits:g}"
    write_json_atomic(args.out / f"{stem}.json", result)
    written = json.loads((args.out / f"{stem}.json").read_text())  # as quantsurvey-report reads it
    text = anwar_bit_mix_md(written)
    (args.out / f"{stem}.md").write_text(text)
    print(text)
    print(f"wrote {args.out / stem}.{{json,md}}")


if __name__ == "__main__":
    main()
