import json
import math

import pytest
import torch

import sr_lib.train as train_module
from sr_lib import optim
from sr_lib.methods import sr, srgan
from sr_lib.errors import Interrupted
from sr_lib.checkpoint import load_checkpoint, load_model, save_checkpoint
from sr_lib.cli import main
from sr_lib.config import get_config
from sr_lib.imaging import degrade
from sr_lib.methods.flow import ConditionalFlow
from sr_lib.models import Generator
from sr_lib.train import TrainSettings, train


def settings(tmp_path, method, steps, **kw):
    return TrainSettings(method, get_config("tiny"), tmp_path, steps, show_progress=False, save_every=2, **kw)


def with_sr(folder):
    """A folder holding a 1-step SR checkpoint, which SRGAN and the flow start from."""
    train(settings(folder, "sr", 1))
    return folder


def test_sr_training_writes_checkpoint_and_history(tmp_path):
    path = train(settings(tmp_path, "sr", 3))
    payload = load_checkpoint(path, "sr", get_config("tiny"))
    assert payload["step"] == 3 and payload["version"]
    history = json.loads((tmp_path / "sr.history.json").read_text())
    assert [h["step"] for h in history] == [1, 2, 3] and all(h["l1"] > 0 for h in history)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.history.json", "sr.pt"]  # no temporary left


@pytest.mark.parametrize("method", ["flow", "srgan"])
def test_resume_after_an_interruption_continues_exactly(tmp_path, monkeypatch, method):
    straight = load_checkpoint(train(settings(with_sr(tmp_path / "a"), method, 4)), method)
    with_sr(tmp_path / "b")
    calls = {"n": 0}
    real_step = optim.guarded_step

    def interrupted_on_third_update(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == (3 if method == "flow" else 5):  # SRGAN: two updates per step
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(optim, "guarded_step", interrupted_on_third_update)
    with pytest.raises(Interrupted, match="interrupted at step 2; .* holds step 2"):
        train(settings(tmp_path / "b", method, 4))
    assert load_checkpoint(tmp_path / "b" / f"{method}.pt", method)["step"] == 2  # the last periodic save
    monkeypatch.setattr(optim, "guarded_step", real_step)
    resumed = load_checkpoint(train(settings(tmp_path / "b", method, 4, resume=True)), method)
    assert resumed["step"] == 4 and resumed["history"] == straight["history"]
    for part in ("model", "generator", "discriminator") if method == "srgan" else ("model",):
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), (part, key)


def test_learning_rate_halves_at_half_and_three_quarters():
    assert [train_module.learning_rate(1.0, i, 8) for i in range(8)] == [1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25]


@pytest.mark.parametrize("method", ["srgan", "flow"])
def test_srgan_and_flow_need_the_sr_checkpoint_then_train(tmp_path, method):
    with pytest.raises(FileNotFoundError, match="train it first"):
        train(settings(tmp_path, method, 1))
    train(settings(tmp_path, "sr", 1))
    payload = load_checkpoint(train(settings(tmp_path, method, 2)), method)
    assert [h["step"] for h in payload["history"]] == [1, 2]
    if method == "srgan":
        assert {"content", "adversarial", "d_real", "d_fake"} <= set(payload["history"][-1])
        assert {"discriminator", "generator"} <= set(payload)
    else:  # the flow's base is the SR generator, unchanged by training
        sr_model = load_checkpoint(tmp_path / "sr.pt", "sr")["model"]
        assert all(torch.equal(payload["model"][f"base.{key}"], value) for key, value in sr_model.items())


def test_srgan_evaluates_with_a_moving_average_of_its_generator(tmp_path):
    payload = load_checkpoint(train(settings(with_sr(tmp_path), "srgan", 3, hyper={"ema_decay": 0.5})), "srgan")
    start = load_checkpoint(tmp_path / "sr.pt", "sr")["model"]
    key = "tail.weight"
    ema, trained = payload["model"][key], payload["generator"][key]
    assert not torch.equal(ema, trained) and not torch.equal(ema, start[key])
    # 3 updates with decay 0.5: ema lies strictly between the start and the trained weights (per element)
    moved = (trained - start[key]).abs().sum()
    assert 0 < (ema - start[key]).abs().sum() < moved


def test_vgg_content_falls_back_to_l1_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    loss, used = srgan.content_loss("vgg")
    assert used == "l1" and "vgg19-dcbb9e9d.pth" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["sr", "srgan", "flow"])
