#!/usr/bin/env bash
# Float LeNet-300-100 and LeNet-5 baselines on MNIST, 3 seeds each, then the results tables.
# Runs resume where they stopped (resume=true starts from scratch when no checkpoint exists).
#   QUANTSURVEY_DATA=../shared/data bash scripts/reproduce_baselines.sh
set -euo pipefail
out="${QUANTSURVEY_OUTPUT:-./outputs}"
for exp in lenet300_100_mnist lenet5_mnist; do
  quantsurvey -m "experiment=han2015_pruning/$exp" seed=0,1,2 resume=true \
    trainer.progress_bar=none "paths.output_dir=$out"
done
quantsurvey-report --collect "$out/han2015_pruning"
