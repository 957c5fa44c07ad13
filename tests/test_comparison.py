"""evaluate, report, the methods table, the widgets (driven without a browser) and bench, on tiny checkpoints."""
import json

import pytest
import torch

from sr_lib.bench import bench, format_bench
from sr_lib.cli import main
from sr_lib.data import bundled_heldout
from sr_lib.evaluate import evaluate
from sr_lib.imaging import degrade
from sr_lib.methods import METHODS, TEMPERATURES, Method, load_methods, register
from sr_lib.report import report
from sr_lib.widgets import CropComparator, TemperatureScrubber, crop_panel, png_bytes, sample_view

OFFLINE = {"lpips": None, "fid": None, "unavailable": {"lpips": "no weights (test)", "fid": "no weights (test)"}}


def test_evaluate_json_has_every_method_and_temperature(tiny_checkpoints, small_faces, capsys):
    assert main(["evaluate", "--checkpoints", str(tiny_checkpoints), "--data", str(small_faces), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == ["astronaut.png", "grace_hopper.png"]  # the folder is used whole
    keys = [(r["method"], r["temperature"]) for r in result["rows"]]
    assert keys == [("bicubic", None), ("sr", None), ("srgan", None)] + [("flow", t) for t in TEMPERATURES]
    for row in result["rows"]:
        assert {"psnr", "ssim", "psnr_y", "ssim_y", "lr_psnr", "diversity", "swd", "hf_energy_ratio"} <= set(row)
        assert len(row["swd_levels"]) == 3  # 96 px: bands at 96 and 48 px, the 24 px low-pass
    flow = {r["temperature"]: r for r in result["rows"] if r["method"] == "flow"}
    assert flow[0.0]["diversity"] == 0 and flow[0.8]["diversity"] > 0
    assert flow[0.8]["study"] == {"fid": 6.026, "lpips": 0.2061} and flow[0.5]["study"] is None


def test_evaluate_without_checkpoints_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "--checkpoints", str(tmp_path)]) == 2
    assert "no sr.pt, srgan.pt, flow.pt in" in capsys.readouterr().err


@pytest.fixture(scope="module")
def random_report(tiny_checkpoints, small_faces, tmp_path_factory, random_perceptual):
    out = tmp_path_factory.mktemp("report")
    return out, report(out, tiny_checkpoints, str(small_faces), random_perceptual, temperatures=(0.0, 0.8))


def test_report_writes_every_file_and_every_measure(random_report):
    out, result = random_report
    assert sorted(p.name for p in out.iterdir()) == ["comparison.png", "diversity.png", "perception_distortion.png",
                                                      "table.json", "table.md"]
    assert json.loads((out / "table.json").read_text())["rows"] == json.loads(json.dumps(result["rows"]))
    for row in result["rows"]:
        # both 96x96 images: 2x2 patches of 64 px every 32 px, 4 per image
        assert row["lpips"] >= 0 and row["fid_samples"] == 8 and "fid_warning" in row
        assert row["seconds_per_megapixel"] > 0
    rows = {(r["method"], r["temperature"]): r for r in result["rows"]}
    bicubic, sr, flow = rows[("bicubic", None)], rows[("sr", None)], rows[("flow", 0.8)]
    assert bicubic["params"] == 0 and bicubic["macs_per_hr_pixel"] is None
    assert sr["macs_per_hr_pixel"] == rows[("srgan", None)]["macs_per_hr_pixel"]  # one generator, two trainings
    assert flow["macs_per_hr_pixel"] > sr["macs_per_hr_pixel"]  # the flow contains a generator as its base
    table = (out / "table.md").read_text()
    assert sum(line.startswith("| ") for line in table.splitlines()) == 1 + len(result["rows"])
    assert "| flow | 0.8 |" in table