def test_non_finite_losses_skip_updates_then_stop_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch, capsys,
                                                                                     method):
    train(settings(with_sr(tmp_path), method, 2, overwrite=True))
    good = load_checkpoint(tmp_path / f"{method}.pt", method)
    if method == "flow":
        monkeypatch.setattr(ConditionalFlow, "bits_per_dim", lambda *a, **k: torch.full((2,), math.nan, requires_grad=True))
    else:  # the pixel loss and SRGAN's content loss
        monkeypatch.setattr(sr.F, "l1_loss", lambda *a, **k: torch.tensor(math.nan, requires_grad=True))
    with pytest.raises(RuntimeError, match="10 non-finite losses in a row"):
        train(settings(tmp_path, method, 40, resume=True))
    assert "step 3: non-finite loss or gradient, update skipped (1 in a row)" in capsys.readouterr().out
    kept = load_checkpoint(tmp_path / f"{method}.pt", method)
    assert kept["step"] == 2 and all(torch.equal(v, kept["model"][k]) for k, v in good["model"].items())


def test_non_finite_weights_are_never_saved(tmp_path):
    gen = Generator(get_config("tiny"))
    with torch.no_grad():
        gen.tail.weight[0, 0, 0, 0] = math.inf
    with pytest.raises(RuntimeError, match="non-finite values in \\['model.tail.weight'\\]"):
        save_checkpoint(tmp_path / "sr.pt", "sr", "generator", get_config("tiny"), 1, gen)
    assert list(tmp_path.iterdir()) == []


def test_existing_checkpoints_are_not_overwritten_silently(tmp_path, capsys):
    train(settings(tmp_path, "sr", 4))
    with pytest.raises(FileExistsError, match="pass --resume to continue it or --overwrite"):
        train(settings(tmp_path, "sr", 2))
    with pytest.raises(ValueError, match="is at step 4, not before --steps 3: nothing to train"):
        train(settings(tmp_path, "sr", 3, resume=True))
    assert load_checkpoint(tmp_path / "sr.pt", "sr")["step"] == 4
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        train(settings(tmp_path / "empty", "sr", 2, resume=True))
    train(settings(tmp_path, "sr", 6, resume=True, hyper={"learning_rate": 1e-3}))
    assert "note: resuming with learning_rate 0.001; the checkpoint's first 4 steps used 0.0002" in capsys.readouterr().out
    assert load_checkpoint(train(settings(tmp_path, "sr", 2, overwrite=True)), "sr")["step"] == 2


def test_checkpoints_get_the_users_file_mode(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        path = train(settings(tmp_path, "sr", 1))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.with_suffix(".history.json").stat().st_mode & 0o777 == 0o644


def test_bits_per_dim_is_the_gaussian_code_length_of_an_untrained_flow():
    # untrained: couplings and injectors are the identity and the 1x1 mixers orthogonal (log-det 0), so
    # z is the residual over the base generator, rotated, and -log2 p is its N(0, I) code length
    flow = ConditionalFlow(get_config("tiny")).double().eval()
    hr = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.float64) / 255
    lr = degrade(hr)
    residual = hr - flow.base(lr)
    expected = 8 + (0.5 * residual.square().flatten(1).mean(1) + 0.5 * math.log(2 * math.pi)) / math.log(2)
    with torch.no_grad():
        assert torch.allclose(flow.bits_per_dim(hr, lr, dequantize=False), expected, atol=1e-5)
        dequantized = flow.bits_per_dim(hr, lr)
    assert dequantized.shape == (2,) and torch.allclose(dequantized, expected, atol=0.01)  # noise < 1/256


def test_refuses_foreign_corrupt_and_mismatched_checkpoints(tmp_path):
    good = save_checkpoint(tmp_path / "sr.pt", "sr", "generator", get_config("tiny"), 1, Generator(get_config("tiny")))
    with pytest.raises(ValueError, match="holds a 'sr' model, not a 'flow'"):
        load_checkpoint(good, "flow")
    with pytest.raises(ValueError, match=r"differs from 'cpu' in \["):
        load_checkpoint(good, "sr", get_config("cpu"))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt or not a PyTorch checkpoint"):
        load_checkpoint(truncated, "sr")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not an sr_lib checkpoint"):
        load_checkpoint(foreign, "sr")
    pickled = tmp_path / "pickled.pt"
    torch.save({"method": "sr", "payload": object()}, pickled)
    with pytest.raises(ValueError, match="corrupt or not a PyTorch checkpoint"):  # weights_only refuses objects
        load_checkpoint(pickled, "sr")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", "sr")


