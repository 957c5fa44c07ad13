"""Checkpoints: written atomically, loaded with weights_only=True, refused when foreign or corrupt.

A checkpoint is a plain dict: kind ('sr', 'srgan' or 'flow'), the config as a dict, the step, the
library version, the model's state dict and whatever the trainer needs to resume (optimizers, data
stream state, loss history).
"""
import os
import tempfile
from pathlib import Path

import torch

from . import __version__
from .config import Config, get_config

KINDS = ("sr", "srgan", "flow")
REQUIRED = ("kind", "config", "step", "version", "model")


def save_checkpoint(path: str | Path, kind: str, cfg: Config, step: int, model: torch.nn.Module | dict,
                    **extra) -> Path:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file.

    `model` is the network or its state dict."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"kind": kind, "config": cfg.to_dict(), "step": step, "version": __version__,
               "model": model.state_dict() if isinstance(model, torch.nn.Module) else model, **extra}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path: str | Path, kind: str, cfg: Config | None = None) -> dict:
    """The checkpoint at `path`, checked to be an sr_lib checkpoint of `kind` (and of `cfg`, if given)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path} is corrupt or not a PyTorch checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(payload, dict) or any(key not in payload for key in REQUIRED):
        raise ValueError(f"{path} is not an sr_lib checkpoint (expected the keys {REQUIRED})")
    if payload["kind"] != kind:
        raise ValueError(f"{path} holds a {payload['kind']!r} model, not a {kind!r} one")
    if cfg is not None:
        theirs = config_of(payload)
        if theirs != cfg:
            differ = sorted(k for k in cfg.to_dict() if getattr(theirs, k) != getattr(cfg, k))
            raise ValueError(f"{path} was trained with config {theirs.name!r}, which differs from "
                             f"{cfg.name!r} in {differ}")
    return payload


def slim_checkpoint(src: str | Path, dst: str | Path, kind: str) -> Path:
    """A copy with only what evaluation needs (no optimizer or discriminator state): it cannot resume."""
    payload = load_checkpoint(src, kind)
    keep = {key: payload[key] for key in (*REQUIRED, "history", "settings") if key in payload}
    return save_checkpoint(dst, kind, config_of(payload), keep["step"], keep["model"],
                           **{k: v for k, v in keep.items() if k not in REQUIRED}, slim=True)


def config_of(payload: dict) -> Config:
    """The Config a loaded checkpoint was trained with; fields added to Config after it was written take
    the named configuration's value (they do not shape the saved network, or its weights would not load)."""
    saved = dict(payload["config"])
    try:
        return get_config(saved.pop("name"), **saved)
    except TypeError as error:  # a field this version does not know
        raise ValueError(f"checkpoint config does not fit this version of sr_lib: {error}") from None


def load_model(path: str | Path, kind: str) -> tuple[torch.nn.Module, dict]:
    """A ready eval-mode network from a checkpoint (the generator for 'sr' and 'srgan'), and its payload."""
    from .models import build
    payload = load_checkpoint(path, kind)
    model = build("flow" if kind == "flow" else "generator", config_of(payload))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit the {kind} model of its config ({error})") from None
    model.config = config_of(payload)  # what the network was built with, for whoever measures it later
    return model.eval(), payload


def load_discriminator(path: str | Path) -> torch.nn.Module:
    """The eval-mode discriminator saved with an SRGAN checkpoint."""
    from .models import Discriminator
    payload = load_checkpoint(path, "srgan")
    disc = Discriminator(config_of(payload))
    disc.load_state_dict(payload["discriminator"])
    return disc.eval()
