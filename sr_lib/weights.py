"""Pretrained backbone weights, looked up in torch hub's cache and never fetched implicitly.

Nothing in sr_lib downloads at run time: a metric or loss whose backbone file is missing is reported as
unavailable, with the file name and the folder it belongs in. ``python -m sr_lib weights --fetch``
downloads and verifies them where the internet is reachable.
"""
from pathlib import Path

import torch

# key -> (file name in <hub>/checkpoints, download URL, what uses it). The hash prefix in each name is
# the first digits of the file's SHA-256, the convention torch hub verifies.
WEIGHTS = {
    "alexnet": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                "LPIPS (lpips package, AlexNet trunk)"),
    "inception": ("pt_inception-2015-12-05-6726825d.pth",
                  "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
                  "FID (pytorch-fid's Inception v3)"),
    "vgg19": ("vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
              "SRGAN's optional VGG content loss"),
}


class MissingWeights(FileNotFoundError):
    """A backbone file is not in torch hub's cache."""


def hub_checkpoints() -> Path:
    """torch hub's folder of downloaded weights, where LPIPS's AlexNet and FID's Inception are looked for
    (not this project's checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weight_path(key: str) -> Path:
    """The cached file for `key`, or MissingWeights saying which file is missing and where it goes."""
    name, url, used_by = WEIGHTS[key]
    path = hub_checkpoints() / name
    if not path.is_file():
        raise MissingWeights(f"{used_by} needs {name} in {hub_checkpoints()} (not found; "
                             f"`python -m sr_lib weights --fetch` downloads it from {url})")
    return path


def fetch(key: str) -> Path:
    """Download one file into the cache and verify its hash prefix (needs the internet)."""
    name, url, _ = WEIGHTS[key]
    target = hub_checkpoints() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(target), hash_prefix=name.rsplit("-", 1)[1].split(".")[0])
    return target

