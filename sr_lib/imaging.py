"""Image tensors: validation with clear errors, and the one degradation used everywhere.

Images are float tensors (N, 3, H, W) with values in [0, 1]. The low-resolution (LR) image is the
high-resolution (HR) one downsampled 4x by antialiased bicubic interpolation (`degrade`); training,
evaluation and the LR-consistency metric all call this one function.
"""
import torch
import torch.nn.functional as F

from .config import SCALE


def check_images(x: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Raise ValueError naming the problem unless x is a finite float batch (N, 3, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, 3, H, W), got {tuple(x.shape)}")
    if x.shape[1] != 3:
        raise ValueError(f"{name} must have 3 (RGB) channels, got {x.shape[1]} in shape {tuple(x.shape)}; "
                         "convert grayscale or RGBA images to RGB first")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def check_pair(hr: torch.Tensor, lr: torch.Tensor) -> None:
    """Raise ValueError unless hr is exactly SCALE times lr in both spatial dimensions."""
    check_images(hr, "HR image")
    check_images(lr, "LR image")
    if hr.shape[0] != lr.shape[0]:
        raise ValueError(f"HR and LR batch sizes differ: {hr.shape[0]} vs {lr.shape[0]}")
    if tuple(hr.shape[-2:]) != (SCALE * lr.shape[-2], SCALE * lr.shape[-1]):
        raise ValueError(f"HR size {tuple(hr.shape[-2:])} is not {SCALE}x the LR size {tuple(lr.shape[-2:])}")


def degrade(hr: torch.Tensor) -> torch.Tensor:
    """HR -> LR: 4x bicubic downsampling with antialiasing (as PIL/Matlab imresize do)."""
    check_images(hr, "HR image")
    h, w = hr.shape[-2:]
    if h % SCALE or w % SCALE:
        raise ValueError(f"HR size {(h, w)} is not divisible by the scale factor {SCALE}")
    return F.interpolate(hr, size=(h // SCALE, w // SCALE), mode="bicubic", antialias=True, align_corners=False)


def upsample(lr: torch.Tensor) -> torch.Tensor:
    """LR -> HR size by plain bicubic interpolation: the baseline every network must beat."""
    return F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False)
