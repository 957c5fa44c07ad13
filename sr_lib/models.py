"""The networks of the study: SR generator, SRGAN discriminator, conditional flow.

Choices where the study's table is ambiguous or leaves something out (measured by
``python -m sr_lib complexity``):

* Generator: the table's "17 convs 3x3 64->64" are SRGAN's layout, 8 residual blocks of two convs plus
  the conv after them, with a skip around them (`Trunk`), then two pixel-shuffle stages and a 9x9 conv.
  It predicts the *residual* over bicubic upsampling of the LR input, a parameter-free skip that lets
  short CPU training converge. The pixel-shuffle convs start ICNR-initialised (no checkerboard at start)
  and each pixel shuffle is followed by a 2x2 zero-order hold (`ZeroOrderHold`: no checkerboard ever,
  on flat input); the holds widen the field by one LR pixel (paper config: 196 px, the study's 192 + 4).
* Flow: p(HR | LR) = the pixel-loss generator's estimate plus a learned distribution of what it leaves
  open. The HR residual over the *base* (a generator, trained by the pixel loss first and then frozen)
  is squeezed 2x2 to 12 channels at half resolution. Each flow step is SRFlow's: a learned invertible
  1x1 convolution (Glow), an affine injector (scale and shift of all channels from the LR features)
  and an affine coupling (split 6 | 6; subnet "6x64 -> 64x64 -> 64x12" of three 3x3 convs, 6 log-scales
  + 6 shifts), conditioned on the base's features after its first upsampling stage (which ends at the
  couplings' half resolution). Then, as in Glow's and SRFlow's multi-scale flows, a second squeeze to
  48 channels at LR resolution and `flow_lr_couplings` more steps there, conditioned on the base's
  trunk features: one 1x1 mixer now sees a whole LR pixel's 4x4 block, so the flow can learn to put
  (almost) no noise into what the LR image fixes. With half-resolution steps only, our flow's samples
  at T = 0.8 drifted below 40 dB LR-consistency as training went on (39.3 dB after 3,400 steps).
* Why a base network: maximum likelihood learns the conditional mean slowly. With an encoder of its own
  at 1.18x the generator's compute, our flow at temperature 0 was 0.03 dB above bicubic after 800 CPU
  steps, the first version's 0.16 dB after 5,000, while the pixel loss gives 1.2 dB. SRFlow conditions
  on a pretrained SR network (its RRDB, larger than the flow itself) for this reason; we do the same with
  our generator, frozen so the comparison's SR network stays what it is. The price is compute: the flow
  costs the generator plus its steps (cpu config: 1.70x the generator; paper config: over 3x, where 16
  couplings of width 64 are 2.1x by themselves, so the study's 1.07x cannot hold for the table's couplings
  under any reading).
* The scales are soft-clamped, s = c * tanh(raw / c), so exp(s) stays in [exp(-c), exp(c)] and the inverse
  cannot overflow; the output convs of couplings and injectors start at zero, so an untrained flow is
  its base plus white Gaussian noise of std T.
* BatchNorm sits inside the subnets only (s and t need not be invertible). In training mode it uses batch
  statistics, so forward and inverse agree exactly only in eval mode: check invertibility with
  ``model.eval()``.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config
from .imaging import SCALE, check_images, check_pair, upsample


MAX_TEMPERATURE = 2.0  # the latent's std; far beyond 1 the samples are noise and the inverse leaves its training range


def check_temperature(temperature, name: str = "temperature") -> float:
    """Raise ValueError unless the latent temperature is a number from 0 to MAX_TEMPERATURE (NaN is not)."""
    if temperature is None or not math.isfinite(temperature) or not 0 <= temperature <= MAX_TEMPERATURE:
        raise ValueError(f"{name} must be a number from 0 to {MAX_TEMPERATURE}, got {temperature}")
    return temperature


def check_matches(x: torch.Tensor, module: nn.Module, name: str) -> None:
    """Raise ValueError unless x has the dtype and device of the module's weights (torch would stop
    deep inside a convolution with a message about 'bias type')."""
    weight = next(module.parameters())
    if x.dtype != weight.dtype or x.device != weight.device:
        raise ValueError(f"{name} is {x.dtype} on {x.device}, but the network's weights are {weight.dtype} on "
                         f"{weight.device}; convert with .to({weight.dtype}) or move the model")


def conv(c_in: int, c_out: int, kernel: int = 3, bias: bool = True) -> nn.Conv2d:
    """A 'same'-size convolution. bias=False where BatchNorm follows: its mean subtraction cancels any
    bias, which would be a parameter with no effect (gradients about 1e-9)."""
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias)


def icnr_(weight: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """ICNR (Aitken et al. 2017), in place: the factor^2 sub-pixel kernels of a pixel-shuffle conv start equal.

    The shuffled output then starts as a nearest-neighbour upsampling of one ordinary conv's output, so
    no checkerboard is there at the start for training to remove.
    """
    out_channels = weight.shape[0] // factor ** 2
    base = torch.empty(out_channels, *weight.shape[1:])
    nn.init.kaiming_normal_(base, nonlinearity="relu")
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(factor ** 2, dim=0))
    return weight


# ---------------------------------------------------------------- generator (SRGAN / SR without GAN)
class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(conv(ch, ch, bias=False), nn.BatchNorm2d(ch), nn.PReLU(ch),
                                  conv(ch, ch, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x):
        return x + self.body(x)


class ZeroOrderHold(nn.Module):
    """The mean of every 2x2 window (replicate padding at the top and left): Sugawara et al.'s fix for
    checkerboard artefacts of sub-pixel convolution (IEEE JSTSP 2019).

    A pixel-shuffle conv computes each of the four positions of a 2x2 output block with its own kernel
    and bias, so even a flat input comes out as a period-2 pattern unless training keeps the four equal.
    Averaging every 2x2 window after the shuffle sums the four, whatever they are: a flat input gives a
    flat output by construction. It does not stop a lattice that a generator paints in textured regions
    (SRGAN's dots, notebook 03): `train.grid_loss` is there against that. No parameters; the conv before
    it has a kernel per output position and can absorb the half-pixel shift the window adds.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)


