import math

import pytest
import torch

from sr_lib.imaging import degrade
from sr_lib.invertibility import randomize_couplings
from sr_lib.methods import METHODS
from sr_lib.methods.flow import HALF, AffineCoupling, AffineInjector, ConditionalFlow, FlowStep, InvertibleConv1x1
from sr_lib.methods.srgan import Discriminator
from sr_lib.models import Generator, icnr_, upsampling_stage


def test_generator_and_discriminator_shapes(tiny):
    lr = torch.rand(2, 3, 12, 20)
    sr = Generator(tiny)(lr)
    assert sr.shape == (2, 3, 48, 80)
    assert Discriminator(tiny)(sr).shape == (2,)
    assert Discriminator(tiny)(torch.rand(3, 3, tiny.crop, tiny.crop)).shape == (3,)


def test_flow_shapes_and_sampling(tiny):
    flow = ConditionalFlow(tiny).eval()
    hr = torch.rand(2, 3, 32, 48)
    z, logdet = flow(hr, degrade(hr))
    assert z.shape == hr.shape and logdet.shape == (2,)
    sample = flow.sample(degrade(hr), temperature=0.8)
    assert sample.shape == hr.shape and torch.isfinite(sample).all()


def test_untrained_couplings_and_injectors_are_identity(tiny):
    x, cond = torch.randn(2, 12, 8, 8), torch.randn(2, tiny.gen_channels, 8, 8)
    for layer in (AffineCoupling(12, tiny.gen_channels, tiny.flow_hidden, 2.0).eval(),
                  AffineInjector(12, tiny.gen_channels, 2.0)):
        y, logdet = layer(x, cond)
        assert torch.equal(y, x) and torch.equal(logdet, torch.zeros(2))


def test_untrained_flow_at_temperature_zero_returns_its_base_generator(tiny):
    flow = ConditionalFlow(tiny).eval()
    lr = torch.rand(2, 3, 8, 8)
    assert torch.allclose(flow.sample(lr, 0.0), flow.base(lr), atol=1e-6)


def test_icnr_makes_the_pixel_shuffle_start_as_nearest_neighbour():
    conv = torch.nn.Conv2d(4, 16, 3, padding=1)
    icnr_(conv.weight)
    torch.nn.init.zeros_(conv.bias)
    out = torch.nn.functional.pixel_shuffle(conv(torch.rand(1, 4, 5, 5)), 2)  # (1, 4, 10, 10)
    # every 2x2 block holds four copies of one value: no checkerboard to start with
    assert torch.equal(out[..., 0::2, 0::2], out[..., 1::2, 1::2]) and torch.equal(out[..., 0::2, 0::2], out[..., 0::2, 1::2])


def test_the_zero_order_hold_makes_any_upsampling_stage_flat_on_flat_input(tiny):
    """Whatever the four sub-pixel kernels and biases (here random and unequal), a flat input comes out
    flat after the hold, and a period-2 pattern without it."""
    stage = upsampling_stage(4)
    torch.nn.init.normal_(stage[0].weight)
    torch.nn.init.normal_(stage[0].bias)
    flat = torch.full((1, 4, 8, 8), 0.3)
    with torch.no_grad():
        held, shuffled = stage(flat)[..., 4:-4, 4:-4], stage[1](stage[0](flat))[..., 4:-4, 4:-4]
    assert (held - held[..., :1, :1]).abs().max() < 1e-6
    assert (shuffled[..., 0::2, 0::2] - shuffled[..., 0::2, 1::2]).abs().max() > 0.1
    gen = Generator(tiny).eval()
    for stage in gen.upsample:  # ICNR's equal sub-kernels would be flat without the hold too
        torch.nn.init.normal_(stage[0].weight, std=0.1)
        torch.nn.init.normal_(stage[0].bias, std=0.1)
    lr = torch.full((1, 3, 40, 40), 0.5)
    with torch.no_grad():  # the whole generator: flat in, flat out beyond its 84 px field's reach of the borders
        out = gen(lr)[..., 48:-48, 48:-48]
    assert (out - out[..., :1, :1]).abs().max() < 1e-5


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 5e-5)])
def test_flow_roundtrip_on_3x64x64(tiny, dtype, tol):
    flow = randomize_couplings(ConditionalFlow(tiny), weight_std=0.05).to(dtype).eval()
    hr = torch.rand(2, 3, 64, 64, dtype=dtype)
    lr = degrade(hr)
    with torch.no_grad():
        z, logdet_fwd = flow(hr, lr)
        back, logdet_inv = flow.inverse(z, lr)
    assert (back - hr).abs().max() < tol
    assert (logdet_fwd + logdet_inv).abs().max() < 1e3 * tol
    assert (z - hr).abs().max() > 1e-3  # the map is not trivially the identity


def _invertible(name: str, cfg):
    """(layer, forward, inverse, x) for one invertible layer of the flow, in float64, its zero-initialised
    outputs drawn at random so that no map is the identity; forward(x) and inverse(y) give (out, log-det)."""
    gen = torch.Generator().manual_seed(0)
    cond = torch.randn(1, cfg.gen_channels, 2, 3, dtype=torch.float64, generator=gen)
    x = torch.randn(1, 12, 2, 3, dtype=torch.float64, generator=gen)
    if name == "mixer":
        layer = InvertibleConv1x1(12)
        with torch.no_grad():  # it starts orthogonal, log|det| = 0
            layer.weight.add_(0.3 * torch.randn(12, 12, generator=gen))
    elif name == "injector":
        layer = AffineInjector(12, cfg.gen_channels, 2.0)
    elif name == "coupling":
        layer = AffineCoupling(12, cfg.gen_channels, cfg.flow_hidden, 2.0)
    elif name == "step":
        layer = FlowStep(HALF, cfg)
    else:  # the whole conditional flow, HR image in, its LR image as the condition
        layer = randomize_couplings(ConditionalFlow(cfg), weight_std=0.1)
        x = torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=gen)
        cond = degrade(x)
    for p in layer.parameters():
        if not p.any():
            torch.nn.init.normal_(p, std=0.3, generator=gen)
    layer = layer.double().eval()
    if name == "mixer":
        return layer, layer, layer.inverse, x
    return layer, (lambda v: layer(v, cond)), (lambda v: layer.inverse(v, cond)), x


