"""Memory a long probe will need, checked before it starts: a run that cannot fit is refused with one
line saying what it needs, instead of being killed (or swapping) minutes later.

The estimates come from what dominates the peak, measured with ``/usr/bin/time -f %M`` over configs,
sizes and dtypes: on the CPU, float64 convolutions unfold their input (im2col), and the largest unfold
is the base generator's final 9x9 conv at HR resolution, 81 x gen_channels values per HR pixel and
image, plus the smaller unfolds and feature maps of the couplings (32 x the widest layer, which
dominates for small networks); float32 convolutions (oneDNN) do not unfold, and a few HR-size feature
maps remain. A backward pass (the receptive-field probes) keeps about 1.4 times the forward's peak.
"""
from pathlib import Path

import torch

from .errors import UserError
from .config import Config

BASELINE_BYTES = 0.8e9  # the interpreter with torch imported, measured peak before any work
GB = 1e9


def available_bytes() -> float:
    """What this process may still allocate: the smaller of the system's MemAvailable and the room left
    under a cgroup (container) limit; inf where neither can be read."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            limits.append(int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return float(min(limits)) if limits else float("inf")


def flow_pass_bytes(cfg: Config, hr_side: int, batch: int, dtype: torch.dtype, backward: bool = False) -> float:
    """Estimated peak of one pass of `cfg`'s conditional flow on `batch` HR images of hr_side x hr_side."""
    width = max(cfg.gen_channels, cfg.flow_hidden)
    per_pixel = (81 * cfg.gen_channels + 32 * width) if dtype == torch.float64 else 4 * width
    need = per_pixel * hr_side ** 2 * batch * torch.finfo(dtype).bits // 8
    return BASELINE_BYTES + need * (1.4 if backward else 1.0)


def require(need: float, what: str, advice: str) -> None:
    """Refuse (ValueError, exit status 2 from the command line) when `need` bytes are not available."""
    have = available_bytes()
    if need > have:
        raise UserError(f"{what} needs about {need / GB:.1f} GB of memory, {have / GB:.1f} GB are available "
                         f"here; {advice}")