def upsampling_stage(ch: int) -> nn.Sequential:
    """2x sub-pixel upsampling: conv to 4ch, pixel shuffle, zero-order hold, PReLU; the conv starts
    ICNR-initialised."""
    stage = nn.Sequential(conv(ch, 4 * ch), nn.PixelShuffle(2), ZeroOrderHold(), nn.PReLU(ch))
    icnr_(stage[0].weight)
    return stage


class Trunk(nn.Module):
    """The generator's feature extractor at LR resolution: a 9x9 conv, residual blocks and one more conv,
    with a skip around the blocks. The flow's LR encoder is the same trunk (see `ConditionEncoder`)."""

    def __init__(self, cfg: Config):
        super().__init__()
        ch = cfg.gen_channels
        self.head = nn.Sequential(conv(3, ch, 9), nn.PReLU(ch))
        self.body = nn.Sequential(*[ResidualBlock(ch) for _ in range(cfg.gen_blocks)],
                                  conv(ch, ch, bias=False), nn.BatchNorm2d(ch))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        features = self.head(lr)
        return features + self.body(features)


class Generator(nn.Module):
    """SRGAN's generator: LR (N,3,h,w) -> HR (N,3,4h,4w); the pixel-shuffle convs start ICNR-initialised."""

    def __init__(self, cfg: Config):
        super().__init__()
        ch = cfg.gen_channels
        self.trunk = Trunk(cfg)
        self.upsample = nn.Sequential(upsampling_stage(ch), upsampling_stage(ch))
        self.tail = conv(ch, 3, 9)

    def forward(self, lr: torch.Tensor, with_features: bool = False):
        """The HR estimate; with_features=True also returns the trunk's features (N, ch, h, w) and those
        after the first upsampling stage (N, ch, 2h, 2w): the flow conditions its two levels on them."""
        check_images(lr, "LR image")
        check_matches(lr, self, "LR image")
        features = self.trunk(lr)
        half = self.upsample[0](features)
        hr = upsample(lr) + self.tail(self.upsample[1](half))
        return (hr, (half, features)) if with_features else hr


