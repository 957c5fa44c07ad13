"""Checkpoints: written atomically, loaded with weights_only=True, refused when foreign or corrupt.

A checkpoint is a plain dict: the method ('sr', 'srgan', 'flow', ...), the network it holds
('generator' or 'flow'), the config as a dict, the step, the library version, the model's state dict
and whatever the trainer needs to resume (optimizers, data stream state, loss history).
"""
from pathlib import Path

import torch

from .errors import UserError
from . import __version__
from .config import Config, get_config
from .files import atomic_write

DEFAULT_CHECKPOINTS = Path(__file__).parent / "checkpoints" / "cpu"
REQUIRED = ("method", "network", "config", "step", "version", "model")


def non_finite(tree, prefix: str = "") -> list[str]:
    """The names of the floating-point tensors with a NaN or an infinity anywhere in a checkpoint's
    nested dicts and lists (weights, buffers, optimizer moments): none may be saved or loaded."""
    if isinstance(tree, torch.Tensor):
        return [prefix or "tensor"] if tree.is_floating_point() and not torch.isfinite(tree).all() else []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    return [name for key, value in items for name in non_finite(value, f"{prefix}.{key}" if prefix else str(key))]


def save_checkpoint(path: str | Path, method: str, network: str, cfg: Config, step: int,
                    model: torch.nn.Module | dict, **extra) -> Path:
    """Write atomically; `model` is the network or its state dict. Non-finite weights are refused."""
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    payload = {"method": method, "network": network, "config": cfg.to_dict(), "step": step, "version": __version__,
               "model": state, **extra}
    broken = non_finite(payload)
    if broken:
        raise RuntimeError(f"refusing to save {path}: non-finite values in {broken[:3]}")
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, method: str | None, cfg: Config | None = None) -> dict:
    """The checkpoint at `path`, checked to be an sr_lib checkpoint of `method` (if given) and of `cfg`
    (if given)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise UserError(f"{path} is corrupt or not a PyTorch checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or any(key not in payload for key in REQUIRED):
        raise UserError(f"{path} is not an sr_lib checkpoint of this version (expected the keys {REQUIRED})")
    broken = non_finite(payload)
    if broken:
        raise UserError(f"{path} holds non-finite values in {', '.join(broken[:3])}"
                         f"{f' and {len(broken) - 3} more' if len(broken) > 3 else ''}: refusing to use it "
                         "(train it again, or resume from an earlier copy)")
    if method is not None and payload["method"] != method:
        raise UserError(f"{path} holds a {payload['method']!r} model, not a {method!r} one")
    if cfg is not None:
        theirs = config_of(payload)
        if theirs != cfg:
            differ = sorted(k for k in cfg.to_dict() if getattr(theirs, k) != getattr(cfg, k))
            raise UserError(f"{path} was trained with config {theirs.name!r}, which differs from "
                             f"{cfg.name!r} in {differ}")
    return payload


def slim_checkpoint(src: str | Path, dst: str | Path, method: str) -> Path:
    """A copy with only what evaluation needs (no optimizer or discriminator state): it cannot resume."""
    payload = load_checkpoint(src, method)
    extra = {key: payload[key] for key in ("history", "settings") if key in payload}
    return save_checkpoint(dst, method, payload["network"], config_of(payload), payload["step"], payload["model"],
                           **extra, slim=True)


def config_of(payload: dict) -> Config:
    """The Config a loaded checkpoint was trained with; fields added to Config after it was written take
    the named configuration's value (they do not shape the saved network, or its weights would not load)."""
    saved = dict(payload["config"])
    try:
        return get_config(saved.pop("name"), **saved)
    except TypeError as error:  # a field this version does not know
        raise UserError(f"checkpoint config does not fit this version of sr_lib: {error}") from error


def load_model(path: str | Path, method: str | None, part: str = "model") -> tuple[torch.nn.Module, dict]:
    """A ready eval-mode network from a checkpoint, and the payload.

    `part` is 'model' (what the method evaluates with) or another saved network, e.g. 'discriminator'."""
    from .methods import build
    payload = load_checkpoint(path, method)
    network = payload["network"] if part == "model" else part
    if part not in payload:
        raise UserError(f"{path} holds no {part!r}")
    model = build(network, config_of(payload))
    try:
        model.load_state_dict(payload[part])
    except RuntimeError as error:
        raise UserError(f"{path}: weights do not fit the {network} of its config ({error})") from error
    return model.eval(), payload
