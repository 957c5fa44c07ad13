"""The generator every compared network is built on: SR's and SRGAN's network, the flow's frozen base.

Choices where the study's table is ambiguous or leaves something out (measured by
``python -m sr_lib complexity``): the table's "17 convs 3x3 64->64" are SRGAN's layout, 8 residual blocks
of two convs plus the conv after them, with a skip around them (`Trunk`), then two pixel-shuffle stages
and a 9x9 conv. It predicts the *residual* over bicubic upsampling of the LR input, a parameter-free skip
that lets short CPU training converge. The pixel-shuffle convs start ICNR-initialised (no checkerboard at
start) and each pixel shuffle is followed by a 2x2 zero-order hold (`ZeroOrderHold`: no checkerboard ever,
on flat input); the holds widen the field by one LR pixel (paper config: 196 px, the study's 192 + 4).

The other networks live with their methods: the discriminator in `methods/srgan.py`, the flow in
`methods/flow.py`.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import UserError
from . import reach
from .config import SCALE, Config
from .imaging import check_images, upsample


MAX_TEMPERATURE = 2.0  # the latent's std; far beyond 1 the samples are noise and the inverse leaves its training range


def check_temperature(temperature, name: str = "temperature") -> float:
    """Raise ValueError unless the latent temperature is a number from 0 to MAX_TEMPERATURE (NaN is not)."""
    if temperature is None or not math.isfinite(temperature) or not 0 <= temperature <= MAX_TEMPERATURE:
        raise UserError(f"{name} must be a number from 0 to {MAX_TEMPERATURE}, got {temperature}")
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
    (SRGAN's dots, notebook 03): `methods.srgan.grid_loss` is there against that. No parameters; the conv before
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


def trunk_span(cfg: Config, span: reach.Span) -> reach.Span:
    """LR positions the trunk's features at `span` see: the 9x9 head, then 2 * blocks + 1 3x3 convs."""
    return reach.widen(span, 9 // 2 + 2 * cfg.gen_blocks + 1)


def stage_span(span: reach.Span) -> reach.Span:
    """Input positions of an upsampling stage's output `span`: its hold, its shuffle, its 3x3 conv."""
    return reach.conv(reach.finer(reach.hold(span)), 3)


class Generator(nn.Module):
    """SRGAN's generator: LR (N,3,h,w) -> HR (N,3,4h,4w); the pixel-shuffle convs start ICNR-initialised."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.config = cfg  # for whoever measures the network later (receptive field, cost)
        ch = cfg.gen_channels
        self.trunk = Trunk(cfg)
        self.upsample = nn.Sequential(upsampling_stage(ch), upsampling_stage(ch))
        self.tail = conv(ch, 3, 9)

    def forward(self, lr: torch.Tensor, with_features: bool = False):
        """The HR estimate; with_features=True also returns the trunk's features (N, ch, h, w) and those
        after the first upsampling stage (N, ch, 2h, 2w): the flow conditions its two levels on them."""
        check_images(lr, "LR image", values=False)  # shape and dtype; values where images enter (`check_images`)
        check_matches(lr, self, "LR image")
        features = self.trunk(lr)
        half = self.upsample[0](features)
        hr = upsample(lr) + self.tail(self.upsample[1](half))
        return (hr, (half, features)) if with_features else hr

    # ------------------------------------------------ static cost, from the layer shapes (no forward pass)
    @staticmethod
    def lr_span(cfg: Config, hr: reach.Span) -> reach.Span:
        """The LR positions HR positions `hr` see: the bicubic skip, and the tail, both stages and the trunk."""
        return reach.union(reach.bicubic(hr, SCALE), trunk_span(cfg, stage_span(stage_span(reach.conv(hr, 9)))))

    @staticmethod
    def half_features_span(cfg: Config, half: reach.Span) -> reach.Span:
        """The LR positions the features after the first stage (twice LR resolution) at `half` see."""
        return trunk_span(cfg, stage_span(half))

    @staticmethod
    def macs_per_hr_pixel(cfg: Config) -> float:
        """Per LR pixel the 9x9 head, the 2 * blocks + 1 body convs and the first upsampling conv; the
        second upsampling conv runs at 4 positions per LR pixel, the 9x9 tail at 16."""
        ch = cfg.gen_channels
        per_lr_pixel = 81 * 3 * ch + (2 * cfg.gen_blocks + 1) * 9 * ch * ch + 9 * ch * 4 * ch
        return per_lr_pixel / SCALE ** 2 + 9 * ch * 4 * ch / (SCALE // 2) ** 2 + 81 * ch * 3

    @classmethod
    def cost(cls, cfg: Config) -> dict:
        """Parameters, multiply-accumulates per HR pixel and receptive field (HR px) of this network."""
        return {"params": sum(p.numel() for p in cls(cfg).parameters()),
                "macs_per_hr_pixel": cls.macs_per_hr_pixel(cfg),
                "receptive_field_px": SCALE * reach.side(cls.lr_span(cfg, (0, 0)))}
