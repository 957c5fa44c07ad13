"""The bad-input battery: every case a user hit gets a clear error or a correct result, and loses nothing.

Cases covered elsewhere, by the test named: photos of every format and `upscale`'s options
(test_upscale.py); non-finite losses and weights, overwrite and resume refusals, file modes
(test_train.py: test_non_finite_*, test_existing_checkpoints_are_not_overwritten_silently,
test_checkpoints_get_the_users_file_mode); temperatures (test_models.py).
"""
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from sr_lib.cli import main
from sr_lib.config import get_config
from sr_lib.data import load_folder
from sr_lib.imaging import degrade
from sr_lib.metrics import distortion, psnr, ssim
from sr_lib.models import ConditionalFlow, Discriminator, Generator


@pytest.fixture
def tiny():
    return get_config("tiny")


# ---------------------------------------------------------------- tensors: models and metrics
def test_metrics_refuse_nan_instead_of_reporting_a_perfect_score():
    hr = torch.rand(1, 3, 32, 32)
    bad = hr.clone()
    bad[0, 0, 5, 5] = math.nan
    for fn in (psnr, ssim):
        with pytest.raises(ValueError, match="output contains NaN"):
            fn(bad, hr)
        with pytest.raises(ValueError, match="target contains NaN"):
            fn(hr, bad)
    with pytest.raises(ValueError, match="target contains NaN"):
        distortion(hr, bad, degrade(hr))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(hr, hr[..., :16])


def test_eight_bit_values_as_floats_are_refused_with_the_fix(tiny):
    lr = torch.rand(1, 3, 8, 8) * 255
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got .* divide 8-bit values by 255"):
        Generator(tiny)(lr)
    with pytest.raises(ValueError, match="divide 8-bit values by 255"):
        psnr(lr, lr / 255)
    with pytest.raises(ValueError, match="divide 8-bit values by 255"):
        ConditionalFlow(tiny).sample(lr)
    Generator(tiny).eval()(degrade(torch.rand(1, 3, 32, 32)))  # bicubic's slight overshoot is fine


def test_empty_batches_and_foreign_dtypes_are_named(tiny):
    with pytest.raises(ValueError, match="LR image is empty"):
        Generator(tiny)(torch.rand(0, 3, 8, 8))
    with pytest.raises(ValueError, match=r"torch.float64 on cpu, but the network.s weights are torch.float32 on cpu; convert with .to\(torch.float32\)"):
        Generator(tiny)(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="torch.float64"):
        Discriminator(tiny)(torch.rand(1, 3, 32, 32, dtype=torch.float64))
    hr = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="HR image is torch.float64"):
        ConditionalFlow(tiny)(hr.double(), degrade(hr).double())
    flow = ConditionalFlow(tiny).double()  # a float64 flow takes float64 input (notebook 02 does)
    assert flow(hr.double(), degrade(hr).double())[0].dtype == torch.float64


def test_a_sixteen_bit_folder_image_is_read_at_its_depth_not_as_white(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    with pytest.warns(UserWarning, match="converting I;16 image to RGB"):
        image = load_folder(tmp_path, 32)["g16.png"]
    assert abs(image.mean().item() - 0.5) < 0.01  # was 1.0: every value above 255 clipped to white


# ---------------------------------------------------------------- the command line
def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("argv,message", [
    (["check-flow", "--size", "0"], "--size must be a positive multiple of 4"),
    (["bench", "--batch", "0"], "--batch must be >= 1"),
    (["--threads", "0", "complexity"], "--threads must be >= 1"),
    (["train", "sr", "--steps", "0", "--out", "{tmp}/a"], "steps and save_every must be >= 1"),
    (["train", "sr", "--steps", "3", "--lr", "1e12", "--out", "{tmp}/a"], "learning rate must be in (0, 1)"),
    (["train", "sr", "--steps", "1", "--out", "{tmp}/a", "--device", "foo"], "unknown device 'foo'"),
    (["evaluate", "--checkpoints", "{tmp}/nowhere"], "does not exist"),
    (["train", "sr", "--steps", "1", "--out", "{tmp}/a", "--grid-weight", "1"], "--grid-weight is a term of SRGAN's"),
    (["train", "srgan", "--steps", "1", "--out", "{tmp}/a", "--grid-weight", "nan"], "--grid-weight must be a number >= 0"),
    (["train", "sr", "--steps", "1", "--out", "{tmp}/a", "--compile"], "--compile is for the flow"),
])
def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert message in _cli_error(capsys, argv)
    assert not (tmp_path / "a").exists()


def test_cuda_asked_for_without_a_gpu_is_refused(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    err = _cli_error(capsys, ["train", "sr", "--steps", "1", "--out", str(tmp_path / "a"), "--device", "cuda"])
    assert "no CUDA GPU is available here" in err


@pytest.mark.parametrize("command", [["train", "sr", "--config", "tiny", "--steps", "1"], ["report"]])
def test_an_output_path_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    (tmp_path / "file").write_text("keep me")
    for out, message in [(tmp_path / "file", "is a file, not a folder"), (tmp_path / "file" / "sub", "is a file")]:
        err = _cli_error(capsys, [*command, "--out", str(out)])
        assert message in err and "%|" not in err  # no progress bar: nothing ran
    assert (tmp_path / "file").read_text() == "keep me"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_refused_before_any_work(tmp_path, capsys):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    try:
        err = _cli_error(capsys, ["train", "sr", "--config", "tiny", "--steps", "1", "--out", str(folder / "run")])
    finally:
        folder.chmod(0o755)
    assert "permission denied" in err


def test_trusted_inputs_skip_only_the_value_checks_and_only_inside():
    from sr_lib.imaging import check_images, trusted_inputs
    bad = torch.full((1, 3, 4, 4), math.nan)
    with trusted_inputs():
        check_images(bad)  # no device-to-host sync for the values
        with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
            check_images(torch.rand(1, 2, 4, 4))  # shapes are still checked
    with pytest.raises(ValueError, match="NaN"):
        check_images(bad)
