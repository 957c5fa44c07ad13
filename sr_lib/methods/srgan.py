"""SRGAN: the SR generator, started from SR's weights, trained against a discriminator.

Generator loss = content + `adv_weight` * ESRGAN's relativistic average GAN loss (the generator is
rewarded when its crops look more real than the average real crop, the discriminator when it ranks real
above fake). The content term (`srgan_content`) is L1, or SRGAN's VGG19 loss when `content='vgg'` and its
ImageNet weights are cached (offline: L1, with a note), plus two terms against what the invented detail
must not do: form a lattice of dots on the LR pixel grid (`grid_loss`), or change the LR image it
explains (LR-consistency). The discriminator is frozen during the generator's update and judges shifted
windows (`shifted_window`). The evaluated generator is an exponential moving average of the trained one
(decay `ema_decay`, a later stabiliser, not ESRGAN's): it averages out the step-to-step swings of the
two-player game.
"""
import contextlib
import copy
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from .. import distributed
from ..config import SCALE, Config
from ..imaging import check_images, downsample
from ..metrics import grid_pattern
from ..models import check_matches
from .. import optim
from ..weights import MissingWeights, weight_path
from .base import Method, Settings, Trainer, register
from .sr import PixelTrainer, run


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
        self.config = cfg
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
        check_images(hr, "HR image", unit_range=False, values=False)  # it judges generated images, which overshoot
        check_matches(hr, self, "HR image")
        return self.head(self.features(hr)).squeeze(1)


class VGGContent(torch.nn.Module):
    """MSE between VGG19 relu5_4 features of output and target (SRGAN's content loss), frozen."""

    def __init__(self):
        super().__init__()
        from torchvision.models import vgg19
        vgg = vgg19(weights=None)
        vgg.load_state_dict(torch.load(weight_path("vgg19"), map_location="cpu", weights_only=True))
        self.features = vgg.features[:36].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, output, target):
        def feats(x):
            return self.features((x - self.mean) / self.std)
        return 0.006 * F.mse_loss(feats(output), feats(target))  # SRGAN's 1/12.75^2 scaling


def content_loss(choice: str):
    """The SRGAN content loss: VGG when asked for and its weights are cached, L1 otherwise (with a note)."""
    if choice == "vgg":
        try:
            return VGGContent(), "vgg"
        except MissingWeights as missing:
            print(f"note: VGG content loss unavailable, using L1 instead: {missing}")
    elif choice != "l1":
        raise UserError(f"content loss must be 'l1' or 'vgg', got {choice!r}")
    return F.l1_loss, "l1"


def relativistic_loss(a_logit: torch.Tensor, b_logit: torch.Tensor) -> torch.Tensor:
    """Relativistic average GAN loss (ESRGAN): 'each a is more real than the average b, and each b less
    real than the average a'. The discriminator minimises it with a = real, the generator with a = fake."""
    bce = F.binary_cross_entropy_with_logits
    return (bce(a_logit - b_logit.mean(), torch.ones_like(a_logit))
            + bce(b_logit - a_logit.mean(), torch.zeros_like(b_logit))) / 2


def shifted_window(max_shift: int = 2 * SCALE):
    """A function cutting the same window, `max_shift` px smaller than the crop at a random offset, from
    any batch (DiffAugment's translation, Zhao et al. 2020). Without it every generated crop has its 4 px
    LR grid at the same phase as D's stride-2 layers, which can turn a grid-aligned lattice into a flat
    offset that D cannot see (our runs without it painted such a lattice)."""
    dy, dx = torch.randint(max_shift, (2,)).tolist()
    return lambda x: x[..., dy:x.shape[-2] - max_shift + dy, dx:x.shape[-1] - max_shift + dx]


