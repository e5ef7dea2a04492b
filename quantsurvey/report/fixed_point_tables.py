"""Lin et al. 2016's and Anwar et al. 2015's analysis tables (Markdown), rendered from the records
committed beside them, so `quantsurvey-report` rewrites them, byte for byte, from a fresh clone:

- results/lin2016_fixed_point/analysis_<tag>.md: per-layer SQNR, Eq. 13's prediction against the
  measured output SQNR, Eq. 18's allocation against equal bit-widths (scripts/lin2016_analysis.py);
- results/lin2016_fixed_point/step_rules_<tag>.md: step rules of a conversion without
  fine-tuning (scripts/fixed_point_step_rules.py);
- results/lin2016_fixed_point/optimal_steps.md: the MSE-optimal uniform steps, 1–16 bits
  (scripts/optimal_steps_table.py);
- results/anwar2015_fixed_point/sensitivity_<tag>.md: one layer quantized at a time
  (scripts/anwar_sensitivity.py);
- results/anwar2015_fixed_point/bit_mix_<tag>.md: per-layer weight bits chosen from a
  sensitivity record (scripts/anwar_bit_mix.py).

Each renderer takes the record as JSON gives it back (bit-widths as string keys), which is what
the scripts render from too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LIN_DIR, ANWAR_DIR = "lin2016_fixed_point", "anwar2015_fixed_point"


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "–" if v is None else (f"{v:{spec}}" if isinstance(v, float) else str(v))


def _provenance(r: dict[str, Any]) -> str:
    return f"git {r['git']['commit'][:10]}, dirty={r['git']['dirty']}, {r['wall_time_s']} s"


def lin_analysis_md(r: dict[str, Any]) -> str:
    """Lin et al. §3–4 on one float network: per-layer SQNR, Eq. 13, Eq. 18."""
    layers = list(r["alone"])
    weight_bits = list(r["alone"][layers[0]]["weight"])
    act_bits = list(r["alone"][layers[0]]["input"])
    steps = f"Steps: {r['step_rule']}. " if "step_rule" in r else ""
    lines = [
        f"# Lin et al. 2016 analysis: {r['float_run']['dir']}",
        "",
        f"Float model: {r['float_run']['paper']} float stage, budget {r['float_run']['budget']}, "
        f"test error {r['float_test_err']:.2f}% (re-evaluated here). {steps}"
        f"No fine-tuning: every number below is the converted model. SQNR on the logits of "
        f"{r['sqnr_images']} validation images; test error on the full test set. κ for the "
        f"allocation {r['kappa_for_allocation']} dB/bit; measured median weight-SQNR slope "
        f"(4 → 8 bits) {r['kappa_measured_median_db_per_bit']:.2f} dB/bit.",
        f"Command: `{r['command']}` ({_provenance(r)}, {r['threads']} thread(s)).",
        "",
        "## Per-layer SQNR (dB): the tensor's own, and the output SQNR it causes alone",
        "",
        "| layer | params | " + " | ".join(f"w{b} tensor / out" for b in weight_bits) + " | "
        + " | ".join(f"in{b} tensor / out" for b in act_bits) + " |",
        "|---|---:|" + "---:|" * (len(weight_bits) + len(act_bits)),
    ]
    for n in layers:
        a = r["alone"][n]
        cells = [f"{a['weight'][b]['tensor_db']:.1f} / {a['weight'][b]['output_db']:.1f}"
                 for b in weight_bits]
        cells += [f"{a['input'][b]['tensor_db']:.1f} / {a['input'][b]['output_db']:.1f}"
                  for b in act_bits]
        lines.append(f"| {n} | {a['params']} | " + " | ".join(cells) + " |")
    lines += ["", "## Output SQNR: harmonic prediction (Eq. 13) against measurement", "",
              "| weight bits | input bits | predicted dB | measured dB | difference dB |",
              "|---|---|---:|---:|---:|"]
    for c in r["combined"]:
        lines.append(f"| {c['weight_bits']} | {c['input_bits']} | {c['predicted_db']:.2f} | "
                     f"{c['measured_db']:.2f} | {c['measured_db'] - c['predicted_db']:+.2f} |")
    lines += ["", "## Weight bytes against test error: equal bit-widths and Eq. 18 allocation "
              "(inputs 8 bits, no fine-tuning)", "",
              "| equal bits | error % | weight bytes | allocated: anchor | error % | weight bytes "
              "| smaller |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for c in r["comparison"]:
        smaller = "–" if c["smaller_pct"] is None else f"{c['smaller_pct']:.1f}%"
        lines.append(f"| {c['equal_bits']} | {c['equal_err']:.2f} | {c['equal_bytes']:.0f} | "
                     f"{_fmt(c['allocated_anchor'])} | {_fmt(c['allocated_err'])} | "
                     f"{_fmt(c['allocated_bytes'], '.0f')} | {smaller} |")
    lines += ["", "Allocated points (anchor: the largest layer's bits):", ""]
    for p in r["curves"]["allocated"]:
        lines.append(f"- anchor {p['anchor_bits']}: {p['weight_bytes']:.0f} B, "
                     f"{p['test_err']:.2f}% — bits {p['bits']}")
    return "\n".join(lines) + "\n"


def step_rules_md(r: dict[str, Any]) -> str:
    """Test error and logit SQNR per step rule and bit-width pair."""
    bits = list(dict.fromkeys((row["weight_bits"], row["input_bits"]) for row in r["rows"]))
    lines = [f"# Step rules for a fixed-point conversion without fine-tuning: {r['float_run']}",
             "",
             f"Float test error {r['float_test_err']:.2f}% (budget {r['float_budget']}). "
             f"Every conv / fc layer's weight and input quantized, steps rounded to a power of "
             f"two, activation statistics from 10 training batches. Command: "
             f"`{r['command']}` ({_provenance(r)}).", "",
             "| rule | " + " | ".join(f"w{w}/a{a} error %, logit SQNR dB" for w, a in bits) + " |",
             "|---|" + "---:|" * len(bits)]
    for rule in r["rules"]:
        cells = [f"{row['test_err']:.2f}, {row['logit_sqnr_db']:.1f}" for row in r["rows"]
                 if row["rule"] == rule]
        lines.append(f"| {rule.replace('|', chr(92) + '|')} | " + " | ".join(cells) + " |")
    unsigned = {row["rule"]: len(row["unsigned_inputs"]) for row in r["rows"]
                if row.get("unsigned_inputs")}
    if unsigned:
        lines += ["", "Unsigned input codes (`act_signed: auto`, calibrated minimum ≥ 0): "
                  + "; ".join(f"{rule}: {n} layer inputs" for rule, n in unsigned.items())
                  + "; every other input signed."]
    return "\n".join(lines) + "\n"


def optimal_steps_md(r: dict[str, Any]) -> str:
    """Lin et al. Table 1 extended: the MSE-optimal step per density, bits and level layout."""
    lines = ["# Optimal uniform quantizer steps (unit variance)", "",
             "Computed by `python scripts/optimal_steps_table.py` "
             "(quantsurvey.compress.optimal_quantizer: exact MSE by quadrature per cell, "
             "minimised over the step). Lin et al. 2016 Table 1 (Gaussian, mid-rise): "
             "1 bit 1.596, 2 bits 0.996 — the paper's figures, not ours.", ""]
    rows = r["rows"]
    for dist in dict.fromkeys(row["distribution"] for row in rows):
        lines += [f"## {dist}", "",
                  "| bits | mid-rise step | SQNR dB | dB/bit | zero-level step | SQNR dB "
                  "| dB/bit |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for b in sorted({row["bits"] for row in rows if row["distribution"] == dist}):
            mr, zl = (next(row for row in rows if row["distribution"] == dist
                           and row["bits"] == b and row["levels"] == lv)
                      for lv in ("mid_rise", "zero_level"))
            lines.append(f"| {b} | {mr['step']:.6g} | {mr['sqnr_db']:.2f} | "
                         f"{mr['db_per_bit']:.2f} | {zl['step']:.6g} | {zl['sqnr_db']:.2f} | "
                         f"{zl['db_per_bit']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def anwar_sensitivity_md(r: dict[str, Any], setting: str, seed: int | str) -> str:
    """Anwar et al.'s layer-wise sensitivity: test error, one layer quantized at a time."""
    layers = list(dict.fromkeys(row["layer"] for row in r["rows"]))
    bits = sorted({row["bits"] for row in r["rows"]})
    lines = [f"# Layer-wise sensitivity, {setting}, seed {seed}", "",
             f"Test error (%) with one layer's weights quantized (L2-optimal step, Anwar et al.), "
             f"every other layer and every activation float; float model "
             f"{r['float_test_err']:.2f}%. Command: `{r['command']}` ({_provenance(r)}).", "",
             "| layer | " + " | ".join(f"{b} bits" for b in bits) + " |",
             "|---|" + "---:|" * len(bits)]
    for layer in layers:
        by_bits = {row["bits"]: row["test_err"] for row in r["rows"] if row["layer"] == layer}
        lines.append(f"| {layer} | " + " | ".join(f"{by_bits[b]:.2f}" for b in bits) + " |")
    return "\n".join(lines) + "\n"


