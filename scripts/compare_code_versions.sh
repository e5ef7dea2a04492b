#!/usr/bin/env bash
# Run one pipeline experiment at two commits from the same float stage and print every stage's
# test metrics side by side: the check that a refactoring changed no number.
#
#   bash scripts/compare_code_versions.sh OLD_COMMIT NEW_COMMIT EXPERIMENT [OUT_DIR]
#   bash scripts/compare_code_versions.sh 49ec4d0 6ab4b2b han2016_deep_compression/lenet5_mnist
#
# The float stage (the first stage) runs once, at OLD, with 2 torch threads; both pipelines then
# reuse it and run their later stages at 1 thread each, side by side (2 cores), as the committed
# runs did. Needs the data under $QUANTSURVEY_DATA (default ../shared/data). $EXTRA adds
# overrides to every command (e.g. EXTRA="data=synthetic trainer=smoke" for a quick check).
set -euo pipefail
old=$1 new=$2 experiment=$3 out=${4:-$(pwd)/outputs_compare}
repo=$(cd "$(dirname "$0")/.." && pwd)
export QUANTSURVEY_DATA=${QUANTSURVEY_DATA:-$(cd "$repo/.." && pwd)/shared/data} WANDB_MODE=offline
base=$(basename "$experiment")
paper_of_first() {  # the paper key and name of the experiment's first stage, from the new code
  (cd "$out/code-new" && PYTHONPATH=. python - "$experiment" <<'PY'
import sys
from hydra import compose, initialize_config_dir
from quantsurvey.cli import CONF_DIR
from quantsurvey.pipeline import stage_configs
with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
    cfg = compose(config_name="config", overrides=[f"experiment={sys.argv[1]}"])
name, _, rc = stage_configs(cfg)[0]
print(rc.paper, rc.setting, name)
PY
)
}
mkdir -p "$out"
for side in old new; do
  commit=$([ $side = old ] && echo "$old" || echo "$new")
  [ -d "$out/code-$side" ] || git -C "$repo" worktree add -f "$out/code-$side" "$commit" -q
done
read -r paper setting first < <(paper_of_first)
float_dir="$out/runs-old/$paper/$setting/$first"
if [ ! -f "$float_dir/seed=0/summary.json" ]; then
  first_exp=$(cd "$out/code-new" && ls conf/experiment/"$paper"/"$setting".yaml >/dev/null && echo "$paper/$setting")
  drop=$(cd "$out/code-new" && PYTHONPATH=. python -c "
from hydra import compose, initialize_config_dir
from quantsurvey.cli import CONF_DIR
with initialize_config_dir(config_dir=CONF_DIR, version_base='1.3'):
    cfg = compose(config_name='config', overrides=['experiment=$first_exp'])
print(' '.join(f\"~pipeline.{s}\" for s in list(cfg.pipeline)[1:]))")
  (cd "$out/code-old" && OMP_NUM_THREADS=2 PYTHONPATH=. python -m quantsurvey.train \
     "experiment=$first_exp" seed=0 $drop "paths.output_dir=$out/runs-old" trainer.progress_bar=none \
     ${EXTRA:-})
fi
mkdir -p "$out/runs-new/$paper/$setting"
cp -rn "$float_dir" "$out/runs-new/$paper/$setting/"
entry() { [ -f "$1/quantsurvey/cli.py" ] && echo quantsurvey.cli || echo quantsurvey.train; }
for side in old new; do
  (cd "$out/code-$side" && OMP_NUM_THREADS=1 PYTHONPATH=. python -m "$(entry "$out/code-$side")" \
     "experiment=$experiment" seed=0 "paths.output_dir=$out/runs-$side" \
     trainer.progress_bar=none ${EXTRA:-} > "$out/$side-$base.log" 2>&1) &
done
wait
python - "$out" "$base" <<'PY'
import glob, json, sys
out, setting = sys.argv[1], sys.argv[2]
rows = {}
for side in ("old", "new"):
    for f in sorted(glob.glob(f"{out}/runs-{side}/*/{setting}/*/seed=0/summary.json")):
        s = json.load(open(f))
        m = s["metrics"]
        rows.setdefault(s["stage"], {})[side] = (m["test/err"], m["test/loss"],
                                                 m.get("compress/size_bytes"), s["git"]["commit"][:8])
print("| stage | old test/err | new test/err | old test/loss | new test/loss | identical | old bytes | new bytes |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for stage, r in rows.items():
    o, n = r.get("old"), r.get("new")
    if o and n:
        same = o[:2] == n[:2]
        print(f"| {stage} | {o[0]!r} | {n[0]!r} | {o[1]!r} | {n[1]!r} | {same} | {o[2] or ''} | {n[2] or ''} |")
PY
