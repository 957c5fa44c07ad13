"""All measuring, in one place: every method of `methods.METHODS` on the same evaluation images.

Per method (and, for the flow, per latent temperature) one row of
* distortion: PSNR/SSIM on RGB and Y, LR-consistency PSNR (`metrics`);
* diversity: the per-pixel spread of several samples (0 for a deterministic method);
* perception without weights: the multi-scale sliced Wasserstein distance (SWD) between the outputs'
  and the originals' local structure, all samples of all images (`perceptual.swd`);
* sharpness: the HF-energy ratio (fine detail relative to the original; says nothing of correctness);
* perception with weights, where their files are cached: LPIPS and FID; otherwise listed as unavailable;
* cost: parameters, multiply-accumulates per HR pixel and receptive field (measured once per config),
  inference seconds per output megapixel (`torch.utils.benchmark`);
* the study's published FID and LPIPS beside the matching row.
`report.py` renders the result; `python -m sr_lib evaluate` prints it.
"""
from functools import lru_cache
from pathlib import Path

import torch

from .checkpoint import DEFAULT_CHECKPOINTS
from .complexity import audit
from .data import evaluation_images
from .imaging import degrade
from .methods import METHODS, STUDY_TEMPERATURE, TEMPERATURES, load_methods, super_resolve
from .metrics import distortion, diversity
from .perceptual import fid, fid_patches, hf_energy_ratio, inception_model, lpips_distance, lpips_model, swd
from .timing import seconds
from .weights import MissingWeights

FID_DIMS = 2048


def load_perceptual(fid_dims: int = FID_DIMS) -> dict:
    """{'lpips': model or None, 'fid': model or None, 'fid_dims': .., 'unavailable': {metric: reason}}."""
    models, unavailable = {}, {}
    for name, build in (("lpips", lpips_model), ("fid", lambda: inception_model(fid_dims))):
        try:
            models[name] = build()
        except MissingWeights as missing:
            models[name], unavailable[name] = None, str(missing)
    return {**models, "fid_dims": fid_dims, "unavailable": unavailable}


@lru_cache(maxsize=None)
def _audit(cfg):
    return audit(cfg)["models"]  # float64 receptive fields take seconds: once per configuration


def cost(name: str, model, lr: torch.Tensor) -> dict:
    """Parameters, MACs per HR pixel, receptive field and inference seconds per output megapixel."""
    method = METHODS[name]
    row = {"params": 0, "macs_per_hr_pixel": None, "receptive_field_px": None}
    if model is not None:
        row.update({key: _audit(model.config)[method.network][key]
                    for key in ("params", "macs_per_hr_pixel", "receptive_field_px")})
    t = STUDY_TEMPERATURE if method.stochastic else None
    with torch.no_grad():
        elapsed = seconds(lambda: method.run(model, lr, t, None))
    row["seconds_per_megapixel"] = elapsed / (lr.shape[0] * lr.shape[-2] * lr.shape[-1] * 16 / 1e6)
    return row


def run_all(models: dict, images: dict[str, torch.Tensor], temperatures=TEMPERATURES, seed: int = 0):
    """Every method on every image: ([(hr, lr) per image], {(method, T): [outputs (S, 1, 3, H, W) per image]})."""
    pairs, outputs = [], {}
    for hr in images.values():
        hr = hr[None]
        lr = degrade(hr)
        pairs.append((hr, lr))
        for name, t, samples in super_resolve(models, lr, temperatures, seed=seed):
            outputs.setdefault((name, t), []).append(samples)
    return pairs, outputs


def _mean(values: list[dict]) -> dict:
    return {key: sum(v[key] for v in values) / len(values) for key in values[0]}


def measure(pairs, per_image: list[torch.Tensor], perceptual: dict | None,
            fid_reference: torch.Tensor | None = None) -> dict:
    """All quality numbers of one (method, T): per-image means of distortion, diversity and sharpness,
    then the set-level perception measures over all samples of all images (the images share one size,
    `data.evaluation_images`). `fid_reference`: the originals' FID patches, drawn once by the caller."""
    rows = []
    for (hr, lr), samples in zip(pairs, per_image):
        row = _mean([distortion(s, hr, lr) for s in samples])
        row["diversity"] = diversity(samples) if len(samples) > 1 else 0.0
        row["hf_energy_ratio"] = sum(hf_energy_ratio(s, hr) for s in samples) / len(samples)
        if perceptual and perceptual["lpips"] is not None:
            row["lpips"] = sum(lpips_distance(perceptual["lpips"], s, hr) for s in samples) / len(samples)
        rows.append(row)
    result = _mean(rows)
    swd_result = swd(torch.cat([s.flatten(0, 1) for s in per_image]), torch.cat([hr for hr, _ in pairs]))
    result.update({"swd": swd_result["swd"], "swd_levels": swd_result["levels"]})
    if perceptual and perceptual["fid"] is not None:
        if fid_reference is None:
            fid_reference = fid_patches([hr[0] for hr, _ in pairs])
        generated = fid_patches([s[0, 0] for s in per_image])  # the first sample of each image
        scores = fid(perceptual["fid"], generated, fid_reference, perceptual["fid_dims"])
        result.update({"fid" if k == "fid" else f"fid_{k}": v for k, v in scores.items()})
    return result


def evaluate(checkpoints: str | Path = DEFAULT_CHECKPOINTS, data: str = "bundled-heldout",
             perceptual: dict | None = None, temperatures=TEMPERATURES, seed: int = 0, with_outputs: bool = False):
    """The result table (a JSON-able dict); with_outputs=True also returns (pairs, outputs) for figures.

    `perceptual` as from `load_perceptual()` (the default); pass {'lpips': None, 'fid': None,
    'unavailable': {...}} to skip the weight-based measures."""
    perceptual = perceptual if perceptual is not None else load_perceptual()
    models = load_methods(checkpoints)
    images = evaluation_images(data)
    pairs, outputs = run_all(models, images, temperatures, seed)
    costs = {name: cost(name, model, pairs[0][1]) for name, model in models.items()}  # once, not per T
    fid_reference = fid_patches([hr[0] for hr, _ in pairs]) if perceptual["fid"] is not None else None
    rows = []
    for (name, t), per_image in outputs.items():
        row = {"method": name, "temperature": t, **measure(pairs, per_image, perceptual, fid_reference),
               **costs[name]}
        shows_study = METHODS[name].study and (t is None or t == STUDY_TEMPERATURE)
        row["study"] = METHODS[name].study if shows_study else None
        rows.append(row)
    result = {"data": data, "images": list(images), "checkpoints": str(checkpoints),
              "unavailable": perceptual["unavailable"],
              "fid_protocol": {"dims": perceptual.get("fid_dims", FID_DIMS), "patch": 64, "stride": 32},
              "rows": rows}
    return (result, pairs, outputs) if with_outputs else result


def format_table(result: dict) -> str:
    columns = ("psnr", "ssim", "psnr_y", "lr_psnr", "diversity", "swd", "hf_energy_ratio")
    lines = [f"{'method':<12}{'T':>5}" + "".join(f"{c:>16}" for c in columns)]
    for row in result["rows"]:
        t = "-" if row["temperature"] is None else f"{row['temperature']:.1f}"
        lines.append(f"{row['method']:<12}{t:>5}" + "".join(f"{row[c]:>16.4f}" for c in columns))
    return "\n".join(lines)
