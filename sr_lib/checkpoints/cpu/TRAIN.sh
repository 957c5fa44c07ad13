#!/usr/bin/env bash
# The exact commands that produced the shipped cpu checkpoints (2-core CPU: SR with two threads, then the
# flow and SRGAN side by side with one thread each; times in README). SRGAN and the flow both start from
# sr.pt: train sr first. ablations/srgan_no_grid_term.pt, which notebook 03 shows beside SRGAN, is the same
# SRGAN recipe with the LR-grid term turned off (--grid-weight 0), saved slim (generator weights only).
set -euo pipefail
out="$(dirname "$0")"
python -m sr_lib train sr --config cpu --data bundled --steps 6000 --out "$out" --overwrite
python -m sr_lib --threads 1 train flow --config cpu --data bundled --steps 6000 --out "$out" --overwrite
python -m sr_lib --threads 1 train srgan --config cpu --data bundled --steps 3000 --out "$out" --overwrite
ablation="$(mktemp -d)"
cp "$out/sr.pt" "$ablation/"
python -m sr_lib --threads 1 train srgan --config cpu --data bundled --steps 3000 --out "$ablation" --grid-weight 0
mkdir -p "$out/ablations"
python -c "import sys; from sr_lib.checkpoint import slim_checkpoint; slim_checkpoint(*sys.argv[1:], 'srgan')" \
  "$ablation/srgan.pt" "$out/ablations/srgan_no_grid_term.pt"
