"""The comparison notebook's two widgets, with plain functions underneath so pytest drives them headless.

* `TemperatureScrubber`: a slider for the flow's latent temperature regenerates its output for the chosen
  image and updates LR-PSNR, diversity and sharpness next to the fixed outputs of the deterministic
  methods (bicubic, SR, SRGAN); a button draws a new latent sample at the same temperature.
* `CropComparator`: choose an image, a crop position and size; every method's crop side by side,
  enlarged with nearest-neighbour, each with its PSNR on that crop; optionally every output projected
  to be exactly LR-consistent (`imaging.project_consistent`), so only what it invented differs.
* `PhotoUpscaler`: upload your own photo (it is the LR input; no ground truth exists): every method's 4x
  output, the flow's at a temperature slider, a zoomed crop of each, and what can be measured without a
  ground truth, LR-consistency.
The methods come from `methods.METHODS`; the scrubber drives its stochastic one (the flow).
Images are rendered to PNG bytes at an integer zoom (nearest-neighbour), so pixels stay visible.
"""
import io

import ipywidgets as widgets
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import UserError
from .config import SCALE
from .data import read_photo
from .imaging import degrade, project_consistent
from .methods import METHODS, STUDY_TEMPERATURE, TEMPERATURES, label
from .metrics import diversity, psnr
from .perceptual import hf_energy_ratio
from .plotting import crop, to_numpy, zoom

DIVERSITY_DRAWS = 4
YOUR_PHOTO = "your photo (LR)"  # the uploaded photo's caption: the input, not an output