def anwar_bit_mix_md(r: dict[str, Any]) -> str:
    """The sensitivity-guided bit mix: each layer's bits and its validation error alone."""
    avg = r["average_bits_budget"]
    uniform = r["uniform_summed_val_err"]
    lines = [f"# Sensitivity-guided weight bits, {r['setting']} (sensitivity seed "
             f"{r['sensitivity_seed']}), storage of uniform {avg:g}-bit weights", "",
             f"From `{r['sensitivity']}` (validation error with one layer quantized, the others "
             f"float). Command: `{r['command']}` ({_provenance(r)}).", "",
             "| layer | weights | bits | val error alone (%) |", "|---|---:|---:|---:|"]
    lines += [f"| {row['layer']} | {row['weights']:,} | {row['bits']} | "
              f"{row['val_err_alone']:.2f} |" for row in r["layers"]]
    lines += ["", f"Storage: {r['storage_weight_bits']:,} weight bits ({r['average_bits']:.3f} "
                  f"bits per weight; budget {r['budget_weight_bits']:,}). Summed single-layer "
                  f"validation error: {r['summed_val_err']:.2f} (uniform {avg:g} bits: "
                  + (f"{uniform:.2f}" if uniform is not None else "not measured") + ").", "",
              "For the experiment config: `weight_bits: {"
              + ", ".join(f"{row['layer']}: {row['bits']}" for row in r["layers"]) + "}`", ""]
    return "\n".join(lines)


def anwar_tag(stem: str) -> tuple[str, str]:
    """`sensitivity_<setting>_seed<s>` → (setting, seed)."""
    setting, _, seed = stem.removeprefix("sensitivity_").rpartition("_seed")
    return setting, seed


def rewrite_all(results_dir: Path) -> list[Path]:
    """Every committed Lin 2016 / Anwar 2015 record under `results_dir`: its table rewritten
    beside it."""
    jobs = [(LIN_DIR, "analysis_*.json", lambda r, _: lin_analysis_md(r)),
            (LIN_DIR, "step_rules_*.json", lambda r, _: step_rules_md(r)),
            (LIN_DIR, "optimal_steps.json", lambda r, _: optimal_steps_md(r)),
            (ANWAR_DIR, "sensitivity_*.json",
             lambda r, stem: anwar_sensitivity_md(r, *anwar_tag(stem))),
            (ANWAR_DIR, "bit_mix_*.json", lambda r, _: anwar_bit_mix_md(r))]
    written = []
    for folder, pattern, render in jobs:
        for path in sorted((results_dir / folder).glob(pattern)):
            target = path.with_suffix(".md")
            target.write_text(render(json.loads(path.read_text()), path.stem))
            written.append(target)
    return written
