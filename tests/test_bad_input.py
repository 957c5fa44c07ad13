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
from sr_lib.methods import METHODS
from sr_lib.methods.flow import ConditionalFlow
from sr_lib.methods.srgan import Discriminator
from sr_lib.models import Generator


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
        METHODS["sr"].draws(Generator(tiny), lr, None, 1, None)
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
    (["train", "sr", "--steps", "3", "--learning-rate", "1e12", "--out", "{tmp}/a"], "learning rate must be in (0, 1)"),
    (["train", "sr", "--steps", "1", "--out", "{tmp}/a", "--device", "foo"], "unknown device 'foo'"),
    (["evaluate", "--checkpoints", "{tmp}/nowhere"], "does not exist"),
    (["train", "sr", "--steps", "1", "--out", "{tmp}/a", "--grid-weight", "1"], "--grid-weight is not a setting of sr (its settings: --clip, --learning-rate)"),
    (["train", "srgan", "--steps", "1", "--out", "{tmp}/a", "--grid-weight", "nan"], "--grid-weight must be a number >= 0"),
    (["train", "sr", "--steps", "1", "--out", "{tmp}/a", "--compile"], "--compile is not for sr: compiled, the generator's training step ran slower"),
    (["train", "srgan", "--steps", "1", "--out", "{tmp}/a", "--content", "vg"], "content loss must be 'l1' or 'vgg', got 'vg'"),
    (["train", "flow", "--steps", "1", "--out", "{tmp}/a", "--clip", "-1"], "--clip must be a number > 0, got -1.0"),
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


def test_networks_check_shapes_and_the_entry_points_check_values(tiny):
    """A network's forward looks at no value (each look is a host synchronisation on a GPU, in every
    training step): NaN goes through it; where an image enters the library, it is refused."""
    bad = torch.full((1, 3, 4, 4), math.nan)
    assert Generator(tiny)(bad).isnan().all()
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        Generator(tiny)(torch.rand(1, 2, 4, 4))  # shapes are still checked
    with pytest.raises(ValueError, match="NaN"):
        METHODS["sr"].draws(Generator(tiny), bad, None, 1, None)
    with pytest.raises(ValueError, match="NaN"):
        degrade(torch.full((1, 3, 16, 16), math.nan))


# ---------------------------------------------------------------- the third battery: nothing lost, nothing silently wrong
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from sr_lib.checkpoint import load_checkpoint, load_model, save_checkpoint  # noqa: E402
from sr_lib.files import OutputLock, atomic_write, writable_folder  # noqa: E402


def _photo_file(path, side=40, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def _nan_checkpoint(tiny_checkpoints, tmp_path, name="sr"):
    payload = torch.load(tiny_checkpoints / f"{name}.pt", weights_only=True)
    payload["model"]["tail.weight"][0, 0, 0, 0] = math.nan
    folder = tmp_path / "nan"
    folder.mkdir(exist_ok=True)
    torch.save(payload, folder / f"{name}.pt")  # written behind save_checkpoint's back
    return folder


def test_a_checkpoint_with_a_non_finite_weight_is_refused_everywhere(tiny_checkpoints, tmp_path, capsys):
    folder = _nan_checkpoint(tiny_checkpoints, tmp_path)
    with pytest.raises(ValueError, match=r"sr.pt holds non-finite values in model.tail.weight: refusing"):
        load_model(folder / "sr.pt", "sr")
    photo = _photo_file(tmp_path / "p.png")
    err = _cli_error(capsys, ["upscale", str(photo), "--method", "sr", "--checkpoints", str(folder),
                              "--out", str(tmp_path / "out")])
    assert "non-finite values in model.tail.weight" in err and not (tmp_path / "out").exists()
    err = _cli_error(capsys, ["train", "sr", "--config", "tiny", "--steps", "5", "--resume", "--out", str(folder)])
    assert "non-finite" in err and "wrote" not in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="non-finite values in"):  # and never saved
        save_checkpoint(tmp_path / "x.pt", "sr", "generator", get_config("tiny"), 1,
                        torch.load(folder / "sr.pt", weights_only=True)["model"])


