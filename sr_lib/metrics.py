"""Distortion metrics as BasicSR and SRFlow report them, on images in [0, 1].

PSNR and SSIM on RGB and on the Y channel of YCbCr (ITU-R BT.601, as BasicSR's `rgb2ycbcr`), after
cropping a border of 4 pixels (the scale factor). LR-consistency PSNR (SRFlow): downsample the output with
the same degradation and compare it with the LR input; a super-resolved image that explains its input
scores high whatever details it invents. Diversity: the mean per-pixel standard deviation across samples.
Lattice: how much the undetermined detail depends on the position within the LR pixel grid (dots).
"""
import math

import numpy as np
import torch
from skimage.metrics import structural_similarity

from .errors import UserError
from .config import SCALE
from .imaging import check_images, degrade, downsample, upsample

BORDER = SCALE


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) RGB in [0,1] -> (N,1,H,W) BT.601 luma in [16/255, 235/255]."""
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (16.0 + (x * weights).sum(1, keepdim=True)) / 255.0


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border else x


def _check_comparable(output: torch.Tensor, target: torch.Tensor) -> None:
    """Both finite images on the [0, 1] scale (any channel count), of one shape: NaN would otherwise
    give a PSNR of inf and an SSIM of 1."""
    check_images(output, "output", channels=None)
    check_images(target, "target", channels=None)
    if output.shape != target.shape:
        raise UserError(f"output and target shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")


def psnr(output: torch.Tensor, target: torch.Tensor, border: int = BORDER) -> float:
    """Mean over the batch of 10 log10(1 / MSE), after cropping `border` pixels."""
    _check_comparable(output, target)
    mse = (_crop(output, border) - _crop(target, border)).double().square().flatten(1).mean(1)
    return float(np.mean([10 * math.log10(1.0 / m) if m > 0 else math.inf for m in mse.tolist()]))


def ssim(output: torch.Tensor, target: torch.Tensor, border: int = BORDER) -> float:
    """Mean over the batch of scikit-image's SSIM (Gaussian window, as Wang et al.), after the border crop."""
    _check_comparable(output, target)
    values = []
    for out, ref in zip(_crop(output, border), _crop(target, border)):
        out_np, ref_np = out.permute(1, 2, 0).double().numpy(), ref.permute(1, 2, 0).double().numpy()
        values.append(structural_similarity(out_np, ref_np, channel_axis=2, data_range=1.0,
                                            gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
    return float(np.mean(values))


def distortion(output: torch.Tensor, target: torch.Tensor, lr: torch.Tensor) -> dict:
    """PSNR/SSIM on RGB and Y, and LR-consistency PSNR, of an output against its HR target and LR input."""
    check_images(output, "output", unit_range=False)  # network outputs overshoot; clamped as when shown
    check_images(lr, "LR image")
    output = output.clamp(0, 1)
    y_out, y_ref = rgb_to_y(output), rgb_to_y(target)
    return {"psnr": psnr(output, target), "ssim": ssim(output, target),
            "psnr_y": psnr(y_out, y_ref), "ssim_y": ssim(y_out, y_ref),
            "lr_psnr": psnr(degrade(output), lr, border=BORDER // SCALE)}


def spread_map(samples: torch.Tensor) -> torch.Tensor:
    """(N, H, W): where samples (S, N, 3, H, W) disagree, the per-pixel standard deviation across them
    (mean over the colour channels)."""
    return samples.clamp(0, 1).std(dim=0, unbiased=False).mean(dim=1)


def diversity(samples: torch.Tensor) -> float:
    """Mean per-pixel standard deviation across samples (S, N, 3, H, W); 0 for a deterministic method."""
    return spread_map(samples).mean().item()


def local_correlation(a: torch.Tensor, b: torch.Tensor, window: int = 9) -> float:
    """Pearson correlation of two (..., H, W) maps after averaging each over window x window px: whether
    they are high in the same *places*, not at the same pixels."""
    local = torch.nn.AvgPool2d(window, stride=1, padding=window // 2, count_include_pad=False)
    pair = [local(m.double().reshape(-1, 1, *m.shape[-2:])).flatten() for m in (a, b)]
    return torch.corrcoef(torch.stack(pair))[0, 1].item()


def grid_pattern(x: torch.Tensor) -> torch.Tensor:
    """(N, C, 16): the mean undetermined detail (the image minus its bicubic round trip through the LR
    image) at each of the 16 positions within the LR pixels' 4x4 blocks. A natural image's detail does
    not care where the LR grid lies, so these 16 means are nearly equal; a lattice of dots is a pattern
    repeated in every block, and it shows here however faint it is per pixel."""
    detail = x - upsample(downsample(x))  # x may be a network output in training: no value check
    n, c, h, w = detail.shape
    return detail.reshape(n, c, h // SCALE, SCALE, w // SCALE, SCALE).mean(dim=(2, 4)).reshape(n, c, SCALE * SCALE)


def lattice(x: torch.Tensor) -> float:
    """The spread (std) of `grid_pattern`'s 16 means, averaged over images and channels, in grey levels 0-255."""
    return grid_pattern(x).std(-1).mean().item() * 255