# ---------------------------------------------------------------- discriminator
class Discriminator(nn.Module):
    """SRGAN's discriminator layout: 8 convs (every second one strided), LeakyReLU, a dense head.

    Two changes from SRGAN, both for a judge that actually separates real from generated crops in a
    short CPU training: spectral normalisation of every layer (Miyato et al. 2018) instead of BatchNorm,
    so D's gradients stay bounded and it cannot win by memorising batch statistics (with BatchNorm our
    D gave real and generated crops the same mean output, 0.47 vs 0.45); and adaptive average pooling
    before the head, so it judges any crop size (the original's dense layer fixes 96x96 inputs).
    Returns one logit per image.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        widths = [cfg.disc_channels * m for m in (1, 1, 2, 2, 4, 4, 8, 8)]
        layers, c_in = [], 3
        for i, c_out in enumerate(widths):
            layers += [sn(nn.Conv2d(c_in, c_out, 3, stride=1 + i % 2, padding=1)), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), sn(nn.Linear(c_in, 2 * c_in)),
                                  nn.LeakyReLU(0.2), sn(nn.Linear(2 * c_in, 1)))

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        check_images(hr, "HR image", unit_range=False)  # it judges generated images, which overshoot
        check_matches(hr, self, "HR image")
        return self.head(self.features(hr)).squeeze(1)


# ---------------------------------------------------------------- flow building blocks
def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 4C, H/2, W/2): trade space for channels, a permutation (log-det 0)."""
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        raise ValueError(f"squeeze needs an even spatial size, got {tuple(x.shape[-2:])}")
    return F.pixel_unshuffle(x, 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(x, 2)


class InvertibleConv1x1(nn.Module):
    """Glow's learned channel mixing y = W x at every pixel; log|det| = H*W*log|det W|."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.linalg.qr(torch.randn(channels, channels))[0])

    def forward(self, x: torch.Tensor):
        logdet = x.shape[-2] * x.shape[-1] * torch.linalg.slogdet(self.weight)[1]
        y = F.conv2d(x, self.weight.to(x.dtype)[:, :, None, None])
        return y, logdet.to(x.dtype).expand(x.shape[0])

    def inverse(self, y: torch.Tensor):
        x = F.conv2d(y, torch.linalg.inv(self.weight.to(y.dtype))[:, :, None, None])
        logdet = y.shape[-2] * y.shape[-1] * torch.linalg.slogdet(self.weight)[1]
        return x, -logdet.to(y.dtype).expand(y.shape[0])


def _soft_clamp(raw_s: torch.Tensor, clamp: float | None) -> torch.Tensor:
    """s = c * tanh(raw / c): |s| < c, so exp(s) can neither overflow nor vanish (None: unclamped)."""
    return raw_s if clamp is None else clamp * torch.tanh(raw_s / clamp)


class AffineCoupling(nn.Module):
    """v1 = u1, v2 = u2 * exp(s(u1, c)) + t(u1, c); log|det J| = sum(s) per sample (u in, v out: x, y
    and z name the HR image, the LR image and the latent).

    s and t come from one ordinary (non-invertible) subnet: three 3x3 convs channels/2 -> hidden ->
    hidden -> channels (`first`, `middle`, `out`), with the condition c added to the first layer through a
    1x1 projection (`cond_proj`). `out` starts at zero, so an untrained coupling is the identity.
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int, scale_clamp: float | None):
        super().__init__()
        if channels % 2:
            raise ValueError(f"coupling needs an even channel count, got {channels}")
        half = channels // 2
        self.scale_clamp = scale_clamp
        self.first = conv(half, hidden, bias=False)  # BatchNorm follows the sum: no biases
        self.cond_proj = nn.Conv2d(cond_channels, hidden, 1, bias=False)
        self.middle = nn.Sequential(nn.BatchNorm2d(hidden), nn.PReLU(hidden),
                                    conv(hidden, hidden, bias=False), nn.BatchNorm2d(hidden), nn.PReLU(hidden))
        self.out = conv(hidden, 2 * half)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def scale_and_shift(self, u1: torch.Tensor, cond: torch.Tensor):
        raw_s, t = self.out(self.middle(self.first(u1) + self.cond_proj(cond))).chunk(2, dim=1)
        return _soft_clamp(raw_s, self.scale_clamp), t

    def forward(self, u: torch.Tensor, cond: torch.Tensor):
        u1, u2 = u.chunk(2, dim=1)
        s, t = self.scale_and_shift(u1, cond)
        return torch.cat([u1, u2 * torch.exp(s) + t], dim=1), s.flatten(1).sum(1)

    def inverse(self, v: torch.Tensor, cond: torch.Tensor):
        v1, v2 = v.chunk(2, dim=1)
        s, t = self.scale_and_shift(v1, cond)
        return torch.cat([v1, (v2 - t) * torch.exp(-s)], dim=1), -s.flatten(1).sum(1)


