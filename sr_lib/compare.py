"""The seed's punchline, headless: every method on the same held-out images, one table, three figures.

`python -m sr_lib compare --out report/` writes
* comparison.png: original / bicubic / SR / SRGAN / flow at two temperatures, with zoomed crops;
* perception_distortion.png: PSNR against a perceptual measure, the flow's temperature as a curve;
* table.md and table.json: distortion, perceptual and sharpness metrics, diversity, and the networks'
  cost (MACs per pixel, receptive field, parameters, measured inference time), next to the seed's FID
  and LPIPS. A metric whose backbone weights are missing is listed as unavailable, with the reason.
"""
import json
import math
import os
from pathlib import Path

import torch

from .complexity import audit
from .data import HELDOUT_DETAIL, evaluation_images
from .evaluate import DEFAULT_CHECKPOINTS, collect, distortion_and_diversity, load_methods, mean_rows
from .imaging import upsample
from .perceptual import fid, fid_patches, hf_energy_ratio, inception_model, lpips_distance, lpips_model
from .timing import best_time
from .weights import MissingWeights

TEMPERATURES = (0.0, 0.2, 0.5, 0.8, 1.0, 1.2)
SHOWN_TEMPERATURES = (0.5, 0.8)
SEED_SCORES = {"srgan": {"fid": 3.858, "lpips": 0.1480}, "flow": {"fid": 6.026, "lpips": 0.2061},
               "sr": {"fid": 5.822, "lpips": 0.22674}}
LABELS = {"bicubic": "bicubic", "sr": "SR (no GAN)", "srgan": "SRGAN", "flow": "flow"}


def load_perceptual(random_backbone: bool = False, fid_dims: int = 2048) -> dict:
    """{'lpips': model or None, 'fid': model or None, 'unavailable': {metric: reason}}."""
    models, unavailable = {}, {}
    for name, build in (("lpips", lambda: lpips_model(random_backbone)),
                        ("fid", lambda: inception_model(fid_dims, random_backbone))):
        try:
            models[name] = build()
        except MissingWeights as missing:
            models[name], unavailable[name] = None, str(missing)
    return {**models, "unavailable": unavailable, "random_backbone": random_backbone, "fid_dims": fid_dims}


def _seconds_per_megapixel(fn, lr: torch.Tensor) -> float:
    with torch.no_grad():
        seconds = best_time(lambda: fn(lr))
    return seconds / (lr.shape[-2] * lr.shape[-1] * 16 / 1e6)


def _cost_columns(methods: dict, lr: torch.Tensor) -> dict:
    """Per method: params, MACs per HR pixel, receptive field (measured) and inference seconds per megapixel."""
    audits = {}  # one audit per configuration: each method is measured with the config it was trained with
    costs = {"bicubic": {"params": 0, "macs_per_hr_pixel": None, "receptive_field_px": None,
                         "seconds_per_megapixel": _seconds_per_megapixel(upsample, lr)}}
    for kind, model in methods.items():
        if model.config not in audits:
            audits[model.config] = audit(model.config)["models"]
        network = audits[model.config]["flow" if kind == "flow" else "generator"]
        run = (lambda x, m=model: m.sample(x, 0.8)) if kind == "flow" else model
        costs[kind] = {key: network[key] for key in ("params", "macs_per_hr_pixel", "receptive_field_px")}
        costs[kind]["seconds_per_megapixel"] = _seconds_per_megapixel(run, lr)
    return costs


def compare(out: str | Path, checkpoints: str | Path = DEFAULT_CHECKPOINTS, data: str = "bundled-heldout",
            perceptual: dict | None = None, temperatures=TEMPERATURES, seed: int = 0) -> dict:
    """Compute the table and write every file of the report into `out` (created)."""
    checkpoints, out = Path(checkpoints), Path(out)
    perceptual = perceptual or load_perceptual()
    methods = load_methods(checkpoints)
    images = evaluation_images(data, seed)
    pairs, outputs = collect(methods, images, temperatures, seed=seed)

    def measure(samples, hr, lr):
        row = distortion_and_diversity(samples, hr, lr)
        row["hf_energy_ratio"] = sum(hf_energy_ratio(s, hr) for s in samples) / len(samples)
        if perceptual["lpips"] is not None:
            row["lpips"] = sum(lpips_distance(perceptual["lpips"], s, hr) for s in samples) / len(samples)
        return row

    rows = mean_rows(pairs, outputs, measure)
    reference = fid_patches([hr[0] for hr, _ in pairs])
    if perceptual["fid"] is not None:
        for row in rows:
            samples = outputs[(row["method"], row["temperature"])]
            generated = fid_patches([s[0, 0] for s in samples])  # the first sample of each image
            row.update({f"fid_{k}" if k != "fid" else "fid": v
                        for k, v in fid(perceptual["fid"], generated, reference, perceptual["fid_dims"]).items()})
    costs = _cost_columns(methods, pairs[0][1])
    for row in rows:
        row.update(costs[row["method"]])
        row["seed"] = SEED_SCORES.get(row["method"]) if row["method"] != "flow" or row["temperature"] == 0.8 else None

    result = {"data": data, "images": list(images), "checkpoints": str(checkpoints),
              "unavailable": perceptual["unavailable"], "random_backbone": perceptual["random_backbone"],
              "fid_protocol": {"dims": perceptual["fid_dims"], "patch": 64, "stride": 32,
                               "samples_per_method": len(reference)},
              "rows": rows}
    write_report(out, result, pairs, outputs, images)
    return result