def png_bytes(image: torch.Tensor, factor: int = 1) -> bytes:
    """A (3, H, W) image in [0, 1] as PNG bytes, enlarged `factor` times by nearest-neighbour."""
    array = (zoom(to_numpy(image), factor) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- plain functions
def _stochastic(models: dict) -> str | None:
    return next((name for name in models if METHODS[name].stochastic), None)


@torch.no_grad()
def deterministic_outputs(models: dict, lr: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every deterministic method's output (3, 4h, 4w) for one LR batch (1, 3, h, w), by label."""
    return {label(name): METHODS[name].run(model, lr, None, None).clamp(0, 1)[0]
            for name, model in models.items() if not METHODS[name].stochastic}


def fixed_outputs(models: dict, hr: torch.Tensor) -> dict[str, torch.Tensor]:
    """The original and every deterministic method's output for one HR image (3, H, W), by label."""
    return {"original": hr, **deterministic_outputs(models, degrade(hr[None]))}


def centre_crop_lr(photo: torch.Tensor, max_side: int) -> torch.Tensor:
    """The photo (3, H, W) cut to its central max_side x max_side pixels at most: the LR input."""
    h, w = photo.shape[-2:]
    top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    return photo[:, top:top + max_side, left:left + max_side]


def uploaded_file(value) -> tuple[str, bytes] | None:
    """(name, bytes) of the last file in a FileUpload's value: a tuple of dicts in ipywidgets 8, a dict
    name -> {'content': ...} in 7 (Colab); None when nothing is uploaded."""
    items = [{"name": name, **item} for name, item in value.items()] if isinstance(value, dict) else list(value)
    return (items[-1]["name"], bytes(items[-1]["content"])) if items else None


def sample_stats(name: str, hr: torch.Tensor, lr: torch.Tensor, draws: torch.Tensor, temperature: float,
                 seed: int) -> dict:
    """The first of `draws` (S, 1, 3, H, W) measured against hr (3, H, W): LR-PSNR, PSNR and HF ratio;
    the diversity over all S."""
    sample = draws[0]
    return {"method": name, "temperature": temperature, "seed": seed, "lr_psnr": psnr(degrade(sample), lr, border=1),
            "psnr": psnr(sample, hr[None]), "diversity": diversity(draws), "hf_energy_ratio": hf_energy_ratio(sample, hr[None])}


@torch.no_grad()
def sample_view(name: str, model, hr: torch.Tensor, temperature: float, seed: int) -> tuple[torch.Tensor, dict]:
    """A stochastic method's sample for (temperature, seed) and its `sample_stats` over 4 draws."""
    lr = degrade(hr[None])
    draws = METHODS[name].draws(model, lr, temperature, DIVERSITY_DRAWS, torch.Generator().manual_seed(seed))
    return draws[0, 0], sample_stats(name, hr, lr, draws, temperature, seed)


def consistent_outputs(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every output projected onto the images whose degradation is exactly the original's LR image
    (clamped to [0, 1] for display); the original, consistent already, stays as it is."""
    lr = degrade(outputs["original"][None])
    return {key: image if key == "original" else project_consistent(image[None], lr)[0].clamp(0, 1)
            for key, image in outputs.items()}


def crop_panel(outputs: dict[str, torch.Tensor], top: int, left: int, size: int) -> dict[str, tuple[torch.Tensor, float]]:
    """Each output's crop at (top, left, size), with its PSNR against the original's crop (no border)."""
    reference = crop(outputs["original"], top, left, size)
    return {label: (crop(image, top, left, size), psnr(crop(image, top, left, size)[None], reference[None], border=0))
            for label, image in outputs.items()}


def _stats_html(stats: dict) -> str:
    return (f"<b>{label(stats['method'])}, T = {stats['temperature']:.2f}</b> (sample #{stats['seed']}): LR-PSNR {stats['lr_psnr']:.2f} dB · "
            f"PSNR {stats['psnr']:.2f} dB · diversity {stats['diversity']:.4f} · HF-energy ratio "
            f"{stats['hf_energy_ratio']:.2f} (1 = as much fine detail as the original)")


def _captioned(image_widget: widgets.Image, caption: str) -> widgets.VBox:
    return widgets.VBox([widgets.HTML(f"<div style='text-align:center'>{caption}</div>"), image_widget])


# ---------------------------------------------------------------- widgets
class TemperatureScrubber:
    """Slider (latent temperature T, 0 to 1.2) and 'new sample' button for the flow on one chosen image."""

    def __init__(self, models: dict, images: dict[str, torch.Tensor], zoom_factor: int = 2):
        self.stochastic = _stochastic(models)
        if self.stochastic is None:
            raise UserError("the temperature scrubber needs the checkpoint of a method sampled at a temperature "
                             "(flow.pt)")
        self.models, self.images, self.zoom_factor = models, images, zoom_factor
        self.image_choice = widgets.Dropdown(options=list(images), description="image")
        self.slider = widgets.FloatSlider(value=STUDY_TEMPERATURE, min=0.0, max=max(TEMPERATURES), step=0.05,
                                          continuous_update=False,
                                          description="latent temperature T (std of z)", readout_format=".2f",
                                          style={"description_width": "initial"}, layout={"width": "420px"})
        self.button = widgets.Button(description="new sample at this T", icon="refresh", layout={"width": "max-content"})
        self.stats = widgets.HTML()
        self.flow_image = widgets.Image(format="png")
        self.fixed_box = widgets.HBox()
        self.seed = 0
        self.last_stats: dict = {}
        self.per_image: dict = {}  # per image: its LR image and what every draw of it shares
        self.image_choice.observe(lambda _: self.refresh(fixed=True), names="value")
        self.slider.observe(lambda _: self.refresh(), names="value")
        self.button.on_click(lambda _: self.new_sample())
        self.widget = widgets.VBox([widgets.HBox([self.image_choice, self.slider, self.button]), self.stats,
                                    widgets.HBox([self.fixed_box, _captioned(self.flow_image, f"{label(self.stochastic)} sample")])])
        self.refresh(fixed=True)

    def new_sample(self) -> None:
        self.seed += 1
        self.refresh()

    @torch.no_grad()
    def refresh(self, fixed: bool = False) -> None:
        """The new sample first, shown at once; then the three more draws its diversity needs (the same
        numbers as `sample_view`). The LR image and the flow's base are computed once per image."""
        name, temperature = self.image_choice.value, self.slider.value
        hr, method, model = self.images[name], METHODS[self.stochastic], self.models[self.stochastic]
        if fixed:
            self.fixed_box.children = [_captioned(widgets.Image(value=png_bytes(image, self.zoom_factor), format="png"), label)
                                       for label, image in fixed_outputs(self.models, hr).items()]
        if name not in self.per_image:
            lr = degrade(hr[None])
            self.per_image[name] = lr, method.prepared(model, lr)
        lr, prepared = self.per_image[name]
        gen = torch.Generator().manual_seed(self.seed)
        first = method.draws(model, lr, temperature, 1, gen, prepared)
        self.stats.value = f"<i>T = {temperature:.2f}: measuring the sample's diversity over {DIVERSITY_DRAWS} draws ...</i>"
        self.flow_image.value = png_bytes(first[0, 0], self.zoom_factor)
        draws = torch.cat([first, method.draws(model, lr, temperature, DIVERSITY_DRAWS - 1, gen, prepared)])
        self.last_stats = sample_stats(self.stochastic, hr, lr, draws, temperature, self.seed)
        self.stats.value = _stats_html(self.last_stats)


class CropComparator:
    """Image, crop position and size controls; every method's crop side by side with its PSNR."""

    def __init__(self, models: dict, images: dict[str, torch.Tensor], temperature: float = STUDY_TEMPERATURE,
                 display_px: int = 192):
        self.display_px = display_px
        self.outputs = {}
        stochastic = _stochastic(models)
        for name, hr in images.items():
            outputs = fixed_outputs(models, hr)
            if stochastic is not None:
                outputs[label(stochastic, temperature)] = sample_view(stochastic, models[stochastic], hr, temperature,
                                                                      seed=0)[0]
            self.outputs[name] = outputs
        side = min(min(hr.shape[-2:]) for hr in images.values())
        self.image_choice = widgets.Dropdown(options=list(images), description="image")
        self.size = widgets.IntSlider(value=48, min=8, max=side, step=8, description="crop size (px)",
                                      continuous_update=False, style={"description_width": "initial"})
        self.top = widgets.IntSlider(value=90, min=0, max=side - 8, description="top (px)", continuous_update=False)
        self.left = widgets.IntSlider(value=80, min=0, max=side - 8, description="left (px)", continuous_update=False)
        self.consistent = widgets.Checkbox(value=False, description="LR-consistent (projected)",
                                           style={"description_width": "initial"})
        self.projected: dict[str, dict] = {}  # computed when first asked for
        self.panel = widgets.HBox()
        for control in (self.image_choice, self.size, self.top, self.left, self.consistent):
            control.observe(lambda _: self.refresh(), names="value")
        self.last_panel: dict = {}
        self.widget = widgets.VBox([widgets.HBox([self.image_choice, self.size, self.consistent]),
                                    widgets.HBox([self.top, self.left]), self.panel])
        self.refresh()

    def refresh(self) -> None:
        name = self.image_choice.value
        outputs = self.outputs[name]
        if self.consistent.value:
            if name not in self.projected:
                self.projected[name] = consistent_outputs(outputs)
            outputs = self.projected[name]
        h, w = outputs["original"].shape[-2:]
        size = self.size.value
        self.top.max, self.left.max = h - size, w - size  # keep the crop inside the image
        top, left = min(self.top.value, h - size), min(self.left.value, w - size)
        self.last_panel = crop_panel(outputs, top, left, size)
        factor = max(1, self.display_px // size)
        self.panel.children = [
            _captioned(widgets.Image(value=png_bytes(image, factor), format="png"),
                       f"{label}<br>{'reference' if label == 'original' else f'{value:.2f} dB'}")
            for label, (image, value) in self.last_panel.items()]


class PhotoUpscaler:
    """Upload a photo: it is the LR input. Every method's 4x output, the flow's at the temperature slider,
    and a zoomed crop of each; the only measure without a ground truth is LR-consistency."""

    def __init__(self, models: dict, photo: torch.Tensor, name: str = "example", max_side: int = 96,
                 crop_px: int = 48, display_px: int = 192):
        self.stochastic = _stochastic(models)
        self.models, self.max_side, self.crop_px, self.display_px = models, max_side, crop_px, display_px
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="your photo")
        self.slider = widgets.FloatSlider(value=STUDY_TEMPERATURE, min=0.0, max=max(TEMPERATURES), step=0.1,
                                          continuous_update=False,
                                          description="flow temperature T", readout_format=".1f",
                                          style={"description_width": "initial"})
        self.top = widgets.FloatSlider(value=0.5, min=0, max=1, step=0.05, description="crop top",
                                       continuous_update=False, readout_format=".0%")
        self.left = widgets.FloatSlider(value=0.5, min=0, max=1, step=0.05, description="crop left",
                                        continuous_update=False, readout_format=".0%")
        self.status = widgets.HTML()
        self.images, self.crops = widgets.HBox(layout={"flex_flow": "row wrap"}), widgets.HBox(layout={"flex_flow": "row wrap"})
        self.outputs: dict[str, torch.Tensor] = {}
        self.lr_psnr: dict[str, float] = {}
        self.upload.observe(lambda change: self._on_upload(change["new"]), names="value")
        self.slider.observe(lambda _: self.refresh(), names="value")
        for control in (self.top, self.left):
            control.observe(lambda _: self.show(), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.upload, self.slider]), self.status, self.images,
                                    widgets.HBox([self.top, self.left]), self.crops])
        self.load(photo, name)

    def _on_upload(self, value) -> None:
        uploaded = uploaded_file(value)
        if uploaded is None:
            return
        name, data = uploaded
        try:
            photo = read_photo(io.BytesIO(data), alpha="drop").rgb
        except (ValueError, OSError) as error:  # shown in the widget; the last photo stays
            self.status.value = f"<span style='color:#c62828'><b>{name}</b>: {error}</span>"
            return
        self.load(photo, name)

    def load(self, photo: torch.Tensor, name: str) -> None:
        """Use a photo (3, H, W) in [0, 1], centre-cropped to max_side, as the LR input."""
        self.name, self.full_size = name, tuple(photo.shape[-2:])
        self.lr = centre_crop_lr(photo, self.max_side)[None]
        self.fixed = {YOUR_PHOTO: F.interpolate(self.lr, scale_factor=SCALE, mode="nearest")[0], **deterministic_outputs(self.models, self.lr)}
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        self.outputs = dict(self.fixed)
        if self.stochastic is not None:
            gen = torch.Generator().manual_seed(0)
            method = METHODS[self.stochastic]
            sample = method.run(self.models[self.stochastic], self.lr, self.slider.value, gen).clamp(0, 1)[0]
            self.outputs[label(self.stochastic, self.slider.value)] = sample
        self.lr_psnr = {key: psnr(degrade(image[None]), self.lr, border=1)
                        for key, image in self.outputs.items() if key != YOUR_PHOTO}
        h, w = self.lr.shape[-2:]
        cropped = "" if (h, w) == self.full_size else f", its central {w}x{h} px used (the notebook stays quick)"
        self.status.value = (f"<b>{self.name}</b>: {self.full_size[1]}x{self.full_size[0]} px{cropped}; outputs "
                             f"{4 * w}x{4 * h} px. No ground truth exists for your photo: the one measure left is "
                             "LR-consistency, each output downsampled and compared with your photo (in dB, "
                             "higher = explains your photo more exactly).")
        self.show()

    def show(self) -> None:
        """Redraw the full outputs and the crops at the crop sliders' position."""
        h, w = next(iter(self.outputs.values())).shape[-2:]
        size = min(self.crop_px, h, w)
        top, left = round(self.top.value * (h - size)), round(self.left.value * (w - size))
        def caption(key):
            return key + (f"<br>LR-PSNR {self.lr_psnr[key]:.1f} dB" if key in self.lr_psnr else "<br>(input, 4x pixels)")
        self.images.children = [_captioned(widgets.Image(value=png_bytes(image), format="png",
                                                         layout={"width": f"{self.display_px}px"}), caption(key))
                                for key, image in self.outputs.items()]
        self.crops.children = [_captioned(widgets.Image(value=png_bytes(crop(image, top, left, size),
                                                                        max(1, self.display_px // size)), format="png"), key)
                               for key, image in self.outputs.items()]