def test_a_resume_whose_last_steps_are_skipped_still_writes_what_it_says(tiny, tmp_path, monkeypatch):
    from sr_lib import optim
    from sr_lib.train import TrainSettings, train
    train(TrainSettings("sr", tiny, tmp_path, 2, show_progress=False))
    monkeypatch.setattr(optim, "guarded_step", lambda *a, **k: None)  # every update non-finite
    train(TrainSettings("sr", tiny, tmp_path, 4, resume=True, show_progress=False))
    assert load_checkpoint(tmp_path / "sr.pt", "sr")["step"] == 4  # the batches used up, the weights of step 2


def test_resume_and_overwrite_together_and_a_checkpoint_without_optimizer_state(tiny_checkpoints, tmp_path, capsys):
    out = str(tmp_path / "a")
    assert "choose one" in _cli_error(capsys, ["train", "sr", "--steps", "2", "--resume", "--overwrite", "--out", out])
    from sr_lib.checkpoint import slim_checkpoint
    payload = torch.load(tiny_checkpoints / "sr.pt", weights_only=True)
    del payload["model_optimizer"]
    (tmp_path / "b").mkdir()
    torch.save(payload, tmp_path / "b" / "sr.pt")
    err = _cli_error(capsys, ["train", "sr", "--config", "tiny", "--steps", "9", "--resume", "--out", str(tmp_path / "b")])
    assert "cannot resume training: it holds no model_optimizer" in err
    slim_checkpoint(tiny_checkpoints / "sr.pt", tmp_path / "c" / "sr.pt", "sr")
    err = _cli_error(capsys, ["train", "sr", "--config", "tiny", "--steps", "9", "--resume", "--out", str(tmp_path / "c")])
    assert "slim" in err


def test_a_second_writer_of_one_checkpoint_is_refused_with_the_holders_pid(tmp_path):
    target = tmp_path / "sr.pt"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from sr_lib.files import OutputLock\n"
                               f"with OutputLock({str(target)!r}):\n    print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=f"being written by process {holder.pid}"):
            with OutputLock(target):
                pass
    finally:
        holder.kill()
        holder.wait()
    with OutputLock(target):  # released when its process died, however it died
        pass
    assert not (tmp_path / ".sr.pt.lock").exists()


def test_two_trainings_into_one_folder_one_is_refused_at_once(tmp_path):
    argv = [sys.executable, "-m", "sr_lib", "--threads", "1", "train", "sr", "--config", "tiny", "--steps", "400",
            "--save-every", "400", "--out", str(tmp_path)]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):  # until the first holds the lock
            if (tmp_path / ".sr.pt.lock").exists():
                break
            time.sleep(0.1)
        second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    finally:
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
    assert second.returncode == 2 and f"being written by process {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr and "wrote" not in second.stdout
    # the first, interrupted: one line saying what was kept, status 130, no traceback
    assert first.returncode == 130 and "Traceback" not in err
    assert "interrupted before the first step; " in err or "no checkpoint was written" in err
    assert not list(tmp_path.glob(".*.tmp"))