# ---------------------------------------------------------------- the report's files
def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown_table(result: dict) -> str:
    lpips_ok, fid_ok = "lpips" not in result["unavailable"], "fid" not in result["unavailable"]
    head = ["method", "T", "PSNR", "SSIM", "LR-PSNR", "LPIPS", "FID", "diversity", "HF ratio", "MACs/px",
            "field px", "params", "s/MP", "seed FID", "seed LPIPS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        seed = r["seed"] or {}
        cells = [LABELS[r["method"]], _fmt(r["temperature"], 1), _fmt(r["psnr"], 2), _fmt(r["ssim"]),
                 _fmt(r["lr_psnr"], 2), _fmt(r.get("lpips")) if lpips_ok else "n/a", _fmt(r.get("fid"), 2) if fid_ok else "n/a",
                 _fmt(r["diversity"], 4), _fmt(r["hf_energy_ratio"], 2), _fmt(r["macs_per_hr_pixel"], 0),
                 _fmt(r["receptive_field_px"]), _fmt(r["params"]), _fmt(r["seconds_per_megapixel"], 3),
                 _fmt(seed.get("fid")), _fmt(seed.get("lpips"), 4)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"\nImages: {', '.join(result['images'])} ({result['data']}); checkpoints: `{result['checkpoints']}`.",
             "PSNR/SSIM on RGB with a 4 px border crop; LR-PSNR: output downsampled by the same bicubic "
             "degradation vs. the LR input; diversity: per-pixel std over 4 samples; HF ratio: spectral energy "
             "above the LR Nyquist limit, output / original (1 = as much fine detail as the original); "
             "s/MP: inference seconds per output megapixel on this machine.",
             f"FID: {result['fid_protocol']['dims']}-d Inception features of {result['fid_protocol']['samples_per_method']} "
             "patches of 64x64 px (every 32 px) per method, first sample per image.",
             "The seed does not state its sampling temperature; its flow scores stand next to T = 0.8.",
             "Seed scores: FFHQ-trained paper-size networks evaluated on CelebA (thousands of faces); ours: the "
             "`cpu` configuration trained minutes on eight bundled photographs, evaluated on two portraits. "
             "Compare orderings, not values."]
    if result["random_backbone"]:
        notes.append("**LPIPS and FID were computed with RANDOM backbone weights: a test of the code path, not scores.**")
    notes += [f"**{name.upper()} unavailable:** {reason}" for name, reason in result["unavailable"].items()]
    return "\n".join(lines + notes) + "\n"


def perception_distortion_figure(result: dict):
    import matplotlib.pyplot as plt
    use_lpips = "lpips" not in result["unavailable"]
    key = "lpips" if use_lpips else "hf_energy_ratio"

    def perceptual(r):
        return r[key] if use_lpips else abs(math.log2(r[key]))
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    flow = [r for r in result["rows"] if r["method"] == "flow"]
    ax.plot([r["psnr"] for r in flow], [perceptual(r) for r in flow], "o-", color="C3", label="flow, T = 0 ... 1.2")
    for r in flow:
        ax.annotate(f"T={r['temperature']:.1f}", (r["psnr"], perceptual(r)), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    for i, method in enumerate(("bicubic", "sr", "srgan")):
        for r in (r for r in result["rows"] if r["method"] == method):
            ax.plot(r["psnr"], perceptual(r), "s", ms=9, color=f"C{i}", label=LABELS[method])
    ax.set_xlabel("PSNR (dB)  → less distortion")
    ax.set_ylabel("LPIPS (lower = more similar)" if use_lpips else
                  "|log2 HF-energy ratio| (0 = natural amount of fine detail)")
    title = "perception-distortion" + ("" if use_lpips else " (LPIPS unavailable: weight-free sharpness measure)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def comparison_figure(pairs, outputs, images):
    from .plotting import image_rows
    rows = {}
    for index, name in enumerate(images):
        hr = pairs[index][0]
        row = {"original": hr[0], "bicubic": outputs[("bicubic", None)][index][0, 0]}
        for kind in ("sr", "srgan"):
            if (kind, None) in outputs:
                row[LABELS[kind]] = outputs[(kind, None)][index][0, 0]
        for t in SHOWN_TEMPERATURES:
            if ("flow", t) in outputs:  # shown when the comparison ran at that temperature
                row[f"flow T={t}"] = outputs[("flow", t)][index][0, 0]
        rows[name] = row
    return image_rows(rows, boxes=HELDOUT_DETAIL)


def write_report(out: Path, result: dict, pairs, outputs, images) -> None:
    import matplotlib.pyplot as plt
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "table.json", lambda p: p.write_text(json.dumps(result, indent=2)))
    _atomic_write(out / "table.md", lambda p: p.write_text(markdown_table(result)))
    figures = {"perception_distortion.png": perception_distortion_figure(result),
               "comparison.png": comparison_figure(pairs, outputs, images)}
    for name, fig in figures.items():
        _atomic_write(out / name, lambda p, f=fig: f.savefig(p, dpi=110, format="png", facecolor=f.get_facecolor()))
        plt.close(fig)
