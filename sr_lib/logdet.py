"""Why coupling layers: the structured log-determinant against the brute-force one.

Brute force builds the full D x D Jacobian with autograd (D backward passes) and takes slogdet
(O(D^3)); the coupling's triangular structure gives the same number as sum(s), for free.
"""
import torch

from .models import AffineCoupling
from .timing import seconds


def dense_jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    """The Jacobian of fn at one input x (batch of 1) as a D x D matrix."""
    jac = torch.autograd.functional.jacobian(fn, x, vectorize=True)
    return jac.reshape(x.numel(), x.numel())


def brute_force_logdet(fn, x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.slogdet(dense_jacobian(fn, x))[1]


def compare_logdet_cost(coupling: AffineCoupling, cond_channels: int, sides: list[int]) -> list[dict]:
    """For each spatial side: dimension D, seconds for brute force and for sum(s), their ratio, agreement."""
    rows = []
    coupling = coupling.double().eval()
    for side in sides:
        x = torch.randn(1, coupling.first.in_channels * 2, side, side, dtype=torch.float64)
        cond = torch.randn(1, cond_channels, side, side, dtype=torch.float64)

        def forward(v):
            return coupling(v, cond)[0]

        with torch.no_grad():
            structured = coupling(x, cond)[1].item()
        brute = brute_force_logdet(forward, x).item()
        t_brute = seconds(lambda: brute_force_logdet(forward, x))
        with torch.no_grad():
            t_structured = seconds(lambda: coupling(x, cond))
        rows.append({"side": side, "dim": x.numel(), "brute_force_s": t_brute, "structured_s": t_structured,
                     "speed_ratio": t_brute / t_structured, "abs_difference": abs(brute - structured)})
    return rows