class AffineInjector(nn.Module):
    """SRFlow's conditional affine injector: y = x * exp(s(c)) + t(c) on *all* channels; log|det| = sum(s).

    s and t depend on the LR features c alone (a 1x1 conv, zero-initialised), so the step is invertible
    whatever they are. It lets the condition move and scale every latent dimension directly, e.g. put
    the HR detail's conditional mean into the shift, where a coupling can only act on half the channels.
    """

    def __init__(self, channels: int, cond_channels: int, scale_clamp: float | None):
        super().__init__()
        self.scale_clamp = scale_clamp
        self.out = nn.Conv2d(cond_channels, 2 * channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def scale_and_shift(self, cond: torch.Tensor):
        raw_s, t = self.out(cond).chunk(2, dim=1)
        return _soft_clamp(raw_s, self.scale_clamp), t

    def forward(self, x: torch.Tensor, cond: torch.Tensor):
        s, t = self.scale_and_shift(cond)
        return x * torch.exp(s) + t, s.flatten(1).sum(1)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor):
        s, t = self.scale_and_shift(cond)
        return (y - t) * torch.exp(-s), -s.flatten(1).sum(1)


# ---------------------------------------------------------------- the conditional flow
class FlowStep(nn.Module):
    """One step of the flow (SRFlow's order): channel mixing, conditional injector, conditional coupling."""

    def __init__(self, channels: int, cfg: Config):
        super().__init__()
        self.channels = channels
        self.mixer = InvertibleConv1x1(channels)
        self.injector = AffineInjector(channels, cfg.gen_channels, cfg.flow_scale_clamp)
        self.coupling = AffineCoupling(channels, cfg.gen_channels, cfg.flow_hidden, cfg.flow_scale_clamp)

    def forward(self, x: torch.Tensor, cond: torch.Tensor):
        x, ld_mix = self.mixer(x)
        x, ld_inject = self.injector(x, cond)
        x, ld_couple = self.coupling(x, cond)
        return x, ld_mix + ld_inject + ld_couple

    def inverse(self, y: torch.Tensor, cond: torch.Tensor):
        y, ld_couple = self.coupling.inverse(y, cond)
        y, ld_inject = self.injector.inverse(y, cond)
        y, ld_mix = self.mixer.inverse(y)
        return y, ld_mix + ld_inject + ld_couple


