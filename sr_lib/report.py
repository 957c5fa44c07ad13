"""The study's punchline, rendered: `python -m sr_lib report --out DIR` writes

* comparison.png: original, bicubic, SR, SRGAN and the flow at two temperatures, with zoomed crops;
* perception_distortion.png: PSNR against SWD (and LPIPS where available), the flow as a curve over T;
* diversity.png: where 8 flow samples of the first image disagree at T = 0.5, 0.8 and 1, beside the
  detail its LR image leaves open, with their correlation;
* table.md and table.json: every number `evaluate` measured, the study's FID and LPIPS beside ours.
All measuring happens in `evaluate`; this module only renders. A metric whose backbone weights are
missing is listed as unavailable, with the file and the folder it needs.
"""
import json
import math
import os
import shutil
from pathlib import Path

import torch

from . import distributed
from .checkpoint import DEFAULT_CHECKPOINTS
from .data import HELDOUT_DETAIL
from .evaluate import diversity_maps, evaluate
from .errors import Interrupted, UserError
from .files import atomic_write, remove_stale, writable_folder
from .methods import METHODS, STUDY_TEMPERATURE, TEMPERATURES, label, load_methods
from .plotting import DPI, comparison_figure, diversity_figure, perception_distortion_figure


def _fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _with_interval(row: dict, key: str, digits: int) -> str:
    """The value, and its bootstrap interval where `evaluate` computed one: '25.72 [24.51, 26.93]'."""
    low_high = row.get("intervals", {}).get(key)
    interval = f" [{_fmt(low_high[0], digits)}, {_fmt(low_high[1], digits)}]" if low_high else ""
    return _fmt(row.get(key), digits) + interval


# (header, row key, digits); LPIPS and FID show "n/a" when their weights were missing
COLUMNS = [("PSNR", "psnr", 2), ("SSIM", "ssim", 3), ("LR-PSNR", "lr_psnr", 2), ("diversity", "diversity", 4),
           ("SWD", "swd", 1), ("LPIPS", "lpips", 3), ("FID", "fid", 2), ("HF ratio", "hf_energy_ratio", 2),
           ("colour HF", "chroma_hf_ratio", 2),
           ("MACs/px", "macs_per_hr_pixel", 0), ("field px", "receptive_field_px", 0), ("params", "params", 0),
           ("s/MP", "seconds_per_megapixel", 3)]