def test_report_offline_says_which_metrics_are_unavailable(tiny_checkpoints, small_faces, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert main(["report", "--checkpoints", str(tiny_checkpoints), "--data", str(small_faces),
                 "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "table.json").read_text())
    assert set(result["unavailable"]) == {"lpips", "fid"}
    assert all("lpips" not in r and "fid" not in r and r["swd"] > 0 for r in result["rows"])
    table = (tmp_path / "out" / "table.md").read_text()
    assert "**LPIPS unavailable:**" in table and "alexnet-owt-7be5be79.pth" in table and "| n/a |" in table


def test_registering_a_name_twice_or_a_sampler_without_decode_is_refused():
    with pytest.raises(ValueError, match="exists already"):
        register(Method("sr", "again", METHODS["sr"].run))
    with pytest.raises(ValueError, match="needs decode"):
        register(Method("sampler", "sampler", METHODS["flow"].run, stochastic=True))
    assert "sampler" not in METHODS


@pytest.fixture(scope="module")
def methods_and_faces(tiny_checkpoints):
    return load_methods(tiny_checkpoints), {name: face[:, 80:176, 80:176] for name, face in bundled_heldout().items()}


def test_temperature_scrubber_regenerates_on_slider_and_button(methods_and_faces):
    models, faces = methods_and_faces
    scrubber = TemperatureScrubber(models, faces)
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


def test_sample_view_is_reproducible_and_the_scrubber_shows_its_numbers(methods_and_faces):
    """The scrubber draws with the image's base computed once and shows the sample before measuring its
    diversity: what it shows and prints is sample_view's, which prepares nothing in advance."""
    models, faces = methods_and_faces
    name, hr = next(iter(faces.items()))
    a, stats_a = sample_view("flow", models["flow"], hr, 0.8, seed=3)
    b, stats_b = sample_view("flow", models["flow"], hr, 0.8, seed=3)
    assert torch.equal(a, b) and stats_a == stats_b
    scrubber = TemperatureScrubber(models, faces)
    scrubber.image_choice.value, scrubber.seed = name, 3
    shown = []
    scrubber.flow_image.observe(lambda change: shown.append(scrubber.stats.value), names="value")
    scrubber.slider.value = 0.8 if scrubber.slider.value != 0.8 else 0.85
    scrubber.slider.value = 0.8
    assert scrubber.last_stats == stats_a and "measuring" in shown[-1]  # the sample came first
    assert scrubber.flow_image.value == png_bytes(a, scrubber.zoom_factor)


@pytest.mark.parametrize("name", [name for name, method in METHODS.items() if method.prepare is not None])
def test_what_a_method_prepares_once_changes_none_of_its_draws(name, methods_and_faces):
    """Method.draws with `prepare`'s result computed once, and reused across every temperature the tables
    use (as super_resolve does), equals drawing each output from scratch with the same generator stream."""
    models, faces = methods_and_faces
    method, model = METHODS[name], models[name]
    lr = degrade(next(iter(faces.values()))[None])
    prepared = method.prepared(model, lr)
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for t in TEMPERATURES:
        once = method.draws(model, lr, t, 3, gen_a, prepared)
        each = torch.stack([method.run(model, lr, t, gen_b).clamp(0, 1) for _ in range(3)])
        assert torch.equal(once, each), (name, t)
    with pytest.raises(ValueError, match="count of at least 1"):
        method.draws(model, lr, 0.8, 0, gen_a)


def test_crop_comparator_shows_the_right_pixels(methods_and_faces):
    models, faces = methods_and_faces
    comparator = CropComparator(models, faces)
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


def test_crop_comparator_projects_outputs_to_be_lr_consistent(methods_and_faces):
    from sr_lib.imaging import degrade, project_consistent
    from sr_lib.metrics import psnr
    models, faces = methods_and_faces
    comparator = CropComparator(models, faces)
    name = comparator.image_choice.value
    lr = degrade(faces[name][None])
    comparator.consistent.value = True
    projected = comparator.projected[name]
    assert torch.equal(projected["original"], faces[name])
    for label in ("SR (no GAN)", "SRGAN", "flow T=0.8"):  # clamped for display, so not exact, but closer
        raw = comparator.outputs[name][label]
        assert torch.equal(projected[label], project_consistent(raw[None], lr)[0].clamp(0, 1))
        assert psnr(degrade(projected[label][None]), lr, border=1) > psnr(degrade(raw[None]), lr, border=1)


def _upload(content: bytes, name: str) -> tuple:
    import datetime
    return ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


def test_photo_upscaler_takes_an_upload_and_names_a_bad_one(methods_and_faces):
    import io
    from PIL import Image
    from sr_lib.widgets import PhotoUpscaler, uploaded_file
    models, faces = methods_and_faces
    upscaler = PhotoUpscaler(models, next(iter(faces.values()))[:, :40, :40], "example", max_side=32)
    assert upscaler.lr.shape == (1, 3, 32, 32) and set(upscaler.lr_psnr) == {"bicubic", "SR (no GAN)", "SRGAN",
                                                                              "flow T=0.8"}
    buffer = io.BytesIO()
    Image.fromarray((torch.rand(20, 24, 3) * 255).byte().numpy()).convert("L").save(buffer, format="PNG")
    upscaler.upload.value = _upload(buffer.getvalue(), "gray.png")
    assert upscaler.name == "gray.png" and upscaler.lr.shape == (1, 3, 20, 24)  # small photos are not cropped
    assert all(image.shape == (3, 80, 96) for image in upscaler.outputs.values())
    upscaler.upload.value = _upload(b"not an image", "notes.png")
    assert "notes.png" in upscaler.status.value and "not an image file" in upscaler.status.value
    assert upscaler.name == "gray.png"  # the last good photo stays
    before = upscaler.outputs["flow T=0.8"]
    upscaler.slider.value = 0.0
    assert "flow T=0.8" not in upscaler.outputs and not torch.equal(upscaler.outputs["flow T=0"], before)
    # ipywidgets 7 (Colab) gives a dict of name -> {'content': bytes}
    assert uploaded_file({"a.png": {"content": b"x"}, "b.png": {"content": b"y"}}) == ("b.png", b"y")
    assert uploaded_file(()) is None


def test_crop_panel_rejects_crops_outside_the_image():
    outputs = {"original": torch.rand(3, 32, 32), "bicubic": torch.rand(3, 32, 32)}
    with pytest.raises(ValueError, match="does not fit"):
        crop_panel(outputs, 20, 20, 16)


def test_bench_measures_every_method_in_one_run(tiny):
    result = bench(tiny, batch=2, crop=32, logdet_sides=(2, 4), output_side=64, min_run_time=0.05)
    assert list(result["training"]) == ["sr", "srgan", "flow"] and list(result["inference"]) == list(METHODS)
    training = result["training"]
    assert training["sr"]["throughput_vs_first"] == 1.0
    # SRGAN's step runs the same generator plus a discriminator: slower, and it keeps more activations
    assert training["srgan"]["throughput_vs_first"] < 1 and training["srgan"]["activations_vs_first"] > 1
    # the flow's frozen-base forward plus its steps keep more activations than the generator alone
    assert training["flow"]["activations_vs_first"] > 1
    assert result["inference"]["bicubic"]["vs_baseline"] == 1.0
    # the adversarial step also runs the discriminator, forward and backward: more multiply-accumulates
    assert training["srgan"]["macs_per_step"] > training["sr"]["macs_per_step"] > 0
    assert all(0 < row["efficiency"] < 2 and row["spread"] >= 1 for row in training.values())
    assert result["reference_conv"]["memory_format"] in ("contiguous_format", "channels_last")
    assert 0 < result["reference_conv"]["generator_convs_vs_reference"] < 2
    assert all(r["abs_difference"] < 1e-9 for r in result["logdet"])
    assert "flow" in format_bench(result)
    act = result["interactive"]
    # the base, computed once, is work the draws no longer repeat; the scrubber shows its sample first
    assert act["sampled"] == "flow" and 0 < act["draws_vs_generator"] < act["draws_recomputing_base_vs_generator"]
    assert 0 < act["scrubber_first_sample_vs_generator"] < act["scrubber_move_vs_generator"]
    assert "scrubber move" in format_bench(result)


def test_diversity_maps_and_their_figure_at_an_integer_zoom(tiny_checkpoints):
    from sr_lib.evaluate import diversity_maps
    from sr_lib.metrics import local_correlation
    from sr_lib.plotting import DPI, diversity_figure
    hr = bundled_heldout()["astronaut"][None, :, 80:176, 80:176]
    flow = load_methods(tiny_checkpoints)["flow"]
    maps = diversity_maps(flow, hr, temperatures=(0.5, 1.0), samples=3)
    assert set(maps["spread"]) == {0.5, 1.0} and maps["spread"][1.0].shape == hr.shape[-2:]
    assert maps["samples"][1.0].shape == (3, 1, *hr.shape[1:])
    assert maps["spread"][1.0].mean() > maps["spread"][0.5].mean() > 0
    assert all(-1 <= r <= 1 for r in maps["correlation"].values())
    assert local_correlation(maps["open"], maps["open"]) == pytest.approx(1.0)
    assert local_correlation(maps["open"], -maps["open"]) == pytest.approx(-1.0)
    fig = diversity_figure(maps, hr[0], (8, 8, 16), crop_zoom=3, shown=2)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 + 2 * 3  # original, open detail; per T two samples and the spread
    width, height = fig.get_size_inches() * DPI
    for ax in panels:  # every crop pixel is 3 x 3 screen pixels
        box = ax.get_position()
        assert round(box.width * width) == 48 and round(box.height * height) == 48


def test_image_rows_draw_every_image_at_an_integer_zoom_and_wrap_to_fit():
    from sr_lib.plotting import DPI, MAX_WIDTH, image_rows
    faces = {f"method {k}": torch.rand(3, 256, 256) for k in range(6)}
    small = {f"crop {k}": torch.rand(3, 16, 16) for k in range(3)}
    fig = image_rows({"face": faces, "lr": small}, boxes={"face": (10, 20, 48)})
    width, height = fig.get_size_inches() * DPI
    assert width <= MAX_WIDTH
    sizes = sorted({(round(ax.get_position().width * width), round(ax.get_position().height * height))
                    for ax in fig.axes})
    assert sizes == [(128, 128), (192, 192), (256, 256)]  # LR x8, crops x4, faces 1:1
