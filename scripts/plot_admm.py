"""Per-layer primal residual ‖W − Z‖/‖W‖ over the ADMM iterations (Zhang et al. 2018), from the
ADMM stages' summaries (`compression.admm_history`), one line per layer and seed.

    python scripts/plot_admm.py                      # results/runs → results/figures/
    python scripts/plot_admm.py --runs outputs/zhang2018_admm   # after running the experiment
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def admm_summaries(root: Path) -> list[dict]:
    out = []
    for path in sorted(root.rglob("*.json")):
        try:
            s = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        if isinstance(s, dict) and (s.get("compression") or {}).get("admm_history"):
            out.append(s)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=REPO / "results" / "runs" / "zhang2018_admm")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "figures")
    args = parser.parse_args()
    summaries = admm_summaries(args.runs)
    if not summaries:
        raise SystemExit(f"no ADMM summaries (compression.admm_history) under {args.runs}")
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in summaries:
        history = s["compression"]["admm_history"]
        layers = [k.removeprefix("residual/") for k in history[0] if k.startswith("residual/")]
        for i, layer in enumerate(layers):
            ax.plot([h["iteration"] for h in history], [h[f"residual/{layer}"] for h in history],
                    color=f"C{i}", alpha=0.7, label=layer if s is summaries[0] else None)
    ax.set_yscale("log")
    ax.set_xlabel("ADMM iteration (Z/U update)")
    ax.set_ylabel("‖W − Z‖ / ‖W‖")
    seeds = sorted({s["seed"] for s in summaries})
    ax.set_title(f"{summaries[0]['setting']}: primal residual per layer (seeds {seeds})")
    ax.legend()
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"admm_residuals_{summaries[0]['setting']}.png"
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    # the plotted series with where they came from (the ADMM stages are intermediate stages,
    # so their summaries are not among results/runs)
    data = [{"seed": s["seed"], "git": s["git"], "budget": s["budget"],
             "hardware": s["hardware"]["device"], "wall_time_s": s["wall_time_s"],
             "admm": s["config"]["compress"]["admm"],
             "history": s["compression"]["admm_history"],
             "support_agreement": s["compression"]["admm_support_agreement"]}
            for s in summaries]
    target.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    print(target)


if __name__ == "__main__":
    main()
