#!/usr/bin/env bash
# GPU check: one prepared run on a bare CUDA machine (made for one H200; under 8 minutes).
#
#   bash benchmarks/gpu_check.sh [OUT]            # results in OUT (default gpu-check-out)
#   GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh /tmp/gc   # tiny sizes, CPU without CUDA
#
# Writes OUT/gpu_check.md (one section per step, markdown tables, each step's exit code and
# seconds) and OUT/logs/*.log (raw output), OUT/*.md|json (each tool's own tables), OUT/runs/
# (the pretraining / fine-tuning summaries). A failing step does not stop the later ones. The
# summary is rewritten after every step, so a run cut short still leaves one.
#
# Steps: 0 install the wheels in .whl (if any) into a target dir and put src on PYTHONPATH (the
# package is NOT pip-installed: its pyproject pins a torch that would replace the machine's);
# 1 the gpu-marked tests and the device tests; 2 training throughput (bench_models.py: ours vs
# weaver-core, fp32/bf16, FLOP fractions of the measured GEMM peaks); 3 200 steps of each
# pretraining recipe, a fine-tune + evaluate (synthetic data from gpu_data.py), the loader's
# delivered jets/s with 0/4/8 workers; 4 CPU-vs-CUDA loss parity (gpu_parity.py).
#
# The machine has no network: fetch the wheels beforehand, on a machine with PyPI, from the repo
# root (pure-Python wheels; the list is benchmarks/gpu_wheels.txt):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform any -d .whl -r benchmarks/gpu_wheels.txt
#
# and keep .whl out of git (`/.whl/` in .git/info/exclude); carry it to the GPU machine.
# weaver-core is needed only for the ParticleTransformer comparison (imported with --no-deps:
# only torch is used), hypothesis only so that pytest can collect its property tests. mplhep is
# not needed: colliderfm imports it lazily for the plot style and falls back without it.
#
# Environment: PYTHON (default: python3 if it imports torch, else .venv/bin/python),
# GPU_CHECK_BUDGET (seconds for the whole run; default 460, smoke 400), GPU_CHECK_SITE (wheel
# target, default /tmp/site), GPU_CHECK_WORKERS (loader workers of the training runs).
set -u

OUT=${1:-gpu-check-out}
SMOKE=${GPU_CHECK_SMOKE:-0}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$REPO" || exit 1
LOGS=$OUT/logs
RUNS=$OUT/runs
SEC=$OUT/sections
rm -rf "$LOGS" "$RUNS" "$SEC" "$OUT/gpu_check.md" "$OUT/steps.tsv"
mkdir -p "$LOGS" "$RUNS" "$SEC"
T_START=$(date +%s)
if [ "$SMOKE" = 1 ]; then BUDGET=${GPU_CHECK_BUDGET:-400}; else BUDGET=${GPU_CHECK_BUDGET:-460}; fi
DEADLINE=$((T_START + BUDGET))
SITE=${GPU_CHECK_SITE:-/tmp/site}

if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif python3 -c "import torch" >/dev/null 2>&1; then
    PY=python3
elif [ -x .venv/bin/python ]; then
    PY=$REPO/.venv/bin/python
else
    PY=python3
fi
export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

# ------------------------------------------------------------------ bookkeeping

