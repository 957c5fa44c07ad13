"""One plain dataclass holds every size that differs between the paper, a laptop CPU and the tests.

`paper` follows the seed's table; `cpu` keeps the flow and the generator in the same proportion to
each other (receptive field and compute, see ``python -m sr_lib complexity --config cpu``) at a size a
laptop trains in minutes; `tiny` exists so the unit tests run in seconds.
"""
from dataclasses import asdict, dataclass, replace

SCALE = 4  # the super-resolution factor of the whole study


@dataclass(frozen=True)
class Config:
    name: str
    # generator (SRGAN and the pixel-loss SR baseline share it)
    gen_channels: int
    gen_blocks: int  # residual blocks of two 3x3 convs; +1 conv after them gives 2*blocks+1 convs
    # discriminator
    disc_channels: int
    # conditional flow
    flow_couplings: int
    flow_hidden: int  # width of the coupling subnet (seed: 64)
    flow_cond_channels: int  # channels of the LR features fed to every coupling
    flow_encoder_blocks: int  # residual blocks (two 3x3 convs each) of the LR encoder: its context
    flow_scale_clamp: float | None  # |s| < clamp via a soft tanh clamp (None: unclamped, see notebook 02)
    # training
    crop: int  # HR crop side, divisible by 4
    batch: int

    def to_dict(self):
        return asdict(self)


CONFIGS = {
    "paper": Config("paper", gen_channels=64, gen_blocks=8, disc_channels=64, flow_couplings=16,
                    flow_hidden=64, flow_cond_channels=16, flow_encoder_blocks=2, flow_scale_clamp=2.0, crop=256, batch=64),
    "cpu": Config("cpu", gen_channels=32, gen_blocks=4, disc_channels=16, flow_couplings=10,
                  flow_hidden=32, flow_cond_channels=8, flow_encoder_blocks=2, flow_scale_clamp=2.0, crop=64, batch=16),
    "tiny": Config("tiny", gen_channels=8, gen_blocks=1, disc_channels=8, flow_couplings=2,
                   flow_hidden=8, flow_cond_channels=4, flow_encoder_blocks=1, flow_scale_clamp=2.0, crop=32, batch=4),
}


def get_config(name: str, **overrides) -> Config:
    """The named configuration, optionally with some fields replaced (e.g. ``flow_scale_clamp=None``)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; choose one of {sorted(CONFIGS)}")
    return replace(CONFIGS[name], **overrides)
