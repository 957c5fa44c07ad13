"""SR without a GAN: SRGAN's generator (`models.Generator`) trained by a pixel loss alone.

L1 between output and HR. Its optimum is the per-pixel conditional *median* of the HR image given the LR
one (L2's would be the mean): one smooth compromise wherever the input is ambiguous, which is why this
method's faces look soft. It is also the start of SRGAN and the flow's frozen base.
"""
from dataclasses import dataclass

import torch.nn.functional as F

from .base import Method, Settings, Trainer, build, register


def run(model, lr, temperature, generator):
    return model(lr)


@dataclass(frozen=True)
class PixelSettings(Settings):
    # 2e-4, the usual Adam rate for an L1-trained SRResNet; clip 1 only guards against a rare spike
    learning_rate: float = 2e-4
    clip: float | None = 1.0


class PixelTrainer(Trainer):
    Settings = PixelSettings
    refuses = {"compile": "compiled, the generator's training step ran slower on CPU (0.85x, measured when "
                          "the option was planned), the flow's faster (README, 'Benchmarks')"}

    def __init__(self, cfg, settings, start):
        super().__init__(cfg, settings, start)
        self.trained = {"model": build("generator", cfg)}

    def update(self, parallel, optimizers, hr, lr, autocast):
        with autocast():
            loss = F.l1_loss(parallel["model"](lr).float(), hr)
        return self.guarded(optimizers["model"], loss, {"l1": loss})


METHOD = register(Method("sr", "SR (no GAN)", run, network="generator", trainer=PixelTrainer,
                         study={"fid": 5.822, "lpips": 0.2267}))
