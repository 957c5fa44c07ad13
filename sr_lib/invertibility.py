"""Numerical invertibility of the conditional flow: round trip, log-det bookkeeping, autograd check.

An untrained flow is the identity in every coupling and injector (zero-initialised output layers), which
would make any round trip trivially exact. `randomize_couplings` re-draws those output layers as training
would leave them, so the check exercises real scales and shifts; a trained checkpoint is checked as it is.
"""
import torch

from .config import Config
from .imaging import degrade
from .methods.flow import ConditionalFlow

# Round trips of a 3x64x64 image through the untrained-but-randomised flow stay below these
# (measured with `check` over configs and seeds; see tests/test_invertibility.py and notebook 02).
FLOAT32_BOUND = 5e-5
FLOAT64_BOUND = 1e-12


def _output_layers(flow: ConditionalFlow) -> list[torch.nn.Conv2d]:
    return [layer for step in flow.steps for layer in (step.injector.out, step.coupling.out)]


def randomize_couplings(flow: ConditionalFlow, weight_std: float = 0.02, seed: int = 0) -> ConditionalFlow:
    """Draw the zero-initialised output convs of every coupling and injector at random, in place."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for last in _output_layers(flow):
            last.weight.copy_(weight_std * torch.randn(last.weight.shape, generator=gen))
            last.bias.copy_(weight_std * torch.randn(last.bias.shape, generator=gen))
    return flow


def scale_coupling_outputs(flow: ConditionalFlow, factor: float) -> ConditionalFlow:
    """Multiply the output convs by `factor`, in place: weights growing as in a long training."""
    with torch.no_grad():
        for last in _output_layers(flow):
            last.weight.mul_(factor)
            last.bias.mul_(factor)
    return flow


BATCH = 2  # images per check


def random_pair(size: int, dtype: torch.dtype, seed: int = 0, batch: int = BATCH):
    """A random HR batch (size x size) and its LR version, in the given dtype."""
    gen = torch.Generator().manual_seed(seed)
    hr = torch.rand(batch, 3, size, size, generator=gen, dtype=torch.float64).to(dtype)
    return hr, degrade(hr)


@torch.no_grad()
def roundtrip(flow: ConditionalFlow, hr: torch.Tensor, lr: torch.Tensor, depth: int | None = None) -> dict:
    """max|x - f^-1(f(x))| and max|logdet_forward + logdet_inverse| through the first `depth` steps."""
    z, logdet_fwd = flow(hr, lr, depth=depth)
    if not torch.isfinite(z).all():  # the forward pass overflowed: nothing comes back
        return {"max_abs_roundtrip_error": float("inf"), "max_abs_logdet_forward_plus_inverse": float("inf"),
                "max_abs_latent": float("inf")}
    back, logdet_inv = flow.inverse(z, lr, depth=depth)
    return {"max_abs_roundtrip_error": (back - hr).abs().max().item(),
            "max_abs_logdet_forward_plus_inverse": (logdet_fwd + logdet_inv).abs().max().item(),
            "max_abs_latent": z.abs().max().item()}


def logdet_error_vs_autograd(flow: ConditionalFlow, hr: torch.Tensor, lr: torch.Tensor) -> float:
    """|flow's log-det - slogdet of the full autograd Jacobian| for the first image (small inputs only)."""
    hr1, lr1 = hr[:1], lr[:1]
    jac = torch.autograd.functional.jacobian(lambda x: flow(x, lr1)[0], hr1)
    dim = hr1.numel()
    reference = torch.linalg.slogdet(jac.reshape(dim, dim))[1]
    with torch.no_grad():
        return (flow(hr1, lr1)[1][0] - reference).abs().item()


AUTOGRAD_MAX_SIDE = 16  # a 3x16x16 image already has a 768x768 Jacobian


def check(cfg: Config, size: int, dtype: torch.dtype, flow: ConditionalFlow | None = None, seed: int = 0) -> dict:
    """All invertibility figures for one configuration (or a given, e.g. trained, flow) at one size."""
    if flow is None:
        flow = randomize_couplings(ConditionalFlow(cfg), seed=seed)
    flow = flow.to(dtype).eval()
    hr, lr = random_pair(size, dtype, seed)
    result = {"config": cfg.name, "size": size, "dtype": str(dtype).replace("torch.", ""), **roundtrip(flow, hr, lr)}
    result["roundtrip_error_per_depth"] = [roundtrip(flow, hr, lr, depth=d)["max_abs_roundtrip_error"]
                                           for d in range(1, len(flow.steps) + 1)]
    result["max_abs_logdet_error_vs_autograd"] = (
        logdet_error_vs_autograd(flow, hr, lr) if size <= AUTOGRAD_MAX_SIDE else None)
    return result