# assemble: rebuild gpu_check.md from the header, the step table and the sections so far
assemble() {
    local md=$OUT/gpu_check.md.tmp now
    now=$(date +%s)
    {
        echo "# GPU check"
        echo
        cat "$OUT/header.md" 2>/dev/null
        echo "- elapsed: $((now - T_START)) s of a $BUDGET s budget"
        echo
        echo "## Steps"
        echo
        echo "| step | exit | seconds | log |"
        echo "|---|---|---|---|"
        [ -f "$OUT/steps.tsv" ] && awk -F'\t' '{printf "| %s | %s | %s | logs/%s.log |\n", $1, $2, $3, $1}' "$OUT/steps.tsv"
        for f in "$SEC"/*.md; do
            [ -f "$f" ] || continue
            echo
            cat "$f"
        done
    } >"$md"
    mv "$md" "$OUT/gpu_check.md"
}

# run_step NAME LIMIT CMD...: run CMD under `timeout` (cut to the time left), log, record
# (set STEP_STDOUT=FILE to send stdout there and stderr alone to the log)
run_step() {
    local name=$1 limit=$2 left rc t0 t1
    shift 2
    left=$((DEADLINE - $(date +%s)))
    if [ "$left" -lt 20 ]; then
        printf '%s\tskipped (out of time)\t0\n' "$name" >>"$OUT/steps.tsv"
        echo "skipped: out of time" >"$LOGS/$name.log"
        LAST_RC=125
        assemble
        return 0
    fi
    [ "$limit" -gt $((left - 10)) ] && limit=$((left - 10))
    t0=$(date +%s.%N)
    echo ">>> [$name] $(echo "$*" | tr -s ' \n' ' ' | cut -c1-240) (limit ${limit}s)" >&2
    if [ -n "${STEP_STDOUT:-}" ]; then
        timeout -k 10 "$limit" "$@" >"$STEP_STDOUT" 2>"$LOGS/$name.log"
    else
        timeout -k 10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
    fi
    rc=$?
    t1=$(date +%s.%N)
    LAST_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    LAST_RC=$rc
    local shown=$rc
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && shown="$rc (timed out after ${limit}s)"
    printf '%s\t%s\t%s\n' "$name" "$shown" "$LAST_SECS" >>"$OUT/steps.tsv"
    echo "<<< [$name] exit $rc in ${LAST_SECS}s" >&2
    assemble
    return 0
}

# tail_block FILE [N]: the last N lines of a log as a fenced block
tail_block() {
    echo '```'
    tail -n "${2:-15}" "$1" 2>/dev/null | cut -c1-300
    echo '```'
}

# include NAME [LOG]: NAME.md from OUT, or say which log tells why it is missing
include() {
    if [ -s "$OUT/$1.md" ]; then
        cat "$OUT/$1.md"
    else
        echo "(no table: see logs/${2:-$1}.log)"
    fi
}

# ------------------------------------------------------------------ sizes and header

if [ "$SMOKE" = 1 ]; then
    STEPS=3
    JBATCH=32
    EBATCH=32
    JETS=400
    EVENTS=400
    LOGEVERY=1
    TOKSTEPS=3
    WORKERS=${GPU_CHECK_WORKERS:-0}
else
    STEPS=200
    JBATCH=256
    EBATCH=512
    JETS=60000
    EVENTS=110000
    LOGEVERY=10
    TOKSTEPS=200
    WORKERS=${GPU_CHECK_WORKERS:-4}
fi
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
    DEVICE=cuda
else
    DEVICE=cpu
fi
{
    if git rev-parse --short HEAD >/dev/null 2>&1; then
        COMMIT="commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
    else
        COMMIT="no git metadata"
    fi
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); $COMMIT"
    echo "- mode: $([ "$SMOKE" = 1 ] && echo 'SMOKE (tiny sizes, a few steps)' || echo full); device: $DEVICE; python: $("$PY" -c 'import sys; print(sys.version.split()[0])' 2>&1)"
    echo "- torch: $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>&1 | tail -1)"
    if command -v nvidia-smi >/dev/null 2>&1; then
        echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2 | tr '\n' ';')"
    else
        echo "- GPU: none (no nvidia-smi)"
    fi
    echo "- CPU: $(nproc) cores; training runs: $STEPS steps, loader workers $WORKERS"
    echo
} >"$OUT/header.md"
[ "$DEVICE" = cpu ] && [ "$SMOKE" != 1 ] && echo "gpu_check: WARNING: no CUDA device; the full run will be slow on the CPU" >&2
assemble

# ------------------------------------------------------------------ 0. install

WHEELS=$(ls .whl/*.whl 2>/dev/null)
if [ -n "$WHEELS" ]; then
    # shellcheck disable=SC2086
    run_step install 120 bash -c "
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target '$SITE' .whl/*.whl \
        || { echo 'pip failed: unpacking the wheels with zipfile instead'; \
             $PY -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' '$SITE' .whl/*.whl; }"
    INSTALL_RC=$LAST_RC
    export PYTHONPATH=$SITE:$PYTHONPATH
else
    INSTALL_RC="no .whl folder"
fi
run_step import 60 "$PY" -c "
import importlib, importlib.util
import colliderfm, torch
print('colliderfm', colliderfm.__file__)
for m in ('weaver.nn.model.ParticleTransformer', 'hypothesis', 'mplhep', 'uproot', 'awkward', 'pandas', 'h5py', 'onnxruntime'):
    try:
        importlib.import_module(m)
        print(m, 'ok')
    except Exception as exc:
        print(m, 'MISSING', type(exc).__name__, str(exc).splitlines()[0] if str(exc) else '')
"
IMPORT_RC=$LAST_RC
{
    echo "## 0. Install"
    echo
    echo "- wheels: $(echo "$WHEELS" | xargs -n1 basename 2>/dev/null | tr '\n' ' ')(install: $INSTALL_RC)"
    echo "- PYTHONPATH: src$([ -n "$WHEELS" ] && echo " + $SITE"); \`import colliderfm\`: exit $IMPORT_RC"
    echo "- mplhep is imported lazily (evaluate/plots.py, style only, falls back without it)"
    echo
    echo '```'
    cat "$LOGS/import.log"
    echo '```'
} >"$SEC/0-install.md"
assemble

# ------------------------------------------------------------------ 1. tests

# test files whose top-level imports are missing here cannot be collected: leave them out
IGNORES=()
IGNORED=""
for mod in uproot awkward hypothesis h5py pandas; do
    if ! "$PY" -c "import $mod" >/dev/null 2>&1; then
        while IFS= read -r f; do
            IGNORES+=(--ignore="$f")
            IGNORED="$IGNORED $f($mod)"
        done < <(grep -rlE "^(import|from) $mod\b" tests --include='*.py' | sort)
    fi
done
run_step pytest-gpu 150 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests ${IGNORES[@]+"${IGNORES[@]}"}
run_step pytest-device 150 "$PY" -m pytest -q -p no:cacheprovider tests/train/test_device.py tests/finetune/test_linear_probe.py
{
    echo "## 1. Tests"
    echo
    echo "- not collected (a top-level import missing):${IGNORED:- none}"
    echo
    echo "| run | result (pytest's last line) |"
    echo "|---|---|"
    echo "| \`pytest -m gpu tests\` | $(grep -E 'passed|failed|error|skipped|no tests ran' "$LOGS/pytest-gpu.log" | tail -1) |"
    echo "| \`pytest tests/train/test_device.py tests/finetune/test_linear_probe.py\` | $(grep -E 'passed|failed|error|skipped|no tests ran' "$LOGS/pytest-device.log" | tail -1) |"
    echo
    for n in pytest-gpu pytest-device; do
        if grep -qE "FAILED|ERROR" "$LOGS/$n.log"; then
            echo "$n failures:"
            echo
            echo '```'
            grep -E "^(FAILED|ERROR)" "$LOGS/$n.log" | head -20
            echo '```'
        fi
    done
} >"$SEC/1-tests.md"
assemble

# ------------------------------------------------------------------ 2. model throughput

if [ "$SMOKE" = 1 ]; then
    BM_ARGS=(--device "$DEVICE" --presets small --batch 8 --batch 16 --particles 32 --rounds 2 --warmup 1 --gemm-size 256 --weaver-bf16)
else
    BM_ARGS=(--device "$DEVICE" --presets small,base --batch 256,1024 --particles 128 --rounds 10 --warmup 3 --gemm-size 8192 --weaver-bf16)
fi
run_step bench-models 200 "$PY" benchmarks/bench_models.py "${BM_ARGS[@]}" --json "$OUT/bench-models.json" --markdown "$OUT/bench-models.md"
BM_RC=$LAST_RC
{
    echo "## 2. Training throughput (bench_models.py, exit $BM_RC)"
    echo
    echo "\`bench_models.py ${BM_ARGS[*]}\`: one step = forward + backward + AdamW of a 10-class classifier; fp32 runs TF32 matmuls on CUDA (as the training loop); weaver-core at our preset's sizes."
    echo
    include bench-models
    [ "$BM_RC" = 0 ] || tail_block "$LOGS/bench-models.log"
} >"$SEC/2-models.md"
assemble

# ------------------------------------------------------------------ 3. recipes and loader

DATA=$OUT/data
run_step data 120 "$PY" benchmarks/gpu_data.py write "$DATA" --jets "$JETS" --events "$EVENTS"
COMMON=(--set "train.device=$DEVICE" --set "train.max_steps=$STEPS" --set "train.steps_per_epoch=$STEPS"
    --set "train.log_every=$LOGEVERY" --set "train.workers=$WORKERS")
JETS_PT=(--set "data.train=$DATA/jets/pretrain" --set objective.probe_data=null --set "train.batch_size=$JBATCH")

cli_run() { # cli_run NAME LIMIT ARGS... (colliderfm ARGS, summary JSON to runs/NAME.json)
    local name=$1 limit=$2
    shift 2
    STEP_STDOUT=$RUNS/$name.json run_step "$name" "$limit" "$PY" -m colliderfm "$@"
    echo "$LAST_RC" >"$RUNS/$name.rc"
    echo "$LAST_SECS" >"$RUNS/$name.wall"
}

NAMES=()
cli_run contrastive 120 pretrain --config configs/pretrain/contrastive.yaml --out "$RUNS/contrastive" \
    "${COMMON[@]}" "${JETS_PT[@]}"
NAMES+=(contrastive)
if [ "$DEVICE" = cuda ]; then # bf16 on a CPU without AMX is emulated (slow): GPU only
    cli_run contrastive-bf16 120 pretrain --config configs/pretrain/contrastive.yaml --out "$RUNS/contrastive-bf16" \
        "${COMMON[@]}" "${JETS_PT[@]}" --set train.precision=bf16
    NAMES+=(contrastive-bf16)
fi
cli_run mpm 150 pretrain --config configs/pretrain/mpm.yaml --out "$RUNS/mpm" \
    "${COMMON[@]}" "${JETS_PT[@]}" --set "objective.params.tokenizer_steps=$TOKSTEPS"
NAMES+=(mpm)
cli_run masked-id 120 pretrain --config configs/pretrain/masked_id.yaml --out "$RUNS/masked-id" \
    "${COMMON[@]}" --set "data.train=$DATA/events/pretrain" --set objective.probe_data=null \
    --set "train.batch_size=$EBATCH"
NAMES+=(masked-id)
INIT=none
[ -f "$RUNS/contrastive/model.safetensors" ] && INIT=$RUNS/contrastive
cli_run finetune 120 finetune --config configs/finetune/top_tagging.yaml --out "$RUNS/finetune" \
    --init "$INIT" --mode full "${COMMON[@]}" --set "train.batch_size=$JBATCH" \
    --set "data.train=$DATA/jets/train" --set "data.val=$DATA/jets/val" --set "data.test=$DATA/jets/test"
NAMES+=(finetune)
cli_run evaluate 90 evaluate --checkpoint "$RUNS/finetune" --data "$DATA/jets/test" \
    --out "$RUNS/evaluate/metrics.json" --device "$DEVICE" --batch-size 1024
NAMES+=(evaluate)
run_step rates 60 "$PY" benchmarks/gpu_data.py rates --runs "$RUNS" "${NAMES[@]}" \
    --markdown "$OUT/runs.md" --json "$OUT/runs-rates.json"

if [ "$SMOKE" = 1 ]; then
    BL_ARGS=(--device "$DEVICE" --workers 0,2 --jets 1000 --batch 64 --loader-only)
else
    BL_ARGS=(--device "$DEVICE" --workers 0,4,8 --jets 100000 --batch 256)
fi
run_step bench-loader 150 "$PY" benchmarks/bench_loader.py "${BL_ARGS[@]}" --json "$OUT/bench-loader.json" --markdown "$OUT/bench-loader.md"
BL_RC=$LAST_RC
{
    echo "## 3. Pretraining, fine-tuning and the loader"
    echo
    echo "Synthetic data (gpu_data.py: $JETS jets to pretrain on and $JETS to fine-tune on, $EVENTS events for masked-id); $STEPS steps each on $DEVICE, fp32 unless named, loader workers $WORKERS, no linear probe. Finetune starts from the contrastive run (init: $([ "$INIT" = none ] && echo none || echo contrastive)); evaluate is the test set on $DEVICE. examples/s (steady): between the logged steps past the first 20% (TensorBoard wall times); (loop): the run's own summary (whole loop, validation and checkpoints included); (process): start-up included."
    echo
    include runs rates
    for n in "${NAMES[@]}"; do
        rc=$(cat "$RUNS/$n.rc" 2>/dev/null)
        if [ "$rc" != 0 ]; then
            echo
            echo "$n failed (exit $rc), end of logs/$n.log:"
            echo
            tail_block "$LOGS/$n.log"
        fi
    done
    echo
    echo "### Loader (bench_loader.py ${BL_ARGS[*]}, exit $BL_RC)"
    echo
    include bench-loader
    [ "$BL_RC" = 0 ] || tail_block "$LOGS/bench-loader.log"
} >"$SEC/3-recipes.md"
assemble

# ------------------------------------------------------------------ 4. parity

if [ "$SMOKE" = 1 ]; then
    PA_ARGS=(--steps 3 --batch 16 --preset tiny --allow-cpu-only)
else
    PA_ARGS=(--steps 20 --batch 64 --preset small)
fi
run_step parity 150 "$PY" benchmarks/gpu_parity.py "${PA_ARGS[@]}" --markdown "$OUT/parity.md" --json "$OUT/parity.json"
PA_RC=$LAST_RC
{
    echo "## 4. CPU-vs-CUDA parity (gpu_parity.py ${PA_ARGS[*]}, exit $PA_RC)"
    echo
    include parity
    grep -E "^gpu_parity:" "$LOGS/parity.log" | tail -1
    [ "$PA_RC" = 0 ] || tail_block "$LOGS/parity.log"
} >"$SEC/4-parity.md"

# the synthetic shards and the checkpoints are rebuilt by every run: not worth bringing back
rm -rf "$DATA"
find "$RUNS" \( -name model.safetensors -o -name state.pt \) -delete 2>/dev/null
assemble
echo "gpu_check: done in $(($(date +%s) - T_START)) s: $OUT/gpu_check.md" >&2
