"""The compared methods, one file each, and what every consumer asks of them.

`base.py` holds the contract (`Method`, `Trainer`, `Settings`) and the table `METHODS`; `bicubic.py`,
`sr.py`, `srgan.py` and `flow.py` each hold one method: its network, loss, defaults and sampling, and
register it. Adding a method (ESRGAN, a diffusion model) is one more file, imported below. This module
adds what callers need of all of them: the temperatures the flow is measured at, loading checkpoints,
labels, and `super_resolve`.
"""
from pathlib import Path

import torch

from ..checkpoint import DEFAULT_CHECKPOINTS, load_model
from . import bicubic, sr, srgan, flow  # noqa: F401  (each registers its method; this order is the table's)
from .base import METHODS, NETWORKS, Method, Settings, Trainer, build, register, trainable

# The flow is sampled at these latent temperatures wherever every method is measured (evaluate, report).
TEMPERATURES = (0.0, 0.2, 0.5, 0.8, 1.0, 1.2)
# The study does not state its sampling temperature (SRFlow's released configs use 0.9): its flow scores
# stand next to our T = 0.8 row, and figures show the flow at these two.
STUDY_TEMPERATURE = 0.8
SHOWN_TEMPERATURES = (0.5, 0.8)
SAMPLES = 4  # draws per image at each T > 0: the diversity and the perception measure use them all


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
