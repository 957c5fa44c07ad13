import json
import math

import pytest
import torch

import sr_lib.train as train_module
from sr_lib.checkpoint import load_checkpoint, load_model, save_checkpoint
from sr_lib.cli import main
from sr_lib.config import get_config
from sr_lib.imaging import degrade
from sr_lib.models import ConditionalFlow, Generator
from sr_lib.train import TrainSettings, bits_per_dim, train


def settings(tmp_path, kind, steps, **kw):
    return TrainSettings(kind, get_config("tiny"), tmp_path, steps, show_progress=False, save_every=2, **kw)


def test_sr_training_writes_checkpoint_and_history(tmp_path):
    path = train(settings(tmp_path, "sr", 3))
    payload = load_checkpoint(path, "sr", get_config("tiny"))
    assert payload["step"] == 3 and payload["version"]
    history = json.loads((tmp_path / "sr.history.json").read_text())
    assert [h["step"] for h in history] == [1, 2, 3] and all(h["l1"] > 0 for h in history)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.history.json", "sr.pt"]  # no temporary left


def test_resume_after_an_interruption_continues_exactly(tmp_path, monkeypatch):
    straight = load_checkpoint(train(settings(tmp_path / "a", "flow", 4)), "flow")
    calls = {"n": 0}
    real_step = train_module.flow_step

    def interrupted_on_third_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "flow_step", interrupted_on_third_step)
    with pytest.raises(KeyboardInterrupt):
        train(settings(tmp_path / "b", "flow", 4))
    assert load_checkpoint(tmp_path / "b" / "flow.pt", "flow")["step"] == 2  # the last periodic save
    monkeypatch.setattr(train_module, "flow_step", real_step)
    resumed = load_checkpoint(train(settings(tmp_path / "b", "flow", 4, resume=True)), "flow")
    assert resumed["step"] == 4 and resumed["history"] == straight["history"]
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


def test_learning_rate_halves_at_half_and_three_quarters():
    assert [train_module.learning_rate(1.0, i, 8) for i in range(8)] == [1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25]


def test_srgan_needs_the_sr_checkpoint_then_trains(tmp_path):
    with pytest.raises(FileNotFoundError, match="train it first"):
        train(settings(tmp_path, "srgan", 1))
    train(settings(tmp_path, "sr", 1))
    payload = load_checkpoint(train(settings(tmp_path, "srgan", 2)), "srgan")
    assert {"content", "adversarial", "d_real", "d_fake"} <= set(payload["history"][-1])
    assert "discriminator" in payload


def test_vgg_content_falls_back_to_l1_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    loss, used = train_module.content_loss("vgg")
    assert used == "l1" and "vgg19-dcbb9e9d.pth" in capsys.readouterr().out


def test_flow_stops_on_repeated_nan_and_keeps_finite_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "bits_per_dim", lambda *a, **k: torch.tensor([math.nan], requires_grad=True))
    with pytest.raises(RuntimeError, match="10 non-finite losses in a row"):
        train(settings(tmp_path, "flow", 20))
    payload = load_checkpoint(tmp_path / "flow.pt", "flow")
    assert all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())
    assert payload["history"] == []  # no step was taken


def test_bits_per_dim_is_a_proper_likelihood():
    flow = ConditionalFlow(get_config("tiny"))
    hr = torch.randint(0, 256, (2, 3, 16, 16)).float() / 255
    bpd = bits_per_dim(flow, hr, degrade(hr))
    assert bpd.shape == (2,) and torch.isfinite(bpd).all()
    # an identity flow puts N(0,1) on the residual over bicubic: about log2(256) + 0.5*log2(2*pi) bits (the residual is small)
    assert abs(bpd.mean().item() - (8 + 0.5 * math.log2(2 * math.pi))) < 0.1


def test_refuses_foreign_corrupt_and_mismatched_checkpoints(tmp_path):
    good = save_checkpoint(tmp_path / "sr.pt", "sr", get_config("tiny"), 1, Generator(get_config("tiny")))
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
    torch.save({"kind": "sr", "payload": object()}, pickled)
    with pytest.raises(ValueError, match="corrupt or not a PyTorch checkpoint"):  # weights_only refuses objects
        load_checkpoint(pickled, "sr")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", "sr")


def test_weights_that_do_not_fit_are_named(tmp_path):
    path = save_checkpoint(tmp_path / "sr.pt", "sr", get_config("tiny"), 1, Generator(get_config("cpu")))
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
    full = train(settings(tmp_path / "full", "flow", 2))
    slim = slim_checkpoint(full, tmp_path / "slim" / "flow.pt", "flow")
    payload = load_checkpoint(slim, "flow", get_config("tiny"))
    assert payload["slim"] and "model_optimizer" not in payload and len(payload["history"]) == 2
    load_model(slim, "flow")
    assert slim.stat().st_size < full.stat().st_size
    with pytest.raises(ValueError, match="cannot resume"):
        train(settings(tmp_path / "slim", "flow", 4, resume=True))
