"""The three comparable networks of the seed study: SR generator, SRGAN discriminator, conditional flow.

Choices where the seed's table is ambiguous (measured by ``python -m sr_lib complexity``):

* Generator: the table's "17 convs 3x3 64->64" are SRGAN's layout, 8 residual blocks of two convs
  plus the conv after them, with a global skip. Both the generator and the flow predict the *residual*
  over bicubic upsampling of the LR input: a parameter-free skip (a volume-preserving shift for the
  flow, log-det 0) that lets short CPU training converge and treats the two methods alike.
* Flow: the HR residual is squeezed 2x2 to 12 channels at half resolution and split 6 | 6. Each coupling
  subnet has the three 3x3 convs "6x64 -> 64x64 -> 64x12" (6 log-scales + 6 shifts). Between
  couplings a learned invertible 1x1 convolution (Glow) mixes the channels. The LR image enters every
  coupling through shared features from an encoder (a 3x3 conv and two of the generator's residual
  blocks at LR resolution, then 1x1 conv + pixel shuffle to half resolution), added to the subnet's
  first layer by a 1x1 projection, so the seed's "6x64" stays literal. The seed does not describe its
  conditioning network; like SRFlow's, ours must give the couplings enough LR context to predict the
  HR detail's mean: with a single 3x3 conv (5 LR px of context, bicubic's own) the trained flow at
  temperature 0 was no better than bicubic.
* What the table cannot give at once: a receptive field of 192 HR px needs about 48 chained 3x3 convs at
  half resolution (each adds 4 HR px), i.e. three per coupling, and three 3x3 convs of width 64 cost
  about 0.19 M multiply-accumulates per HR pixel, 1.9x the generator's 0.10 M, not the seed's 1.07x.
  We keep the field w.r.t. the latent (194 px; the encoder widens the field w.r.t. the LR image to
  232 px) and report the cost ratio (2.0x with the encoder).
* The scale is soft-clamped, s = c * tanh(raw / c), so exp(s) stays in [exp(-c), exp(c)] and the inverse
  cannot overflow; the subnet's last conv starts at zero, so every coupling starts as the identity.
* BatchNorm sits inside the subnets only (s and t need not be invertible). In training mode it uses batch
  statistics, so forward and inverse agree exactly only in eval mode: check invertibility with
  ``model.eval()``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config
from .imaging import SCALE, check_images, check_pair, upsample


def conv(c_in: int, c_out: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)


# ---------------------------------------------------------------- generator (SRGAN / SR without GAN)
class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(conv(ch, ch), nn.BatchNorm2d(ch), nn.PReLU(ch),
                                  conv(ch, ch), nn.BatchNorm2d(ch))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """SRGAN's generator: LR (N,3,h,w) -> HR (N,3,4h,4w)."""

    def __init__(self, cfg: Config):
        super().__init__()
        ch = cfg.gen_channels
        self.head = nn.Sequential(conv(3, ch, 9), nn.PReLU(ch))
        self.body = nn.Sequential(*[ResidualBlock(ch) for _ in range(cfg.gen_blocks)],
                                  conv(ch, ch), nn.BatchNorm2d(ch))
        self.upsample = nn.Sequential(*[nn.Sequential(conv(ch, 4 * ch), nn.PixelShuffle(2), nn.PReLU(ch))
                                        for _ in range(2)])
        self.tail = conv(ch, 3, 9)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        check_images(lr, "LR image")
        features = self.head(lr)
        features = features + self.body(features)
        return upsample(lr) + self.tail(self.upsample(features))


# ---------------------------------------------------------------- discriminator
class Discriminator(nn.Module):
    """SRGAN's discriminator: 8 convs (every second one strided), BatchNorm, LeakyReLU, a dense head.

    Adaptive average pooling before the head lets it judge any crop size (the original's dense layer
    fixes 96x96 inputs). Returns one logit per image.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        widths = [cfg.disc_channels * m for m in (1, 1, 2, 2, 4, 4, 8, 8)]
        layers, c_in = [], 3
        for i, c_out in enumerate(widths):
            layers.append(nn.Conv2d(c_in, c_out, 3, stride=1 + i % 2, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 2 * c_in),
                                  nn.LeakyReLU(0.2), nn.Linear(2 * c_in, 1))

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        check_images(hr, "HR image")
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


class AffineCoupling(nn.Module):
    """y1 = x1, y2 = x2 * exp(s(x1, c)) + t(x1, c); log|det J| = sum(s) per sample.

    s and t come from one ordinary (non-invertible) subnet: three 3x3 convs channels/2 -> hidden ->
    hidden -> channels, with the condition c added to the first layer through a 1x1 projection.
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int, scale_clamp: float | None):
        super().__init__()
        if channels % 2:
            raise ValueError(f"coupling needs an even channel count, got {channels}")
        half = channels // 2
        self.scale_clamp = scale_clamp
        self.first = conv(half, hidden)
        self.cond_proj = nn.Conv2d(cond_channels, hidden, 1)
        self.rest = nn.Sequential(nn.BatchNorm2d(hidden), nn.PReLU(hidden),
                                  conv(hidden, hidden), nn.BatchNorm2d(hidden), nn.PReLU(hidden),
                                  conv(hidden, 2 * half))
        nn.init.zeros_(self.rest[-1].weight)  # untrained coupling = identity
        nn.init.zeros_(self.rest[-1].bias)

    def scale_and_shift(self, x1: torch.Tensor, cond: torch.Tensor):
        raw_s, t = self.rest(self.first(x1) + self.cond_proj(cond)).chunk(2, dim=1)
        s = raw_s if self.scale_clamp is None else self.scale_clamp * torch.tanh(raw_s / self.scale_clamp)
        return s, t

    def forward(self, x: torch.Tensor, cond: torch.Tensor):
        x1, x2 = x.chunk(2, dim=1)
        s, t = self.scale_and_shift(x1, cond)
        return torch.cat([x1, x2 * torch.exp(s) + t], dim=1), s.flatten(1).sum(1)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor):
        y1, y2 = y.chunk(2, dim=1)
        s, t = self.scale_and_shift(y1, cond)
        return torch.cat([y1, (y2 - t) * torch.exp(-s)], dim=1), -s.flatten(1).sum(1)