def test_weights_that_do_not_fit_are_named(tmp_path):
    path = save_checkpoint(tmp_path / "sr.pt", "sr", "generator", get_config("tiny"), 1, Generator(get_config("cpu")))
    with pytest.raises(ValueError, match="weights do not fit"):
        load_model(path, "sr")


def test_cli_train_reports_errors(tmp_path, capsys):
    assert main(["train", "srgan", "--config", "tiny", "--steps", "1", "--out", str(tmp_path)]) == 2
    assert "train it first" in capsys.readouterr().err
    assert main(["train", "sr", "--config", "tiny", "--steps", "1", "--out", str(tmp_path),
                 "--data", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err



def test_slim_checkpoint_loads_for_evaluation_but_refuses_to_resume(tmp_path):
    from sr_lib.checkpoint import slim_checkpoint
    full = train(settings(with_sr(tmp_path / "full"), "flow", 2))
    slim = slim_checkpoint(full, tmp_path / "slim" / "flow.pt", "flow")
    payload = load_checkpoint(slim, "flow", get_config("tiny"))
    assert payload["slim"] and "model_optimizer" not in payload and len(payload["history"]) == 2
    load_model(slim, "flow")
    assert slim.stat().st_size < full.stat().st_size
    with_sr(tmp_path / "slim")
    with pytest.raises(ValueError, match="cannot resume"):
        train(settings(tmp_path / "slim", "flow", 4, resume=True))


def test_a_folder_decoded_by_worker_processes_trains_and_resumes_exactly(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    straight = load_checkpoint(train(settings(tmp_path / "a", "sr", 4, data=str(folder), workers=2)), "sr")
    # held in memory (--workers 0), the folder gives the same batches
    assert load_checkpoint(train(settings(tmp_path / "d", "sr", 4, data=str(folder))), "sr")["history"] == straight["history"]
    real_step = optim.guarded_step
    for first, then in ((2, 1), (0, 2), (2, 0)):  # interrupted with one worker count, resumed with another
        calls = {"n": 0}

        def interrupted_on_third_update(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return real_step(*args, **kwargs)
        monkeypatch.setattr(optim, "guarded_step", interrupted_on_third_update)
        folder_out = tmp_path / f"from{first}to{then}"
        with pytest.raises(Interrupted, match="interrupted at step 2; .* holds step 2"):
            train(settings(folder_out, "sr", 4, data=str(folder), workers=first))
        monkeypatch.setattr(optim, "guarded_step", real_step)
        resumed = load_checkpoint(train(settings(folder_out, "sr", 4, data=str(folder), workers=then, resume=True)), "sr")
        assert resumed["history"] == straight["history"], (first, then)  # the same batches, continued
        assert all(torch.equal(value, resumed["model"][key]) for key, value in straight["model"].items())
    with pytest.raises(ValueError, match="--workers reads an image folder"):
        train(settings(tmp_path / "c", "sr", 1, workers=2))


def test_bf16_trains_the_generators_and_is_refused_for_the_flow(tmp_path):
    for method in ("sr", "srgan"):
        payload = load_checkpoint(train(settings(tmp_path, method, 2, bf16=True)), method)
        assert payload["step"] == 2 and all(torch.isfinite(v).all() for v in payload["model"].values()
                                            if v.is_floating_point())
        assert all(v.dtype != torch.bfloat16 for v in payload["model"].values())  # weights stay float32
    with pytest.raises(ValueError, match="--bf16 is not for flow: a flow must invert exactly"):
        settings(tmp_path, "flow", 2, bf16=True)


@pytest.mark.slow
def test_a_compiled_flow_trains_as_the_eager_one_and_saves_plain_weights(tmp_path, monkeypatch):
    """--compile runs the flow's loss through torch.compile: the same losses up to the fused kernels'
    rounding, and a checkpoint whose weight names are the eager model's (it loads anywhere)."""
    compiled_modules, compile = [], torch.compile
    monkeypatch.setattr(torch, "compile", lambda module: compiled_modules.append(module) or compile(module))
    eager, compiled = with_sr(tmp_path / "eager"), tmp_path / "compiled"
    compiled.mkdir()
    (compiled / "sr.pt").write_bytes((eager / "sr.pt").read_bytes())
    payloads = [load_checkpoint(train(settings(folder, "flow", 2, compile=flag)), "flow")
                for folder, flag in ((eager, False), (compiled, True))]
    assert [type(m).__name__ for m in compiled_modules] == ["Likelihood"]
    assert payloads[0]["model"].keys() == payloads[1]["model"].keys()
    bpd = [[h["bpd"] for h in p["history"]] for p in payloads]
    assert bpd[0] == pytest.approx(bpd[1], rel=1e-4)
