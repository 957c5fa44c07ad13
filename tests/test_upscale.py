"""`upscale`: photos of every format read right, tiles equal one pass, bad input stopped before work."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sr_lib.checkpoint import DEFAULT_CHECKPOINTS, load_model
from sr_lib.cli import main
from sr_lib.data import read_photo
from sr_lib.methods import METHODS
from sr_lib.upscale import to_8bit, upscale

def _photo(h: int = 37, w: int = 53) -> np.ndarray:
    """A smooth colour image with edges: a downscaled bundled photograph (not noise: the networks' field
    matters only where there is structure)."""
    import skimage.data
    return np.array(Image.fromarray(skimage.data.chelsea()).resize((w, h), Image.LANCZOS))


@pytest.fixture(scope="module")
def shipped():
    return {name: load_model(DEFAULT_CHECKPOINTS / f"{name}.pt", name)[0] for name in ("sr", "flow")}


# ---------------------------------------------------------------- reading every kind of photo
def test_sixteen_bit_grayscale_keeps_its_values(tmp_path):
    ramp = np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    photo = read_photo(tmp_path / "g16.png")
    assert photo.grayscale and photo.rgb.shape == (3, 30, 40)
    assert torch.allclose(photo.rgb[0], torch.from_numpy(ramp / 65535).float(), atol=1e-6)  # not white
    assert torch.equal(photo.rgb[0], photo.rgb[2])


def test_alpha_is_kept_or_dropped_and_palette_transparency_counts(tmp_path):
    rgba = np.dstack([_photo(), np.linspace(0, 255, 37 * 53).reshape(37, 53).astype(np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    kept = read_photo(tmp_path / "rgba.png", alpha="keep")
    assert kept.alpha.shape == (1, 37, 53) and torch.allclose(kept.alpha[0], torch.from_numpy(rgba[..., 3] / 255).float())
    assert read_photo(tmp_path / "rgba.png", alpha="drop").alpha is None
    palette = Image.fromarray(_photo()).convert("P")
    palette.info["transparency"] = 0
    palette.save(tmp_path / "p.png", transparency=0)
    assert read_photo(tmp_path / "p.png").alpha is not None
    with pytest.raises(ValueError, match="alpha must be one of"):
        read_photo(tmp_path / "rgba.png", alpha="maybe")


def test_cmyk_one_bit_and_exif_orientation(tmp_path):
    Image.fromarray(_photo()).convert("CMYK").save(tmp_path / "cmyk.jpg")
    cmyk = read_photo(tmp_path / "cmyk.jpg")
    assert cmyk.mode == "CMYK" and not cmyk.grayscale
    assert (cmyk.rgb * 255 - torch.from_numpy(_photo()).permute(2, 0, 1)).abs().mean() < 8  # PIL's conversion, JPEG
    Image.fromarray(_photo()).convert("1").save(tmp_path / "bw.png")
    assert read_photo(tmp_path / "bw.png").rgb.unique().tolist() == [0.0, 1.0]
    rotated = Image.fromarray(_photo())  # 53 wide, 37 tall; EXIF says "rotate 90 degrees clockwise to view"
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "exif.jpg", exif=exif)
    assert read_photo(tmp_path / "exif.jpg").rgb.shape == (3, 53, 37)


def test_what_is_not_a_photo_is_named(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ValueError, match="notes.png is not an image file"):
        read_photo(tmp_path / "notes.png")
    with pytest.raises(FileNotFoundError):
        read_photo(tmp_path / "missing.png")


# ---------------------------------------------------------------- tiles equal one pass
@pytest.mark.parametrize("name", ["sr", "flow"])
def test_tiled_output_equals_one_pass_and_a_margin_short_of_the_field_does_not(shipped, name):
    model = shipped[name]
    lr = torch.from_numpy(_photo()).permute(2, 0, 1)[None].float() / 255  # 37x53: tiles of 16 do not divide it
    with torch.no_grad():
        whole = model(lr) if name == "sr" else model.sample(lr, 0.8, generator=torch.Generator().manual_seed(3))
    whole = to_8bit(whole.clamp(0, 1))
    tiles = upscale(name, model, lr, 0.8, seed=3, tile=16)
    assert tiles.shape == (1, 3, 148, 212) and tiles.dtype == torch.uint8
    differ = (tiles.int() - whole.int()).abs()
    assert differ.max() <= 1 and (differ > 0).float().mean() < 1e-3  # float rounding at a .5 boundary at most
    assert METHODS[name].margin(model.config) >= 18  # half the field (132 px, flow 244 px), in LR pixels
    seams = upscale(name, model, lr, 0.8, seed=3, tile=16, pad=2)
    assert (seams.int() - whole.int()).abs().max() > 10  # the test can fail: a narrow margin shows seams


@pytest.mark.parametrize("name", ["sr", "flow"])
def test_tiles_and_noise_go_to_the_models_device_and_dtype(shipped, name):
    """A float64 copy of the model stands in for one on another device: float32 tiles or noise reaching
    it unmoved would be refused (`check_matches`), moved they give the float32 result."""
    import copy
    lr = torch.from_numpy(_photo(20, 24)).permute(2, 0, 1)[None].float() / 255
    single = upscale(name, shipped[name], lr, 0.8, seed=1, tile=8)
    double = upscale(name, copy.deepcopy(shipped[name]).double(), lr, 0.8, seed=1, tile=8)
    assert double.dtype == torch.uint8 and (double.int() - single.int()).abs().max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["sr", "flow"])
def test_upscale_on_a_gpu_equals_the_cpu(shipped, name):
    import copy
    lr = torch.from_numpy(_photo(20, 24)).permute(2, 0, 1)[None].float() / 255
    on_gpu = upscale(name, copy.deepcopy(shipped[name]).cuda(), lr, 0.8, seed=1, tile=8)
    assert (on_gpu.int() - upscale(name, shipped[name], lr, 0.8, seed=1, tile=8).int()).abs().max() <= 1


# ---------------------------------------------------------------- the command
def test_upscale_writes_png_exactly_four_times_each_format(tmp_path, capsys):
    Image.fromarray(_photo(23, 37)).save(tmp_path / "odd.jpg")
    Image.fromarray(np.dstack([_photo(23, 37), np.full((23, 37), 128, np.uint8)])).save(tmp_path / "alpha.png")
    Image.fromarray((np.linspace(0, 65535, 23 * 37).reshape(23, 37)).astype(np.uint16)).save(tmp_path / "g16.png")
    photos = [str(tmp_path / name) for name in ("odd.jpg", "alpha.png", "g16.png")]
    assert main(["upscale", *photos, "--method", "all", "--samples", "2", "--out", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"{stem}_{suffix}.png" for stem in ("odd", "alpha", "g16")
                             for suffix in ("bicubic", "sr", "srgan", "flow_T0.8_1", "flow_T0.8_2"))
    for path in (tmp_path / "out").iterdir():
        image = Image.open(path)
        assert image.size == (148, 92)
        assert image.mode == {"odd": "RGB", "alpha": "RGBA", "g16": "L"}[path.name.split("_")[0]]
    g16 = np.asarray(Image.open(tmp_path / "out" / "g16_sr.png"))
    assert 40 < g16.mean() < 215 and g16.std() > 30  # a ramp, not the white image a clipped 16-bit PNG gives
    flows = [np.asarray(Image.open(tmp_path / "out" / f"odd_flow_T0.8_{k}.png")) for k in (1, 2)]
    assert not np.array_equal(*flows)  # two seeds, two samples
    assert main(["upscale", photos[0], "--method", "sr", "--out", str(tmp_path / "one.png")]) == 0
    assert Image.open(tmp_path / "one.png").size == (148, 92)


BAD = [
    (["--temperature", "nan"], "--temperature must be a number from 0 to 2"),
    (["--temperature", "5"], "--temperature must be a number from 0 to 2"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--tile", "0"], "--tile must be at least 16"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
    (["--device", "foo"], "unknown device 'foo'"),
    (["--checkpoints", "/nowhere"], "no /nowhere/sr.pt"),
]


@pytest.mark.parametrize("extra,message", BAD)
def test_bad_options_are_one_error_line_before_any_work(tmp_path, capsys, extra, message):
    Image.fromarray(_photo()).save(tmp_path / "p.png")
    assert main(["upscale", str(tmp_path / "p.png"), "--method", "sr", "--out", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_files_and_existing_outputs_are_refused_and_kept(tmp_path, capsys):
    Image.fromarray(_photo()).save(tmp_path / "p.png")
    (tmp_path / "text.png").write_text("not a photo")
    out = tmp_path / "out"
    for photos, message in [([tmp_path / "missing.png"], "No such file"), ([tmp_path / "text.png"], "is not an image")]:
        assert main(["upscale", str(tmp_path / "p.png"), *map(str, photos), "--method", "sr", "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()  # the good photo before it was not processed either: checks come first
    out.mkdir()
    (out / "p_sr.png").write_bytes(b"earlier work")
    assert main(["upscale", str(tmp_path / "p.png"), "--method", "sr", "--out", str(out)]) == 2
    assert "p_sr.png exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "p_sr.png").read_bytes() == b"earlier work"
    assert main(["upscale", str(tmp_path / "p.png"), "--out", str(out / "one.png")]) == 2
    assert "names one file, but 4 outputs" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["upscale", str(tmp_path / "p.png"), "--method", "sr", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads peak memory from /proc")
@pytest.mark.slow
def test_a_photo_becomes_12_megapixels_in_bounded_memory(tmp_path):
    import skimage.data
    Image.fromarray(skimage.data.coffee()).resize((1000, 750), Image.BICUBIC).save(tmp_path / "big.png")
    # VmHWM: this process's peak resident memory (ru_maxrss would carry over pytest's own across exec)
    script = ("import re, sys; from sr_lib.cli import main; rc = main(sys.argv[1:]); "
              "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", script, "upscale", str(tmp_path / "big.png"), "--method", "sr",
                          "--out", str(tmp_path / "big_sr.png")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    peak_gib = int(run.stdout.split()[-1]) * 1024 / 2 ** 30
    assert Image.open(tmp_path / "big_sr.png").size == (4000, 3000)
    assert peak_gib < 3.0, f"peak memory {peak_gib:.2f} GiB"
