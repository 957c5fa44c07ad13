"""One readable training loop per objective: pixel loss (SR), adversarial (SRGAN), maximum likelihood (flow).

Which method uses which loop, and its defaults, is in `methods.METHODS`. Shared by all three (`_Run`):
Adam with the learning rate halved at 50% and 75% of the steps, seeded crops in all 8 orientations,
`tqdm.auto` progress, a loss history in the checkpoint and as JSON beside it, atomic checkpoints every
`save_every` steps and at the end, exact resume (`resume=True`, data stream included), and a guard: a
step whose loss or gradient is not finite is skipped without touching the weights, and 10 in a row stop
the run, leaving the last good checkpoint as it was.

Loss choices:
* pixel: L1 between output and HR. Its optimum is the per-pixel conditional *median* of the HR image
  given the LR one (L2's would be the mean): still one smooth compromise wherever the input is ambiguous.
* adversarial: starts from the SR generator; generator loss = content + `adv_weight` * ESRGAN's
  relativistic average GAN loss (the generator is rewarded when its crops look more real
  than the average real crop, the discriminator when it ranks real above fake). The content term
  (`srgan_content`) is L1, or SRGAN's VGG19 loss when `content='vgg'` and its ImageNet weights are cached
  (offline: L1, with a note), plus two terms against what the invented detail must not do: form a lattice
  of dots on the LR pixel grid (`grid_loss`), or change the LR image it explains (LR-consistency). The
  discriminator is frozen during the generator's update and judges shifted windows (`shifted_window`).
  The evaluated generator is an exponential moving average of the trained one (decay `ema_decay`, a
  later stabiliser, not ESRGAN's): it averages out the step-to-step swings of the two-player game.
* likelihood: negative log-likelihood in bits per dimension of the uniformly dequantized HR image. The
  flow's base, the pixel-loss generator it `starts_from`, stays frozen (see `models.ConditionalFlow`).
"""
import contextlib
import copy
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.distributed.elastic.multiprocessing.errors import record
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import config_of, load_checkpoint, load_model, save_checkpoint
from .config import SCALE, Config
from .data import RandomCrops, training_stream
from .errors import Interrupted
from .files import OutputLock, atomic_write, writable_folder
from .imaging import degrade, trusted_inputs
from .methods import METHODS, trainable
from .metrics import grid_pattern
from .models import build
from .weights import MissingWeights, weight_path

MAX_BAD_STEPS = 10
# The discriminator learns at 4x the generator's rate (the two time-scale update rule of Heusel et al.
# 2017, as SAGAN): a spectrally normalised D that learns at the generator's pace lets the generator win
# with artefacts (speckle, a 2 px grid) that D has not yet learnt to reject.
LR_RATIO = {"discriminator": 4.0}


# the settings a method's table entry gives defaults for (None in TrainSettings: the method's value)
METHOD_DEFAULTS = ("learning_rate", "adv_weight", "grid_weight", "consistency_weight", "clip")