def grid_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 between the output's and the target's `metrics.grid_pattern`: the per-pixel content loss sees a
    faint lattice of dots as tiny errors scattered over the crop; averaged over the crop's 4x4 blocks first,
    a pattern repeated in every block adds up, and natural texture, in no fixed place, averages out."""
    return F.l1_loss(grid_pattern(fake), grid_pattern(real))


def srgan_content(base, grid_weight: float | None = None, consistency_weight: float | None = None):
    """SRGAN's content loss as content(fake, hr, lr): base(fake, hr) (L1 or VGG), plus `grid_weight` *
    `grid_loss`, plus `consistency_weight` * the L1 between the output's downsampled image and the LR input
    (what the adversarial term's invented detail must not change: LR-consistency). None counts as 0."""
    grid_weight, consistency_weight = grid_weight or 0.0, consistency_weight or 0.0

    def content(fake, hr, lr):
        return (base(fake, hr) + grid_weight * grid_loss(fake, hr)
                + consistency_weight * F.l1_loss(downsample(fake), lr))
    return content


def adversarial_step(gen, disc, opt_g, opt_d, hr, lr, content, adv_weight: float, clip: float | None,
                     autocast=contextlib.nullcontext) -> dict | None:
    """One generator update (content + fool D, D frozen), then one discriminator update (real above fake).
    D judges the same randomly shifted window of every crop (`shifted_window`). Under torchrun gen and
    disc are DistributedDataParallel: the generator's update calls the bare D (it trains only G), and D's
    update scores real and generated crops in one forward, so each of D's weights gets its gradient once.
    `autocast`: the context of the forward passes (`train.precision`)."""
    window = shifted_window()
    judge = distributed.unwrap(disc)
    with autocast():
        fake = gen(lr).float()
        real_w, fake_w = window(hr), window(fake)
        judge.requires_grad_(False)
        with torch.no_grad():
            real_logit = judge(real_w).float()
        fake_logit = judge(fake_w).float()
        g_content = content(fake, hr, lr)
        adversarial = relativistic_loss(fake_logit, real_logit)
    g_norm = optim.guarded_step(opt_g, g_content + adv_weight * adversarial, gen.parameters(), clip)
    judge.requires_grad_(True)
    if g_norm is None:
        return None
    with autocast():
        real_logit, fake_logit = disc(torch.cat([real_w, fake_w.detach()])).float().split(len(hr))
        d_loss = relativistic_loss(real_logit, fake_logit)
    if optim.guarded_step(opt_d, d_loss, disc.parameters(), clip) is None:
        return None
    with torch.no_grad():  # D's relativistic verdicts: P(real crop more real than the average fake) and v.v.
        d_real = torch.sigmoid(real_logit - fake_logit.mean()).mean().item()
        d_fake = torch.sigmoid(fake_logit - real_logit.mean()).mean().item()
    return {"content": g_content.item(), "adversarial": adversarial.item(), "d_loss": d_loss.item(),
            "d_real": d_real, "d_fake": d_fake}


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for the weights; BatchNorm statistics are copied."""
    for e, m in zip(ema.parameters(), model.parameters()):
        e.lerp_(m, 1 - decay)
    for e, m in zip(ema.buffers(), model.buffers()):
        e.copy_(m)


@dataclass(frozen=True)
class AdversarialSettings(Settings):
    """Defaults, each with its reason:
    * learning rate 1e-4 (half SR's, as ESRGAN's GAN stage; its discriminator learns at 4x,
      `AdversarialTrainer.rate_ratio`); clip 1.
    * adversarial weight 5e-3 against L1, ESRGAN's: at 2e-2 the trained generator painted a 2-4 px lattice
      and colour speckle within 1,000 steps in every run we made.
    * LR-grid term (`grid_loss`) weight 2: without it (grid weight 0, notebook 03's ablation) this recipe's
      SRGAN painted a lattice of dots of 1.64 grey levels on the held-out faces (original: 0.29); with it,
      0.22. At weight 1 its gradient was as large as the content loss's (norms 0.08 and 0.09); 2 makes it win.
    * LR-consistency term weight 0.5: without it the shipped recipe's SRGAN explained its own LR input to
      37.9 dB only (below the 40 dB the NTIRE 2021 challenge required); 0.5 gave 43.1 dB and 1 gave 43.9 dB
      with more speckle on dark areas, so 0.5.
    * EMA decay 0.995: the evaluated generator averages about the last 200 steps.
    """
    learning_rate: float = 1e-4
    clip: float | None = 1.0
    adv_weight: float = 5e-3
    grid_weight: float = 2.0
    consistency_weight: float = 0.5
    content: str = "l1"  # 'l1' or 'vgg' (SRGAN's VGG19 loss, when its weights are cached)
    ema_decay: float = 0.995

    def __post_init__(self):
        super().__post_init__()
        self.non_negative(adv_weight=self.adv_weight, grid_weight=self.grid_weight,
                          consistency_weight=self.consistency_weight)
        if self.content not in ("l1", "vgg"):
            raise UserError(f"content loss must be 'l1' or 'vgg', got {self.content!r}")
        if not 0 <= self.ema_decay < 1:
            raise UserError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")


class AdversarialTrainer(Trainer):
    Settings = AdversarialSettings
    # The discriminator learns at 4x the generator's rate (the two time-scale update rule of Heusel et al.
    # 2017, as SAGAN): a spectrally normalised D that learns at the generator's pace lets the generator win
    # with artefacts (speckle, a 2 px grid) that D has not yet learnt to reject.
    rate_ratio = {"discriminator": 4.0}
    refuses = PixelTrainer.refuses  # the same generator: the same reason against --compile

    def __init__(self, cfg, settings, start):
        super().__init__(cfg, settings, start)
        self.trained = {"generator": start, "discriminator": Discriminator(cfg)}
        self.base_content, used = content_loss(settings.content)
        self.settings = replace(settings, content=used)  # what the checkpoint records: what was used
        self.content = srgan_content(self.base_content, settings.grid_weight, settings.consistency_weight)
        self.kept = {"model": copy.deepcopy(start)}

    def to(self, device, memory_format):
        super().to(device, memory_format)
        if isinstance(self.base_content, nn.Module):  # VGG: frozen, not saved
            self.base_content.to(device)
        return self

    def update(self, parallel, optimizers, hr, lr, autocast):
        losses = adversarial_step(parallel["generator"], parallel["discriminator"], optimizers["generator"],
                                  optimizers["discriminator"], hr, lr, self.content, self.settings.adv_weight,
                                  self.settings.clip, autocast)
        if losses is not None:
            update_ema(self.kept["model"], self.trained["generator"], self.settings.ema_decay)
        return losses


METHOD = register(Method("srgan", "SRGAN", run, network="generator", trainer=AdversarialTrainer, starts_from="sr",
                         study={"fid": 3.858, "lpips": 0.1480}), networks={"discriminator": Discriminator})
