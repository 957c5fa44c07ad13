"""One readable training loop per method: SR (pixel loss), SRGAN (adversarial), flow (maximum likelihood).

Shared by all three: Adam with the learning rate halved at 50% and 75% of the steps, seeded, `tqdm.auto` progress with the running loss, a loss history in the
checkpoint and as JSON beside it, atomic checkpoints every `save_every` steps and at the end, resumable
(`resume=True` continues from the checkpoint in `out`, data stream included).

Loss choices:
* SR: L1 between output and HR.
* SRGAN: starts from the SR checkpoint; generator loss = content + `adv_weight` * BCE(D(G(lr)), real).
  The content term is the L1 pixel loss, or SRGAN's VGG19 loss (MSE of relu5_4 features, scaled by
  1/12.75^2 = 0.006 as in the SRGAN paper) when `content='vgg'` and the ImageNet VGG19 weights are in
  torch hub's cache. Offline the L1 content loss is used, with a larger
  adversarial weight (5e-3) because L1 is larger than the VGG term.
* Flow: negative log-likelihood in bits per dimension of the uniformly dequantized HR image; gradients
  clipped to norm `clip`; a non-finite loss skips the step (and stops after 10 in a row, leaving the last
  good checkpoint untouched).
"""
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoint import config_of, load_checkpoint, load_model, save_checkpoint
from .config import Config
from .data import RandomCrops, training_images
from .models import ConditionalFlow, Discriminator, Generator
from .weights import MissingWeights, weight_path

MAX_BAD_STEPS = 10


@dataclass
class TrainSettings:
    kind: str  # 'sr', 'srgan' or 'flow'
    cfg: Config
    out: Path
    steps: int
    data: str = "bundled"
    lr: float = 2e-4
    seed: int = 0
    resume: bool = False
    save_every: int = 200
    clip: float = 10.0  # flow: gradient norm clip
    content: str = "l1"  # srgan: 'l1' or 'vgg'
    adv_weight: float = 5e-3  # srgan
    show_progress: bool = True
    device: str = "cpu"


def learning_rate(base: float, step: int, steps: int) -> float:
    """Constant, halved for the last half of the steps and again for the last quarter (a function of the
    step alone, so a resumed run follows the same schedule)."""
    return base * (0.5 if step >= steps // 2 else 1.0) * (0.5 if step >= 3 * steps // 4 else 1.0)


def checkpoint_path(out: Path, kind: str) -> Path:
    return Path(out) / f"{kind}.pt"


def _write_history(settings: TrainSettings, history: list[dict]) -> None:
    path = checkpoint_path(settings.out, settings.kind).with_suffix(".history.json")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(history))
    os.replace(tmp, path)


