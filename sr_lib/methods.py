"""The one table of compared methods: what each is, how it is trained, and how it turns LR into HR.

Every other module reads `METHODS`; adding a method (say ESRGAN or a diffusion baseline) means adding one
entry here (`register`). An entry says
* which network it builds (`models.build`), or None for a method without weights (bicubic);
* how it is trained: the loop in `train.py` for its `objective`, the checkpoint it `starts_from`, and its
  defaults (learning rate, adversarial weight, gradient clip);
* how it super-resolves: `run(model, lr, temperature, generator)`, deterministic methods ignore the
  temperature, stochastic ones draw one sample per call. A method may also give `prepare(model, lr)`:
  what every draw for this LR image shares (the flow's base and conditioning features), computed once;
  its `run` then takes the result as a fifth argument, `prepared`, and gives the same output as
  without it, faster (`draws` passes it);
* the study's published scores (FFHQ-trained, CelebA-evaluated paper-size networks).
"""
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import DEFAULT_CHECKPOINTS, load_model
from .imaging import upsample

# The flow is sampled at these latent temperatures wherever every method is measured (evaluate, report).
TEMPERATURES = (0.0, 0.2, 0.5, 0.8, 1.0, 1.2)
# The study does not state its sampling temperature (SRFlow's released configs use 0.9): its flow scores
# stand next to our T = 0.8 row, and figures show the flow at these two.
STUDY_TEMPERATURE = 0.8
SHOWN_TEMPERATURES = (0.5, 0.8)
SAMPLES = 4  # draws per image at each T > 0: the diversity and the perception measure use them all


def _bicubic(model, lr: torch.Tensor, temperature, generator) -> torch.Tensor:
    return upsample(lr)


def _deterministic(model, lr: torch.Tensor, temperature, generator) -> torch.Tensor:
    return model(lr)


def _sample(model, lr: torch.Tensor, temperature: float, generator, prepared=None) -> torch.Tensor:
    return model.sample(lr, temperature, generator=generator, condition=prepared)


def _flow_condition(model, lr: torch.Tensor):
    return model.condition(lr)


