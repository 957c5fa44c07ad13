"""Normalizing flows vs. GANs for 4x super-resolution, side by side (teaching code)."""
import os

__version__ = "0.1.0"


def fast_mode() -> bool:
    """True under CI (CI=true): notebooks and commands shrink every heavy step."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
