#!/usr/bin/env bash
# The GPU checks as one command, for a session lent a GPU through the device tool (15 minutes of device time per
# session; this takes LIMIT, 8 minutes, plus the machine's start). First, here: `bash benchmarks/gpu_prepare.sh`
# (wheels of what the device image lacks, cuEquivariance's kernels, the 3BPA files). Then the device tool's run with
# carry [".whl", ".gpu_data", ".gpu_run"], timeout_s 510 and the command `bash benchmarks/gpu_checks.sh`. What
# comes back in $OUT (at most 8 files, the tool's limit): the environment, the CUDA tests' log, a training step and
# an MD call eager against their CUDA graphs (bench_cuda_graphs.py's JSON), the whole model's speed with the default
# blocks' edge chunks of stop 34 and before, beside MACE's blocks and mace-torch (bench_potential.py's JSON and
# log), and a time-limited piece of a 3BPA run with --cuda_graph that later calls resume (its log, and its run
# folder as a tar; see step 4). SKIP_CHECKS=1 leaves out the tests and those benchmarks (a second call, for a
# longer run); COMPARE=1 adds stop 32's whole-model comparison against mace-torch without and with cuEquivariance
# (JSONs and a log). Draw the bar charts here with report.bar_plot and the learning curve with
# gaunt_tp.training.plots.learning_curve.
# `DEVICE=cpu PYTHON=.venv/bin/python BUDGET=0.5 LIMIT=150` runs the same steps here as a dry run of the script (the
# CUDA tests skip, the step runs padded but eager, the training without --cuda_graph; the Python 3.12 wheels may not
# install here).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_checks}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
DATA=${DATA:-.gpu_data}
mkdir -p "$OUT"
rm -rf /tmp/gpu_bench  # what the benchmarks of this call write (a dry run here may have left older files)
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BUDGET=${BUDGET:-5}
LIMIT=${LIMIT:-480}  # seconds for the whole script; the 3BPA run gets what the steps before it leave of it
COMPARE=${COMPARE:-0}
SKIP_CHECKS=${SKIP_CHECKS:-0}
if [ -d .whl/base ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/base/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site" || exit 1
fi
MACE_PATH=""  # mace-torch and its e3nn 0.4.4 ahead of the image's e3nn, for the speed comparison alone
if [ -d .whl/mace ] && "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site_mace .whl/mace/*.whl; then
    MACE_PATH=/tmp/site_mace:
else
    echo "mace-torch's wheels did not install: GauntMACE alone in the speed comparison"
fi
CUEQ=""  # cuEquivariance (Python packages and the unpacked CUDA kernels) beside mace-torch
if [ -n "$MACE_PATH" ] && [ -f .whl/cueq/ops.tar.xz ] && mkdir -p /tmp/site_cueq \
        && tar -C /tmp/site_cueq -xJf .whl/cueq/ops.tar.xz && "$PYTHON" -m pip install -q --no-index --no-deps \
        --no-compile --no-cache-dir --upgrade --target /tmp/site_cueq .whl/cueq/*.whl; then
    MACE_PATH=$MACE_PATH/tmp/site_cueq:
    CUEQ=--mace_cueq
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$PYTHON" -c "import torch, e3nn; print('torch', torch.__version__, 'e3nn', e3nn.__version__, 'cuda', torch.cuda.is_available())"
} | tee "$OUT/environment.txt"

if [ "$SKIP_CHECKS" != 1 ]; then
# 1. every module on the GPU equals its CPU result in float64, gradients included (~1.5 min)
timeout 150 "$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.log"

# 2. a training step and an MD call, eager against their CUDA graphs (GraphedStep: --cuda_graph; GraphedPotential:
#    the calculator's cuda_graph=True), MACE's blocks and the default ones at max_L 2, float64 and float32 (~1.5 min)
timeout 150 "$PYTHON" benchmarks/bench_cuda_graphs.py --data "$DATA/train_300K.xyz" --device "$DEVICE" \
    --dtype float64 float32 --max_L 2 --budget "$BUDGET" --out "$OUT" --name "cuda_graphs_${DEVICE}" 2>&1 \
    | tee -a "$OUT/environment.txt"
rm -f "$OUT/cuda_graphs_${DEVICE}.png"  # drawn here from the JSON (the tool returns 8 files)
fi

# 3. whole-model speed on the GPU beside mace-torch where it imports, max_L 2, float32: the default Gaunt blocks with
#    the edge chunks GPUs take since stop 34 (one or two per convolution on 999 atoms) and with the fixed 1024-edge
#    chunks before (17 on 999 atoms), and MACE's blocks (~1 min). With COMPARE=1 also stop 32's comparison (max_L 1
#    and 2, three variants); then, apart, mace-torch with cuEquivariance at max_L 1 (with it, max_L 2 did not finish
#    within the H200 call; unlogged). The JSONs come back, the bar charts stay behind (the tool returns 8 files):
#    draw them here with report.bar_plot
bench() {  # bench SECONDS ARGS...: bench_potential.py beside mace-torch, its log (less the warnings) appended
    PYTHONPATH="$MACE_PATH$PYTHONPATH" TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 timeout "$1" "$PYTHON" \
        benchmarks/bench_potential.py --data "$DATA/train_300K.xyz" --device "$DEVICE" --dtype float32 \
        --budget "$BUDGET" --out /tmp/gpu_bench "${@:2}" 2>&1 \
        | grep --line-buffered -v -i "warning\|visitor\|torch.load" | tee -a "$OUT/potential.log"
}
if [ "$SKIP_CHECKS" != 1 ]; then
    bench 100 --max_L 2 --variants gaunt chunk1024 symmetric+cg --name "potential_${DEVICE}_chunks"
fi
if [ "$COMPARE" = 1 ]; then
    bench 150 --max_L 1 2 --variants gaunt symmetric+cg symmetric+cg-paths --name "potential_${DEVICE}_float32"
    [ -n "$CUEQ" ] && bench 120 --max_L 1 $CUEQ --variants gaunt symmetric+cg --name "potential_${DEVICE}_float32_cueq"
fi
cp /tmp/gpu_bench/*.json "$OUT/" 2>/dev/null

# 4. 3BPA as in the CPU table's best row (docs/benchmarks.md: float32, 64 channels, max_L 2, the Gaunt convolution
#    and the symmetric product blocks, lr 0.02, seed 1), each training step replayed from a CUDA graph, towards a
#    longer protocol than a CPU allows (2000 epochs, stage two after 1600), one piece per call: training until a
#    minute before LIMIT (or TRAIN_MINUTES), then the final tables. The run folder comes back as 3bpa_gpu_run.tar;
#    unpacked here into .gpu_run/ (`mkdir -p .gpu_run && tar -C .gpu_run -xf 3bpa_gpu_run.tar`, ignored by git) and
#    carried with the next call (carry [".whl", ".gpu_data", ".gpu_run"]), the run resumes from its last checkpoint
#    (--restart_latest), in this session or a later one. Its metrics.csv compares epoch by epoch with
#    benchmarks/results/3bpa_cpu_lr02_long_metrics.csv. Should the graphed run stop with an error before it logged
#    an epoch, the rest of the time trains without --cuda_graph (the log says which ran)
RUN=/tmp/gpu_checks_runs
NAME=3bpa_gpu
epochs_logged() { [ -f "$RUN/$NAME/metrics.csv" ] && wc -l < "$RUN/$NAME/metrics.csv" || echo 0; }
train_3bpa() {  # train_3bpa EXTRA_FLAGS...: the run, its log's tail in $OUT/train.log
    LEFT=$((LIMIT - SECONDS))
    TRAIN_MINUTES=${TRAIN_MINUTES:-$("$PYTHON" -c "print(round(max(0.5, ($LEFT - 60) / 60), 2))")}
    RESTART=--restart_latest  # from the last checkpoint; without one, a fresh run folder (train refuses a used one)
    [ -n "$(ls "$RUN/$NAME/checkpoints" 2>/dev/null)" ] || { RESTART=""; rm -rf "${RUN:?}/$NAME"; }
    echo "$SECONDS s spent, training for $TRAIN_MINUTES min with flags: $* $RESTART" | tee -a "$OUT/environment.txt"
    timeout $((LEFT > 90 ? LEFT - 5 : 90)) "$PYTHON" -m gaunt_tp.training.cli train --train_file "$DATA/train_300K.xyz" \
        --E0s "$DATA/iso_atoms.xyz" --device "$DEVICE" --default_dtype float32 --num_channels 64 --max_L 2 \
        --correlation 3 --max_ell 3 --r_max 5.0 --product_blocks symmetric --batch_size 5 --lr 0.02 --clip_grad 0 \
        --valid_fraction 0.1 --swa --start_swa 1600 --max_num_epochs 2000 --max_time_minutes "$TRAIN_MINUTES" \
        --seed 1 --name "$NAME" --work_dir "$RUN" $RESTART "$@" 2>&1 | tail -n 40 >> "$OUT/train.log"
}
rm -rf "$RUN" && mkdir -p "$RUN"
[ -d ".gpu_run/$NAME" ] && cp -r ".gpu_run/$NAME" "$RUN/"  # a run carried from an earlier call
: > "$OUT/train.log"
if [ "$DEVICE" = cuda ]; then
    BEFORE=$(epochs_logged)
    train_3bpa --cuda_graph
    [ "$(epochs_logged)" -gt "$BEFORE" ] || { unset TRAIN_MINUTES; train_3bpa; }
else
    train_3bpa
fi
[ -d "$RUN/$NAME" ] && tar -C "$RUN" -cf "$OUT/${NAME}_run.tar" "$NAME"

ls -la "$OUT"
