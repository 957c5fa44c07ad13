"""Your own photo, 4x: any size and pixel format in, a PNG exactly four times as large out.

* Reading: `data.read_photo` (any bit depth, mode and EXIF orientation). An alpha channel is kept
  (upscaled bicubically: it has no texture to invent) or dropped, as asked. The photo *is* the LR input:
  nothing is downsampled first.
* Tiling (`tiled`): the LR image is cut into tiles, each widened by the method's margin (half its
  receptive field, `Method.margin`, from the layer shapes), so every kept output pixel sees exactly what it would see in
  one pass over the whole image: the result equals untiled inference up to float rounding, and memory
  depends on the tile size, not on the photo's. For a stochastic method, the noise is drawn once for the
  whole image and each tile decodes its part of it (`Method.decode`), so a seed gives the same sample
  tiled or not. Tiles and noise go to the device and dtype of the model's weights, results come back.
* Writing: 8-bit PNG (grayscale in, grayscale out), written atomically; existing files are refused unless
  `overwrite`.
"""
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .errors import UserError
from .config import SCALE
from .data import read_photo
from .files import atomic_write
from .imaging import check_images, upsample
from .methods import METHODS
from .methods.base import latent, placed
from .models import check_temperature

DEFAULT_TILE = 192  # LR pixels, a 768 px output tile; the README's "Your own photo" gives the memory it peaks at


def tiled(fn, lr: torch.Tensor, tile: int, pad: int, progress: str | None = None) -> torch.Tensor:
    """fn(lr_tile, (top, left)) -> HR tile, over (tile x tile) LR tiles each widened by `pad` LR pixels
    (cut back at the image's border); the tiles' centres are assembled as 8-bit levels (1, 3, 4H, 4W),
    each stored as soon as it is done: a photo's float output never exists whole."""
    if tile < 1 or pad < 0:
        raise UserError(f"tile must be >= 1 and margin >= 0, got {tile} and {pad}")
    _, _, h, w = lr.shape
    out = torch.empty(1, 3, SCALE * h, SCALE * w, dtype=torch.uint8)
    boxes = [(top, left) for top in range(0, h, tile) for left in range(0, w, tile)]
    for top, left in tqdm(boxes, desc=progress, disable=progress is None or len(boxes) == 1, leave=False):
        t0, l0 = max(0, top - pad), max(0, left - pad)
        t1, l1 = min(h, top + tile + pad), min(w, left + tile + pad)
        hr = fn(lr[..., t0:t1, l0:l1], (t0, l0))
        inner = hr[..., SCALE * (top - t0):SCALE * (min(h, top + tile) - t0),
                   SCALE * (left - l0):SCALE * (min(w, left + tile) - l0)].cpu()
        inner = to_8bit(inner)
        out[..., SCALE * top:SCALE * top + inner.shape[-2], SCALE * left:SCALE * left + inner.shape[-1]] = inner
    return out


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] (clamped) as rounded 8-bit levels."""
    return x.mul(255).round_().clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def upscale(name: str, model, lr: torch.Tensor, temperature: float | None = None, seed: int = 0,
            tile: int = DEFAULT_TILE, pad: int | None = None, progress: str | None = None) -> torch.Tensor:
    """Method `name`'s 4x output of one LR image (1, 3, H, W) as 8-bit levels (1, 3, 4H, 4W), computed tile
    by tile. A stochastic method draws one z for the whole image from `seed` (as `model.sample` does with
    a generator of that seed), then each tile takes its part."""
    check_images(lr, "LR image")
    if lr.shape[0] != 1:
        raise UserError(f"upscale takes one image at a time, got a batch of {lr.shape[0]}")
    method = METHODS[name]
    pad = method.margin(getattr(model, "config", None)) if pad is None else pad
    if not method.stochastic:
        return tiled(lambda part, _: method.run(model, placed(model, part), None, None), lr, tile, pad, progress)
    check_temperature(temperature)
    z = latent(lr, temperature, torch.Generator().manual_seed(seed))  # on the CPU: a seed is one sample anywhere

    def decode(part, corner):
        top, left = (SCALE * c for c in corner)
        z_part = z[..., top:top + SCALE * part.shape[-2], left:left + SCALE * part.shape[-1]]
        return method.decode(model, placed(model, part), placed(model, z_part), None)
    return tiled(decode, lr, tile, pad, progress)


def to_png_array(rgb: torch.Tensor, alpha: torch.Tensor | None, grayscale: bool) -> np.ndarray:
    """(3, H, W) 8-bit RGB (and float alpha in [0, 1]) -> the uint8 array PIL writes: L, RGB, RGBA or LA."""
    if grayscale:  # the networks are colour; a grayscale photo stays grayscale (BT.601 luma)
        rgb = to_8bit((rgb.float() * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True) / 255)
    channels = rgb if alpha is None else torch.cat([rgb, to_8bit(alpha)])
    array = channels.permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def write_png(path: str | Path, array: np.ndarray, overwrite: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another --out or pass --overwrite")
    return atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def upscale_photo(source, models: dict, name: str, temperature: float | None = None, seed: int = 0,
                  alpha: str = "keep", tile: int = DEFAULT_TILE, progress: str | None = None) -> np.ndarray:
    """Read a photo, super-resolve it with method `name`, and return the PNG array (4x each side)."""
    photo = read_photo(source, alpha)
    hr = upscale(name, models.get(name), photo.rgb[None], temperature, seed, tile, progress=progress)[0]
    hr_alpha = None if photo.alpha is None else upsample(photo.alpha[None])[0]
    return to_png_array(hr, hr_alpha, photo.grayscale)

