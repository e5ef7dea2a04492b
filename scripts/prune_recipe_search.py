"""Search prune → retrain schedules for a Han 2015 / Deep Compression MNIST setting.

The paper gives neither its per-layer quality values nor its retraining length, so ours are
chosen here: each candidate recipe (a list of prune cycles plus the quantize stage of the
Deep Compression config) runs as an ordinary pipeline in `<out>/<recipe>/`, starting from the
finished float stage of `--float-from` (copied, not retrained). Pick a recipe by validation
error (the `table` command), never by test error; then write it into conf/experiment/.

  python scripts/prune_recipe_search.py run --recipe l300_q4_lr01 --seed 0 --out outputs_search
  python scripts/prune_recipe_search.py table --out outputs_search

Recipes live in scripts/prune_recipes.yaml: {name: {setting, cycles: [{quality, epochs, lr,
weight_decay}], quantize: {overrides}}}. `--reuse-from <recipe>` copies that recipe's finished
prune stages first (reused only where the recipes agree), to compare quantize settings cheaply.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
RECIPES = Path(__file__).with_name("prune_recipes.yaml")


def build_config(setting: str, recipe: dict, seed: int, out: Path, overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment=han2016_deep_compression/{setting}",
                                           f"seed={seed}", f"paths.output_dir={out}",
                                           "trainer.progress_bar=none", *overrides])
    base = OmegaConf.to_container(cfg.pipeline, resolve=False)
    pipeline = {"float": base["float"]}
    previous = "float"
    for i, cycle in enumerate(recipe["cycles"], 1):
        stage = dict(base["prune1"])  # Han 2015's stage: the recipe replaces all prune stages
        stage.update(report=False, init_from=previous, budget=f"search-{i}",
                     compress={"prune": {"quality": cycle["quality"]}},
                     optim={"lr": cycle["lr"], "weight_decay": cycle.get("weight_decay", 5e-4)},
                     trainer={"max_epochs": cycle["epochs"]})
        previous = f"prune{i}"
        pipeline[previous] = stage
    quantize = OmegaConf.merge(base["quantize"], recipe.get("quantize") or {},
                               {"init_from": previous})
    pipeline["quantize"] = OmegaConf.to_container(quantize)
    cfg.pipeline = pipeline
    return cfg


def copy_float(src_root: Path, out: Path, setting: str, seed: int) -> None:
    src = src_root / "han2015_pruning" / setting / "float" / f"seed={seed}"
    dst = out / "han2015_pruning" / setting / "float" / f"seed={seed}"
    if dst.exists():
        return
    if not (src / "summary.json").is_file():
        sys.exit(f"no finished float stage at {src}: run the float baseline first")
    dst.mkdir(parents=True)
    shutil.copy2(src / "summary.json", dst / "summary.json")
    if (src / "model.pt").is_file():
        shutil.copy2(src / "model.pt", dst / "model.pt")
    else:
        (dst / "checkpoints").mkdir()
        shutil.copy2((src / "checkpoints" / "last.ckpt").resolve(), dst / "checkpoints/last.ckpt")


def copy_stages(src: Path, out: Path, recipe: dict, seed: int) -> None:
    """Start from another recipe's finished prune cycles, as far as the two recipes agree."""
    for i, cycle in enumerate(recipe["cycles"], 1):
        stage = src / "han2015_pruning" / recipe["setting"] / f"prune{i}" / f"seed={seed}"
        if not (stage / "summary.json").is_file():
            return
        c = json.loads((stage / "summary.json").read_text())["config"]
        if (c["compress"]["prune"]["quality"] != cycle["quality"]
                or c["trainer"]["max_epochs"] != cycle["epochs"] or c["optim"]["lr"] != cycle["lr"]
                or c["optim"]["weight_decay"] != cycle.get("weight_decay", 5e-4)):
            return
        dst = out / stage.relative_to(src)
        if not dst.exists():
            shutil.copytree(stage, dst, symlinks=True)


def run(args: argparse.Namespace) -> None:
    from quantsurvey.pipeline import run_pipeline

    recipe = yaml.safe_load(RECIPES.read_text())[args.recipe]
    out = Path(args.out).resolve() / args.recipe
    if args.reuse_from:
        copy_stages(Path(args.out).resolve() / args.reuse_from, out, recipe, args.seed)
    copy_float(Path(args.float_from), out, recipe["setting"], args.seed)
    cfg = build_config(recipe["setting"], recipe, args.seed, out, args.override)
    run_pipeline(cfg)


def table(args: argparse.Namespace) -> None:
    rows: dict[tuple[str, str], list[dict]] = {}
    for f in sorted(Path(args.out).glob("*/*/*/*/seed=*/summary.json")):
        s = json.loads(f.read_text())
        if s["stage"] == "float":
            continue
        rows.setdefault((f.parts[-6], s["stage"]), []).append(s)
    print("recipe | stage | seeds | val err | test err | kept % | ratio | device")
    for (recipe, stage), runs in sorted(rows.items()):
        def mean(key: str, runs: list[dict] = runs) -> str:
            vals = [r["metrics"].get(key) for r in runs if r["metrics"].get(key) is not None]
            return f"{statistics.mean(vals):.3f}" if vals else "-"
        print(f"{recipe} | {stage} | {len(runs)} | {mean('val/err')} | {mean('test/err')} | "
              f"{mean('compress/kept_pct')} | {mean('compress/ratio')} | "
              f"{runs[0]['hardware']['device']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--recipe", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs_search")
    p.add_argument("--float-from", default="outputs")
    p.add_argument("--override", action="append", default=[])
    p.add_argument("--reuse-from", help="a recipe whose finished prune stages to start from")
    t = sub.add_parser("table")
    t.add_argument("--out", default="outputs_search")
    args = parser.parse_args()
    run(args) if args.cmd == "run" else table(args)


if __name__ == "__main__":
    main()
