"""Why coupling layers: the structured log-determinant against the brute-force one.

Brute force builds the full D x D Jacobian with autograd (D backward passes) and takes slogdet
(O(D^3)); the coupling's triangular structure gives the same number as sum(s), for free.
"""
import torch

from .methods.flow import AffineCoupling
from .timing import seconds


def dense_jacobian(fn, x: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """The Jacobian of fn at one input x (batch of 1) as a D x D matrix: one forward pass, then the
    backward passes `chunk` rows at a time (vectorised within a chunk). All D at once peaked at 1.5 GB
    for D = 3,072, over what Binder gives a notebook."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = fn(x).reshape(-1)
    eye = torch.eye(out.numel(), dtype=out.dtype)
    rows = [torch.autograd.grad(out, x, eye[i:i + chunk], retain_graph=True, is_grads_batched=True)[0]
            for i in range(0, out.numel(), chunk)]
    return torch.cat(rows).reshape(out.numel(), x.numel())


def brute_force_logdet(fn, x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.slogdet(dense_jacobian(fn, x))[1]


def compare_logdet_cost(coupling: AffineCoupling, cond_channels: int, sides: list[int], blocks: int = 3) -> list[dict]:
    """For each spatial side: dimension D, seconds for brute force and for sum(s) (each the median of at least
    `blocks` timed blocks), their ratio, agreement."""
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
        t_brute = seconds(lambda: brute_force_logdet(forward, x), blocks=blocks)
        with torch.no_grad():
            t_structured = seconds(lambda: coupling(x, cond), blocks=blocks)
        rows.append({"side": side, "dim": x.numel(), "brute_force_s": t_brute, "structured_s": t_structured,
                     "speed_ratio": t_brute / t_structured, "abs_difference": abs(brute - structured)})
    return rows
