"""The study's "as comparable as possible", measured: parameters, compute per output pixel, receptive field.

* Multiply-accumulates (MACs) come from ``torch.utils.flop_counter`` (which reports 2 FLOPs per MAC) on
  one forward pass, divided by the number of HR pixels produced (the flow in its sampling direction,
  z -> HR). Element-wise work (PReLU, BatchNorm, bicubic skip) is not counted, as usual.
* The receptive field is measured, not derived: the gradient of one central output pixel with respect to
  the input is non-zero exactly on the pixels that output can see. It is measured on a copy whose
  weights are all re-drawn at random, so no zero-initialised layer hides a path (a structural field),
  and reported in HR pixels (LR pixels count 4). The generator is probed in float32: float64
  convolutions unfold their input (a 9x9 conv on a 256 px probe: 1.4 GB, which `upscale`, asking for
  its tile margin, should not need). The flow is probed in float64: in its sampling direction every step
  may multiply by up to exp(scale clamp), and through the paper flow's 20 steps float32 overflows.
"""
import copy
import functools

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import memory
from .config import SCALE, Config
from .methods import build

# The study's slides: receptive field in HR pixels and "MOPS per pixel" (the unit is not defined there).
STUDY = {"generator": {"receptive_field_px": 192, "mops_per_pixel": 0.15},
        "flow": {"receptive_field_px": 192, "mops_per_pixel": 0.16}}


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(fn, *inputs) -> int:
    """Multiply-accumulates of one call fn(*inputs), as counted by torch's flop counter."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(*inputs)
    return counter.get_total_flops() // 2


class FieldTooLarge(RuntimeError):
    """The measured field reaches the probe input's border: the probe is too small to tell."""


def _random_copy(model: torch.nn.Module, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """An eval-mode copy with every weight drawn at random: no path is hidden by a zero init.

    Scaled so each layer keeps its input's magnitude (kernels std 1/sqrt(fan-in), the flow's 1x1 channel
    mixers orthogonal, per-channel scales about 1): through the paper flow's ~100 layers a gradient
    neither overflows nor vanishes."""
    model = copy.deepcopy(model).to(dtype).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=dtype)
            if p.dim() == 2 and p.shape[0] == p.shape[1]:  # an invertible 1x1 conv: its inverse stays bounded
                p.copy_(torch.linalg.qr(noise)[0])
            elif p.dim() >= 2:
                p.copy_(0.7 * noise / p[0].numel() ** 0.5)
            else:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
    return model


def _extent(grad: torch.Tensor) -> tuple[int, bool]:
    """Side of the bounding box of non-zero gradient, and whether it touches the input's border."""
    mask = grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    side = int(max(rows[-1] - rows[0], cols[-1] - cols[0])) + 1
    touches = bool(rows[0] == 0 or cols[0] == 0 or rows[-1] == mask.shape[0] - 1 or cols[-1] == mask.shape[1] - 1)
    return side, touches


