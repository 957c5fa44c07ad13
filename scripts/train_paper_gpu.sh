#!/usr/bin/env bash
# Paper-size training on one GPU: each model gets a fixed time budget, turned into a step count by a
# 20-step probe, so the run fits a short GPU lease. Writes slim (evaluation-only) checkpoints, the
# commands actually run, the GPU benchmark and the evaluation table to OUT_DIR.
# Usage: bash scripts/train_paper_gpu.sh OUT_DIR [SECONDS_PER_MODEL]   (from the repo root)
# CONFIG and DEVICE override paper / cuda (a CPU dry run: CONFIG=tiny DEVICE=cpu).
set -euo pipefail
out=$1; budget=${2:-150}; config=${CONFIG:-paper}; device=${DEVICE:-cuda}
work=$(mktemp -d); mkdir -p "$out"
train() {  # method steps
  echo "python3 -m sr_lib train $1 --config $config --data bundled --steps $2 --out DIR --device $device" | tee -a "$out/log.txt"
  python3 -m sr_lib train "$1" --config "$config" --data bundled --steps "$2" --out "$work" --device "$device" 2>&1 \
    | tr '\r' '\n' | grep -v '^$' | tail -1 >> "$out/log.txt"
}
steps_for() {  # method -> steps that fit the budget, from 20 probe steps (start-up included: conservative)
  local start end
  rm -rf "$work/probe"; mkdir -p "$work/probe"; cp "$work"/sr.pt "$work/probe/" 2>/dev/null || true
  start=$(date +%s.%N)
  python3 -m sr_lib train "$1" --config "$config" --steps 20 --out "$work/probe" --device "$device" >/dev/null 2>&1
  end=$(date +%s.%N)
  python3 -c "print(max(20, int($budget / (($end - $start) / 20)) // 10 * 10))"
}
for method in sr flow srgan; do  # SRGAN and the flow start from the SR generator
  start=$(date +%s)
  train "$method" "$(steps_for "$method")"
  echo "$method: $(( $(date +%s) - start )) s including the probe" | tee -a "$out/log.txt"
done
python3 - "$work" "$out" <<'PY'
import sys
from pathlib import Path
from sr_lib.checkpoint import slim_checkpoint
work, out = map(Path, sys.argv[1:])
for method in ("sr", "flow", "srgan"):
    print(slim_checkpoint(work / f"{method}.pt", out / f"{method}.pt", method))
PY
python3 -m sr_lib evaluate --checkpoints "$out" --json > "$out/evaluate.json"
python3 -m sr_lib bench --config "$config" --device "$device" --batch 16 --json > "$out/bench.json"
