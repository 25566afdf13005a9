#!/usr/bin/env bash
# The GPU path in one run on a machine with a CUDA GPU (never run yet: each step has a time
# limit, 23 minutes in all at worst; most should take a fraction of theirs):
#   1. the gpu-marked tests (device, AMP, --deterministic, GPU names on rows, 0.25-GPU packing)
#   2. the demo space as a smoke search with fractional GPUs (4 trials per GPU)
#   3. the training benchmark on the GPU (gcsearch bench train: harness vs bare loop)
#   4. the blocks' forward+backward time on the GPU (gcsearch flops --latency where the CLI
#      has it, else a direct CUDA-event timing of the presets at 32x256x14x14)
#   5. seed fusion (gcsearch bench fuse: k = 3 and 8 seeds separately vs as one fused network;
#      HFTA, MLSys 2021, reports up to 15x for small models on one GPU), the same smoke search
#      with each candidate's 3 seeds fused per 0.25-GPU slot, and the training step eager vs
#      torch.compile with CUDA graphs (reduce-overhead)
# and a short table at the end, with trials (seed runs) per second per GPU packed and fused.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]
# PYTHON picks the interpreter (default: .venv/bin/python, else python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${1:-runs/gpu-check}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p "$OUT"
rm -rf "$OUT/search" "$OUT/search-fused"
declare -a ROWS=()

step() {  # step NAME TIMEOUT_S CMD...: run, log to $OUT/NAME.log, remember status and time
  local name=$1 limit=$2; shift 2
  local start=$SECONDS rc
  echo "== $name: $*"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  tail -n 15 "$OUT/$name.log"
  ROWS+=("$name|$([ $rc -eq 0 ] && echo ok || echo "FAILED (rc $rc)")|$((SECONDS - start))")
  return 0
}

"$PY" - <<'PY' | tee "$OUT/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda,
      "gpus", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
if not torch.cuda.is_available():
    raise SystemExit("no CUDA device: nothing to check")
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

step gpu-tests 240 "$PY" -m pytest -q -m gpu -p no:cacheprovider \
  tests/search/test_gpu.py tests/search/test_gpu_packing.py tests/tasks/test_held_gpu.py
step search-0.25gpu 240 "$PY" -m gcsearch search --space spaces/quick.toml --smoke \
  --gpus-per-trial 0.25 --cpus-per-trial 1 --parallel 4 --run-dir "$OUT/search"
step search-fused 240 "$PY" -m gcsearch search --space spaces/quick.toml --smoke \
  --gpus-per-trial 0.25 --cpus-per-trial 1 --parallel 4 --fuse-seeds on \
  --run-dir "$OUT/search-fused"
step bench-train 150 "$PY" -m gcsearch bench train --device cuda --repeats 2
step bench-fuse-k3 120 "$PY" -m gcsearch bench fuse --device cuda --k 3 --repeats 2 \
  --epochs 1 --out "$OUT/bench-fuse-k3.json"
step bench-fuse-k8 150 "$PY" -m gcsearch bench fuse --device cuda --k 8 --repeats 2 \
  --epochs 1 --out "$OUT/bench-fuse-k8.json"
step train-compile 240 "$PY" - <<'PY'
from gcsearch.tasks import DEFAULT_TASK, get_task
from gcsearch.tasks.train import train
task = get_task(DEFAULT_TASK)
budget = task.budget.replace(epochs=2)
for mode in ("off", "reduce-overhead", "off", "reduce-overhead"):
    r = train("gc", task, budget, 0, "cuda", compile=mode, validate_at=())
    print(f"compile {mode:16s} {r.images_per_s:9.0f} img/s (training steps, both epochs "
          f"incl. the compile)  top1 {r.top1:.2f}  {r.status}")
PY
if "$PY" -m gcsearch flops --help 2>/dev/null | grep -q -- "--latency"; then
  step bench-blocks 120 "$PY" -m gcsearch flops --backbone resnet50 --latency \
    --device cuda --batch 32
else
  step bench-blocks 120 "$PY" - <<'PY'
import statistics, torch
from gcsearch.blocks import build_block
x = torch.randn(32, 256, 14, 14, device="cuda", requires_grad=True)
print("block      fwd+bwd ms (median of 20, 32x256x14x14, bf16 autocast)")
for name in ("gc", "se", "snl", "nl-embedded", "cbam"):
    m = build_block(name, 256).cuda()
    times = []
    for i in range(25):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = m(x)
        y.float().sum().backward()
        b.record(); torch.cuda.synchronize()
        if i >= 5:
            times.append(a.elapsed_time(b))
    print(f"{name:10s} {statistics.median(times):8.3f}")
PY
fi

# what the search rows say about devices and packing
"$PY" - "$OUT/search" <<'PY' | tee "$OUT/search-summary.txt"
import sys, collections
try:
    import optuna
    from gcsearch.search.record import TrialRecord
    study = optuna.load_study(study_name="quick", storage=f"sqlite:///{sys.argv[1]}/study.db")
except Exception as exc:
    raise SystemExit(f"search summary: no study ({type(exc).__name__})")
envs = [r["env"] for t in study.trials for r in TrialRecord.read(t).results]
print(f"search rows: {len(envs)} seed runs; devices "
      f"{dict(collections.Counter(e.get('device') for e in envs))}; GPUs "
      f"{dict(collections.Counter(e.get('gpu') for e in envs))}; ray GPU ids "
      f"{sorted({g for e in envs for g in e.get('ray_gpus') or []})}; AMP "
      f"{dict(collections.Counter(e.get('amp') for e in envs))}")
PY

# trials (seed runs) per second per GPU, packed (one seed per 0.25-GPU slot) and fused (a
# candidate's 3 seeds as one network per slot): seed runs / the search loop's wall time / GPUs
"$PY" - "$OUT/search" "$OUT/search-fused" <<'PY' | tee "$OUT/trials-per-gpu.txt"
import json, sys
from pathlib import Path
for run in map(Path, sys.argv[1:]):
    try:
        rec = json.loads((run / "run.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"{run.name}: no run.json ({type(exc).__name__})"); continue
    s = rec["space"]["search"]
    gpus = s["parallel"] * s["gpus_per_trial"] or float("nan")  # nan: a CPU run
    seeds = rec["epochs_trained"] / max(1, rec["budget"]["epochs"])  # full-run equivalents
    loop = rec.get("loop_s") or rec["elapsed_s"]
    print(f"{run.name:14s} fuse_seeds {rec.get('fuse_seeds', {}).get('fused')!s:5s} "
          f"{seeds / loop / gpus:7.3f} trials/s per GPU ({seeds:.0f} seed runs of "
          f"{rec['budget']['epochs']} epochs in {loop:.0f} s on {gpus:g} GPU)")
PY

echo
printf '%-16s %-14s %8s\n' step status seconds
for row in "${ROWS[@]}"; do
  IFS='|' read -r name status secs <<<"$row"
  printf '%-16s %-14s %8s\n' "$name" "$status" "$secs"
done
grep -h -E "median|ratio|img/s" "$OUT/bench-train.log" | tail -n 3
grep -h -E "^(gc|se|snl|nl-embedded|cbam) " "$OUT/bench-blocks.log" | head -n 5
grep -h "fused / separate" "$OUT"/bench-fuse-k*.log
grep -h "^compile" "$OUT/train-compile.log"
cat "$OUT/trials-per-gpu.txt"