INVERTIBLE = ["mixer", "injector", "coupling", "step", "flow"]


@pytest.mark.parametrize("name", INVERTIBLE)
def test_every_invertible_layer_inverts_and_its_logdet_is_autograds(tiny, name, tmp_path):
    """As zuko and FrEIA test their transforms: the inverse undoes the forward, the log-determinant equals
    log|det| of autograd's Jacobian, the inverse's is its negative, and saved weights load to the same map."""
    layer, forward, inverse, x = _invertible(name, tiny)
    with torch.no_grad():
        y, logdet = forward(x)
        back, inverse_logdet = inverse(y)
    assert (y - x).abs().max() > 1e-3  # not the identity
    assert (back - x).abs().max() < 1e-10
    jacobian = torch.autograd.functional.jacobian(lambda v: forward(v)[0], x)
    expected = torch.linalg.slogdet(jacobian.reshape(x.numel(), x.numel()))[1]
    assert logdet.item() == pytest.approx(expected.item(), abs=1e-9) and abs(logdet.item()) > 0.01
    assert inverse_logdet.item() == pytest.approx(-logdet.item(), abs=1e-9)
    torch.save(layer.state_dict(), tmp_path / "layer.pt")
    loaded, forward_loaded, _, _ = _invertible(name, tiny)
    loaded.load_state_dict(torch.load(tmp_path / "layer.pt", weights_only=True))
    with torch.no_grad():
        assert torch.equal(forward_loaded(x)[0], y)


def _assert_all_parameters_get_gradients(model, loss):
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


def test_gradients_reach_every_generator_parameter(tiny):
    gen = Generator(tiny)
    _assert_all_parameters_get_gradients(gen, gen(torch.rand(2, 3, 8, 8)).square().mean())


def test_gradients_reach_every_discriminator_parameter(tiny):
    disc = Discriminator(tiny)
    _assert_all_parameters_get_gradients(disc, disc(torch.rand(2, 3, 32, 32)).square().mean())


def test_gradients_reach_every_flow_parameter_but_a_frozen_base(tiny):
    # zero-initialised output convs block the gradient to the layers before them for one step only
    flow = randomize_couplings(ConditionalFlow(tiny))
    hr = torch.rand(2, 3, 16, 16)
    z, logdet = flow(hr, degrade(hr))
    _assert_all_parameters_get_gradients(flow, (0.5 * z.square().flatten(1).sum(1) - logdet).mean())
    frozen = randomize_couplings(ConditionalFlow(tiny).freeze_base(Generator(tiny).state_dict())).train()
    assert not frozen.base.training and frozen.steps[0].coupling.training  # BatchNorm statistics stay fixed
    z, logdet = frozen(hr, degrade(hr))
    (0.5 * z.square().flatten(1).sum(1) - logdet).mean().backward()
    assert all(p.grad is None for p in frozen.base.parameters())


def test_temperature_zero_is_deterministic_and_positive_temperature_varies(tiny):
    flow = randomize_couplings(ConditionalFlow(tiny)).eval()
    lr = torch.rand(1, 3, 8, 8)
    assert torch.equal(flow.sample(lr, 0.0), flow.sample(lr, 0.0))
    assert not torch.equal(flow.sample(lr, 1.0), flow.sample(lr, 1.0))
    for bad in (-1.0, math.nan, math.inf, 1e6):
        with pytest.raises(ValueError, match="temperature must be a number from 0 to 2"):
            flow.sample(lr, bad)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("hr_side,lr_side,match", [(32, 16, r"not 4x the LR size"), (30, 7, r"not 4x the LR size"),
                                                   (34, None, r"divisible")])
def test_flow_rejects_mismatched_or_undividable_sizes(tiny, hr_side, lr_side, match):
    flow = ConditionalFlow(tiny)
    hr = torch.rand(1, 3, hr_side, hr_side)
    lr = torch.rand(1, 3, lr_side, lr_side) if lr_side else None
    with pytest.raises(ValueError, match=match):
        flow(hr, lr if lr is not None else degrade(hr))


@pytest.mark.parametrize("channels", [1, 4])
def test_wrong_channel_count_is_named(tiny, channels):
    with pytest.raises(ValueError, match=f"3 \\(RGB\\) channels, got {channels}"):
        Generator(tiny)(torch.rand(1, channels, 8, 8))
    with pytest.raises(ValueError, match=f"got {channels}"):
        ConditionalFlow(tiny)(torch.rand(1, channels, 32, 32), torch.rand(1, 3, 8, 8))


def test_nan_input_is_named(tiny):
    lr = torch.rand(1, 3, 8, 8)
    lr[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        METHODS["sr"].draws(Generator(tiny), lr, None, 1, None)
    with pytest.raises(ValueError, match="NaN"):
        ConditionalFlow(tiny).sample(lr)


def test_wrong_rank_and_dtype_are_named(tiny):
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\)"):
        Generator(tiny)(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="float"):
        Generator(tiny)(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
