"""The GPU training script as a CPU dry run (its own module, so that pytest-xdist can run it beside the
rest of test_project)."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_training_script_runs_end_to_end_on_cpu(tmp_path):
    """scripts/train_paper_gpu.sh as a CPU dry run (CONFIG=tiny DEVICE=cpu, 1 s per model, quick bench): torchrun
    training of all three, slim checkpoints, evaluation, benchmark and the throughput summary."""
    env = {**os.environ, "CONFIG": "tiny", "DEVICE": "cpu", "OMP_NUM_THREADS": "1", "BENCH_ARGS": "--min-run-time 0.05"}
    out = tmp_path / "out"
    run = subprocess.run(["bash", str(ROOT / "scripts" / "train_paper_gpu.sh"), str(out), "1"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert {"sr.pt", "flow.pt", "srgan.pt", "evaluate.json", "bench.json", "throughput.txt", "log.txt"} <= {
        p.name for p in out.iterdir()}
    log = (out / "log.txt").read_text()
    assert "torchrun --standalone --nproc_per_node 1 -m sr_lib train sr --config tiny" in log and "--bf16" not in log
    rates = re.findall(r"^  (sr|flow|srgan) +([0-9.]+) images/s", (out / "throughput.txt").read_text(), re.M)
    assert [m for m, _ in rates] == ["sr", "flow", "srgan"] and all(float(r) > 0 for _, r in rates)
    assert "flow / SRGAN throughput:" in (out / "throughput.txt").read_text()
    assert len(json.loads((out / "evaluate.json").read_text())["rows"]) > 3