class ConditionalFlow(nn.Module):
    """p(HR | LR) as an invertible map between the HR image and a latent z of exactly its shape.

    forward(hr, lr) -> (z, log|det dz/dhr|), inverse(z, lr) -> (hr, log|det dhr/dz|),
    sample(lr, temperature) draws z ~ N(0, T^2 I) and inverts it.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.base = Generator(cfg)
        # half resolution: 3 colours squeezed 2x2 = 12 channels; LR resolution: squeezed again, 48 channels
        self.steps = nn.ModuleList([*(FlowStep(12, cfg) for _ in range(cfg.flow_couplings)),
                                    *(FlowStep(48, cfg) for _ in range(cfg.flow_lr_couplings))])

    def freeze_base(self, generator_state: dict) -> "ConditionalFlow":
        """Load a trained pixel-loss generator as the base and keep it fixed (weights and BatchNorm
        statistics): the flow then learns only the distribution around its estimate."""
        self.base.load_state_dict(generator_state)
        self.base.requires_grad_(False)
        self.base.eval()
        return self

    def train(self, mode: bool = True) -> "ConditionalFlow":
        super().train(mode)
        if not any(p.requires_grad for p in self.base.parameters()):
            self.base.eval()  # a frozen base keeps its BatchNorm statistics
        return self

    def forward(self, hr: torch.Tensor, lr: torch.Tensor, depth: int | None = None):
        """Map HR to z; `depth` applies only the first that many steps (for per-layer checks)."""
        check_pair(hr, lr)
        check_matches(hr, self, "HR image")
        base, features = self.base(lr, with_features=True)
        x = squeeze(hr - base)
        logdet = torch.zeros(hr.shape[0], dtype=hr.dtype, device=hr.device)
        for step in self.steps[:depth]:
            if step.channels != x.shape[1]:
                x = squeeze(x)  # on to the LR level
            x, ld = step(x, features[x.shape[1] == 48])
            logdet = logdet + ld
        return self._unsqueeze_all(x), logdet

    @staticmethod
    def _unsqueeze_all(x: torch.Tensor) -> torch.Tensor:
        while x.shape[1] > 3:
            x = unsqueeze(x)
        return x

    @torch.no_grad()
    def condition(self, lr: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The base estimate and each level's conditioning features: functions of the LR image alone, so
        one computation serves every draw and temperature (`inverse`'s and `sample`'s `condition`). The
        base is a whole generator pass, about half of one sample's cost."""
        return self.base(lr, with_features=True)

    def inverse(self, z: torch.Tensor, lr: torch.Tensor, depth: int | None = None, condition=None):
        """Map z back to HR, undoing the first `depth` steps (all by default); `condition`: this LR
        image's `condition(lr)`, computed once for many z."""
        check_pair(z, lr, hr_name="latent z", unit_range=False)
        check_matches(z, self, "latent z")
        base, features = self.base(lr, with_features=True) if condition is None else condition
        steps = self.steps[:depth]
        x = squeeze(z)
        if steps and steps[-1].channels == 48:
            x = squeeze(x)
        logdet = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for step in reversed(steps):
            if step.channels != x.shape[1]:
                x = unsqueeze(x)  # back to the half-resolution level
            x, ld = step.inverse(x, features[x.shape[1] == 48])
            logdet = logdet + ld
        return self._unsqueeze_all(x) + base, logdet

    def bits_per_dim(self, hr: torch.Tensor, lr: torch.Tensor, dequantize: bool = True) -> torch.Tensor:
        """-log2 p(hr | lr) per dimension, for 8-bit images in [0, 1] with uniform dequantization noise.

        The discrete likelihood of 256 levels is bounded below by the continuous density of
        x = (255 hr + u) / 256, u ~ U(0, 1), times the bin volume 256^-D.
        """
        x = (255.0 * hr + torch.rand_like(hr)) / 256.0 if dequantize else hr
        z, logdet = self(x, lr)
        log_pz = -0.5 * (z.square() + math.log(2 * math.pi)).flatten(1).sum(1)
        return (-(log_pz + logdet) / hr[0].numel() + math.log(256.0)) / math.log(2.0)

    @torch.no_grad()
    def gaussian_bits_per_dim(self, hr: torch.Tensor, lr: torch.Tensor) -> float:
        """The same bound for the simplest model of the residual: one Gaussian N(base(y), sigma^2 I), its
        sigma fitted to these very images (so an optimistic baseline). What the flow steps learn beyond
        the residual's overall size is the distance from this number."""
        x = (255.0 * hr + torch.rand_like(hr)) / 256.0
        variance = (x - self.base(lr)).square().mean().item()
        nats = 0.5 * math.log(2 * math.pi * variance) + 0.5
        return (nats + math.log(256.0)) / math.log(2.0)

    @torch.no_grad()
    def sample(self, lr: torch.Tensor, temperature: float = 0.8, generator: torch.Generator | None = None,
               condition=None):
        """One HR sample per LR image at the given latent temperature (0 gives the z = 0 image);
        `condition`: `condition(lr)`, when several samples of one LR image are drawn."""
        check_images(lr, "LR image")
        check_temperature(temperature)
        n, _, h, w = lr.shape
        device = lr.device if generator is None else generator.device  # a CPU generator: z moves to lr's device
        z = torch.randn(n, 3, SCALE * h, SCALE * w, generator=generator, dtype=lr.dtype, device=device).to(lr.device)
        return self.inverse(temperature * z, lr, condition=condition)[0]


def build(network: str, cfg: Config) -> nn.Module:
    """The network named 'generator', 'discriminator' or 'flow' for a configuration; `model.config`
    remembers the configuration, for whoever measures the network later (receptive field, cost)."""
    networks = {"generator": Generator, "discriminator": Discriminator, "flow": ConditionalFlow}
    if network not in networks:
        raise ValueError(f"unknown network {network!r}; choose one of {sorted(networks)}")
    model = networks[network](cfg)
    model.config = cfg
    return model
