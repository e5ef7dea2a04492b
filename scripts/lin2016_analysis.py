"""Lin, Talathi, Annapureddy 2016 (§3–4) on a trained float network: per-layer SQNR after
conversion, the output SQNR predicted by harmonic combination (1/γ = Σ 1/γ_i, Eq. 13) beside the
measured one, and the cross-layer bit allocation (Eq. 18) against equal bit-widths (model size
at equal test error). Every quantized model is built by the `fixed_point` /
`fixed_point_allocated` methods themselves (steps σ·S(β), power of two, calibration on 10
training batches), without fine-tuning.

    python scripts/lin2016_analysis.py --run outputs/zhu2017_ttq/resnet20_cifar10/float/seed=0 \
        --data-root ../shared/data --threads 1
    … --weight-step max --act-step max      # the same analysis with the range rule (no clipping)

Writes results/lin2016_fixed_point/analysis_<setting>_seed<s>.{json,md} and two figures in
results/figures/ (measured against predicted SQNR; size against error for the two allocations).
SQNRs are measured on the logits of `--sqnr-images` validation images (the held-out split of the
training set), test errors on the whole test set.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quantsurvey.assemble import build_datamodule, stage_context  # noqa: E402
from quantsurvey.atomic_io import write_json_atomic  # noqa: E402
from quantsurvey.compress.sqnr import harmonic_sqnr_db, sqnr_db  # noqa: E402
from quantsurvey.config import validate_config  # noqa: E402
from quantsurvey.methods import build_methods  # noqa: E402
from quantsurvey.models import create_model  # noqa: E402
from quantsurvey.nn.layers import weight_layers  # noqa: E402
from quantsurvey.provenance import git_state, hardware, package_versions  # noqa: E402
from quantsurvey.report.fixed_point_figures import draw_lin_size, draw_lin_sqnr  # noqa: E402
from quantsurvey.report.fixed_point_tables import lin_analysis_md  # noqa: E402
from quantsurvey.stages import load_stage  # noqa: E402
from quantsurvey.threads import set_threads  # noqa: E402

WEIGHT_BITS = (2, 3, 4, 6, 8)
ACT_BITS = (4, 6, 8)
SETTINGS = ((2, 8), (3, 8), (4, 8), (6, 8), (8, 8), (8, 4), (8, 6), (4, 4), (6, 6), (4, "float"),
            ("float", 4), ("float", 6))
EQUAL = (2, 3, 4, 5, 6, 8)
ANCHORS = (1, 2, 3, 4, 5, 6)


def quantized(model, section, method, ctx):
    m = copy.deepcopy(model)
    (meth,) = build_methods({method: section})
    info = meth.before_training(m, ctx)
    return m.eval(), info[f"{method}_layers"]


def logits(model, batches):
    with torch.no_grad():
        return torch.cat([model(x) for x in batches])


def test_error(model, test_batches):
    wrong = total = 0
    with torch.no_grad():
        for x, y in test_batches:
            wrong += int((model(x).argmax(1) != y).sum())
            total += len(y)
    return 100.0 * wrong / total


def weight_bytes(model, record):
    """Bytes of the weight layers: b bits per weight where quantized, 32 elsewhere (no steps)."""
    bits = 0
    for name, layer in weight_layers(model).items():
        b = record.get(name, {}).get("weight", {}).get("bits", 32)
        bits += layer.weight.numel() * b
    return bits / 8


def load_float_run(run: Path, data_root: Path, cache_dir: Path, sqnr_images: int, out: Path):
    """A finished float run's summary, config, data module and model (on the CPU), the first
    `sqnr_images` validation images (batches of 500), the test batches, and a stage context
    whose calibration batches are the first 10 training batches (epoch-0 order, no
    augmentation)."""
    summary = json.loads((run / "summary.json").read_text())
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.data.root, cfg.paths.cache_dir = str(data_root), str(cache_dir)
    cfg.trainer.accelerator, cfg.trainer.devices = "cpu", "auto"  # trained elsewhere maybe
    rc = validate_config(cfg)
    dm = build_datamodule(rc)
    model = create_model(rc.model.name, num_classes=dm.num_classes, input_shape=dm.input_shape,
                         **rc.model.params)
    load_stage(model, run)
    model.eval()
    val = torch.cat([dm.on_after_batch_transfer(b, 0)[0] for b in dm.val_dataloader()])
    val = val[:sqnr_images].split(500)
    test = [dm.on_after_batch_transfer(b, 0) for b in dm.test_dataloader()]
    ctx = stage_context(rc, dm, out)  # the calibration batches a training stage would use
    return summary, rc, dm, model, val, test, ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished float run directory")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=REPO / "data" / "cache")
    parser.add_argument("--sqnr-images", type=int, default=1000)
    parser.add_argument("--kappa", type=float, default=6.02)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weight-step", default="sqnr", choices=("sqnr", "l2", "max"))
    parser.add_argument("--act-step", default="sqnr", choices=("sqnr", "max"))
    parser.add_argument("--distribution", default="gaussian",
                        choices=("gaussian", "laplacian", "uniform"))
    parser.add_argument("--out", type=Path, default=REPO / "results" / "lin2016_fixed_point")
    parser.add_argument("--figures", type=Path, default=REPO / "results" / "figures")
    args = parser.parse_args()
    start = time.time()
    git = git_state()
    set_threads(args.threads)
    summary, rc, dm, model, val, test, ctx = load_float_run(
        args.run, args.data_root, args.cache_dir, args.sqnr_images, args.out)
    reference = logits(model, val)
    float_err = test_error(model, test)
    layers = list(weight_layers(model))
    params = {n: weight_layers(model)[n].weight.numel() for n in layers}
    base = {"weight_step": args.weight_step, "act_step": args.act_step,
            "distribution": args.distribution, "power_of_two": True, "calibration_batches": 10}
    # Lin et al.'s rule (σ·S(β), Gaussian) is the default; other rules are tagged in the names
    rule = f"{args.weight_step}-{args.act_step}-{args.distribution}"
    tag = "" if rule == "sqnr-sqnr-gaussian" else f"_{rule}"

    # 1. each quantizer alone: the tensor's own SQNR and the output SQNR it causes
    alone: dict[str, dict] = {n: {"params": params[n], "weight": {}, "input": {}} for n in layers}
    for name in layers:
        w = weight_layers(model)[name].weight.detach()
        for b in WEIGHT_BITS:
            m, rec = quantized(model, {**base, "weight_bits": {name: b}}, "fixed_point", ctx)
            w_q = weight_layers(m)[name].weight.detach()
            alone[name]["weight"][b] = {"tensor_db": sqnr_db(w, w_q),
                                        "output_db": sqnr_db(reference, logits(m, val)),
                                        "step": rec[name]["weight"]["step"]}
        for b in ACT_BITS:
            m, rec = quantized(model, {**base, "weight_bits": "float", "input_bits": {name: b}},
                               "fixed_point", ctx)
            layer = weight_layers(m)[name]
            seen: list[torch.Tensor] = []
            # prepended: runs before the input quantizer's own pre-hook, so it sees float input
            hook = layer.register_forward_pre_hook(lambda mod, inp, seen=seen: seen.append(inp[0]),
                                                   prepend=True)
            with torch.no_grad():
                m(val[0])
            hook.remove()
            x = seen[0]
            alone[name]["input"][b] = {"tensor_db": sqnr_db(x, layer.input_quantizer(x)),
                                       "output_db": sqnr_db(reference, logits(m, val)),
                                       "step": rec[name]["input"]["step"]}
        print(f"{name}: weight 8-bit output SQNR {alone[name]['weight'][8]['output_db']:.1f} dB",
              flush=True)

    slopes = [(alone[n]["weight"][8]["tensor_db"] - alone[n]["weight"][4]["tensor_db"]) / 4
              for n in layers]
    kappa_measured = sorted(slopes)[len(slopes) // 2]

    # 2. harmonic prediction against measurement, every layer quantized at once
    combined = []
    for wb, ab in SETTINGS:
        section = {**base, "weight_bits": wb, "input_bits": ab}
        m, _ = quantized(model, section, "fixed_point", ctx)
        parts = [alone[n]["weight"][wb]["output_db"] for n in layers if wb != "float"]
        parts += [alone[n]["input"][ab]["output_db"] for n in layers if ab != "float"]
        combined.append({"weight_bits": wb, "input_bits": ab,
                         "predicted_db": harmonic_sqnr_db(parts),
                         "measured_db": sqnr_db(reference, logits(m, val))})
        print(f"w{wb} a{ab}: predicted {combined[-1]['predicted_db']:.2f} dB, measured "
              f"{combined[-1]['measured_db']:.2f} dB", flush=True)

    # 3. allocation (Eq. 18) against equal bit-widths: weight bytes and test error, inputs 8 bits
    curves = {"equal": [], "allocated": []}
    for b in EQUAL:
        m, rec = quantized(model, {**base, "weight_bits": b, "input_bits": 8}, "fixed_point", ctx)
        curves["equal"].append({"bits": b, "weight_bytes": weight_bytes(m, rec),
                                "test_err": test_error(m, test)})
    for anchor in ANCHORS:
        section = {**base, "anchor_bits": anchor, "kappa": args.kappa, "input_bits": 8}
        m, rec = quantized(model, section, "fixed_point_allocated", ctx)
        curves["allocated"].append({"anchor_bits": anchor, "weight_bytes": weight_bytes(m, rec),
                                    "bits": {n: rec[n]["weight"]["bits"] for n in layers},
                                    "test_err": test_error(m, test)})
    comparison = []
    for point in curves["equal"]:
        fits = [p for p in curves["allocated"] if p["test_err"] <= point["test_err"]]
        best = min(fits, key=lambda p: p["weight_bytes"]) if fits else None
        comparison.append({
            "equal_bits": point["bits"], "equal_err": point["test_err"],
            "equal_bytes": point["weight_bytes"],
            "allocated_bytes": best["weight_bytes"] if best else None,
            "allocated_err": best["test_err"] if best else None,
            "allocated_anchor": best["anchor_bits"] if best else None,
            "smaller_pct": 100 * (1 - best["weight_bytes"] / point["weight_bytes"])
            if best else None})

    setting, seed = summary["setting"], summary["seed"]
    result = {
        "what": "Lin et al. 2016 SQNR analysis of a float network, without fine-tuning",
        "float_run": {"dir": str(args.run), "paper": summary["paper"], "budget": summary["budget"],
                      "git": summary["git"], "test_err_reported": summary["metrics"]["test/err"]},
        "float_test_err": float_err, "kappa_for_allocation": args.kappa, "step_rule": base,
        "kappa_measured_median_db_per_bit": kappa_measured,
        "sqnr_images": args.sqnr_images, "alone": alone, "combined": combined,
        "curves": curves, "comparison": comparison,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git": git, "versions": package_versions(), "hardware": hardware(),
        "python": platform.python_version(), "threads": args.threads,
        "wall_time_s": round(time.time() - start, 1),
        "data": {"root": str(args.data_root.resolve()), **dm.split_sizes()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"analysis_{setting}_seed{seed}{tag}"
    write_json_atomic(args.out / f"{stem}.json", result)
    record = json.loads((args.out / f"{stem}.json").read_text())  # as quantsurvey-report reads it
    (args.out / f"{stem}.md").write_text(lin_analysis_md(record))
    draw_lin_sqnr(result, f"{setting}_seed{seed}{tag}", args.figures)  # as quantsurvey-report
    draw_lin_size(result, f"{setting}_seed{seed}{tag}", args.figures)  # redraws them
    print(f"wrote {args.out / stem}.{{json,md}} in {result['wall_time_s']} s")


if __name__ == "__main__":
    main()
