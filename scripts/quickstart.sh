#!/usr/bin/env bash
# `make quickstart`: generate a small default data set, inspect it, train, evaluate, print.
# Re-running reuses the generated data (delete data/default to regenerate) and replaces the
# quickstart runs. Sizes are chosen so the whole thing takes a few minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
CFM=".venv/bin/colliderfm"
DATA="data/default"
RUNS=".quickstart"
N_TRAIN="${QS_N_TRAIN:-1500}"   # jets per class
N_EVAL="${QS_N_EVAL:-500}"
WORKERS="${QS_WORKERS:-2}"

gen() {  # gen OUT N SEED PROCESSES
  if [ -f "$1/manifest.json" ]; then
    echo "== $1 exists, reusing it"
  else
    echo "== generating $1 ($2 jets per process, seed $3)"
    $CFM generate jets --process "$4" --n "$2" --seed "$3" --workers "$WORKERS" --out "$1"
  fi
}

gen "$DATA/toptag/train" "$N_TRAIN" 1 top,qcd
gen "$DATA/toptag/val" "$N_EVAL" 2 top,qcd
gen "$DATA/toptag/test" "$N_EVAL" 3 top,qcd

echo "== inspect"
$CFM inspect "$DATA/toptag/train"

rm -rf "$RUNS"
mkdir -p "$RUNS"
echo "== supervised top tagging from scratch (small ParT-style backbone)"
$CFM finetune --config configs/finetune/top_tagging.yaml --init none --mode full \
  --out "$RUNS/scratch" --set train.epochs="${QS_EPOCHS:-3}" --set model.preset=small \
  > "$RUNS/scratch.summary.json"

echo "== evaluate on the test set"
$CFM evaluate --checkpoint "$RUNS/scratch" --data "$DATA/toptag/test" \
  --out "$RUNS/scratch/metrics.json" > /dev/null
.venv/bin/python - "$RUNS/scratch/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
r = m["rejection"]
fmt = lambda x: "inf" if x is None else f"{x:.1f}"
print(f"quickstart result: top vs QCD, {m['n']} test jets: AUC {m['auc']:.4f}, "
      f"accuracy {m['accuracy']:.4f}, rejection 1/eps_B at eps_S=0.3: {fmt(r['0.3'])}, "
      f"at eps_S=0.5: {fmt(r['0.5'])}")
print(f"plots: {sys.argv[1].rsplit('/', 1)[0]}/roc.png and scores.png")
PY
