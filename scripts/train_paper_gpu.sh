#!/usr/bin/env bash
# Paper-size training on GPUs under torchrun: each model gets a fixed time budget, turned into a step
# count by a 20-step probe, so the run fits a short GPU lease. Writes slim (evaluation-only) checkpoints,
# the commands actually run, the evaluation table, the benchmark, and throughput.txt: training images per
# second of each model (the progress bar's rate over its last steps, times the batch) and the flow/SRGAN
# ratio (on GPUs SRGAN runs in bfloat16 and the flow in float32: the ratio includes that difference).
# Usage: bash scripts/train_paper_gpu.sh OUT_DIR [SECONDS_PER_MODEL]   (from the repo root)
# GPUS: processes, one per GPU (default 1). CONFIG and DEVICE override paper / cuda (a CPU dry run:
# CONFIG=tiny DEVICE=cpu). On GPUs SR and SRGAN train in bfloat16 autocast (--bf16); the flow stays in
# float32, since it must invert exactly (README, "Training at paper scale").
# BENCH_ARGS: extra options for the closing `bench` (the CPU dry run passes --min-run-time 0.05).
set -euo pipefail
out=$1; budget=${2:-150}; config=${CONFIG:-paper}; device=${DEVICE:-cuda}; gpus=${GPUS:-1}
work=$(mktemp -d); mkdir -p "$out"; : > "$out/log.txt"
batch=$(python3 -c "from sr_lib.config import get_config; print(get_config('$config').batch)")
train() {  # method steps folder: one training run under torchrun (its command goes to log.txt)
  local command=(torchrun --standalone --nproc_per_node "$gpus" -m sr_lib train "$1" --config "$config"
                 --data bundled --steps "$2" --out "$3" --device "$device")
  if [[ $device == cuda* && $1 != flow ]]; then command+=(--bf16); fi
  echo "${command[*]}" | sed "s|$work|DIR|" >> "$out/log.txt"
  "${command[@]}"
}
seconds_per_step() {  # method -> seconds per step of a 20-step probe (start-up included: conservative)
  local start end
  rm -rf "$work/probe"; mkdir -p "$work/probe"; cp "$work"/sr.pt "$work/probe/" 2>/dev/null || true
  start=$(date +%s.%N)
  train "$1" 20 "$work/probe" >/dev/null 2>&1 || { echo "the $1 probe failed" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print(($end - $start) / 20)"
}
for method in sr flow srgan; do  # SRGAN and the flow start from the SR generator
  per_step=$(seconds_per_step "$method")
  steps=$(python3 -c "print(max(20, int($budget / $per_step) // 10 * 10))")
  train "$method" "$steps" "$work" 2>&1 | tr '\r' '\n' | grep -E 'it/s|s/it' | tail -1 | tee -a "$out/log.txt" \
    | python3 -c "import re, sys; n, unit = re.search(r'([0-9.]+)(it/s|s/it)', sys.stdin.read()).groups()
print('$method', $steps, $batch * (float(n) if unit == 'it/s' else 1 / float(n)))" >> "$work/throughput"
done
python3 - "$work" "$out" "$gpus" <<'PY'
import sys
from pathlib import Path
from sr_lib.checkpoint import slim_checkpoint
work, out, gpus = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
for method in ("sr", "flow", "srgan"):
    print(slim_checkpoint(work / f"{method}.pt", out / f"{method}.pt", method))
rates = {m: (int(s), float(r)) for m, s, r in (line.split() for line in (work / "throughput").read_text().splitlines())}
lines = [f"training images per second on {gpus} process(es):"]
lines += [f"  {m:6} {r:10.1f} images/s ({s} steps)" for m, (s, r) in rates.items()]
lines.append(f"flow / SRGAN throughput: {rates['flow'][1] / rates['srgan'][1]:.2f}")
(out / "throughput.txt").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
python3 -m sr_lib evaluate --checkpoints "$out" --json > "$out/evaluate.json"
python3 -m sr_lib bench --config "$config" --device "$device" ${BENCH_ARGS:-} --json > "$out/bench.json"
