#!/usr/bin/env bash
# The exact commands that produced the shipped cpu checkpoints (2-core CPU; times in README).
# sr was run as 2500 steps, then --resume to 5000: the learning-rate schedule depends on the
# step alone and resuming is exact (tests/test_train.py), so this is the same as one 5000-step run.
set -euo pipefail
out="$(dirname "$0")"
python -m sr_lib train flow --config cpu --data bundled --steps 5000 --out "$out"
python -m sr_lib train sr --config cpu --data bundled --steps 5000 --out "$out"
python -m sr_lib train srgan --config cpu --data bundled --steps 1000 --out "$out"
