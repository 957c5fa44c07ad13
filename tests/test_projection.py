"""The consistency projection and the range/null-space split, against their defining properties."""
import torch

from sr_lib import toy
from sr_lib.imaging import degrade, degrade_adjoint, downsample, project_consistent, range_and_null


def _pair(seed=0):
    gen = torch.Generator().manual_seed(seed)
    hr = torch.rand(2, 3, 32, 48, generator=gen, dtype=torch.float64)
    guess = (hr + 0.1 * torch.randn(hr.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    return hr, degrade(hr), guess


def test_adjoint_satisfies_the_inner_product_identity():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(1, 3, 32, 32, generator=gen, dtype=torch.float64)
    b = torch.randn(1, 3, 8, 8, generator=gen, dtype=torch.float64)
    assert torch.allclose((downsample(a) * b).sum(), (a * degrade_adjoint(b, (32, 32))).sum(), atol=1e-10)


def test_projection_is_exactly_consistent_idempotent_and_keeps_the_null_space():
    hr, lr, guess = _pair()
    projected = project_consistent(guess, lr)
    assert (downsample(projected) - lr).abs().max() < 1e-8
    assert (project_consistent(projected, lr) - projected).abs().max() < 1e-8
    assert (range_and_null(projected)[1] - range_and_null(guess)[1]).abs().max() < 1e-8
    assert range_and_null(projected - guess)[1].abs().max() < 1e-8  # the change lies in the range of D^T
    assert (guess - hr).square().sum() > (projected - hr).square().sum()  # closer to the truth, here


def test_range_and_null_parts_add_up_and_the_null_part_is_invisible_at_low_resolution():
    hr, lr, _ = _pair(2)
    rng, null = range_and_null(hr)
    assert torch.allclose(rng + null, hr, atol=1e-12)
    assert downsample(null).abs().max() < 1e-8 and (downsample(rng) - lr).abs().max() < 1e-8


def test_toy_posterior_is_right():
    y = torch.linspace(-1, 1, 5, dtype=torch.float64)[:, None]
    assert torch.allclose(toy.posterior_cdf(toy.posterior_median(y), y), torch.full_like(y, 0.5), atol=1e-9)
    gen = torch.Generator().manual_seed(0)
    y, n = toy.sample_pairs(200_000, gen)
    assert abs(((n - toy.posterior_mean(y)) ** 2).mean().item() / toy.minimum_mse() - 1) < 0.01
    grid = torch.linspace(-3, 3, 6001)[None, :]
    mass = toy.posterior_density(grid, torch.tensor([[0.3]])).sum() * (grid[0, 1] - grid[0, 0])
    assert abs(mass.item() - 1) < 1e-4


def test_toy_flow_is_invertible_and_its_likelihood_is_the_change_of_variables():
    flow = toy.MixtureCDFFlow()
    y = torch.rand(64, 1) * 2 - 1
    n = flow.sample(y, 1.0, torch.Generator().manual_seed(0))
    z, log_slope = flow(n, y)
    assert torch.allclose(toy.bisect(lambda v: flow(v, y)[0], z, -50, 50, 80), n, atol=1e-4)
    slope = torch.autograd.functional.jacobian(lambda v: flow(v, y)[0].sum(), n).view(-1, 1)
    assert torch.allclose(log_slope, slope.log(), atol=1e-4)