def receptive_field(fn, inputs: list[torch.Tensor], px_per_input_px: list[int]) -> list[int]:
    """Receptive field, in HR pixels, of the central pixel of fn(*inputs) with respect to each input."""
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    with torch.enable_grad():  # also when called under no_grad (tiled inference asks for its margin)
        out = fn(*inputs)
        out[..., out.shape[-2] // 2, out.shape[-1] // 2].sum().backward()
    fields = []
    for x, factor in zip(inputs, px_per_input_px):
        side, touches = _extent(x.grad)
        if touches:
            raise FieldTooLarge(f"receptive field reaches the border of a {tuple(x.shape[-2:])} input; use a larger one")
        fields.append(side * factor)
    return fields


@functools.lru_cache
def generator_field(cfg: Config, lr_side: int = 64) -> int:
    """The generator's receptive field in HR pixels (LR probes grown until the field fits)."""
    gen = _random_copy(build("generator", cfg))
    while True:
        try:
            return receptive_field(gen, [torch.rand(1, 3, lr_side, lr_side)], [SCALE])[0]
        except FieldTooLarge:
            lr_side *= 2


@functools.lru_cache
def flow_fields(cfg: Config, lr_side: int = 64, check_memory: bool = False) -> tuple[int, int]:
    """The flow's receptive fields in HR pixels, sampling direction, with respect to z and to the LR image.
    It sees further than the generator: the probe grows until the field fits inside it. With check_memory,
    each probe first makes sure its memory is there (`memory.require`)."""
    flow = _random_copy(build("flow", cfg), torch.float64)
    while True:
        if check_memory:
            side = SCALE * lr_side
            memory.require(memory.flow_pass_bytes(cfg, side, 1, torch.float64, backward=True),
                           f"complexity --config {cfg.name} (its float64 receptive-field probe at {side}x{side} px)",
                           "run it on a machine with more memory; --config cpu needs about 3 GB")
        try:
            return tuple(receptive_field(lambda z, lr: flow.inverse(z, lr)[0],
                                         [torch.randn(1, 3, SCALE * lr_side, SCALE * lr_side, dtype=torch.float64),
                                          torch.rand(1, 3, lr_side, lr_side, dtype=torch.float64)], [1, SCALE]))
        except FieldTooLarge:
            lr_side *= 2


def audit(cfg: Config, lr_side: int = 64, check_memory: bool = False) -> dict:
    """Parameters, MACs per HR pixel and measured receptive field of the three networks of `cfg`
    (check_memory: refuse a probe that would not fit, before it starts)."""
    hr_side = SCALE * lr_side
    lr = torch.rand(1, 3, lr_side, lr_side)
    z = torch.randn(1, 3, hr_side, hr_side)
    hr_pixels = hr_side * hr_side
    report = {}

    gen = _random_copy(build("generator", cfg))
    rf_gen = generator_field(cfg)
    report["generator"] = {"params": count_params(gen), "macs_per_hr_pixel": count_macs(gen, lr) / hr_pixels,
                           "receptive_field_px": rf_gen}

    flow = _random_copy(build("flow", cfg))
    def sample(z_, lr_):
        return flow.inverse(z_, lr_)[0]
    rf_z, rf_lr = flow_fields(cfg, check_memory=check_memory)
    report["flow"] = {"params": count_params(flow), "macs_per_hr_pixel": count_macs(sample, z, lr) / hr_pixels,
                      "receptive_field_px": max(rf_z, rf_lr), "receptive_field_z_px": rf_z,
                      "receptive_field_lr_px": rf_lr}

    disc = _random_copy(build("discriminator", cfg))
    crop = torch.rand(1, 3, cfg.crop, cfg.crop)
    (rf_disc,) = receptive_field(disc.features, [torch.rand(1, 3, hr_side, hr_side)], [1])
    report["discriminator"] = {"params": count_params(disc),
                               "macs_per_hr_pixel": count_macs(disc, crop) / cfg.crop ** 2,
                               "receptive_field_px": rf_disc}
    report["flow_vs_generator"] = {
        "macs_ratio": report["flow"]["macs_per_hr_pixel"] / report["generator"]["macs_per_hr_pixel"],
        "receptive_field_ratio": report["flow"]["receptive_field_px"] / rf_gen}
    return {"config": cfg.name, "models": report, "study": STUDY}


def format_audit(result: dict) -> str:
    """A plain-text table of `audit`'s result next to the study's figures."""
    models, study = result["models"], result["study"]
    lines = [f"complexity audit, config {result['config']!r} (MAC = multiply-accumulate, px = HR pixels)",
             f"{'network':<14}{'params':>12}{'MACs/px':>12}{'recept. field':>15}{'study field':>13}{'study MOPS':>12}"]
    for name in ("generator", "flow", "discriminator"):
        m, s = models[name], study.get(name, {})
        lines.append(f"{name:<14}{m['params']:>12,}{m['macs_per_hr_pixel']:>12,.0f}{m['receptive_field_px']:>13} px"
                     f"{s.get('receptive_field_px', '-'):>13}{s.get('mops_per_pixel', '-'):>12}")
    flow = models["flow"]
    ratio = models["flow_vs_generator"]
    lines += [f"flow field w.r.t. z: {flow['receptive_field_z_px']} px, w.r.t. the LR image: {flow['receptive_field_lr_px']} px",
              f"flow / generator: {ratio['macs_ratio']:.2f}x the MACs, {ratio['receptive_field_ratio']:.2f}x the field "
              "(study: 1.07x the operations, the same field)",
              "The study's 0.15 MOPS/px does not follow from its own generator table, counted as MACs or as FLOPs "
              "(2 per MAC);", "the discriminator's field is that of its last conv map (its head then averages over the crop)."]
    return "\n".join(lines)
