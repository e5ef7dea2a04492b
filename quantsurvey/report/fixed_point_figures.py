"""Lin et al. 2016's and Anwar et al. 2015's analysis figures, drawn from the records that
scripts/lin2016_analysis.py and scripts/anwar_sensitivity.py commit beside their tables
(results/lin2016_fixed_point/analysis_<tag>.json, results/anwar2015_fixed_point/
sensitivity_<tag>.json), so `quantsurvey-report` redraws them, byte for byte, from a fresh clone:

- measured against predicted output SQNR (Lin et al. Eq. 13, 1/γ = Σ 1/γ_i);
- weight storage against test error, Eq. 18's cross-layer allocation against equal bit-widths;
- Anwar et al.'s layer-wise sensitivity (one layer quantized at 2–8 bits, the others float)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantsurvey.report.figure_files import plt, save_png

LIN_DIR, LIN_RECORD = "lin2016_fixed_point", "analysis_"
ANWAR_DIR, ANWAR_RECORD = "anwar2015_fixed_point", "sensitivity_"


def draw_lin_sqnr(record: dict[str, Any], tag: str, out: Path) -> Path:
    """Measured output SQNR against the harmonic prediction, one point per bit-width setting."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    pred = [c["predicted_db"] for c in record["combined"]]
    meas = [c["measured_db"] for c in record["combined"]]
    ax.scatter(pred, meas)
    for c in record["combined"]:
        ax.annotate(f"w{c['weight_bits']}/a{c['input_bits']}",
                    (c["predicted_db"], c["measured_db"]), fontsize=7)
    lo, hi = min(pred + meas) - 2, max(pred + meas) + 2
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("predicted output SQNR (dB), 1/γ = Σ 1/γ_i")
    ax.set_ylabel("measured output SQNR (dB)")
    ax.set_title(f"Lin et al. Eq. 13, {tag} (ours)", fontsize=9)
    return save_png(fig, out / f"lin2016_sqnr_predicted_vs_measured_{tag}.png")


def draw_lin_size(record: dict[str, Any], tag: str, out: Path) -> Path:
    """Test error against weight storage for equal bit-widths and Eq. 18's allocation."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for key, marker in (("equal", "o"), ("allocated", "s")):
        points = sorted(record["curves"][key], key=lambda p: p["weight_bytes"])
        ax.plot([p["weight_bytes"] / 1024 for p in points], [p["test_err"] for p in points],
                marker=marker, label=f"{key} bit-widths")
    ax.axhline(record["float_test_err"], color="k", ls=":", lw=0.8, label="float")
    ax.set_xlabel("weight storage (KiB)")
    ax.set_ylabel("test error (%)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"Eq. 18 allocation vs equal bits, no fine-tuning\n{tag} (ours)", fontsize=9)
    return save_png(fig, out / f"lin2016_size_vs_error_{tag}.png")


def draw_anwar_sensitivity(record: dict[str, Any], tag: str, out: Path) -> Path:
    """Test error per layer (in network order) when that layer alone is quantized, a line per
    bit-width."""
    layers = list(dict.fromkeys(r["layer"] for r in record["rows"]))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.3 * len(layers) + 2.0), 3.6))
    for i, bits in enumerate(sorted({r["bits"] for r in record["rows"]})):
        err = {r["layer"]: r["test_err"] for r in record["rows"] if r["bits"] == bits}
        ax.plot(range(len(layers)), [err.get(layer, float("nan")) for layer in layers],
                marker="o", color=f"C{i}", label=f"{bits} bits")
    ax.axhline(record["float_test_err"], color="k", ls=":", lw=0.8, label="float")
    ax.set_yscale("log")
    plain = plt.FuncFormatter(lambda v, _: f"{v:g}")  # 20, not 2×10^1
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xticks(range(len(layers)), layers, rotation=60 if len(layers) > 6 else 0,
                  ha="right" if len(layers) > 6 else "center", fontsize=7)
    ax.set_xlabel("the one quantized layer (weights; all else float)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"Anwar et al. sensitivity, {tag} (ours)", fontsize=9)
    ax.legend(fontsize=7)
    return save_png(fig, out / f"anwar2015_sensitivity_{tag}.png")


def redraw_all(results_dir: Path) -> list[Path]:
    """Every committed Lin 2016 and Anwar 2015 record under `results_dir`, drawn again into
    `results_dir`/figures."""
    out, drawn = results_dir / "figures", []
    for path in sorted((results_dir / LIN_DIR).glob(f"{LIN_RECORD}*.json")):
        record, tag = json.loads(path.read_text()), path.stem.removeprefix(LIN_RECORD)
        drawn += [draw_lin_sqnr(record, tag, out), draw_lin_size(record, tag, out)]
    for path in sorted((results_dir / ANWAR_DIR).glob(f"{ANWAR_RECORD}*.json")):
        drawn.append(draw_anwar_sensitivity(json.loads(path.read_text()),
                                            path.stem.removeprefix(ANWAR_RECORD), out))
    return drawn
