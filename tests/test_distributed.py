"""torchrun with two CPU processes (gloo): every trainer runs, rank 0 alone writes, resume is exact."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import torch.nn.functional as F

from sr_lib import distributed
from sr_lib.checkpoint import load_checkpoint
from sr_lib.cli import main
from sr_lib.config import get_config
from sr_lib.data import training_stream
from sr_lib.imaging import degrade
from sr_lib.methods import TEMPERATURES
from sr_lib.methods import build
from sr_lib.train import MEMORY_FORMAT, TrainSettings, learning_rate, stream_seed


BROKEN = Path(__file__).with_name("broken_train.py")


def launch(arguments: list[str], processes: int = 2, broken: str | None = None) -> subprocess.CompletedProcess:
    """torchrun of `python -m sr_lib --threads 1 ARGUMENTS`, or of broken_train.py (`broken`: its mode)."""
    program = [str(BROKEN), broken] if broken else ["-m", "sr_lib"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               *program, "--threads", "1", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


pytestmark = pytest.mark.torchrun  # runs after the parallel part of the suite, alone (.ci/run)

def torchrun(*args: str, processes: int = 2, broken: str | None = None) -> subprocess.CompletedProcess:
    """`train ... --config tiny` under torchrun."""
    return launch(["train", "--config", "tiny", *args], processes, broken)


def failure(run: subprocess.CompletedProcess) -> str:
    """What a failed run said: the lines naming an error (a rank's fatal error comes before a long list
    of loaded modules that would push it out of the tail), then the tail."""
    named = [line for line in run.stderr.splitlines()
             if any(k in line for k in ("Fatal", "Error", "error:", "what()", "terminate"))]
    return "\n".join(named[:20]) + "\n...\n" + run.stderr[-1500:]


def _weights(path):
    return load_checkpoint(path, None)["model"]


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    runs = {"sr": torchrun("sr", "--steps", "4", "--out", str(folder / "full"))}
    runs["srgan"] = torchrun("srgan", "--steps", "2", "--out", str(folder / "full"))
    runs["flow"] = torchrun("flow", "--steps", "2", "--out", str(folder / "full"))
    runs["half"] = torchrun("sr", "--steps", "4", "--save-every", "2", "--out", str(folder / "resumed"),
                            broken="stop")
    runs["half_step"] = load_checkpoint(folder / "resumed" / "sr.pt", "sr")["step"]
    runs["resume"] = torchrun("sr", "--steps", "4", "--resume", "--out", str(folder / "resumed"))
    return folder, runs


def test_every_trainer_runs_on_two_processes_and_rank_0_alone_writes(two_process_runs):
    folder, runs = two_process_runs
    for name in ("sr", "srgan", "flow"):
        run = runs[name]
        assert run.returncode == 0, failure(run)
        assert run.stdout.count("wrote ") == 1, run.stdout  # one line, from rank 0
        payload = load_checkpoint(folder / "full" / f"{name}.pt", name)
        assert payload["world_size"] == 2 and len(payload["rank_states"]) == 2
        # each rank's data state is the step (its batches are a function of seed, rank and step); their
        # noise generators differ
        assert all(int(state["data"][0]) == payload["step"] for state in payload["rank_states"])
        assert not torch.equal(payload["rank_states"][0]["rng"], payload["rank_states"][1]["rng"])
        assert len(payload["history"]) == payload["step"] and all(map(torch.isfinite, map(torch.tensor, [
            h[k] for h in payload["history"] for k in h])))
    assert sorted(p.name for p in (folder / "full").iterdir() if p.suffix == ".pt") == ["flow.pt", "sr.pt", "srgan.pt"]


def _one_process_sr(steps: int, shards: int, monkeypatch) -> dict:
    """The tiny SR generator trained in this one process on the crops each of the two ranks drew (their
    streams rebuilt from the same seeds), the two shares stacked into one global batch. shards=2 runs the
    generator on each rank's share separately and averages the two losses, which is what
    DistributedDataParallel computes (BatchNorm normalises each share by its own statistics); shards=1
    runs the global batch at once."""
    cfg, settings = get_config("tiny"), TrainSettings("sr", get_config("tiny"), "unused", steps)
    streams = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        streams.append(training_stream("bundled", cfg.crop, cfg.batch // 2, stream_seed(settings.seed), rank=rank))
    torch.manual_seed(settings.seed)
    gen = build("generator", cfg).to(memory_format=MEMORY_FORMAT).train()
    opt = torch.optim.Adam(gen.parameters(), lr=settings.hyper.learning_rate)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(settings.hyper.learning_rate, step, steps)
        hr, lr = (torch.cat(parts) for parts in zip(*(next(s) for s in streams)))
        loss = sum(F.l1_loss(gen(l), h) for h, l in zip(hr.chunk(shards), lr.chunk(shards))) / shards
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), settings.hyper.clip)
        opt.step()
    return dict(gen.named_parameters())


def test_two_processes_train_as_one_process_on_the_same_global_batch(two_process_runs, monkeypatch):
    """Gradients averaged over ranks are the global batch's gradient, except for BatchNorm: each rank
    normalises its share by that share's statistics. With per-share statistics in one process the weights
    agree to float rounding (measured: 1.2e-6 of what 4 steps moved them); with the global batch's
    statistics they differ by 30% of it (BatchNorm over 2 crops vs. 4), and only by that (BatchNorm's running averages, buffers, are not compared: DDP keeps
    rank 0's)."""
    folder, runs = two_process_runs
    assert runs["sr"].returncode == 0, failure(runs["sr"])
    ddp = _weights(folder / "full" / "sr.pt")
    torch.manual_seed(0)
    start = dict(build("generator", get_config("tiny")).named_parameters())

    def relative_difference(weights):
        moved = torch.cat([(ddp[k] - start[k]).flatten() for k in weights]).norm()
        return (torch.cat([(ddp[k] - w.detach()).flatten() for k, w in weights.items()]).norm() / moved).item()
    per_share, global_batch = _one_process_sr(4, 2, monkeypatch), _one_process_sr(4, 1, monkeypatch)
    assert relative_difference(per_share) < 1e-4
    assert 100 * relative_difference(per_share) < relative_difference(global_batch) < 1


def test_resume_with_the_same_world_size_continues_exactly(two_process_runs):
    folder, runs = two_process_runs
    assert runs["half_step"] == 2 and load_checkpoint(folder / "resumed" / "sr.pt", "sr")["step"] == 4
    assert runs["half"].returncode == 0 and runs["resume"].returncode == 0, failure(runs["resume"])
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


def test_a_failing_rank_ends_the_run_at_once_with_its_error_named(tmp_path):
    """Rank 1 raises in its third update; rank 0 waits for it in a collective. torchrun stops the run in
    seconds (not after distributed.TIMEOUT), rank 1's error is the first line to read and the root cause
    of torchrun's summary, and the checkpoint of step 2 stays as written."""
    start = time.monotonic()
    run = torchrun("sr", "--steps", "6", "--save-every", "2", "--out", str(tmp_path), broken="fail")
    assert run.returncode != 0 and time.monotonic() - start < 120
    assert "error: rank 1 of 2 failed (RuntimeError: simulated failure of rank 1); torchrun stops" in run.stderr
    root_cause = run.stderr[run.stderr.index("Root Cause"):]
    assert "rank      : 1" in root_cause and "simulated failure of rank 1" in root_cause
    assert load_checkpoint(tmp_path / "sr.pt", "sr")["step"] == 2


@pytest.fixture(scope="module")
def three_faces(tmp_path_factory):
    """Three 64 px crops of the held-out portraits as PNG files: two ranks get uneven shares (2 + 1)."""
    from PIL import Image

    from sr_lib.data import bundled_heldout
    folder = tmp_path_factory.mktemp("three_faces")
    faces = list(bundled_heldout().values())
    for i in range(3):
        crop = faces[i % 2][:, 40 * i:40 * i + 64, 60:124]
        Image.fromarray((crop.permute(1, 2, 0) * 255).round().byte().numpy()).save(folder / f"{i}.png")
    return folder


@pytest.mark.slow
def test_evaluation_on_two_processes_gives_the_one_process_table(tiny_checkpoints, three_faces, capsys):
    """Each rank evaluates every second image; the shares are put together in image order, so every number
    but the timing is the one process's, bit for bit (the per-image means are sums in image order, so
    another order would show in the last digits)."""
    arguments = ["evaluate", "--checkpoints", str(tiny_checkpoints), "--data", str(three_faces), "--json"]
    run = launch(arguments)
    assert run.returncode == 0, failure(run)
    two = json.loads(run.stdout)
    assert main(["--threads", "1", *arguments]) == 0
    one = json.loads(capsys.readouterr().out)
    assert (one["processes"], two["processes"]) == (1, 2) and one["images"] == two["images"]
    untimed = [[{k: v for k, v in row.items() if k != "seconds_per_megapixel"} for row in result["rows"]]
               for result in (one, two)]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 3 + len(TEMPERATURES)
    assert all(row["image_count"] == 3 for row in two["rows"])


def test_rank_shares_are_merged_in_image_order(monkeypatch):
    """Tally.merged on two ranks' shares (images 0, 2, 4 and 1, 3) gives the images, rows and descriptors
    in image order: what one process tallies."""
    from sr_lib.evaluate import Tally
    images = [torch.rand(1, 1, 3, 32, 32) for _ in range(5)]
    shares = [Tally(16, None), Tally(16, None)]
    for index, image in enumerate(images):
        shares[index % 2].add(index, image, image[0], degrade(image[0]))
    monkeypatch.setattr(distributed, "gather", lambda obj: shares)
    whole = shares[0].merged()
    assert whole.images == [0, 1, 2, 3, 4]
    one = Tally(16, None)
    for index, image in enumerate(images):
        one.add(index, image, image[0], degrade(image[0]))
    assert whole.rows == one.rows
    assert all(torch.equal(a, b) for x, y in zip(whole.descriptors, one.descriptors) for a, b in zip(x, y))


def test_a_batch_that_does_not_split_and_sync_bn_on_cpu_are_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="the batch of 4 does not split over 3 processes"):
        TrainSettings("sr", get_config("tiny"), tmp_path, 2)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main(["train", "sr", "--config", "tiny", "--steps", "1", "--out", str(tmp_path), "--sync-bn"]) == 2
    assert "--sync-bn needs GPUs" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as file:
        return [int(p) for p in file.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split(") ")[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_end_when_the_torchrun_agent_is_killed(tmp_path):
    """SIGKILL gives torchrun's agent no chance to stop its workers: they notice their parent's death
    themselves (distributed.end_with_parent) and end, rather than train on as orphans."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "sr_lib",
               "--threads", "1", "train", "sr", "--config", "tiny", "--steps", "100000", "--save-every", "50",
               "--out", str(tmp_path)]
    agent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers = []
    try:
        for _ in range(600):  # until rank 0 holds the checkpoint's lock: both workers are training
            if (tmp_path / ".sr.pt.lock").exists():
                break
            time.sleep(0.1)
        workers = _children(agent.pid)
        assert len(workers) == 2
        agent.kill()
        agent.wait()
        deadline = time.monotonic() + 30
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, workers))
    finally:  # whatever happened, nothing of the run outlives the test
        for pid in [agent.pid, *workers]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