@dataclass
class TrainSettings:
    method: str  # a trainable entry of methods.METHODS
    cfg: Config
    out: Path
    steps: int
    data: str = "bundled"
    learning_rate: float | None = None  # None: the method's default (so for every field in METHOD_DEFAULTS)
    adv_weight: float | None = None
    grid_weight: float | None = None
    consistency_weight: float | None = None
    clip: float | None = None
    seed: int = 0
    resume: bool = False  # continue from <out>/<method>.pt
    overwrite: bool = False  # start again although <out>/<method>.pt exists
    save_every: int = 200
    content: str = "l1"  # adversarial: 'l1' or 'vgg'
    ema_decay: float = 0.995  # adversarial: the evaluated generator's moving average (about the last 200 steps)
    show_progress: bool = True
    device: str = "cpu"
    sync_batchnorm: bool = False  # under torchrun: BatchNorm statistics of the global batch (distributed.wrap)
    workers: int = 0  # > 0: decode an image folder on the fly in that many processes (data.FolderStream)
    bf16: bool = False  # SR and SRGAN: forward passes in bfloat16 autocast (see `precision`)
    compile: bool = False  # flow: its loss through torch.compile (see `_Run`)

    def __post_init__(self):
        method = METHODS.get(self.method)
        if method is None or method.objective is None:
            raise ValueError(f"unknown method {self.method!r}; choose one of {trainable()}")
        for key in METHOD_DEFAULTS:
            if getattr(self, key) is None:
                setattr(self, key, getattr(method, key))
        if self.bf16 and METHODS[self.method].objective == "likelihood":
            raise ValueError("--bf16 is for SR and SRGAN: a flow must invert exactly, and under bfloat16 the "
                             "shipped flow's round trip was off by 0.022 (5.7 grey levels; float32: 2e-6) and its "
                             "log-determinant by up to 1,481 nats")
        for key in ("grid_weight", "consistency_weight"):
            flag, weight = "--" + key.replace("_", "-"), getattr(self, key)
            if weight and METHODS[self.method].objective != "adversarial":
                raise ValueError(f"{flag} is a term of SRGAN's content loss; the other methods have none")
            if weight is not None and not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{flag} must be a number >= 0, got {weight}")
        if self.compile and METHODS[self.method].objective != "likelihood":
            raise ValueError("--compile is for the flow: compiled, the generator's training step ran slower "
                             "on CPU (0.85x, measured when the option was planned), the flow's faster "
                             "(README, 'Benchmarks')")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.steps < 1 or self.save_every < 1:
            raise ValueError(f"steps and save_every must be >= 1, got {self.steps} and {self.save_every}")
        if not (self.learning_rate and 0 < self.learning_rate < 1):
            raise ValueError(f"learning rate must be in (0, 1), got {self.learning_rate}")
        if self.sync_batchnorm and not self.device.startswith("cuda"):
            raise ValueError("--sync-bn needs GPUs (PyTorch's SyncBatchNorm runs on CUDA only)")
        if self.resume and self.overwrite:
            raise ValueError("--resume continues the checkpoint and --overwrite starts again: choose one")
        if not 0 <= self.seed < 2 ** 63:
            raise ValueError(f"--seed must be in 0 .. 2**63 - 1, got {self.seed}")
        if self.cfg.batch % distributed.world_size():
            raise ValueError(f"the batch of {self.cfg.batch} does not split over {distributed.world_size()} processes")
        self.out = writable_folder(self.out)


# Networks and batches in channels_last memory order: one training step of the `cpu` configuration on
# this project's CPU ran 1.22x (SR), 1.19x (SRGAN) and 1.09x (flow) faster than in the default order (the
# convolutions' fastest layout; `bench` measures the steps in it). Checkpoints load into either order.
MEMORY_FORMAT = torch.channels_last


def precision(settings: TrainSettings):
    """A context for forward passes and losses: bfloat16 autocast when settings.bf16 (about 8 bits of
    mantissa: plenty for a generator's activations, and it halves their memory traffic), else nothing.
    Backward passes run outside it, as PyTorch advises."""
    device = torch.device(settings.device).type
    return lambda: torch.autocast(device, dtype=torch.bfloat16, enabled=settings.bf16)


