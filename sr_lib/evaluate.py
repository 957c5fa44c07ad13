"""Every method on the same held-out images: the distortion table of `python -m sr_lib evaluate`."""
from pathlib import Path

import torch

from .checkpoint import load_model
from .data import evaluation_images
from .imaging import degrade, upsample
from .metrics import distortion, diversity

TEMPERATURES = (0.0, 0.5, 0.8, 1.0)
DIVERSITY_SAMPLES = 4
DEFAULT_CHECKPOINTS = Path(__file__).parent / "checkpoints" / "cpu"


def load_methods(checkpoints: str | Path) -> dict:
    """{'sr': generator, 'srgan': generator, 'flow': flow} for the checkpoints present in the folder."""
    folder = Path(checkpoints)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    methods = {kind: load_model(folder / f"{kind}.pt", kind)[0] for kind in ("sr", "srgan", "flow")
               if (folder / f"{kind}.pt").exists()}
    if not methods:
        raise FileNotFoundError(f"no sr.pt, srgan.pt or flow.pt in {folder}; train them (README) first")
    return methods


@torch.no_grad()
def super_resolve(methods: dict, lr: torch.Tensor, temperatures=TEMPERATURES, samples: int = DIVERSITY_SAMPLES,
                  seed: int = 0) -> list[tuple[str, float | None, torch.Tensor]]:
    """(method, temperature, outputs) for bicubic, each generator and the flow at each temperature.

    For the flow, outputs stacks `samples` draws (S, N, 3, H, W); the others have S = 1.
    """
    results = [("bicubic", None, upsample(lr).clamp(0, 1)[None])]
    results += [(kind, None, methods[kind](lr).clamp(0, 1)[None]) for kind in ("sr", "srgan") if kind in methods]
    if "flow" in methods:
        gen = torch.Generator().manual_seed(seed)
        for t in temperatures:
            draws = 1 if t == 0 else samples
            results.append(("flow", t, torch.stack([methods["flow"].sample(lr, t, generator=gen).clamp(0, 1)
                                                    for _ in range(draws)])))
    return results


def collect(methods: dict, images: dict[str, torch.Tensor], temperatures=TEMPERATURES, seed: int = 0):
    """Run every method on every image once: ([(hr, lr) per image], {(method, T): [outputs per image]})."""
    pairs, outputs = [], {}
    for hr in images.values():
        hr = hr[None]
        lr = degrade(hr)
        pairs.append((hr, lr))
        for method, t, samples in super_resolve(methods, lr, temperatures, seed=seed):
            outputs.setdefault((method, t), []).append(samples)
    return pairs, outputs


def distortion_and_diversity(samples: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> dict:
    """Distortion metrics averaged over a method's samples, and their diversity (0 for one sample)."""
    per_sample = [distortion(out, hr, lr) for out in samples]
    row = {key: sum(m[key] for m in per_sample) / len(per_sample) for key in per_sample[0]}
    row["diversity"] = diversity(samples) if len(samples) > 1 else 0.0
    return row


def mean_rows(pairs, outputs, measure=distortion_and_diversity) -> list[dict]:
    """One row per (method, temperature): `measure(samples, hr, lr)` averaged over the images."""
    rows = []
    for (method, t), per_image in outputs.items():
        values = [measure(samples, hr, lr) for (hr, lr), samples in zip(pairs, per_image)]
        rows.append({"method": method, "temperature": t,
                     **{key: sum(v[key] for v in values) / len(values) for key in values[0]}})
    return rows


def evaluate(checkpoints: str | Path = DEFAULT_CHECKPOINTS, data: str = "bundled-heldout", seed: int = 0) -> dict:
    """Mean distortion metrics over the evaluation images; flow rows average over its samples."""
    images = evaluation_images(data, seed)
    pairs, outputs = collect(load_methods(checkpoints), images, seed=seed)
    return {"data": data, "images": list(images), "checkpoints": str(checkpoints), "rows": mean_rows(pairs, outputs)}


def format_table(result: dict) -> str:
    columns = ("psnr", "ssim", "psnr_y", "ssim_y", "lr_psnr", "diversity")
    lines = [f"{'method':<10}{'T':>5}" + "".join(f"{c:>10}" for c in columns)]
    for row in result["rows"]:
        t = "-" if row["temperature"] is None else f"{row['temperature']:.1f}"
        lines.append(f"{row['method']:<10}{t:>5}" + "".join(f"{row[c]:>10.4f}" for c in columns))
    return "\n".join(lines)
