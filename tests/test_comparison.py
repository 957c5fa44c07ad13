"""evaluate, compare, the widgets (driven without a browser) and bench, on tiny checkpoints."""
import json

import pytest
import torch

from sr_lib.bench import bench
from sr_lib.cli import main
from sr_lib.compare import compare, load_perceptual
from sr_lib.data import bundled_heldout
from sr_lib.evaluate import evaluate, load_methods
from sr_lib.widgets import CropComparator, TemperatureScrubber, crop_panel, flow_view


def test_evaluate_json_has_every_method_and_temperature(tiny_checkpoints, small_faces, capsys):
    assert main(["evaluate", "--checkpoints", str(tiny_checkpoints), "--data", str(small_faces), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    keys = [(r["method"], r["temperature"]) for r in result["rows"]]
    assert keys == [("bicubic", None), ("sr", None), ("srgan", None),
                    ("flow", 0.0), ("flow", 0.5), ("flow", 0.8), ("flow", 1.0)]
    for row in result["rows"]:
        assert {"psnr", "ssim", "psnr_y", "ssim_y", "lr_psnr", "diversity"} <= set(row)
    flow = {r["temperature"]: r for r in result["rows"] if r["method"] == "flow"}
    assert flow[0.0]["diversity"] == 0 and flow[0.8]["diversity"] > 0


def test_evaluate_without_checkpoints_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "--checkpoints", str(tmp_path)]) == 2
    assert "no sr.pt, srgan.pt or flow.pt" in capsys.readouterr().err


@pytest.fixture(scope="module")
def random_report(tiny_checkpoints, small_faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    perceptual = load_perceptual(random_backbone=True, fid_dims=64)
    return out, compare(out, tiny_checkpoints, str(small_faces), perceptual, temperatures=(0.0, 0.8))


def test_compare_writes_every_file_and_labels_random_backbones(random_report):
    out, result = random_report
    assert sorted(p.name for p in out.iterdir()) == ["comparison.png", "perception_distortion.png", "table.json",
                                                      "table.md"]
    assert json.loads((out / "table.json").read_text())["rows"] == json.loads(json.dumps(result["rows"]))
    assert "RANDOM backbone weights" in (out / "table.md").read_text()
    for row in result["rows"]:
        # the folder's seeded split holds out one of its two 96x96 images: 2x2 patches of 64 px
        assert result["images"] == ["astronaut.png"]
        assert row["lpips"] >= 0 and row["fid_samples"] == 4 and "fid_warning" in row
        assert row["seconds_per_megapixel"] > 0
    flow = next(r for r in result["rows"] if r["method"] == "flow" and r["temperature"] == 0.8)
    assert flow["seed"] == {"fid": 6.026, "lpips": 0.2061}
    assert flow["receptive_field_px"] > 0 and flow["macs_per_hr_pixel"] > 0


def test_compare_offline_reports_metrics_unavailable(tiny_checkpoints, small_faces, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    result = compare(tmp_path / "out", tiny_checkpoints, str(small_faces), temperatures=(0.0, 0.8))
    assert set(result["unavailable"]) == {"lpips", "fid"}
    assert all("lpips" not in r and "fid" not in r for r in result["rows"])
    table = (tmp_path / "out" / "table.md").read_text()
    assert "**LPIPS unavailable:**" in table and "n/a" in table


@pytest.fixture(scope="module")
def methods_and_faces(tiny_checkpoints):
    return load_methods(tiny_checkpoints), {name: face[:, 80:176, 80:176] for name, face in bundled_heldout().items()}


def test_temperature_scrubber_regenerates_on_slider_and_button(methods_and_faces):
    methods, faces = methods_and_faces
    scrubber = TemperatureScrubber(methods, faces)
    first_image, first_stats = scrubber.flow_image.value, dict(scrubber.last_stats)
    scrubber.slider.value = 0.0
    assert scrubber.flow_image.value != first_image
    assert scrubber.last_stats["temperature"] == 0.0 and scrubber.last_stats["diversity"] == 0.0
    assert first_stats["diversity"] > 0 and "T = 0.00" in scrubber.stats.value
    scrubber.slider.value = 0.8
    assert scrubber.flow_image.value == first_image  # same latent, same temperature: same picture
    scrubber.button.click()
    assert scrubber.flow_image.value != first_image and scrubber.last_stats["seed"] == 1
    fixed_before = [box.children[1].value for box in scrubber.fixed_box.children]
    scrubber.image_choice.value = list(faces)[1]
    assert [box.children[1].value for box in scrubber.fixed_box.children] != fixed_before


def test_flow_view_is_reproducible(methods_and_faces):
    methods, faces = methods_and_faces
    hr = next(iter(faces.values()))
    a, stats_a = flow_view(methods["flow"], hr, 0.8, seed=3)
    b, stats_b = flow_view(methods["flow"], hr, 0.8, seed=3)
    assert torch.equal(a, b) and stats_a == stats_b


def test_crop_comparator_shows_the_right_pixels(methods_and_faces):
    methods, faces = methods_and_faces
    comparator = CropComparator(methods, faces)
    comparator.size.value, comparator.top.value, comparator.left.value = 16, 10, 20
    panel = comparator.last_panel
    name = comparator.image_choice.value
    assert set(panel) == {"original", "bicubic", "SR (no GAN)", "SRGAN", "flow T=0.8"}
    assert torch.equal(panel["original"][0], faces[name][:, 10:26, 20:36])
    assert torch.equal(panel["SRGAN"][0], comparator.outputs[name]["SRGAN"][:, 10:26, 20:36])
    assert panel["original"][1] == float("inf") and panel["bicubic"][1] < 60
    pictures = [box.children[1].value for box in comparator.panel.children]
    comparator.left.value = 40
    assert [box.children[1].value for box in comparator.panel.children] != pictures
    comparator.size.value = 96  # the whole image: the position is clamped to stay inside
    assert comparator.last_panel["original"][0].shape[-2:] == (96, 96)


def test_crop_panel_rejects_crops_outside_the_image(methods_and_faces):
    outputs = {"original": torch.rand(3, 32, 32), "bicubic": torch.rand(3, 32, 32)}
    with pytest.raises(ValueError, match="does not fit"):
        crop_panel(outputs, 20, 20, 16)


def test_bench_reports_ratios(tiny):
    result = bench(tiny, batch=2, crop=32, logdet_sides=(2, 4), repeats=1)
    assert result["training"]["flow_over_gan_throughput"] > 0
    assert result["training"]["flow_saved_activation_bytes"] > 0
    assert result["inference"]["flow_sample"]["slowdown_vs_bicubic"] > 0
    assert all(r["abs_difference"] < 1e-9 for r in result["logdet"])