def learning_rate(base: float, step: int, steps: int) -> float:
    """Constant, halved for the last half of the steps and again for the last quarter (a function of the
    step alone, so a resumed run follows the same schedule)."""
    return base * (0.5 if step >= steps // 2 else 1.0) * (0.5 if step >= 3 * steps // 4 else 1.0)


def checkpoint_path(out: Path, method: str) -> Path:
    return Path(out) / f"{method}.pt"


def guarded_step(optimizer, loss: torch.Tensor, parameters, clip: float | None) -> float | None:
    """Backward and update, returning the gradient norm; None, and no update, if loss or gradient is not finite
    (on any rank: under torchrun all ranks skip together, the gradient norm being the same on every rank)."""
    if not distributed.all_agree(bool(torch.isfinite(loss))):
        return None
    optimizer.zero_grad()
    loss.backward()
    parameters = [p for p in parameters if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(parameters, clip if clip else float("inf"))
    if not torch.isfinite(norm):
        optimizer.zero_grad()
        return None
    optimizer.step()
    return norm.item()


class _Run:
    """What every loop shares: data stream, optimizers, resume, the step counter, guard, history, saving.

    `trained` networks get an Adam optimizer each; `kept` ones are saved and restored only (the EMA).
    The network saved as 'model' is the one the method evaluates with.
    """

    def __init__(self, settings: TrainSettings, trained: dict, kept: dict | None = None,
                 objectives: dict | None = None):
        self.settings = settings
        self.trained = {name: m.to(settings.device, memory_format=MEMORY_FORMAT) for name, m in trained.items()}
        # what the update functions call, as DistributedDataParallel under torchrun: each trained network,
        # or the module in `objectives` whose forward computes its loss (DDP synchronises a forward)
        self.parallel = {name: distributed.wrap((objectives or {}).get(name, m), settings.device,
                                                settings.sync_batchnorm)
                         for name, m in self.trained.items()}
        if settings.compile:  # the (DDP-wrapped) loss, so checkpoints keep the plain modules' weight names
            self.parallel = {name: torch.compile(m) for name, m in self.parallel.items()}
        self.kept = {name: m.to(settings.device, memory_format=MEMORY_FORMAT) for name, m in (kept or {}).items()}
        self.optimizers = {name: torch.optim.Adam(m.parameters(), lr=settings.learning_rate)
                           for name, m in self.trained.items()}
        cfg = settings.cfg
        self.path = checkpoint_path(settings.out, settings.method)
        payload = load_checkpoint(self.path, settings.method, cfg) if settings.resume else None
        if payload is None and self.path.exists() and not settings.overwrite:  # before any image is read
            raise FileExistsError(f"{self.path} exists: pass --resume to continue it or --overwrite to start again")
        self.stream = training_stream(settings.data, cfg.crop, cfg.batch // distributed.world_size(),
                                      stream_seed(settings.seed), settings.workers, distributed.rank(),
                                      pin_memory=settings.device.startswith("cuda"))
        if distributed.rank():  # the other ranks' noise (dequantization, windows) differs from rank 0's
            torch.manual_seed(stream_seed(settings.seed))
        self.step, self.history = 0, []  # step: how many updates are done
        self.saved = None  # the step the checkpoint on disk holds, once this run wrote or resumed one
        if payload is not None:
            self._restore(payload)

    def _modules(self) -> dict:
        return {**self.trained, **self.kept}

    def _restore(self, payload: dict) -> None:
        if payload.get("slim"):
            raise ValueError(f"{self.path} is a slim, evaluation-only checkpoint: it cannot resume training")
        missing = [f"{name}_optimizer" for name in self.optimizers if f"{name}_optimizer" not in payload]
        missing += [name for name in self._modules() if name != "model" and name not in payload]
        if missing:
            raise ValueError(f"{self.path} cannot resume training: it holds no {', '.join(missing)} (written by "
                             "another tool or trimmed); start again with --overwrite")
        if payload["step"] >= self.settings.steps:
            raise ValueError(f"{self.path} is at step {payload['step']}, not before --steps {self.settings.steps}: "
                             "nothing to train; raise --steps to continue")
        for key, value in payload.get("settings", {}).items():
            if key in ("data", *METHOD_DEFAULTS, "content") and value != getattr(self.settings, key):
                print(f"note: resuming with {key} {getattr(self.settings, key)!r}; "
                      f"the checkpoint's first {payload['step']} steps used {value!r}")
        states = payload.get("rank_states") or [{"data": payload["data_state"], "rng": payload["rng_state"]}]
        saved_in_memory = states[0]["data"].numel() > 1  # RandomCrops keeps an RNG state, FolderStream its step
        continued = len(states) == distributed.world_size()  # else the stream restarts from seeds of the step
        if continued and saved_in_memory != isinstance(self.stream, RandomCrops):
            written, needed = ("--workers 0", "--workers N > 0") if saved_in_memory else ("--workers N > 0", "--workers 0")
            raise ValueError(f"{self.path} drew its crops with {written}, this run with {needed}: the two data "
                             f"streams cannot continue each other; resume with {written}")
        for name, module in self._modules().items():
            module.load_state_dict(payload[name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(payload[f"{name}_optimizer"])
        self.step, self.history = payload["step"], payload["history"]
        self.saved = self.step
        if len(states) == distributed.world_size():
            state = states[distributed.rank()]
            self.stream.set_state(state["data"])
            torch.set_rng_state(state["rng"])
            if state.get("cuda_rng") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state(state["cuda_rng"], torch.device(self.settings.device))
        else:
            if isinstance(self.stream, RandomCrops):
                self.stream.generator.manual_seed(stream_seed(self.settings.seed, self.step))
            else:  # a FolderStream: a function of the step
                self.stream.set_state(torch.tensor([self.step]))
            torch.manual_seed(stream_seed(self.settings.seed + 1, self.step))
            if distributed.is_main():
                print(f"note: {self.path} was written by {len(states)} process(es), this run has "
                      f"{distributed.world_size()}: weights and optimizers continue, the crops and noise are "
                      "drawn afresh from seeds of the step (not the sequence an uninterrupted run would see)")

    def save(self) -> None:
        """Every rank's data and random states are gathered (a collective: all ranks call this); rank 0
        writes the checkpoint and the history."""
        cuda = self.settings.device.startswith("cuda")
        states = distributed.gather({"data": self.stream.state(), "rng": torch.get_rng_state(),
                                     "cuda_rng": torch.cuda.get_rng_state(torch.device(self.settings.device))
                                     if cuda else None})
        self.saved = self.step  # on every rank: they decide together whether a final save is due
        if not distributed.is_main():
            return
        modules = self._modules()
        extra = {name: m.state_dict() for name, m in modules.items() if name != "model"}
        extra.update({f"{name}_optimizer": opt.state_dict() for name, opt in self.optimizers.items()})
        settings = {k: v for k, v in asdict(self.settings).items() if k in
                    ("data", *METHOD_DEFAULTS, "seed", "content", "ema_decay")}
        save_checkpoint(self.path, self.settings.method, METHODS[self.settings.method].network, self.settings.cfg,
                        self.step, modules["model"], rank_states=states, world_size=distributed.world_size(),
                        history=self.history, settings=settings, **extra)
        text = json.dumps(self.history)
        atomic_write(self.path.with_suffix(".history.json"), lambda tmp: tmp.write_text(text))

    def fit(self, update) -> Path:
        """Call update(hr, lr) -> losses (or None: skipped) until `steps` updates are done; save as we go.
        Ctrl-C or SIGTERM ends it with `Interrupted`, saying which step the checkpoint on disk holds."""
        try:
            return self._fit(update)
        except KeyboardInterrupt:
            kept = (f"{self.path} holds step {self.saved}" if self.saved is not None
                    else f"no checkpoint was written ({self.path} is as it was)")
            raise Interrupted(f"interrupted at step {self.step}; {kept}") from None

    def _fit(self, update) -> Path:
        for m in self.trained.values():
            m.train()
        for m in self.kept.values():
            m.eval()
        steps, bad_in_a_row = self.settings.steps, 0
        bar = tqdm(total=steps, initial=self.step, desc=f"train {self.settings.method}",
                   disable=not (self.settings.show_progress and distributed.is_main()))
        while self.step < steps:
            for name, opt in self.optimizers.items():
                for group in opt.param_groups:
                    group["lr"] = learning_rate(self.settings.learning_rate, self.step, steps) * LR_RATIO.get(name, 1.0)
            hr, lr = (t.to(self.settings.device, non_blocking=True).contiguous(memory_format=MEMORY_FORMAT)
                      for t in next(self.stream))
            with trusted_inputs():  # the crops were checked when their photographs were read
                losses = update(hr, lr)
            self.step += 1  # this batch is used up, whether or not it updated the weights
            bar.update()
            if losses is None:
                bad_in_a_row += 1
                if distributed.is_main():
                    print(f"step {self.step}: non-finite loss or gradient, update skipped ({bad_in_a_row} in a row)")
                if bad_in_a_row >= MAX_BAD_STEPS:
                    raise RuntimeError(f"{MAX_BAD_STEPS} non-finite losses in a row: training stopped; {self.path} "
                                       "holds the last checkpoint saved before. Lower --lr.")
                continue
            bad_in_a_row = 0
            losses = distributed.average(losses)  # the global batch's, on every rank
            self.history.append({"step": self.step, **losses})
            bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
            if self.step % self.settings.save_every == 0 or self.step == steps:
                self.save()
        if self.saved != self.step:  # the last steps were skipped: the weights are the last good ones
            self.save()
        bar.close()
        return self.path


# ---------------------------------------------------------------- pixel loss (SR)
def train_pixel(settings: TrainSettings) -> Path:
    gen = build("generator", settings.cfg)
    run = _Run(settings, {"model": gen})
    forward = precision(settings)

    def update(hr, lr):
        with forward():
            loss = F.l1_loss(run.parallel["model"](lr).float(), hr)
        grad_norm = guarded_step(run.optimizers["model"], loss, gen.parameters(), settings.clip)
        return None if grad_norm is None else {"l1": loss.item(), "grad_norm": grad_norm}
    return run.fit(update)


# ---------------------------------------------------------------- adversarial (SRGAN)
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
        raise ValueError(f"content loss must be 'l1' or 'vgg', got {choice!r}")
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
                + consistency_weight * F.l1_loss(degrade(fake), lr))
    return content


def adversarial_step(gen, disc, opt_g, opt_d, hr, lr, content, adv_weight: float, clip: float | None,
                     forward=contextlib.nullcontext) -> dict | None:
    """One generator update (content + fool D, D frozen), then one discriminator update (real above fake).
    D judges the same randomly shifted window of every crop (`shifted_window`). Under torchrun gen and
    disc are DistributedDataParallel: the generator's update calls the bare D (it trains only G), and D's
    update scores real and generated crops in one forward, so each of D's weights gets its gradient once.
    `forward`: the context of the forward passes (`precision`)."""
    window = shifted_window()
    judge = distributed.unwrap(disc)
    with forward():
        fake = gen(lr).float()
        real_w, fake_w = window(hr), window(fake)
        judge.requires_grad_(False)
        with torch.no_grad():
            real_logit = judge(real_w).float()
        fake_logit = judge(fake_w).float()
        g_content = content(fake, hr, lr)
        adversarial = relativistic_loss(fake_logit, real_logit)
    g_norm = guarded_step(opt_g, g_content + adv_weight * adversarial, gen.parameters(), clip)
    judge.requires_grad_(True)
    if g_norm is None:
        return None
    with forward():
        real_logit, fake_logit = disc(torch.cat([real_w, fake_w.detach()])).float().split(len(hr))
        d_loss = relativistic_loss(real_logit, fake_logit)
    if guarded_step(opt_d, d_loss, disc.parameters(), clip) is None:
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


def starting_generator(settings: TrainSettings) -> torch.nn.Module:
    """The trained generator of the method this one `starts_from` (its checkpoint in the same folder)."""
    start = METHODS[settings.method].starts_from
    start_path = checkpoint_path(settings.out, start)
    if not start_path.exists():
        raise FileNotFoundError(f"{settings.method} starts from the {start} generator: train it first "
                                f"({start_path} is missing)")
    gen, start_payload = load_model(start_path, start)
    if config_of(start_payload) != settings.cfg:
        raise ValueError(f"{start_path} was trained with another config than {settings.cfg.name!r}")
    return gen


def train_adversarial(settings: TrainSettings) -> Path:
    gen = starting_generator(settings)
    disc = build("discriminator", settings.cfg)
    content, settings.content = content_loss(settings.content)
    if isinstance(content, torch.nn.Module):
        content = content.to(settings.device)
    content = srgan_content(content, settings.grid_weight, settings.consistency_weight)
    ema = copy.deepcopy(gen)
    run = _Run(settings, {"generator": gen, "discriminator": disc}, kept={"model": ema})
    forward = precision(settings)

    def update(hr, lr):
        losses = adversarial_step(run.parallel["generator"], run.parallel["discriminator"], run.optimizers["generator"],
                                  run.optimizers["discriminator"], hr, lr, content, settings.adv_weight, settings.clip,
                                  forward)
        if losses is not None:
            update_ema(ema, gen, settings.ema_decay)
        return losses
    return run.fit(update)


# ---------------------------------------------------------------- maximum likelihood (flow)
class Likelihood(torch.nn.Module):
    """The flow's loss as a module's forward: mean bits per dimension of a batch. DistributedDataParallel
    averages gradients of what runs through a wrapped forward, so the objective must be one."""

    def __init__(self, flow: torch.nn.Module):
        super().__init__()
        self.flow = flow

    def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        return self.flow.bits_per_dim(hr, lr).mean()


def train_likelihood(settings: TrainSettings) -> Path:
    flow = build("flow", settings.cfg)
    if METHODS[settings.method].starts_from:
        flow.freeze_base(starting_generator(settings).state_dict())
    run = _Run(settings, {"model": flow}, objectives={"model": Likelihood(flow)})

    def update(hr, lr):
        loss = run.parallel["model"](hr, lr)
        grad_norm = guarded_step(run.optimizers["model"], loss, flow.parameters(), settings.clip)
        return None if grad_norm is None else {"bpd": loss.item(), "grad_norm": grad_norm}
    return run.fit(update)


LOOPS = {"pixel": train_pixel, "adversarial": train_adversarial, "likelihood": train_likelihood}


def stream_seed(seed: int, step: int = 0) -> int:
    """The seed of this rank's crops: the run's seed on rank 0 of a fresh run (one process: as always)."""
    return seed + 1_000_003 * distributed.rank() + 7_919 * step


@record  # under torchrun: the error goes into the file torchrun's failure summary quotes
def train(settings: TrainSettings) -> Path:
    """Train settings.method with its objective's loop; returns the checkpoint's path. Under torchrun
    every process runs this; they join one process group first (`distributed.setup`)."""
    settings.device = distributed.setup(settings.device)
    path = checkpoint_path(settings.out, settings.method)
    try:  # rank 0 writes: it holds the lock on the checkpoint, so no second run writes it at the same time
        with OutputLock(path) if distributed.is_main() else contextlib.nullcontext():
            torch.manual_seed(settings.seed)  # before any network is built: initial weights are reproducible
            return LOOPS[METHODS[settings.method].objective](settings)
    except Interrupted:
        raise
    except KeyboardInterrupt:  # before the loop started
        raise Interrupted(f"interrupted before the first step; {path} is as it was") from None
    except Exception as error:
        distributed.report_failure(error, path)
        raise
    finally:
        distributed.teardown()