def markdown_table(result: dict) -> str:
    head = ["method", "T"] + [h for h, _, _ in COLUMNS] + ["study FID", "study LPIPS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        study = r["study"] or {}
        cells = [label(r["method"]), _fmt(r["temperature"], 1)]
        cells += ["n/a" if key in result["unavailable"] else _with_interval(r, key, digits) for _, key, digits in COLUMNS]
        cells += [_fmt(study.get("fid")), _fmt(study.get("lpips"), 4)]
        lines.append("| " + " | ".join(cells) + " |")
    fid = result["fid_protocol"]
    notes = [f"\nImages: {', '.join(result['images'])} ({result['data']}); checkpoints: `{result['checkpoints']}`."
             + (f" Skipped, could not be decoded: {', '.join(result['skipped'])}." if result.get("skipped") else ""),
             "PSNR/SSIM on RGB with a 4 px border crop; LR-PSNR: output downsampled by the same bicubic "
             "degradation vs. the LR input; diversity: per-pixel std over the samples; SWD: multi-scale sliced "
             "Wasserstein distance of 7x7 Laplacian-pyramid neighbourhoods to the originals' (x 1e3, lower = more "
             "natural, needs no trained weights); HF ratio: spectral energy above the LR Nyquist limit, output / "
             "original (sharpness, not correctness); colour HF: the same for the colour-difference planes Cb, Cr alone (above 1: colour speckle); s/MP: inference seconds per output megapixel on this machine, timed on one seeded 64x64 LR input (a 256x256 output) for every method.",
             f"[low, high]: the central {result['bootstrap']['level']:.0%} of {result['bootstrap']['resamples']} "
             f"bootstrap resamples of the {len(result['images'])} images (seed {result['bootstrap']['seed']}; "
             "SWD: the drawn images' patches, against the same drawn originals). With a handful of images the "
             "interval only shows how far these images disagree, and is too narrow for the population of faces; "
             "an ordering of two rows needs their paired difference's interval (`evaluate.difference`) to exclude 0.",
             f"FID: {fid['dims']}-d Inception features of {fid['patch']}x{fid['patch']} px patches (every {fid['stride']} px), first "
             "sample per image.",
             f"The study does not state its sampling temperature; its flow scores stand next to T = {STUDY_TEMPERATURE}.",
             "Study scores: FFHQ-trained paper-size networks evaluated on CelebA (thousands of faces); ours: the "
             "`cpu` configuration trained on four bundled photographs, evaluated on the images above. "
             "Compare orderings, not values."]
    notes += [f"**{name.upper()} unavailable:** {reason}" for name, reason in result["unavailable"].items()]
    return "\n".join(lines + notes) + "\n"


FIGURE_IMAGES = 4  # the comparison figure shows the first few evaluation images


def detail_box(name: str, hr: torch.Tensor) -> tuple[int, int, int]:
    """The crop the figures zoom into: the bundled faces' chosen detail, else the central 48 px."""
    if name in HELDOUT_DETAIL:
        return HELDOUT_DETAIL[name]
    size = min(48, *hr.shape[-2:])
    return (hr.shape[-2] - size) // 2, (hr.shape[-1] - size) // 2, size


def write_report(out: str | Path, result: dict, pairs, outputs, maps: dict | None = None) -> None:
    """table.json, table.md and the figures into `out`, each written atomically; diversity.png where the
    flow's `evaluate.diversity_maps` of the first image are given."""
    import matplotlib.pyplot as plt
    out = Path(out)
    atomic_write(out / "table.json", lambda p: p.write_text(json.dumps(result, indent=2)))
    atomic_write(out / "table.md", lambda p: p.write_text(markdown_table(result)))
    figures = {"perception_distortion.png": perception_distortion_figure(result),
               "comparison.png": comparison_figure(result["images"][:len(pairs)], pairs, outputs, HELDOUT_DETAIL)}
    if maps is not None:
        hr = pairs[0][0]
        figures["diversity.png"] = diversity_figure(maps, hr[0], detail_box(result["images"][0], hr))
    for name, fig in figures.items():
        atomic_write(out / name, lambda p, f=fig: f.savefig(p, dpi=DPI, format="png", facecolor=f.get_facecolor()))
        plt.close(fig)


REPORT_FILES = ("table.json", "table.md", "perception_distortion.png", "comparison.png", "diversity.png")


def check_report_folder(out: str | Path, overwrite: bool) -> Path:
    """`out` as a folder the report may be written to, checked before any work: new or empty, or holding
    a report (and nothing else) when `overwrite`; a folder with other files is never replaced."""
    out = writable_folder(out)
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    foreign = [name for name in present if name not in REPORT_FILES]
    if foreign:
        raise UserError(f"--out {out} holds other files ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); give a new or empty folder for the report")
    if present and not overwrite:
        raise UserError(f"--out {out} holds a report; pass --overwrite to replace it")
    return out


def _swap_in(out: Path, result, pairs, outputs, maps=None) -> None:
    """Write the whole report into a temporary folder beside `out`, then put it in place of `out` by two
    renames: a failure (a full disk, Ctrl-C) leaves the old report as it was, never a mix of two."""
    out = out.resolve()
    remove_stale(out)
    tmp, old = (out.with_name(f".{out.name}.{os.getpid()}.{kind}") for kind in ("tmp", "old"))
    try:
        write_report(tmp, result, pairs, outputs, maps)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def report(out: str | Path, checkpoints: str | Path = DEFAULT_CHECKPOINTS, data: str = "bundled-heldout",
           perceptual: dict | None = None, temperatures=TEMPERATURES, progress: bool = False,
           overwrite: bool = False) -> dict:
    """Evaluate every method and write the report's four files into `out` (created, or replaced whole
    when `overwrite`); returns the result."""
    out = check_report_folder(out, overwrite)
    try:
        result, pairs, outputs = evaluate(checkpoints, data, perceptual, temperatures,
                                          with_outputs=FIGURE_IMAGES, progress=progress)
        if distributed.is_main():  # under torchrun: one writer
            sampled = {name: model for name, model in load_methods(checkpoints).items() if METHODS[name].stochastic}
            name = next(iter(sampled), None)
            maps = diversity_maps(sampled[name], pairs[0][0], method=name) if name else None
            _swap_in(Path(out), result, pairs, outputs, maps)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {out} is as it was before this run") from None
    return result
