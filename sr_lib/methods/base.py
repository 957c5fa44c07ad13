"""The contract every compared method fulfils, and the table of them (`METHODS`).

A method is one file in this folder: its network, how it learns (a `Trainer` with its `Settings`) and
how it turns an LR image into HR (`run`), registered with `register`. Everything else (training,
evaluation, the report, `upscale`, `bench`, the widgets) reads the table and calls the contract, so a
new method appears everywhere once its file is imported in `methods/__init__.py`.

* `run(model, lr, temperature, generator)` gives one HR output (unclamped); deterministic methods ignore
  the temperature and the generator, stochastic ones draw one sample per call. A method may also give
  `prepare(model, lr)`: what every draw for this LR image shares (the flow's base and conditioning
  features), computed once; its `run` then takes it as a fifth argument, `prepared`, and gives the same
  output as without it, faster (`draws` passes it).
* A stochastic method turns noise into an image: `decode(model, lr, noise, prepared)`, noise = T x N(0, I)
  of the output's shape (`latent`); its `run` is `decode` of freshly drawn noise. Whoever cuts an image
  into tiles (`upscale`) draws the noise once for the whole image and decodes each tile with its part.
* Its cost comes from the architecture, not from running it: `cost(cfg)` (parameters, multiply-accumulates
  per HR pixel, receptive field, each network's static `cost`) and `margin(cfg)`, what a tile needs around
  it to come out as in one pass over the whole image.
* `Trainer` subclasses build the networks a method trains from the configuration and its settings, and
  do one update on a batch: the same code for `train` and for `bench`.
"""
import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from .. import optim
from ..config import SCALE, Config
from ..errors import UserError
from ..imaging import check_images
from ..models import Generator

# The networks checkpoints name ('network' in a payload), by name; each method's file adds its own.
NETWORKS: dict[str, type] = {"generator": Generator}


def build(network: str, cfg: Config) -> torch.nn.Module:
    """The network called `network` for a configuration (its `config` attribute remembers it)."""
    if network not in NETWORKS:
        raise UserError(f"unknown network {network!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[network](cfg)


@dataclass(frozen=True)
class Settings:
    """A method's training hyper-parameters, with its defaults; each method's file subclasses it, and
    `train --<field>` sets a field (`cli.py` makes the flags from these classes)."""
    learning_rate: float = 2e-4  # Adam's, halved at 50% and 75% of the steps
    clip: float | None = 1.0  # gradient-norm clip; None: none

    def __post_init__(self):
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1):
            raise UserError(f"learning rate must be in (0, 1), got {self.learning_rate}")
        if self.clip is not None and not (math.isfinite(self.clip) and self.clip > 0):
            raise UserError(f"--clip must be a number > 0, got {self.clip}")

    @staticmethod
    def non_negative(**values) -> None:
        for key, value in values.items():
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"--{key.replace('_', '-')} must be a number >= 0, got {value}")


class Trainer:
    """How a method learns. `__init__(cfg, settings, start)` builds

    * `trained`: {name: network}, each trained by an Adam optimizer of its own ('model', if trained, is what
      the method evaluates with);
    * `kept`: {name: network} saved and restored but not trained by the optimizer (SRGAN's moving average);
    * `losses`: {name: module whose forward computes the loss of trained[name]}, for networks whose
      objective must run inside one wrapped forward (DistributedDataParallel synchronises a forward);

    and `update(parallel, optimizers, hr, lr, autocast)` does one step: `parallel[name]` is `losses[name]` or
    `trained[name]`, as DistributedDataParallel under torchrun; `autocast()` is the context of forward
    passes (bfloat16 autocast with --bf16). It returns the logged numbers, or None when the step was
    skipped (non-finite loss or gradient: `optim.guarded_step`).

    `start` is the trained network of the method this one `starts_from` (None if it starts from nothing).
    """
    Settings: type = Settings
    rate_ratio: dict[str, float] = {}  # {trained name: its learning rate as a multiple of settings.learning_rate}
    refuses: dict[str, str] = {}  # {generic option ('bf16', 'compile'): why this method cannot use it}

    def __init__(self, cfg: Config, settings: Settings, start: torch.nn.Module | None):
        self.cfg, self.settings = cfg, settings
        self.trained: dict[str, torch.nn.Module] = {}
        self.kept: dict[str, torch.nn.Module] = {}
        self.losses: dict[str, torch.nn.Module] = {}

    def to(self, device, memory_format) -> "Trainer":
        for net in (*self.trained.values(), *self.kept.values()):
            net.to(device, memory_format=memory_format)
        return self

    def objectives(self) -> dict[str, torch.nn.Module]:
        """What `update` calls for each trained network (before wrapping): its loss module, or itself."""
        return {name: self.losses.get(name, net) for name, net in self.trained.items()}

    def update(self, parallel: dict, optimizers: dict, hr: torch.Tensor, lr: torch.Tensor, autocast) -> dict | None:
        raise NotImplementedError

    def guarded(self, optimizer, loss: torch.Tensor, logged: dict, name: str = "model") -> dict | None:
        """The update of trained[name] from `loss`, skipped if it is not finite (`optim.guarded_step`):
        the `logged` numbers with the gradient norm, or None when skipped."""
        grad_norm = optim.guarded_step(optimizer, loss, self.trained[name].parameters(), self.settings.clip)
        return None if grad_norm is None else {key: float(value) for key, value in logged.items()} | {"grad_norm": grad_norm}


