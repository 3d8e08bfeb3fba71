#!/usr/bin/env bash
# `make quickstart`: generate a small default data set, inspect it, pretrain a backbone on it
# (labels ignored), fine-tune it with few labels beside the from-scratch control (and the shipped
# zoo:jets-contrastive-small, once the package ships it), train a
# supervised baseline on all labels, evaluate everything on the test set and print the results.
# Re-running reuses the generated data (delete data/default to regenerate) and replaces the
# quickstart runs. Sizes are chosen so the whole thing takes a few minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
CFM=".venv/bin/colliderfm"
DATA="data/default"
RUNS=".quickstart"
N_TRAIN="${QS_N_TRAIN:-1000}"   # jets per class
N_EVAL="${QS_N_EVAL:-500}"
WORKERS="${QS_WORKERS:-2}"
RECIPE="${QS_RECIPE:-contrastive}"      # or mpm
PRETRAIN_STEPS="${QS_PRETRAIN_STEPS:-40}"
FEW="${QS_FEW_LABELS:-200}"             # labelled jets for the few-labels comparison

stage() {  # stage TEXT: print a stage header with the time since the start
  printf '== [%3ds] %s\n' "$SECONDS" "$1"
}

gen() {  # gen OUT N SEED PROCESSES
  if [ -f "$1/manifest.json" ]; then
    stage "$1 exists, reusing it"
  else
    stage "generating $1 ($2 jets per process, seed $3)"
    $CFM generate jets --process "$4" --n "$2" --seed "$3" --workers "$WORKERS" --out "$1"
  fi
}

gen "$DATA/toptag/train" "$N_TRAIN" 1 top,qcd
gen "$DATA/toptag/val" "$N_EVAL" 2 top,qcd
gen "$DATA/toptag/test" "$N_EVAL" 3 top,qcd

stage "inspect"
$CFM inspect "$DATA/toptag/train"

rm -rf "$RUNS"
mkdir -p "$RUNS"
FT=(--config configs/finetune/top_tagging.yaml --set model.preset=small)

stage "pretrain ($RECIPE, $PRETRAIN_STEPS steps) on the training jets, labels ignored"
$CFM pretrain --config "configs/pretrain/$RECIPE.yaml" --out "$RUNS/pretrain" \
  --set data.train="$DATA/toptag/train" --set objective.probe_data="$DATA/toptag/val" \
  --set objective.probe_n=1000 --set train.max_steps="$PRETRAIN_STEPS" \
  --set train.batch_size=128 \
  $( [ "$RECIPE" = mpm ] && echo --set objective.params.tokenizer_steps=200 ) \
  > "$RUNS/pretrain.summary.json"

stage "fine-tune with $FEW labelled jets: pretrained vs from scratch (same steps)"
for init in pretrain none; do
  name=$([ "$init" = none ] && echo scratch-few || echo pretrained-few)
  $CFM finetune "${FT[@]}" --init "$([ "$init" = none ] && echo none || echo "$RUNS/pretrain")" \
    --mode full --n-train "$FEW" --out "$RUNS/$name" --set train.batch_size=64 \
    --set train.max_steps=60 --set train.steps_per_epoch=20 --set train.early_stopping=null \
    > "$RUNS/$name.summary.json"
done

ZOO="${QS_ZOO:-jets-contrastive-small}"   # the shipped backbone fine-tuned beside them
if .venv/bin/python -c "import sys, colliderfm.zoo as z; sys.exit('$ZOO' not in z.names())"; then
  stage "fine-tune the shipped zoo:$ZOO with the same $FEW labelled jets (same steps)"
  $CFM finetune "${FT[@]}" --init "zoo:$ZOO" --mode full --n-train "$FEW" --out "$RUNS/zoo-few" \
    --set train.batch_size=64 --set train.max_steps=60 --set train.steps_per_epoch=20 \
    --set train.early_stopping=null > "$RUNS/zoo-few.summary.json"
else
  stage "zoo:$ZOO is not shipped yet: skipping its fine-tune (colliderfm models --pretrained)"
fi

stage "supervised top tagging from scratch on all labels (same steps)"
$CFM finetune "${FT[@]}" --init none --mode full --out "$RUNS/scratch" --set train.batch_size=64 \
  --set train.max_steps=60 --set train.steps_per_epoch=20 --set train.early_stopping=null \
  > "$RUNS/scratch.summary.json"

stage "evaluate on the test set"
for run in pretrained-few zoo-few scratch-few scratch; do
  [ -d "$RUNS/$run" ] || continue
  $CFM evaluate --checkpoint "$RUNS/$run" --data "$DATA/toptag/test" \
    --out "$RUNS/$run/metrics.json" > /dev/null
done
.venv/bin/python - "$RUNS" "$FEW" "$RECIPE" "$ZOO" <<'PY'
import json, os, sys
runs, few, recipe, zoo = sys.argv[1:5]
fmt = lambda x: "inf" if x is None else f"{x:.1f}"
text = open(f"{runs}/pretrain.summary.json").read()
probe = json.loads(text[text.index("{"):])
print(f"quickstart result: top vs QCD on {json.load(open(f'{runs}/scratch/metrics.json'))['n']} "
      "test jets")
if "probe_auc_random" in probe:
    print(f"  {recipe} pretraining: linear-probe AUC {probe['probe_auc_random']:.4f} (random "
          f"backbone) -> {probe.get('probe_auc', float('nan')):.4f} (pretrained)")
rows = [(f"pretrained ({recipe}), {few} labels", "pretrained-few"),
        (f"zoo:{zoo}, {few} labels", "zoo-few"),
        (f"from scratch, {few} labels", "scratch-few"),
        ("from scratch, all labels", "scratch")]
print(f"  {'model':<38} {'AUC':>7} {'acc':>7} {'1/eB@0.3':>9} {'1/eB@0.5':>9}")
for label, run in rows:
    if not os.path.exists(f"{runs}/{run}/metrics.json"):
        continue  # the zoo row, while nothing is shipped
    m = json.load(open(f"{runs}/{run}/metrics.json"))
    r = m["rejection"]
    print(f"  {label:<38} {m['auc']:>7.4f} {m['accuracy']:>7.4f} {fmt(r['0.3']):>9} "
          f"{fmt(r['0.5']):>9}")
print(f"plots: {runs}/<run>/roc.png and scores.png")
PY
stage "done"