@dataclass(frozen=True)
class Method:
    name: str  # the checkpoint is <name>.pt; the CLI's choice
    label: str  # what figures and tables print
    run: Callable  # run(model, lr, temperature, generator[, prepared]) -> HR batch (unclamped)
    network: str | None = None  # models.build name; None: nothing to load or train
    stochastic: bool = False  # True: sampled at each of TEMPERATURES
    objective: str | None = None  # the training loop in train.LOOPS: 'pixel', 'adversarial' or 'likelihood'
    starts_from: str | None = None  # the method whose checkpoint training starts from
    learning_rate: float | None = None  # Adam's, halved at 50% and 75% of the steps
    adv_weight: float | None = None  # weight of the adversarial term against the content loss
    grid_weight: float | None = None  # weight of the LR-grid lattice term (train.grid_loss) in the content loss
    consistency_weight: float | None = None  # weight of the LR-consistency term in the content loss (train.srgan_content)
    clip: float | None = None  # gradient-norm clip
    study: dict | None = None  # the study's {'fid': ..., 'lpips': ...}
    prepare: Callable | None = None  # prepare(model, lr) -> `run`'s `prepared`, shared by all draws

    def prepared(self, model, lr: torch.Tensor):
        """What every draw for this LR image shares (None for a method without `prepare`)."""
        return None if self.prepare is None else self.prepare(model, lr)

    def draws(self, model, lr: torch.Tensor, temperature, count: int, generator, prepared=None) -> torch.Tensor:
        """(count, N, 3, H, W) outputs in [0, 1], one after another from `generator`; what LR alone
        determines computed once (`prepared`, or given)."""
        if count < 1:
            raise ValueError(f"draws needs a count of at least 1, got {count}")
        extra = () if self.prepare is None else (self.prepared(model, lr) if prepared is None else prepared,)
        return torch.stack([self.run(model, lr, temperature, generator, *extra).clamp(0, 1) for _ in range(count)])


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the table (its name must be new); returns it."""
    if method.name in METHODS:
        raise ValueError(f"a method named {method.name!r} exists already")
    METHODS[method.name] = method
    return method


# Training defaults, each with its reason:
# * SR: 2e-4, the usual Adam rate for an L1-trained SRResNet; clip 1 only guards against a rare spike.
# * SRGAN: 1e-4 (half SR's, as ESRGAN's GAN stage; its discriminator learns at 4x, train.LR_RATIO);
#   adversarial weight 5e-3 against L1, ESRGAN's: at 2e-2 the trained generator painted a 2-4 px
#   lattice and colour speckle within 1,000 steps in every run we made; clip 1. LR-grid term
#   (`train.grid_loss`) weight 2: without it (grid weight 0, notebook 03's ablation) this recipe's SRGAN
#   painted a lattice of dots of 1.64 grey levels on the held-out faces (original: 0.29); with it, 0.22.
#   At weight 1 its gradient was as large as the content loss's (norms 0.08 and 0.09); 2 makes it win.
#   LR-consistency term weight 0.5: without it the shipped recipe's SRGAN explained its own LR input to
#   37.9 dB only (below the 40 dB the NTIRE 2021 challenge required); 0.5 gave 43.1 dB and 1 gave 43.9 dB
#   with more speckle on dark areas, so 0.5.
# * Flow: 3e-4, clip 10 on the gradient norm: the shipped run's median norm was 10.9, and 16% of its last
#   1,000 steps were clipped, so single bad batches cannot grow the weights that notebook 02 shows can
#   make the inverse silently wrong.
register(Method("bicubic", "bicubic", _bicubic))
register(Method("sr", "SR (no GAN)", _deterministic, network="generator", objective="pixel",
                learning_rate=2e-4, clip=1.0, study={"fid": 5.822, "lpips": 0.2267}))
register(Method("srgan", "SRGAN", _deterministic, network="generator", objective="adversarial", starts_from="sr",
                learning_rate=1e-4, adv_weight=5e-3, grid_weight=2.0, consistency_weight=0.5, clip=1.0, study={"fid": 3.858, "lpips": 0.1480}))
register(Method("flow", "flow", _sample, network="flow", stochastic=True, objective="likelihood", starts_from="sr",
                learning_rate=3e-4, clip=10.0, study={"fid": 6.026, "lpips": 0.2061}, prepare=_flow_condition))


def trainable() -> list[str]:
    return [name for name, m in METHODS.items() if m.objective is not None]


def load_methods(checkpoints: str | Path = DEFAULT_CHECKPOINTS) -> dict[str, torch.nn.Module | None]:
    """{name: eval-mode model} for every method whose checkpoint is in the folder, and None for those
    without weights (bicubic), in the table's order."""
    folder = Path(checkpoints)
    if not folder.is_dir():
        raise FileNotFoundError(f"--checkpoints {folder} is a file; give the folder that holds sr.pt, srgan.pt, ..."
                                if folder.exists() else f"checkpoint folder {folder} does not exist")
    models = {}
    for name, method in METHODS.items():
        if method.network is None:
            models[name] = None
        elif (folder / f"{name}.pt").exists():
            models[name] = load_model(folder / f"{name}.pt", name)[0]
    if all(model is None for model in models.values()):
        expected = ", ".join(f"{name}.pt" for name in trainable())
        raise FileNotFoundError(f"no {expected} in {folder}; train them (README) first")
    return models


def label(name: str, temperature: float | None = None) -> str:
    return METHODS[name].label + ("" if temperature is None else f" T={temperature:g}")


@torch.no_grad()
def super_resolve(models: dict, lr: torch.Tensor, temperatures=TEMPERATURES, samples: int = SAMPLES,
                  seed: int = 0) -> list[tuple[str, float | None, torch.Tensor]]:
    """(method, temperature, outputs in [0, 1]) for every loaded method; outputs stacks the draws
    (S, N, 3, H, W): S = 1 for deterministic methods and at T = 0, `samples` otherwise."""
    results = []
    for name, model in models.items():
        method = METHODS[name]
        gen = torch.Generator(device=lr.device).manual_seed(seed)
        prepared = method.prepared(model, lr)
        for t in (temperatures if method.stochastic else (None,)):
            count = samples if method.stochastic and t > 0 else 1
            results.append((name, t, method.draws(model, lr, t, count, gen, prepared)))
    return results
