"""Image tensors: validation with clear errors, and the one degradation used everywhere.

Images are float tensors (N, 3, H, W) with values in [0, 1]. The low-resolution (LR) image is the
high-resolution (HR) one downsampled 4x by antialiased bicubic interpolation (`degrade`); training,
evaluation and the LR-consistency metric all call this one function.
"""

import torch
import torch.nn.functional as F

from .errors import UserError
from .config import SCALE


# Inputs may overshoot [0, 1] a little (bicubic resampling rings at edges); values beyond these bounds
# mean another scale, such as 0-255 floats, and are refused rather than turned into a white image.
VALUE_BOUNDS = (-0.5, 1.5)


def check_images(x: torch.Tensor, name: str = "image", channels: int | None = 3, unit_range: bool = True,
                 values: bool = True) -> torch.Tensor:
    """Raise UserError naming the problem unless x is a non-empty, finite float batch (N, C, H, W), with
    C = `channels` (any when None) and, when `unit_range`, values on the [0, 1] scale.

    values=False checks shape and dtype only. The networks' forwards do that: looking at the values (NaN,
    range) is a device-to-host synchronisation on a GPU, so it happens once, where an image enters the
    library (reading a photo, `degrade`, `Method.draws`, `upscale`, the metrics), not in every layer call."""
    if not isinstance(x, torch.Tensor):
        raise UserError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise UserError(f"{name} must have shape (N, {channels or 'C'}, H, W), got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise UserError(f"{name} must have 3 (RGB) channels, got {x.shape[1]} in shape {tuple(x.shape)}; "
                         "convert grayscale or RGBA images to RGB first")
    if x.numel() == 0:
        raise UserError(f"{name} is empty: shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UserError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}")
    if not values:
        return x
    if not torch.isfinite(x).all():
        raise UserError(f"{name} contains NaN or Inf values")
    if unit_range:
        low, high = x.min().item(), x.max().item()
        if low < VALUE_BOUNDS[0] or high > VALUE_BOUNDS[1]:
            hint = ": divide 8-bit values by 255" if high > 2 else ""
            raise UserError(f"{name} must hold values in [0, 1], got {low:.3g} to {high:.3g}{hint}")
    return x


def check_pair(hr: torch.Tensor, lr: torch.Tensor, hr_name: str = "HR image", unit_range: bool = True,
               values: bool = True) -> None:
    """Raise UserError unless hr is exactly SCALE times lr in both spatial dimensions. hr may be a latent
    z or a network's output, named `hr_name`, with `unit_range` False: it has no [0, 1] range."""
    check_images(hr, hr_name, unit_range=unit_range, values=values)
    check_images(lr, "LR image", values=values)
    if hr.shape[0] != lr.shape[0]:
        raise UserError(f"{hr_name} and LR batch sizes differ: {hr.shape[0]} vs {lr.shape[0]}")
    if tuple(hr.shape[-2:]) != (SCALE * lr.shape[-2], SCALE * lr.shape[-1]):
        raise UserError(f"{hr_name} size {tuple(hr.shape[-2:])} is not {SCALE}x the LR size {tuple(lr.shape[-2:])}")


def degrade(hr: torch.Tensor) -> torch.Tensor:
    """HR -> LR: 4x bicubic downsampling with antialiasing (as PIL/Matlab imresize do)."""
    check_images(hr, "HR image")
    return downsample(hr)


def downsample(x: torch.Tensor) -> torch.Tensor:
    """The linear map D that `degrade` applies, for any (N, C, H, W) tensor (residuals, null-space parts)."""
    h, w = x.shape[-2:]
    if h % SCALE or w % SCALE:
        raise UserError(f"HR size {(h, w)} is not divisible by the scale factor {SCALE}")
    return F.interpolate(x, size=(h // SCALE, w // SCALE), mode="bicubic", antialias=True, align_corners=False)


def upsample(lr: torch.Tensor) -> torch.Tensor:
    """LR -> HR size by plain bicubic interpolation: the baseline every network must beat."""
    return F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False)


def degrade_adjoint(lr: torch.Tensor, hr_size: tuple[int, int]) -> torch.Tensor:
    """D^T: the adjoint of the (linear) degradation, HR-sized, by one backward pass through `downsample`."""
    probe = torch.zeros(lr.shape[0], lr.shape[1], *hr_size, dtype=lr.dtype, device=lr.device, requires_grad=True)
    with torch.enable_grad():
        (downsample(probe) * lr).sum().backward()
    return probe.grad


def _solve_normal(r: torch.Tensor, hr_size: tuple[int, int], iterations: int) -> torch.Tensor:
    """w with D D^T w = r, by conjugate gradients per image (D D^T is symmetric positive definite)."""
    def apply(v):
        return downsample(degrade_adjoint(v, hr_size))

    def dot(a, b):
        return (a * b).flatten(1).sum(1).view(-1, 1, 1, 1)
    w, residual = torch.zeros_like(r), r.clone()
    direction, rho = residual.clone(), dot(residual, residual)
    for _ in range(iterations):
        product = apply(direction)
        alpha = rho / dot(direction, product).clamp_min(1e-30)
        w, residual = w + alpha * direction, residual - alpha * product
        rho, previous = dot(residual, residual), rho
        if rho.max().sqrt() < 1e-10:
            break
        direction = residual + rho / previous.clamp_min(1e-30) * direction
    return w


def pseudo_inverse(lr: torch.Tensor, hr_size: tuple[int, int], iterations: int = 50) -> torch.Tensor:
    """D^+ lr = D^T (D D^T)^-1 lr: the smallest HR-sized image whose degradation is lr."""
    return degrade_adjoint(_solve_normal(lr, hr_size, iterations), hr_size)


def project_consistent(hr: torch.Tensor, lr: torch.Tensor, iterations: int = 50) -> torch.Tensor:
    """The image nearest to `hr` (least squares) whose degradation is exactly `lr`: hr + D^+(lr - D hr)
    (Bahat and Michaeli, "Explorable super-resolution", 2020). It changes only what the LR image
    determines (the range of D^T) and keeps what it leaves open (the null space of D)."""
    check_pair(hr, lr, hr_name="output", unit_range=False)
    hr64 = hr.double()
    return (hr64 + pseudo_inverse(lr.double() - downsample(hr64), tuple(hr.shape[-2:]), iterations)).to(hr.dtype)


def range_and_null(hr: torch.Tensor, iterations: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """hr split into the part its LR image determines, D^+ D hr, and the part it leaves open (the rest)."""
    check_images(hr, "HR image", unit_range=False)
    hr64 = hr.double()
    part = pseudo_inverse(downsample(hr64), tuple(hr.shape[-2:]), iterations)
    return part.to(hr.dtype), (hr64 - part).to(hr.dtype)