class _Run:
    """What every loop shares: data stream, optimizers, resume, progress, history and saving."""

    def __init__(self, settings: TrainSettings, modules: dict[str, torch.nn.Module]):
        if settings.steps < 1:
            raise ValueError(f"steps must be >= 1, got {settings.steps}")
        self.settings, self.modules = settings, {name: m.to(settings.device) for name, m in modules.items()}
        self.optimizers = {name: torch.optim.Adam(m.parameters(), lr=settings.lr, betas=(0.9, 0.999))
                           for name, m in modules.items()}
        cfg = settings.cfg
        self.stream = RandomCrops(training_images(settings.data, cfg.crop, settings.seed), cfg.crop, cfg.batch,
                                  settings.seed)
        self.step, self.history = 0, []
        self.path = checkpoint_path(settings.out, settings.kind)
        if settings.resume and self.path.exists():
            self._restore(load_checkpoint(self.path, settings.kind, cfg))

    def _restore(self, payload: dict) -> None:
        if payload.get("slim"):
            raise ValueError(f"{self.path} is a slim, evaluation-only checkpoint: it cannot resume training")
        self.modules["model"].load_state_dict(payload["model"])
        for name, module in self.modules.items():
            if name != "model":
                module.load_state_dict(payload[name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(payload[f"{name}_optimizer"])
        self.stream.set_state(payload["data_state"])
        torch.set_rng_state(payload["rng_state"])
        self.step, self.history = payload["step"], payload["history"]

    def save(self) -> None:
        extra = {name: m.state_dict() for name, m in self.modules.items() if name != "model"}
        extra.update({f"{name}_optimizer": opt.state_dict() for name, opt in self.optimizers.items()})
        save_checkpoint(self.path, self.settings.kind, self.settings.cfg, self.step, self.modules["model"],
                        data_state=self.stream.state(), rng_state=torch.get_rng_state(), history=self.history, **extra,
                        settings={"data": self.settings.data, "lr": self.settings.lr, "seed": self.settings.seed,
                                  "content": self.settings.content, "adv_weight": self.settings.adv_weight})
        _write_history(self.settings, self.history)

    def batches(self):
        """(step, hr, lr) until `steps`, with a progress bar; saves periodically and at the end."""
        for m in self.modules.values():
            m.train()
        bar = tqdm(range(self.step, self.settings.steps), desc=f"train {self.settings.kind}",
                   disable=not self.settings.show_progress, initial=self.step, total=self.settings.steps)
        for i in bar:
            for opt in self.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = learning_rate(self.settings.lr, i, self.settings.steps)
            hr, lr = next(self.stream)
            yield hr.to(self.settings.device), lr.to(self.settings.device)
            self.step = i + 1
            if self.history:
                bar.set_postfix({k: f"{v:.4g}" for k, v in self.history[-1].items() if k != "step"})
            if self.step % self.settings.save_every == 0 or self.step == self.settings.steps:
                self.save()

    def log(self, **losses: float) -> None:
        self.history.append({"step": self.step + 1, **losses})


def train_sr(settings: TrainSettings) -> Path:
    gen = Generator(settings.cfg)
    run = _Run(settings, {"model": gen})
    for hr, lr in run.batches():
        loss = F.l1_loss(gen(lr), hr)
        run.optimizers["model"].zero_grad()
        loss.backward()
        run.optimizers["model"].step()
        run.log(l1=loss.item())
    return run.path


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
        return 0.006 * F.mse_loss(feats(output), feats(target))


def content_loss(choice: str):
    """The SRGAN content loss: VGG when asked for and its weights are cached, L1 otherwise (with a note)."""
    if choice == "vgg":
        try:
            return VGGContent(), "vgg"
        except MissingWeights as missing:
            print(f"note: VGG content loss unavailable, using L1 instead: {missing}")
    elif choice != "l1":
        raise ValueError(f"content loss must be 'l1' or 'vgg', got {choice!r}")
    return F.l1_loss, "l1"


def train_srgan(settings: TrainSettings) -> Path:
    sr_path = checkpoint_path(settings.out, "sr")
    if not sr_path.exists():
        raise FileNotFoundError(f"SRGAN starts from the SR generator: train it first ({sr_path} is missing)")
    gen, sr_payload = load_model(sr_path, "sr")
    if config_of(sr_payload) != settings.cfg:
        raise ValueError(f"{sr_path} was trained with another config than {settings.cfg.name!r}")
    disc = Discriminator(settings.cfg)
    content, used = content_loss(settings.content)
    if used == "vgg":
        content = content.to(settings.device)
    settings.content = used
    run = _Run(settings, {"model": gen, "discriminator": disc})
    for hr, lr in run.batches():
        run.log(**srgan_step(gen, disc, run.optimizers["model"], run.optimizers["discriminator"], hr, lr, content,
                             settings.adv_weight))
    return run.path


def srgan_step(gen, disc, opt_g, opt_d, hr, lr, content, adv_weight: float) -> dict:
    """One discriminator update (real -> 1, fake -> 0), then one generator update (content + fool D)."""
    bce = F.binary_cross_entropy_with_logits
    fake = gen(lr)
    real_logit, fake_logit = disc(hr), disc(fake.detach())
    d_loss = bce(real_logit, torch.ones_like(real_logit)) + bce(fake_logit, torch.zeros_like(fake_logit))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    fooled = disc(fake)
    adversarial = bce(fooled, torch.ones_like(fooled))
    g_content = content(fake, hr)
    opt_g.zero_grad()
    (g_content + adv_weight * adversarial).backward()
    opt_g.step()
    return {"content": g_content.item(), "adversarial": adversarial.item(), "d_loss": d_loss.item(),
            "d_real": torch.sigmoid(real_logit).mean().item(), "d_fake": torch.sigmoid(fake_logit).mean().item()}


def bits_per_dim(flow: ConditionalFlow, hr: torch.Tensor, lr: torch.Tensor, dequantize: bool = True) -> torch.Tensor:
    """-log2 p(hr | lr) per dimension, for 8-bit images in [0, 1] with uniform dequantization noise.

    The discrete likelihood of 256 levels is bounded below by the continuous density of
    x = (255 hr + u) / 256, u ~ U(0, 1), times the bin volume 256^-D.
    """
    x = (255.0 * hr + torch.rand_like(hr)) / 256.0 if dequantize else hr
    z, logdet = flow(x, lr)
    dims = hr[0].numel()
    log_pz = -0.5 * (z.square() + math.log(2 * math.pi)).flatten(1).sum(1)
    return (-(log_pz + logdet) / dims + math.log(256.0)) / math.log(2.0)


def train_flow(settings: TrainSettings) -> Path:
    flow = ConditionalFlow(settings.cfg)
    run = _Run(settings, {"model": flow})
    bad_in_a_row = 0
    for hr, lr in run.batches():
        losses = flow_step(flow, run.optimizers["model"], hr, lr, settings.clip)
        if losses is None:
            bad_in_a_row += 1
            print(f"step {run.step + 1}: non-finite loss, step skipped ({bad_in_a_row} in a row)")
            if bad_in_a_row >= MAX_BAD_STEPS:
                raise RuntimeError(f"{MAX_BAD_STEPS} non-finite losses in a row: training stopped; skipped steps "
                                   f"never update the weights, so {run.path} holds the last finite ones. "
                                   "Lower --lr or the scale clamp.")
            continue
        bad_in_a_row = 0
        run.log(**losses)
    return run.path


def flow_step(flow, optimizer, hr, lr, clip: float) -> dict | None:
    """One maximum-likelihood update with gradient clipping; None (and no update) if the loss is not finite."""
    loss = bits_per_dim(flow, hr, lr).mean()
    if not torch.isfinite(loss):
        return None
    optimizer.zero_grad()
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(flow.parameters(), clip)
    optimizer.step()
    return {"bpd": loss.item(), "grad_norm": grad_norm.item()}


TRAINERS = {"sr": train_sr, "srgan": train_srgan, "flow": train_flow}


def train(settings: TrainSettings) -> Path:
    if settings.kind not in TRAINERS:
        raise ValueError(f"unknown method {settings.kind!r}; choose one of {sorted(TRAINERS)}")
    torch.manual_seed(settings.seed)  # before any network is built: initial weights are reproducible
    return TRAINERS[settings.kind](settings)
