#!/usr/bin/env bash
# The exact commands that produced the shipped cpu checkpoints (2-core CPU, one thread each, SRGAN and
# the flow side by side; times in README). SRGAN and the flow both start from sr.pt: train sr first.
# Since they were trained, training runs in channels_last order (other convolution kernels) and the
# adversarial step scores real and generated crops in one discriminator call (for DistributedDataParallel):
# these commands now reproduce the recipe, not the same bits.
set -euo pipefail
out="$(dirname "$0")"
python -m sr_lib train sr --config cpu --data bundled --steps 6000 --out "$out" --overwrite
python -m sr_lib train flow --config cpu --data bundled --steps 6000 --out "$out" --overwrite
python -m sr_lib train srgan --config cpu --data bundled --steps 3000 --out "$out" --overwrite