@dataclass(frozen=True)
class Method:
    name: str  # the checkpoint is <name>.pt; the CLI's choice
    label: str  # what figures and tables print
    run: Callable  # run(model, lr, temperature, generator[, prepared]) -> HR batch (unclamped)
    network: str | None = None  # the NETWORKS name of what it evaluates with; None: nothing to load or train
    stochastic: bool = False  # True: sampled at each of TEMPERATURES
    trainer: type | None = None  # its Trainer subclass; None: not trained
    starts_from: str | None = None  # the method whose checkpoint training starts from
    study: dict | None = None  # the study's {'fid': ..., 'lpips': ...}
    prepare: Callable | None = None  # prepare(model, lr) -> `run`'s `prepared`, shared by all draws
    decode: Callable | None = None  # stochastic: decode(model, lr, noise, prepared) -> HR batch (unclamped)

    def cost(self, cfg: Config | None) -> dict:
        """Parameters, multiply-accumulates per HR pixel and receptive field (HR px) of what it evaluates
        with, from the layer shapes (`complexity` measures the same with autograd); None where there is
        no network."""
        if self.network is None:
            return {"params": 0, "macs_per_hr_pixel": None, "receptive_field_px": None}
        return NETWORKS[self.network].cost(cfg)

    def margin(self, cfg: Config | None) -> int:
        """LR pixels a tile must be widened by so that its kept centre equals one pass over the whole image:
        half the receptive field, plus 2 for the pixel shuffle's off-centre phases (bicubic: its 4-tap kernel)."""
        field = self.cost(cfg)["receptive_field_px"]
        return 2 if field is None else math.ceil(field / (2 * SCALE)) + 2

    def settings(self, **values) -> Settings:
        """This method's training settings: its defaults with `values` (None: the default) put in; a key
        that is not one of its settings is refused, naming those it has."""
        if self.trainer is None:
            raise UserError(f"{self.name} is not trained")
        known = {f.name for f in fields(self.trainer.Settings)}
        given = {key: value for key, value in values.items() if value is not None}
        unknown = sorted(set(given) - known)
        if unknown:
            flags = ", ".join(f"--{key.replace('_', '-')}" for key in sorted(known))
            raise UserError(f"--{unknown[0].replace('_', '-')} is not a setting of {self.name} (its settings: {flags})")
        return self.trainer.Settings(**given)

    def prepared(self, model, lr: torch.Tensor):
        """What every draw for this LR image shares (None for a method without `prepare`)."""
        return None if self.prepare is None else self.prepare(model, lr)

    def draws(self, model, lr: torch.Tensor, temperature, count: int, generator, prepared=None) -> torch.Tensor:
        """(count, N, 3, H, W) outputs in [0, 1], one after another from `generator`; what LR alone
        determines computed once (`prepared`, or given)."""
        if count < 1:
            raise ValueError(f"draws needs a count of at least 1, got {count}")
        check_images(lr, "LR image")  # the values once here; the networks check shapes only
        extra = () if self.prepare is None else (self.prepared(model, lr) if prepared is None else prepared,)
        return torch.stack([self.run(model, lr, temperature, generator, *extra).clamp(0, 1) for _ in range(count)])


def latent(lr: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """temperature x N(0, I) noise of the HR shape of `lr` (N, 3, 4h, 4w), in lr's dtype and on its device,
    drawn on the generator's device: with a CPU generator a seed is the same draw on any device."""
    n, _, h, w = lr.shape
    device = lr.device if generator is None else generator.device
    noise = torch.randn(n, 3, SCALE * h, SCALE * w, generator=generator, dtype=lr.dtype, device=device)
    return noise.to(lr.device).mul_(temperature)


def placed(model: torch.nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """x on the device and in the dtype of the model's weights (as it is for a method without weights)."""
    if model is None:
        return x
    weight = next(model.parameters())
    return x.to(weight.device, weight.dtype)


METHODS: dict[str, Method] = {}


def register(method: Method, networks: dict[str, type] | None = None) -> Method:
    """Add a method to the table (its name must be new), and the network classes it brings; returns it."""
    if method.name in METHODS:
        raise ValueError(f"a method named {method.name!r} exists already")
    if method.stochastic and method.decode is None:
        raise ValueError(f"{method.name} is stochastic: it needs decode(model, lr, noise, prepared) (upscale tiles with it)")
    NETWORKS.update(networks or {})
    METHODS[method.name] = method
    return method


def trainable() -> list[str]:
    return [name for name, m in METHODS.items() if m.trainer is not None]
