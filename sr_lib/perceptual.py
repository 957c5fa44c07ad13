"""Perceptual metrics: LPIPS (lpips package, AlexNet) and FID (pytorch-fid, Inception), plus a weight-free
sharpness measure.

The backbones' ImageNet weights come only from torch hub's cache (see `sr_lib.weights`); the cache is
checked before a network is built, so nothing reaches for the internet. `random_backbone=True` builds the
same code path with random backbone weights: for tests of the plumbing only, never a real score.

FID on a handful of images: the distance compares two *distributions* of Inception features, so we draw
many overlapping patches per image (`fid_patches`: 64x64 px every 32 px, 49 per 256x256 image). With
fewer samples than feature dimensions the covariance is singular and the value is biased; the result says
how many samples it used and warns. Smaller feature sizes (64, 192, 768) are available and labelled.
"""
import warnings
from contextlib import contextmanager
from unittest import mock

import numpy as np
import torch

from .config import SCALE
from .imaging import check_images
from .weights import weight_path

FID_DIMS = (64, 192, 768, 2048)
FID_PATCH, FID_STRIDE = 64, 32


# ---------------------------------------------------------------- LPIPS
def lpips_model(random_backbone: bool = False) -> torch.nn.Module:
    """LPIPS with the AlexNet trunk and the package's linear heads, as the seed and SRFlow use it."""
    import lpips
    if not random_backbone:
        weight_path("alexnet")  # MissingWeights (with file and folder) before torchvision tries to download
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        return lpips.LPIPS(net="alex", pnet_rand=random_backbone, verbose=False).eval()


@torch.no_grad()
def lpips_distance(model: torch.nn.Module, output: torch.Tensor, target: torch.Tensor) -> float:
    """Mean LPIPS over the batch; images in [0, 1] are mapped to the [-1, 1] the network expects."""
    check_images(output, "output")
    check_images(target, "target")
    return model(output.clamp(0, 1) * 2 - 1, target * 2 - 1).mean().item()


# ---------------------------------------------------------------- FID
@contextmanager
def _random_inception_weights():
    """While active, pytorch-fid builds its Inception without loading (or downloading) any weights."""
    import torchvision
    with mock.patch("pytorch_fid.inception.load_state_dict_from_url", return_value=None), \
            mock.patch.object(torchvision.models.Inception3, "load_state_dict", lambda self, *a, **k: None):
        yield


def inception_model(dims: int = 2048, random_backbone: bool = False) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 returning `dims`-dimensional features (2048 = pool3, the standard FID)."""
    from pytorch_fid.inception import InceptionV3
    if dims not in FID_DIMS:
        raise ValueError(f"FID feature size must be one of {FID_DIMS}, got {dims}")
    block = [InceptionV3.BLOCK_INDEX_BY_DIM[dims]]
    if random_backbone:
        torch.manual_seed(0)
        with _random_inception_weights():
            return InceptionV3(block).eval()
    weight_path("inception")
    return InceptionV3(block).eval()


@torch.no_grad()
def inception_features(model: torch.nn.Module, images: torch.Tensor, batch: int = 50) -> np.ndarray:
    """(N, dims) features of images in [0, 1] (pytorch-fid resizes to 299 and rescales internally).

    The smaller feature sizes are spatial maps; like pytorch-fid's own script we average them over space.
    """
    feats = [torch.nn.functional.adaptive_avg_pool2d(model(images[i:i + batch])[0], 1)
             for i in range(0, len(images), batch)]
    return torch.cat(feats).flatten(1).double().numpy()


def fid_patches(images: list[torch.Tensor], patch: int = FID_PATCH, stride: int = FID_STRIDE) -> torch.Tensor:
    """All patch x patch windows every `stride` px of each (3, H, W) image, stacked (N, 3, patch, patch)."""
    windows = [img.unfold(1, patch, stride).unfold(2, patch, stride).permute(1, 2, 0, 3, 4).reshape(-1, 3, patch, patch)
               for img in images]
    return torch.cat(windows)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (pytorch-fid's stable formula)."""
    from pytorch_fid.fid_score import calculate_frechet_distance
    stats = [(f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))) for f in (features_a, features_b)]
    with warnings.catch_warnings():  # pytorch-fid 0.3 passes scipy's deprecated `disp=` (see pyproject's scipy pin)
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(calculate_frechet_distance(stats[0][0], stats[0][1], stats[1][0], stats[1][1]))


def fid(model: torch.nn.Module, outputs: torch.Tensor, targets: torch.Tensor, dims: int) -> dict:
    """FID between two patch sets, with the sample count and a warning when it is below `dims`."""
    n = min(len(outputs), len(targets))
    result = {"fid": frechet_distance(inception_features(model, outputs), inception_features(model, targets)),
              "dims": dims, "samples": n}
    if n < dims:
        result["warning"] = f"{n} samples < {dims} feature dimensions: covariance singular, FID biased upwards"
        warnings.warn(result["warning"], stacklevel=2)
    return result


# ---------------------------------------------------------------- sharpness without weights
def high_frequency_energy(images: torch.Tensor, cutoff: float = 0.5 / SCALE) -> torch.Tensor:
    """Per image, the spectral energy above `cutoff` cycles/px (default: the LR image's Nyquist limit)."""
    gray = images.mean(1)
    gray = gray - gray.mean(dim=(-2, -1), keepdim=True)
    spectrum = torch.fft.fft2(gray).abs().square()
    fy = torch.fft.fftfreq(gray.shape[-2]).abs()[:, None]
    fx = torch.fft.fftfreq(gray.shape[-1]).abs()[None, :]
    return (spectrum * (torch.maximum(fx, fy) > cutoff)).flatten(1).sum(1)


def hf_energy_ratio(output: torch.Tensor, target: torch.Tensor) -> float:
    """Energy above the LR Nyquist limit of the output over that of the ground truth (mean over the batch).

    That band is exactly what the LR input cannot carry, so every bit of it is invented: 1 means as much
    fine detail as the original, below 1 blurrier, above 1 noisier or over-sharpened. It says nothing about
    whether the invented detail is the right one.
    """
    return (high_frequency_energy(output.clamp(0, 1).double()) / high_frequency_energy(target.double())).mean().item()