class ConditionEncoder(nn.Module):
    """LR image (N,3,h,w) -> features (N, cond_channels, 2h, 2w) at the couplings' half resolution.

    A 3x3 conv and `blocks` residual blocks at LR resolution (the generator's blocks), then a 1x1 conv
    and pixel shuffle: the context from which the couplings predict the HR detail's mean and spread.
    """

    def __init__(self, hidden: int, cond_channels: int, blocks: int):
        super().__init__()
        self.net = nn.Sequential(conv(3, hidden), nn.PReLU(hidden), *[ResidualBlock(hidden) for _ in range(blocks)],
                                 nn.Conv2d(hidden, 4 * cond_channels, 1), nn.PixelShuffle(2))

    def forward(self, lr):
        return self.net(lr)


# ---------------------------------------------------------------- the conditional flow
class ConditionalFlow(nn.Module):
    """p(HR | LR) as an invertible map between the HR image and a latent z of exactly its shape.

    forward(hr, lr) -> (z, log|det dz/dhr|), inverse(z, lr) -> (hr, log|det dhr/dz|),
    sample(lr, temperature) draws z ~ N(0, T^2 I) and inverts it.
    """

    channels = 12  # 3 colour channels squeezed 2x2

    def __init__(self, cfg: Config):
        super().__init__()
        self.encoder = ConditionEncoder(cfg.flow_hidden, cfg.flow_cond_channels, cfg.flow_encoder_blocks)
        self.mixers = nn.ModuleList(InvertibleConv1x1(self.channels) for _ in range(cfg.flow_couplings))
        self.couplings = nn.ModuleList(
            AffineCoupling(self.channels, cfg.flow_cond_channels, cfg.flow_hidden, cfg.flow_scale_clamp)
            for _ in range(cfg.flow_couplings))

    def forward(self, hr: torch.Tensor, lr: torch.Tensor, depth: int | None = None):
        """Map HR to z; `depth` applies only the first that many steps (for per-layer checks)."""
        check_pair(hr, lr)
        cond = self.encoder(lr)
        x = squeeze(hr - upsample(lr))
        logdet = torch.zeros(hr.shape[0], dtype=hr.dtype, device=hr.device)
        for mixer, coupling in list(zip(self.mixers, self.couplings))[:depth]:
            x, ld_mix = mixer(x)
            x, ld_coupling = coupling(x, cond)
            logdet = logdet + ld_mix + ld_coupling
        return unsqueeze(x), logdet

    def inverse(self, z: torch.Tensor, lr: torch.Tensor, depth: int | None = None):
        """Map z back to HR, undoing the first `depth` steps (all by default)."""
        check_pair(z, lr)
        cond = self.encoder(lr)
        x = squeeze(z)
        logdet = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for mixer, coupling in reversed(list(zip(self.mixers, self.couplings))[:depth]):
            x, ld_coupling = coupling.inverse(x, cond)
            x, ld_mix = mixer.inverse(x)
            logdet = logdet + ld_mix + ld_coupling
        return unsqueeze(x) + upsample(lr), logdet

    @torch.no_grad()
    def sample(self, lr: torch.Tensor, temperature: float = 0.8, generator: torch.Generator | None = None):
        """One HR sample per LR image at the given latent temperature (0 gives the z = 0 image)."""
        check_images(lr, "LR image")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        n, _, h, w = lr.shape
        z = torch.randn(n, 3, SCALE * h, SCALE * w, generator=generator, dtype=lr.dtype, device=lr.device)
        return self.inverse(temperature * z, lr)[0]


def build(kind: str, cfg: Config) -> nn.Module:
    """The network named 'generator', 'discriminator' or 'flow' for a configuration."""
    networks = {"generator": Generator, "discriminator": Discriminator, "flow": ConditionalFlow}
    if kind not in networks:
        raise ValueError(f"unknown network {kind!r}; choose one of {sorted(networks)}")
    return networks[kind](cfg)