def test_two_photos_of_one_name_are_refused_before_any_work(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _photo_file(tmp_path / folder / "face.png")
    err = _cli_error(capsys, ["upscale", str(tmp_path / "a" / "face.png"), str(tmp_path / "b" / "face.png"),
                              "--method", "bicubic", "--out", str(tmp_path / "out"), "--overwrite"])
    assert "a/face.png and" in err and "b/face.png would both be written to" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case,message", [
    ("fifo", "not a regular file"),
    ("truncated_second", "cannot be decoded"),
    ("bomb", "claims, in its header, more pixels"),
    ("float_tiff", "TIFF whose pixel layout"),
    ("seed", "--seed must be in 0 .. 2**63"),
    ("out_jpg", "upscale writes PNG files"),
    ("out_is_folder", "is a folder"),
])
def test_upscale_checks_every_input_before_the_first_output(tmp_path, capsys, case, message):
    first = _photo_file(tmp_path / "first.png")
    photos, extra, out = [first], [], tmp_path / "out"
    if case == "fifo":
        os.mkfifo(tmp_path / "pipe.png")
        photos.append(tmp_path / "pipe.png")
    elif case == "truncated_second":
        data = _photo_file(tmp_path / "whole.png", side=64).read_bytes()
        (tmp_path / "second.png").write_bytes(data[:len(data) // 2])
        photos.append(tmp_path / "second.png")
    elif case == "bomb":  # a valid PNG header claiming 20000 x 20000 px
        import struct
        import zlib
        def chunk(kind, body):
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
        (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
        photos.append(tmp_path / "bomb.png")
    elif case == "float_tiff":
        import tifffile
        tifffile.imwrite(tmp_path / "f.tif", np.random.rand(16, 16, 3).astype(np.float32))
        photos.append(tmp_path / "f.tif")
    elif case == "seed":
        extra = ["--seed", "1" + "0" * 22]
    elif case == "out_jpg":
        out = tmp_path / "result.jpg"
    elif case == "out_is_folder":
        out = tmp_path / "x.png"
        out.mkdir()
    err = _cli_error(capsys, ["upscale", *map(str, photos), "--method", "bicubic", "--out", str(out),
                              "--overwrite", *extra])
    assert message in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "result.jpg").exists()
    assert "wrote" not in capsys.readouterr().out


def test_an_animated_gif_is_upscaled_from_its_first_frame_with_a_note(tmp_path, capsys):
    frames = [Image.fromarray(np.full((20, 20, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert main(["upscale", str(tmp_path / "a.gif"), "--method", "bicubic", "--out", str(tmp_path / "o")]) == 0
    assert "holds 2 frames (animated or multi-page); upscaling the first" in capsys.readouterr().out


def test_an_icc_profile_is_read_through_it(tmp_path, monkeypatch):
    """A tagged photo goes through littleCMS to sRGB: an sRGB tag changes nothing, and the conversion is
    the one asked for (no wide-gamut profile ships offline to compare colours against)."""
    from PIL import ImageCms

    from sr_lib import data
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "plain.png")
    Image.fromarray(pixels).save(tmp_path / "tagged.png",
                                 icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    converted = []
    real = ImageCms.profileToProfile
    monkeypatch.setattr(ImageCms, "profileToProfile", lambda *a, **k: converted.append(k) or real(*a, **k))
    assert torch.allclose(data.read_photo(tmp_path / "tagged.png").rgb, data.read_photo(tmp_path / "plain.png").rgb,
                          atol=1.5 / 255)
    assert converted == [{"outputMode": "RGB"}]  # the tagged file only


def test_evaluation_keeps_going_past_a_broken_image_and_counts_it(tiny_checkpoints, small_faces, tmp_path, capsys):
    import shutil
    folder = tmp_path / "faces"
    shutil.copytree(small_faces, folder)
    whole = next(folder.iterdir()).read_bytes()
    (folder / "zz_truncated.png").write_bytes(whole[:len(whole) * 2 // 3])  # a readable header, a broken body
    with pytest.warns(UserWarning, match="zz_truncated.png"):
        assert main(["evaluate", "--checkpoints", str(tiny_checkpoints), "--data", str(folder), "--json"]) == 0
    import json
    result = json.loads(capsys.readouterr().out)
    assert result["skipped"] == ["zz_truncated.png"] and len(result["images"]) == 2
    assert all(row["image_count"] == 2 for row in result["rows"])


def test_training_workers_skip_a_broken_image(tiny, tmp_path):
    from sr_lib.data import FolderCrops
    files = [_photo_file(tmp_path / f"{k}.png", side=48, seed=k) for k in range(2)]
    data = _photo_file(tmp_path / "w.png", side=48).read_bytes()
    (tmp_path / "broken.png").write_bytes(data[:len(data) // 2])
    crops = FolderCrops([*files, tmp_path / "broken.png"], 32, 6, seed=0)
    with pytest.warns(UserWarning, match="broken.png: skipped"):
        batch = crops.batch_at(0)
    assert batch.shape == (6, 3, 32, 32)
    assert torch.equal(batch, FolderCrops([*files, tmp_path / "broken.png"], 32, 6, seed=0).batch_at(0))


@pytest.mark.slow
def test_a_report_is_replaced_whole_or_not_at_all(tiny_checkpoints, small_faces, tmp_path, capsys, monkeypatch):
    from sr_lib import report as report_module
    out = tmp_path / "report"
    argv = ["report", "--checkpoints", str(tiny_checkpoints), "--data", str(small_faces), "--out", str(out),
            "--fid-dims", "64"]
    assert main(argv) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == set(report_module.REPORT_FILES)
    assert "holds a report; pass --overwrite" in _cli_error(capsys, argv)

    def full_disk(path, result, pairs, outputs, maps):  # the tables written, then the disk is full
        Path(path).mkdir()
        (Path(path) / "table.json").write_text("{}")
        raise OSError("could not write comparison.png: No space left on device")
    monkeypatch.setattr(report_module, "write_report", full_disk)
    assert main([*argv, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.endswith("error: could not write comparison.png: No space left on device\n") and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old report, whole
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary folder left
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    argv[-3] = str(tmp_path / "mine")
    assert "holds other files (thesis.tex)" in _cli_error(capsys, [*argv, "--overwrite"])
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "sr.pt"
    target.write_text("old")

    def short_write(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match=r"could not write .*sr.pt: No space left on device; the previous file is unchanged"):
        atomic_write(target, short_write)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["sr.pt"]


def test_stale_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".sr.pt.{dead.stdout.strip()}.tmp"
    stale.write_text("half a checkpoint")
    atomic_write(tmp_path / "sr.pt", lambda tmp: tmp.write_text("new"))
    assert not stale.exists() and (tmp_path / "sr.pt").read_text() == "new"


def test_an_output_folder_that_cannot_be_created_is_found_before_work(tmp_path, capsys):
    err = _cli_error(capsys, ["upscale", str(_photo_file(tmp_path / "p.png")), "--method", "bicubic",
                              "--out", "/proc/sr_lib_out"])
    assert "cannot create or write a file there" in err
    writable_folder(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()  # proven creatable, nothing left behind


@pytest.mark.parametrize("argv,message", [
    (["evaluate", "--data", "{file}"], "is a file; give a folder of images"),
    (["evaluate", "--checkpoints", "{file}"], "is a file; give the folder that holds"),
    (["bench", "--crop", "3"], "--crop must be a multiple of 4"),
    (["train", "sr", "--steps", "1", "--seed", "1" + "0" * 22, "--out", "{tmp}/a"], "--seed must be in 0 .. 2**63"),
])
def test_misleading_messages_now_name_the_option(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("x")
    argv = [a.replace("{file}", str(tmp_path / "file")).replace("{tmp}", str(tmp_path)) for a in argv]
    assert message in _cli_error(capsys, argv)


def test_student_without_nbgrader_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "nbgrader.preprocessors", None)  # as if not installed
    assert 'pip install -e ".[course]"' in _cli_error(capsys, ["student", "--out", str(tmp_path / "s")])


def test_weights_fetch_offline_is_one_line(capsys, monkeypatch):
    from urllib.error import URLError

    from sr_lib import weights
    monkeypatch.setattr(weights, "fetch", lambda key: (_ for _ in ()).throw(URLError("no network")))
    err = _cli_error(capsys, ["weights", "--fetch"])
    assert "could not download" in err and "by hand" in err


def test_debug_shows_the_traceback_of_a_user_error(capsys):
    assert main(["--debug", "check-flow", "--size", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: --size must be a positive multiple of 4" in err


def test_a_library_bug_keeps_its_traceback(monkeypatch):
    """Only bad input (`UserError`) and file errors become one line: a ValueError from inside the library,
    such as a tensor on the wrong device reaching a network, is a bug and must not look like bad input."""
    from sr_lib import invertibility
    from sr_lib.models import check_matches

    def wrong_device(*args, **kwargs):
        check_matches(torch.zeros(1, dtype=torch.float64), torch.nn.Linear(1, 1), "latent z")
    monkeypatch.setattr(invertibility, "check", wrong_device)
    with pytest.raises(ValueError, match="latent z is torch.float64"):
        main(["check-flow", "--config", "tiny", "--size", "16"])


def test_complexity_defaults_to_the_cpu_configuration():
    from sr_lib.cli import build_parser
    assert build_parser().parse_args(["complexity"]).config == "cpu"


def test_a_probe_too_large_for_memory_is_refused_before_it_starts(capsys, monkeypatch):
    """check-flow --size 40000 needs terabytes: refused at once, saying what it needs and what to change."""
    start = time.perf_counter()
    err = _cli_error(capsys, ["check-flow", "--size", "40000"])
    assert "check-flow --size 40000 (float32) needs about" in err and "give a smaller --size" in err
    assert time.perf_counter() - start < 10
    from sr_lib import memory
    monkeypatch.setattr(memory, "available_bytes", lambda: 2e9)  # a small container
    err = _cli_error(capsys, ["complexity", "--config", "paper"])
    assert "complexity --config paper (its float64 receptive-field probe at 256x256 px) needs about" in err
    assert "2.0 GB are available" in err
    assert main(["check-flow", "--config", "tiny", "--size", "16"]) == 0  # a size that fits still runs


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="resets the peak through Linux's /proc")
def test_the_memory_estimate_bounds_the_measured_peak(tmp_path):
    """The estimate of `memory.flow_pass_bytes`, less its start-up baseline, bounds what check-flow's
    work really adds to a child process's peak resident memory, and not wildly."""
    from sr_lib import memory
    child = ("import torch; from sr_lib.cli import main; torch.set_num_threads(1)\n"
             "def status(key):\n"
             "    return int(next(line for line in open('/proc/self/status') if line.startswith(key)).split()[1])\n"
             "open('/proc/self/clear_refs', 'w').write('5')  # peak resident memory (VmHWM) starts again here\n"
             "before = status('VmRSS:')\n"
             "assert main(['check-flow', '--config', 'tiny', '--size', '128', '--dtype', 'float64']) == 0\n"
             "print(before, status('VmHWM:'))")
    run = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    before, peak = (int(kb) * 1024 for kb in run.stdout.split()[-2:])  # kB
    estimate = memory.flow_pass_bytes(get_config("tiny"), 128, 2, torch.float64) - memory.BASELINE_BYTES
    assert peak - before < estimate < 3 * (peak - before)  # the work's own memory: imports vary by GBs


def test_ctrl_c_during_upscale_says_what_was_written(tmp_path):
    """SIGINT to a real upscale of two photos by the flow (slow enough to interrupt): one line, status
    130, no traceback and no half-written file."""
    photos = [str(_photo_file(tmp_path / f"p{k}.png", side=160, seed=k)) for k in range(2)]
    run = subprocess.Popen([sys.executable, "-m", "sr_lib", "--threads", "1", "upscale", *photos, "--method", "flow",
                            "--samples", "3", "--out", str(tmp_path / "out")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # past start-up, inside the work
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "Traceback" not in err and "outputs were written (listed above), none half-written" in err
    written = out.count("wrote ")
    assert f"interrupted; {written} of 6 outputs" in err
    folder = tmp_path / "out"
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [] if folder.exists() else written == 0
