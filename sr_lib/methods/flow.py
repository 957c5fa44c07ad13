"""The conditional normalizing flow: p(HR | LR) by maximum likelihood, sampled at a latent temperature.

Everything the flow is lives here: its network (`ConditionalFlow` and its steps), its loss
(`bits_per_dim`, trained by `LikelihoodTrainer`), its defaults (`LikelihoodSettings`) and its sampling
(`run`, `prepare`). Choices where the study's table is ambiguous or leaves something out (measured by
``python -m sr_lib complexity``):

* p(HR | LR) = the pixel-loss generator's estimate plus a learned distribution of what it leaves open.
  The HR residual over the *base* (a generator, trained by the pixel loss first and then frozen) is
  squeezed 2x2 to 12 channels at half resolution. Each flow step is SRFlow's: a learned invertible 1x1
  convolution (Glow), an affine injector (scale and shift of all channels from the LR features) and an
  affine coupling (split 6 | 6; subnet "6x64 -> 64x64 -> 64x12" of three 3x3 convs, 6 log-scales + 6
  shifts), conditioned on the base's features after its first upsampling stage (which ends at the
  couplings' half resolution). Then, as in Glow's and SRFlow's multi-scale flows, a second squeeze to 48
  channels at LR resolution and `flow_lr_couplings` more steps there, conditioned on the base's trunk
  features: one 1x1 mixer now sees a whole LR pixel's 4x4 block, so the flow can learn to put (almost) no
  noise into what the LR image fixes. With half-resolution steps only, our flow's samples at T = 0.8
  drifted below 40 dB LR-consistency as training went on (39.3 dB after 3,400 steps).
* Why a base network: maximum likelihood learns the conditional mean slowly. With an encoder of its own
  at 1.18x the generator's compute, our flow at temperature 0 was 0.03 dB above bicubic after 800 CPU
  steps, the first version's 0.16 dB after 5,000, while the pixel loss gives 1.2 dB. SRFlow conditions on
  a pretrained SR network (its RRDB, larger than the flow itself) for this reason; we do the same with our
  generator, frozen so the comparison's SR network stays what it is. The price is compute: the flow costs
  the generator plus its steps (cpu config: 1.70x the generator; paper config: over 3x, where 16
  couplings of width 64 are 2.1x by themselves, so the study's 1.07x cannot hold for the table's couplings
  under any reading). Its T = 0 output is therefore SR's, by construction.
* The scales are soft-clamped, s = c * tanh(raw / c), so exp(s) stays in [exp(-c), exp(c)] and the inverse
  cannot overflow; the output convs of couplings and injectors start at zero, so an untrained flow is its
  base plus white Gaussian noise of std T.
* BatchNorm sits inside the subnets only (s and t need not be invertible). In training mode it uses batch
  statistics, so forward and inverse agree exactly only in eval mode: check invertibility with
  ``model.eval()``.
* Training: negative log-likelihood in bits per dimension of the uniformly dequantized HR image; the
  base, the SR generator the flow `starts_from`, stays frozen.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import reach
from ..config import Config
from ..imaging import SCALE, check_images, check_pair
from ..models import Generator, check_matches, check_temperature, conv, trunk_span
from .base import Method, Settings, Trainer, latent, register


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
# The flow's two levels, each the index of its conditioning features in `Generator(lr, with_features=True)`:
# the residual squeezed once (12 channels at half resolution) and twice (48 channels at LR resolution).
HALF, LOW = 0, 1
LEVEL_CHANNELS = (12, 48)


class FlowStep(nn.Module):
    """One step of the flow (SRFlow's order): channel mixing, conditional injector, conditional coupling,
    at one `level` (HALF or LOW)."""

    def __init__(self, level: int, cfg: Config):
        super().__init__()
        self.level = level
        channels = LEVEL_CHANNELS[level]
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
        self.config = cfg
        self.base = Generator(cfg)
        # half resolution: 3 colours squeezed 2x2 = 12 channels; LR resolution: squeezed again, 48 channels
        self.steps = nn.ModuleList([*(FlowStep(HALF, cfg) for _ in range(cfg.flow_couplings)),
                                    *(FlowStep(LOW, cfg) for _ in range(cfg.flow_lr_couplings))])

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
        check_pair(hr, lr, values=False)
        check_matches(hr, self, "HR image")
        base, features = self.base(lr, with_features=True)
        x, level = squeeze(hr - base), HALF
        logdet = torch.zeros(hr.shape[0], dtype=hr.dtype, device=hr.device)
        for step in self.steps[:depth]:
            if step.level != level:
                x, level = squeeze(x), step.level  # on to the LR level
            x, ld = step(x, features[level])
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
        check_pair(z, lr, hr_name="latent z", unit_range=False, values=False)
        check_matches(z, self, "latent z")
        base, features = self.base(lr, with_features=True) if condition is None else condition
        steps = self.steps[:depth]
        x, level = squeeze(z), HALF
        if steps and steps[-1].level == LOW:
            x, level = squeeze(x), LOW
        logdet = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for step in reversed(steps):
            if step.level != level:
                x, level = unsqueeze(x), step.level  # back to the half-resolution level
            x, ld = step.inverse(x, features[level])
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
        return self.inverse(latent(lr, temperature, generator), lr, condition=condition)[0]


    # ------------------------------------------------ static cost, from the layer shapes (no forward pass)
    @staticmethod
    def macs_per_hr_pixel(cfg: Config) -> float:
        """The base generator's, plus per step and position of its level: the C x C mixer, the injector's
        1x1 conv (features -> 2C), the coupling's 3x3 convs C/2 -> hidden -> hidden -> C and its 1x1
        condition projection; a half-resolution position is 4 HR pixels, an LR one 16."""
        c, h = cfg.gen_channels, cfg.flow_hidden

        def step(channels: int) -> int:
            return channels * channels + 2 * channels * c + 9 * (channels // 2) * h + c * h + 9 * h * h + 9 * h * channels
        return (Generator.macs_per_hr_pixel(cfg) + cfg.flow_couplings * step(LEVEL_CHANNELS[HALF]) / 4
                + cfg.flow_lr_couplings * step(LEVEL_CHANNELS[LOW]) / SCALE ** 2)

    @staticmethod
    def fields(cfg: Config) -> tuple[int, int]:
        """Receptive fields (HR px) of one output pixel w.r.t. z and w.r.t. the LR image, sampling direction.

        Undoing a step widens what its output sees of the step's input by 3 positions of its level (the
        coupling subnet's three 3x3 convs on the half it passes) and sees the step's condition 2 positions
        wide (1x1 projection, then two 3x3 convs); mixer and injector are 1x1. So the first step undone
        (the last LR-level one) reaches furthest into the LR features, widened by every step after it."""
        couplings, lr_couplings = cfg.flow_couplings, cfg.flow_lr_couplings
        half = reach.finer((0, 0))  # the output pixel's position at half resolution
        seen = [Generator.lr_span(cfg, (0, 0))]  # the base
        if couplings:
            seen.append(Generator.half_features_span(cfg, reach.widen(half, 3 * couplings - 1)))
        below = reach.widen(half, 3 * couplings)  # what the half-resolution steps need of their input
        if lr_couplings:
            low = reach.finer(below)
            seen.append(trunk_span(cfg, reach.widen(low, 3 * lr_couplings - 1)))
            z_px = SCALE * reach.side(reach.widen(low, 3 * lr_couplings))  # one LR position: 4x4 HR px of z
        else:
            z_px = 2 * reach.side(below)
        return z_px, SCALE * reach.side(reach.union(*seen))

    @classmethod
    def cost(cls, cfg: Config) -> dict:
        """Parameters, multiply-accumulates per HR pixel (one sample) and receptive field (HR px: the wider
        of z's and the LR image's, `fields`) of this network."""
        return {"params": sum(p.numel() for p in cls(cfg).parameters()),
                "macs_per_hr_pixel": cls.macs_per_hr_pixel(cfg), "receptive_field_px": max(cls.fields(cfg))}


class Likelihood(nn.Module):
    """The flow's loss as a module's forward: mean bits per dimension of a batch. DistributedDataParallel
    averages gradients of what runs through a wrapped forward, so the objective must be one."""

    def __init__(self, flow: ConditionalFlow):
        super().__init__()
        self.flow = flow

    def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        return self.flow.bits_per_dim(hr, lr).mean()


@dataclass(frozen=True)
class LikelihoodSettings(Settings):
    # 3e-4, clip 10 on the gradient norm: the shipped run's median norm was 10.9, and 16% of its last 1,000
    # steps were clipped, so single bad batches cannot grow the weights that notebook 02 shows can make the
    # inverse silently wrong.
    learning_rate: float = 3e-4
    clip: float | None = 10.0


class LikelihoodTrainer(Trainer):
    Settings = LikelihoodSettings
    refuses = {"bf16": "a flow must invert exactly, and under bfloat16 the shipped flow's round trip was off by "
                       "0.022 (5.7 grey levels; float32: 2e-6) and its log-determinant by up to 1,481 nats"}

    def __init__(self, cfg, settings, start):
        super().__init__(cfg, settings, start)
        flow = ConditionalFlow(cfg)
        if start is not None:
            flow.freeze_base(start.state_dict())
        self.trained = {"model": flow}
        self.losses = {"model": Likelihood(flow)}

    def update(self, parallel, optimizers, hr, lr, autocast):
        loss = parallel["model"](hr, lr)
        return self.guarded(optimizers["model"], loss, {"bpd": loss})


def run(model, lr: torch.Tensor, temperature: float, generator, prepared=None) -> torch.Tensor:
    return model.sample(lr, temperature, generator=generator, condition=prepared)


def decode(model, lr: torch.Tensor, noise: torch.Tensor, prepared=None) -> torch.Tensor:
    return model.inverse(noise, lr, condition=prepared)[0]


def prepare(model, lr: torch.Tensor):
    return model.condition(lr)


METHOD = register(Method("flow", "flow", run, network="flow", stochastic=True, trainer=LikelihoodTrainer,
                         starts_from="sr", study={"fid": 6.026, "lpips": 0.2061}, prepare=prepare, decode=decode),
                  networks={"flow": ConditionalFlow})
