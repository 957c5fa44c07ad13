"""One plain dataclass holds every size that differs between the paper, a laptop CPU and the tests.

`paper` follows the study's table; `cpu` is a size a laptop trains in well under an hour (its cost
ratios: ``python -m sr_lib complexity --config cpu``); `tiny` exists so the unit tests run in seconds.
"""
from dataclasses import asdict, dataclass, replace

from .errors import UserError

SCALE = 4  # the super-resolution factor of the whole study


@dataclass(frozen=True)
class Config:
    name: str
    # generator (SRGAN and the pixel-loss SR baseline share it)
    gen_channels: int
    gen_blocks: int  # residual blocks of two 3x3 convs; +1 conv after them gives 2*blocks+1 convs
    # discriminator
    disc_channels: int
    # conditional flow (its base network is a generator of the sizes above)
    flow_couplings: int  # flow steps at half resolution, each a 1x1 mixer, an affine injector and a coupling
    flow_lr_couplings: int  # flow steps after a second squeeze, at LR resolution (48 channels)
    flow_hidden: int  # width of the coupling subnet (study: 64)
    flow_scale_clamp: float | None  # |s| < clamp via a soft tanh clamp (None: unclamped, see notebook 02)
    # training
    crop: int  # HR crop side, divisible by 4
    batch: int

    def to_dict(self):
        return asdict(self)


CONFIGS = {
    "paper": Config("paper", gen_channels=64, gen_blocks=8, disc_channels=64, flow_couplings=16,
                    flow_lr_couplings=4, flow_hidden=64, flow_scale_clamp=2.0, crop=256, batch=64),
    "cpu": Config("cpu", gen_channels=32, gen_blocks=4, disc_channels=16, flow_couplings=4,
                  flow_lr_couplings=4, flow_hidden=24, flow_scale_clamp=2.0, crop=64, batch=16),
    "tiny": Config("tiny", gen_channels=8, gen_blocks=1, disc_channels=8, flow_couplings=2,
                   flow_lr_couplings=1, flow_hidden=8, flow_scale_clamp=2.0, crop=32, batch=4),
}


def get_config(name: str, **overrides) -> Config:
    """The named configuration, optionally with some fields replaced (e.g. ``flow_scale_clamp=None``)."""
    if name not in CONFIGS:
        raise UserError(f"unknown config {name!r}; choose one of {sorted(CONFIGS)}")
    return replace(CONFIGS[name], **overrides)
