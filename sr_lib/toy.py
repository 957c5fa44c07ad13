"""A super-resolution problem small enough to solve exactly: two pixels, their average observed.

The HR "image" is x = (x1, x2) and the LR one its average, y = (x1 + x2) / 2: the range of the
downsampling. What y leaves open is the null-space coordinate n = (x1 - x2) / 2, so x = (y + n, y - n).
The prior makes p(n | y) bimodal, like an edge that could go either way: with probability `W_UP`
n ~ N(mu(y), SIGMA^2), else N(-mu(y), SIGMA^2), with mu(y) = 0.5 + 0.3 y and y ~ U(-1, 1).

Everything the image notebooks can only estimate is exact here: the posterior mean (what an L2 loss
learns), its median (L1), samples of the posterior itself, the minimum MSE. The four methods are tiny
networks of y trained in seconds: two regressors, a conditional GAN whose generator, like SRGAN's, has
no noise input, and a conditional flow on n (in one dimension a flow is an increasing map to a Gaussian).
"""
import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

W_UP = 0.7  # probability of the upper mode
SIGMA = 0.1  # width of each mode


def mode(y: torch.Tensor) -> torch.Tensor:
    """mu(y): where the upper mode sits; the lower one is at -mu(y)."""
    return 0.5 + 0.3 * y


