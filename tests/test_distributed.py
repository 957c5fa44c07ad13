"""torchrun with two CPU processes (gloo): every trainer runs, rank 0 alone writes, resume is exact."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sr_lib.checkpoint import load_checkpoint
from sr_lib.cli import main
from sr_lib.config import get_config
from sr_lib.train import TrainSettings


INTERRUPTED = Path(__file__).with_name("interrupted_train.py")


def torchrun(*args: str, processes: int = 2, interrupt: bool = False) -> subprocess.CompletedProcess:
    program = [str(INTERRUPTED)] if interrupt else ["-m", "sr_lib"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               *program, "--threads", "1", "train", "--config", "tiny", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def _weights(path):
    return load_checkpoint(path, None)["model"]


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    runs = {"sr": torchrun("sr", "--steps", "4", "--out", str(folder / "full"))}
    runs["srgan"] = torchrun("srgan", "--steps", "2", "--out", str(folder / "full"))
    runs["flow"] = torchrun("flow", "--steps", "2", "--out", str(folder / "full"))
    runs["half"] = torchrun("sr", "--steps", "4", "--save-every", "2", "--out", str(folder / "resumed"),
                            interrupt=True)
    runs["half_step"] = load_checkpoint(folder / "resumed" / "sr.pt", "sr")["step"]
    runs["resume"] = torchrun("sr", "--steps", "4", "--resume", "--out", str(folder / "resumed"))
    return folder, runs


def test_every_trainer_runs_on_two_processes_and_rank_0_alone_writes(two_process_runs):
    folder, runs = two_process_runs
    for name in ("sr", "srgan", "flow"):
        run = runs[name]
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.count("wrote ") == 1, run.stdout  # one line, from rank 0
        payload = load_checkpoint(folder / "full" / f"{name}.pt", name)
        assert payload["world_size"] == 2 and len(payload["rank_states"]) == 2
        assert not torch.equal(payload["rank_states"][0]["data"], payload["rank_states"][1]["data"])
        assert len(payload["history"]) == payload["step"] and all(map(torch.isfinite, map(torch.tensor, [
            h[k] for h in payload["history"] for k in h])))
    assert sorted(p.name for p in (folder / "full").iterdir() if p.suffix == ".pt") == ["flow.pt", "sr.pt", "srgan.pt"]


def test_resume_with_the_same_world_size_continues_exactly(two_process_runs):
    folder, runs = two_process_runs
    assert runs["half_step"] == 2 and load_checkpoint(folder / "resumed" / "sr.pt", "sr")["step"] == 4
    assert runs["half"].returncode == 0 and runs["resume"].returncode == 0, runs["resume"].stderr[-3000:]
    full, resumed = _weights(folder / "full" / "sr.pt"), _weights(folder / "resumed" / "sr.pt")
    assert all(torch.equal(full[key], resumed[key]) for key in full)


def test_resume_with_another_world_size_says_what_it_does(two_process_runs, tmp_path, capsys):
    folder, _ = two_process_runs
    (tmp_path / "sr.pt").write_bytes((folder / "resumed" / "sr.pt").read_bytes())
    assert main(["--threads", "1", "train", "sr", "--config", "tiny", "--steps", "5", "--resume",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "was written by 2 process(es), this run has 1" in out and "drawn afresh" in out
    assert load_checkpoint(tmp_path / "sr.pt", "sr")["world_size"] == 1


def test_a_batch_that_does_not_split_and_sync_bn_on_cpu_are_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="the batch of 4 does not split over 3 processes"):
        TrainSettings("sr", get_config("tiny"), tmp_path, 2)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main(["train", "sr", "--config", "tiny", "--steps", "1", "--out", str(tmp_path), "--sync-bn"]) == 2
    assert "--sync-bn needs GPUs" in capsys.readouterr().err