def posterior_sample(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """n ~ p(n | y), exactly: one draw per LR value."""
    up = torch.rand(y.shape, generator=generator) < W_UP
    return torch.where(up, 1.0, -1.0) * mode(y) + SIGMA * torch.randn(y.shape, generator=generator)


def sample_pairs(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, n), each (count, 1): LR values and the null-space coordinate of their HR pair."""
    y = 2 * torch.rand(count, 1, generator=generator) - 1
    return y, posterior_sample(y, generator)


def to_hr(y: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """The two pixels (count, 2) from the LR value and the null-space coordinate."""
    return torch.cat([y + n, y - n], dim=1)


def posterior_density(n: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """p(n | y), exactly."""
    def normal(mean):
        return torch.exp(-0.5 * ((n - mean) / SIGMA) ** 2) / (SIGMA * math.sqrt(2 * math.pi))
    return W_UP * normal(mode(y)) + (1 - W_UP) * normal(-mode(y))


def posterior_cdf(n: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    def phi(v):
        return 0.5 * (1 + torch.erf(v / math.sqrt(2)))
    return W_UP * phi((n - mode(y)) / SIGMA) + (1 - W_UP) * phi((n + mode(y)) / SIGMA)


def bisect(fn, target: torch.Tensor, low: float = -5.0, high: float = 5.0, steps: int = 60) -> torch.Tensor:
    """The n with fn(n) = target for an increasing fn, element-wise, by bisection (each halving gains a
    bit: 60 of them bring a bracket of 10 below 1e-17)."""
    lo, hi = torch.full_like(target, low), torch.full_like(target, high)
    for _ in range(steps):
        mid = (lo + hi) / 2
        below = fn(mid) < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


def posterior_mean(y: torch.Tensor) -> torch.Tensor:
    """E[n | y]: what a regressor trained with the L2 loss learns."""
    return (2 * W_UP - 1) * mode(y)


def posterior_median(y: torch.Tensor) -> torch.Tensor:
    """The median of n given y: what a regressor trained with the L1 loss learns."""
    return bisect(lambda n: posterior_cdf(n, y), torch.full_like(y, 0.5))


def minimum_mse() -> float:
    """E_y Var(n | y), the smallest per-pixel MSE any estimator reaches (both pixels err by |n_hat - n|).
    Var(n | y) = SIGMA^2 + 4 W (1 - W) mu(y)^2, and E[mu(y)^2] = 0.25 + 0.09/3 for y ~ U(-1, 1)."""
    return SIGMA ** 2 + 4 * W_UP * (1 - W_UP) * (0.25 + 0.09 / 3)


# ---------------------------------------------------------------- the four methods
def mlp(inputs: int, outputs: int, width: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                         nn.Linear(width, outputs))


def train_regressor(loss: str, steps: int = 2000, batch: int = 256, seed: int = 0) -> nn.Module:
    """n_hat(y) trained with the 'l2' or 'l1' loss on fresh samples each step."""
    losses = {"l2": F.mse_loss, "l1": F.l1_loss}
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = mlp(1, 1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        y, n = sample_pairs(batch, gen)
        opt.zero_grad()
        losses[loss](net(y), n).backward()
        opt.step()
    return net.eval()


def train_gan(start: nn.Module, steps: int = 3000, batch: int = 256, seed: int = 0) -> nn.Module:
    """A deterministic generator n_hat(y), like SRGAN's, started from a regressor and trained against a
    conditional discriminator D(y, n) with the non-saturating loss."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    g, d = copy.deepcopy(start).train(), mlp(2, 1)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(steps):
        y, n = sample_pairs(batch, gen)
        real, fake = d(torch.cat([y, n], 1)), d(torch.cat([y, g(y).detach()], 1))
        loss_d = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                  + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        fake = d(torch.cat([y, g(y)], 1))
        loss_g = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return g.eval()


class MixtureCDFFlow(nn.Module):
    """A conditional normalizing flow in one dimension: z = h(n; y) = Phi^-1(F(n; y)), where F is the CDF
    of a mixture of `components` Gaussians whose weights, means and widths are functions of y and Phi the
    standard normal CDF (the mixture-CDF transformation of Flow++, Ho et al. 2019, in one dimension).
    h is increasing, hence invertible; by the change of variables log p(n | y) = log N(h(n)) + log h'(n),
    which is the mixture's log-density. Sampled by inverting h at z ~ N(0, T^2) (bisection on F)."""

    def __init__(self, components: int = 4):
        super().__init__()
        self.components = components
        self.params = mlp(1, 3 * components)

    def _mixture(self, y: torch.Tensor):
        logits, means, log_scales = self.params(y).chunk(3, dim=1)
        return F.log_softmax(logits, dim=1), means, log_scales.clamp(-7, 3)

    def log_prob(self, n: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_w, means, log_scales = self._mixture(y)
        scaled = (n - means) / log_scales.exp()
        log_normal = -0.5 * scaled ** 2 - log_scales - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(log_w + log_normal, dim=1, keepdim=True)

    def cdf(self, n: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_w, means, log_scales = self._mixture(y)
        return (log_w.exp() * torch.special.ndtr((n - means) / log_scales.exp())).sum(1, keepdim=True)

    def forward(self, n: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log h'(n)): z = Phi^-1(F(n)), and log h' = log p(n | y) - log N(z)."""
        z = torch.special.ndtri(self.cdf(n, y).clamp(1e-12, 1 - 1e-12))
        return z, self.log_prob(n, y) + 0.5 * z ** 2 + 0.5 * math.log(2 * math.pi)

    @torch.no_grad()
    def sample(self, y: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
        u = torch.special.ndtr(temperature * torch.randn(y.shape, generator=generator))
        return bisect(lambda n: self.cdf(n, y), u)


def train_flow(steps: int = 3000, batch: int = 256, seed: int = 0) -> MixtureCDFFlow:
    """Maximum likelihood on fresh samples each step."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    flow = MixtureCDFFlow()
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    for _ in range(steps):
        y, n = sample_pairs(batch, gen)
        opt.zero_grad()
        (-flow.log_prob(n, y).mean()).backward()
        opt.step()
    return flow.eval()


# ---------------------------------------------------------------- measuring
def wasserstein_2d(a: np.ndarray, b: np.ndarray) -> float:
    """Exact W1 between two equally large point sets (N, 2): the mean distance of the optimal matching."""
    from scipy.optimize import linear_sum_assignment
    cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def measure(outputs: torch.Tensor, y: torch.Tensor, n: torch.Tensor) -> dict:
    """Three views of outputs n_hat (N, 1) for the LR values y whose true null-space parts are n:
    * mse: per-pixel squared error against the true images (distortion);
    * w1: Wasserstein-1 between the outputs' distribution of images and the true one (Blau and
      Michaeli's perception index: is the *set* of outputs distributed like real images?);
    * plausible: the fraction of outputs within 2 SIGMA of one of the two modes (is *each* output a
      plausible image? 95% of real ones are; between the modes no real image lies)."""
    truth, made = to_hr(y, n).numpy(), to_hr(y, outputs).numpy()
    near = (outputs.abs() - mode(y)).abs() < 2 * SIGMA
    return {"mse": ((outputs - n) ** 2).mean().item(), "w1": wasserstein_2d(made, truth),
            "plausible": near.float().mean().item()}
