"""All measuring, in one place: every method of `methods.METHODS` on the same evaluation images.

Per method (and, for the flow, per latent temperature) one row of
* distortion: PSNR/SSIM on RGB and Y, LR-consistency PSNR (`metrics`);
* diversity: the per-pixel spread of several samples (0 for a deterministic method);
* perception without weights: the multi-scale sliced Wasserstein distance (SWD) between the outputs'
  and the originals' local structure, all samples of all images (`perceptual.swd`);
* sharpness: the HF-energy ratio (fine detail relative to the original; says nothing of correctness),
  and the same for the colour-difference planes alone (colour speckle);
* perception with weights, where their files are cached: LPIPS and FID; otherwise listed as unavailable;
* cost: parameters, multiply-accumulates per HR pixel and receptive field (measured once per config),
  inference seconds per output megapixel (`torch.utils.benchmark`);
* the study's published FID and LPIPS beside the matching row.
Images are read and super-resolved one at a time (`data.EvaluationSet`) and each row's numbers gathered
as they come (`Tally`): per-image means, a bounded, seeded sample of SWD descriptors per image
(`SWD_BUDGET` per level and set: all of them for small sets), running Inception-feature moments for FID.
Memory therefore does not grow with the number of images beyond those bounds.
`report.py` renders the result; `python -m sr_lib evaluate` prints it.
"""
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .errors import UserError
from . import distributed, intervals
from .checkpoint import DEFAULT_CHECKPOINTS
from .data import EvaluationSet
from .imaging import degrade, range_and_null
from .methods import METHODS, STUDY_TEMPERATURE, TEMPERATURES, load_methods, super_resolve
from .metrics import distortion, diversity, local_correlation, spread_map
from .perceptual import (FID_PATCH, FID_STANDARD, FID_STRIDE, FeatureMoments, SWDReference, chroma_hf_ratio, fid_moments,
                         fid_result, hf_energy_ratio, inception_model, lpips_distance, lpips_model, pyramid_descriptors)
from .timing import seconds
from .weights import MissingWeights

SWD_BUDGET = 8192  # descriptors per pyramid level and set (at least 1 per image); 45 x 45 per image are all kept below 4 images


def load_perceptual(fid_dims: int = FID_STANDARD) -> dict:
    """{'lpips': model or None, 'fid': model or None, 'fid_dims': .., 'unavailable': {metric: reason}}."""
    models, unavailable = {}, {}
    for name, build in (("lpips", lpips_model), ("fid", lambda: inception_model(fid_dims))):
        try:
            models[name] = build()
        except MissingWeights as missing:
            models[name], unavailable[name] = None, str(missing)
    return {**models, "fid_dims": fid_dims, "unavailable": unavailable}


COST_LR_SIDE = 64  # every method is timed on the same seeded 64x64 LR input (a 256x256 output)


def cost(name: str, model) -> dict:
    """Parameters, MACs per HR pixel, receptive field (from the layer shapes, `Method.cost`) and inference
    seconds per output megapixel.

    Timed on one fixed-size input, not on an evaluation image: on a tiny image the fixed overheads of a
    call dominate and the column becomes noise (one network measured at 190 and at 8.8 s/MP)."""
    method = METHODS[name]
    lr = torch.rand(1, 3, COST_LR_SIDE, COST_LR_SIDE, generator=torch.Generator().manual_seed(0))
    row = method.cost(getattr(model, "config", None))
    t = STUDY_TEMPERATURE if method.stochastic else None
    with torch.no_grad():
        elapsed = seconds(lambda: method.run(model, lr, t, None))
    row["seconds_per_megapixel"] = elapsed / (lr.shape[0] * lr.shape[-2] * lr.shape[-1] * 16 / 1e6)
    return row


def run_all(models: dict, images: dict[str, torch.Tensor], temperatures=TEMPERATURES, seed: int = 0):
    """Every method on every image: ([(hr, lr) per image], {(method, T): [outputs (S, 1, 3, H, W) per image]}).
    For figures of a few images; `evaluate` streams."""
    pairs, outputs = [], {}
    for hr in images.values():
        hr = hr[None]
        lr = degrade(hr)
        pairs.append((hr, lr))
        for name, t, samples in super_resolve(models, lr, temperatures, seed=seed):
            outputs.setdefault((name, t), []).append(samples)
    return pairs, outputs


DIVERSITY_TEMPERATURES = (0.5, 0.8, 1.0)
DIVERSITY_SAMPLES = 8


@torch.no_grad()
def diversity_maps(model, hr: torch.Tensor, temperatures=DIVERSITY_TEMPERATURES, samples: int = DIVERSITY_SAMPLES,
                   seed: int = 0, method: str | None = None) -> dict:
    """Where a stochastic method's samples of one image hr (1, 3, H, W) disagree, beside where the LR image
    leaves the original's detail open (|null-space part|, notebook 06), and how well the two agree:
    {'samples': {T: (S, 1, 3, H, W)}, 'spread': {T: (H, W)}, 'open': (H, W), 'correlation': {T: r}}.
    `method`: its name (default: the table's first stochastic method, the flow); `model`: its network."""
    lr = degrade(hr)
    gen = torch.Generator().manual_seed(seed)
    open_detail = range_and_null(hr)[1].abs().mean(dim=1)[0]
    sampler = METHODS[method or next(name for name, m in METHODS.items() if m.stochastic)]
    prepared = sampler.prepared(model, lr)
    drawn = {t: sampler.draws(model, lr, t, samples, gen, prepared) for t in temperatures}
    spread = {t: spread_map(s)[0] for t, s in drawn.items()}
    return {"samples": drawn, "spread": spread, "open": open_detail,
            "correlation": {t: local_correlation(m, open_detail) for t, m in spread.items()}}


def _mean(values: list[dict]) -> dict:
    return {key: sum(v[key] for v in values) / len(values) for key in values[0]}


class Tally:
    """One row's measures, gathered image by image: per-image numbers (distortion, diversity, sharpness,
    LPIPS), the SWD descriptors (at most `keep` per image, sample and level, chosen with the image's index
    as seed) and FID's feature moments (of each image's first sample). The originals are a Tally too, fed
    `hr` as their only sample. Under torchrun each rank tallies its share of the images, and `merged`
    puts the shares together in image order: the same numbers as one process (FID up to float rounding)."""

    def __init__(self, keep: int, perceptual: dict | None):
        self.keep, self.perceptual = keep, perceptual or {}
        self.images, self.rows, self.descriptors = [], [], []  # image indices; per image: a row, per-level descriptors
        self.fid = FeatureMoments() if self.perceptual.get("fid") is not None else None

    def add(self, index: int, samples: torch.Tensor, hr: torch.Tensor | None = None,
            lr: torch.Tensor | None = None) -> None:
        """samples (S, 1, 3, H, W) of image number `index`; with hr and lr, also the per-image numbers."""
        self.images.append(index)
        if hr is not None:
            row = _mean([distortion(s, hr, lr) for s in samples])
            row["diversity"] = diversity(samples) if len(samples) > 1 else 0.0
            row["hf_energy_ratio"] = sum(hf_energy_ratio(s, hr) for s in samples) / len(samples)
            row["chroma_hf_ratio"] = sum(chroma_hf_ratio(s, hr) for s in samples) / len(samples)
            if self.perceptual.get("lpips") is not None:
                row["lpips"] = sum(lpips_distance(self.perceptual["lpips"], s, hr) for s in samples) / len(samples)
            self.rows.append(row)
        self.descriptors.append(pyramid_descriptors(samples.flatten(0, 1), self.keep, seed=index))
        if self.fid is not None:
            fid_moments(self.perceptual["fid"], [samples[0, 0]], self.fid)

    def merged(self) -> "Tally":
        """All ranks' tallies of this row as one, in image order (itself for one process; a collective)."""
        parts = distributed.gather(self)
        if len(parts) == 1:
            return self
        whole = Tally(self.keep, self.perceptual)
        order = sorted((index, part, i) for part in parts for i, index in enumerate(part.images))
        whole.images = [index for index, _, _ in order]
        whole.descriptors = [part.descriptors[i] for _, part, i in order]
        whole.rows = [part.rows[i] for _, part, i in order] if self.rows else []
        if self.fid is not None:
            for part in parts:
                whole.fid.merge(part.fid)
        return whole

    def __getstate__(self):  # what `gather` sends: no models
        return {**self.__dict__, "perceptual": {}}

    def swd_reference(self) -> SWDReference:
        """This tally, the originals', as the reference set of every row's SWD."""
        return SWDReference([torch.cat(level) for level in zip(*self.descriptors)])

    def result(self, originals: "Tally", reference: SWDReference) -> dict:
        """This row's numbers against the originals (`reference`: their `swd_reference()`)."""
        result = {**_mean(self.rows), "image_count": len(self.rows)}
        found = reference.distance([torch.cat(level) for level in zip(*self.descriptors)])
        result.update({"swd": found["swd"], "swd_levels": found["levels"]})
        if self.fid is not None:
            scores = fid_result(self.fid, originals.fid, self.perceptual["fid_dims"])
            result.update({"fid" if k == "fid" else f"fid_{k}": v for k, v in scores.items()})
        return result


def evaluate(checkpoints: str | Path = DEFAULT_CHECKPOINTS, data: str = "bundled-heldout",
             perceptual: dict | None = None, temperatures=TEMPERATURES, seed: int = 0, with_outputs: int = 0,
             progress: bool = False):
    """The result table (a JSON-able dict), streaming over the images. with_outputs=k also returns
    (pairs, outputs) of the first k images, for figures; progress=True shows a progress bar (stderr).

    `perceptual` as from `load_perceptual()` (the default); pass {'lpips': None, 'fid': None,
    'unavailable': {...}} to skip the weight-based measures.

    Under torchrun (`torchrun --nproc_per_node N -m sr_lib evaluate ...`, gloo) rank r evaluates images
    r, r + N, r + 2N, ... and every rank returns the whole table: on a many-core machine N processes of
    one thread each outrun one process of N threads on these small convolutions (see `threads.py`)."""
    perceptual = perceptual if perceptual is not None else load_perceptual()
    models = load_methods(checkpoints)
    images = EvaluationSet(data)
    distributed.setup("cpu")
    try:
        return _evaluate_share(models, images, data, checkpoints, perceptual, temperatures, seed, with_outputs,
                               progress)
    finally:
        distributed.teardown()


def _evaluate_share(models, images, data, checkpoints, perceptual, temperatures, seed, with_outputs, progress):
    keep = max(1, SWD_BUDGET // len(images))
    rank, ranks = distributed.rank(), distributed.world_size()
    if ranks > len(images):
        raise UserError(f"{ranks} processes for {len(images)} evaluation images: use at most one per image")
    originals, tallies, shown, skipped = Tally(keep, perceptual), {}, {}, []
    costs = {name: cost(name, model) for name, model in models.items()} if distributed.is_main() else None
    for index in tqdm(range(rank, len(images), ranks), desc="evaluate", unit="image",
                      disable=not (progress and distributed.is_main())):
        try:
            hr = images.read(images.names[index])[None]
        except ValueError as error:  # one broken file does not lose the evaluation: skipped and listed
            warnings.warn(f"skipped: {error}", stacklevel=2)
            skipped.append(index)
            continue
        lr = degrade(hr)
        originals.add(index, hr[None])
        for name, t, samples in super_resolve(models, lr, temperatures, seed=seed):
            tallies.setdefault((name, t), Tally(keep, perceptual)).add(index, samples, hr, lr)
            if index < with_outputs:
                shown.setdefault(index, (hr, lr, {}))[2][name, t] = samples
    skipped = sorted(index for part in distributed.gather(skipped) for index in part)
    if len(skipped) == len(images):
        raise UserError(f"none of the {len(images)} evaluation images could be decoded")
    costs = distributed.gather(costs)[0]  # rank 0's: the others skip the field probe and the timing
    shown = {index: item for part in distributed.gather(shown) for index, item in part.items()}
    pairs = [shown[index][:2] for index in sorted(shown)]
    outputs = {key: [shown[index][2][key] for index in sorted(shown)] for key in tallies}
    originals = originals.merged()
    reference = originals.swd_reference()
    merged = {key: tally.merged() for key, tally in tallies.items()}
    counts = intervals.image_counts(len(originals.images))
    found = {key: tally.result(originals, reference) for key, tally in merged.items()}
    swd_replicates = intervals.swd_replicates([tally.descriptors for tally in merged.values()],
                                              originals.descriptors, reference, counts,
                                              [row["swd"] for row in found.values()])
    rows, replicates = [], {}
    for ((name, t), tally), swd_replicate in zip(merged.items(), swd_replicates):
        row = {"method": name, "temperature": t, **found[name, t], **costs[name]}
        shows_study = METHODS[name].study and (t is None or t == STUDY_TEMPERATURE)
        row["study"] = METHODS[name].study if shows_study else None
        drawn = {key: intervals.mean_replicates([r[key] for r in tally.rows], counts) for key in tally.rows[0]}
        drawn["swd"] = swd_replicate
        row["intervals"] = {key: intervals.interval(values) for key, values in drawn.items()}
        replicates[row_key(name, t)] = {key: values.tolist() for key, values in drawn.items()}
        rows.append(row)
    result = {"data": data, "images": [n for i, n in enumerate(images.names) if i not in skipped],
              "skipped": [images.names[i] for i in skipped], "checkpoints": str(checkpoints),
              "unavailable": perceptual["unavailable"],
              "fid_protocol": {"dims": perceptual.get("fid_dims", FID_STANDARD), "patch": FID_PATCH, "stride": FID_STRIDE},
              "swd_protocol": {"descriptors_per_image_and_level": keep, "budget": SWD_BUDGET},
              "processes": ranks, "rows": rows,
              "bootstrap": {"resamples": intervals.RESAMPLES, "level": intervals.LEVEL, "seed": intervals.SEED,
                            "swd_projections": intervals.PROJECTIONS, "replicates": replicates}}
    return (result, pairs, outputs) if with_outputs else result


def row_key(method: str, temperature: float | None) -> str:
    """A row's name in `result['bootstrap']['replicates']`: 'sr', 'flow@0.8'."""
    return method if temperature is None else f"{method}@{temperature:g}"


def find_row(result: dict, method: str, temperature: float | None = None) -> dict:
    for row in result["rows"]:
        if row["method"] == method and row["temperature"] == temperature:
            return row
    raise KeyError(f"no row {row_key(method, temperature)} in this result")


def difference(result: dict, a: tuple[str, float | None], b: tuple[str, float | None], measure: str) -> dict:
    """Row a's `measure` minus row b's, with its paired bootstrap interval (both rows were resampled with
    the same images): {'difference', 'interval', 'supported'}; `supported` says whether the interval
    excludes 0, i.e. whether these images support an ordering of the two rows on this measure."""
    draws = result["bootstrap"]["replicates"]
    diff = torch.tensor(draws[row_key(*a)][measure]) - torch.tensor(draws[row_key(*b)][measure])
    low, high = intervals.interval(diff, result["bootstrap"]["level"])
    return {"difference": find_row(result, *a)[measure] - find_row(result, *b)[measure],
            "interval": [low, high], "supported": low > 0 or high < 0}


def format_table(result: dict) -> str:
    """Each measure with its bootstrap interval over the images, [low, high]."""
    columns = (("psnr", 2), ("ssim", 3), ("psnr_y", 2), ("lr_psnr", 2), ("diversity", 4), ("swd", 1),
               ("hf_energy_ratio", 2), ("chroma_hf_ratio", 2))
    lines = [f"{'method':<12}{'T':>5}" + "".join(f"{c:>24}" for c, _ in columns)]
    for row in result["rows"]:
        t = "-" if row["temperature"] is None else f"{row['temperature']:.1f}"
        cells = [f"{row[c]:.{d}f} [{row['intervals'][c][0]:.{d}f}, {row['intervals'][c][1]:.{d}f}]" for c, d in columns]
        lines.append(f"{row['method']:<12}{t:>5}" + "".join(f"{cell:>24}" for cell in cells))
    n = len(result["images"])
    boot = result["bootstrap"]
    lines.append(f"[low, high]: {boot['level']:.0%} bootstrap interval over the {n} images ({boot['resamples']} "
                 f"resamples, seed {boot['seed']}; SWD: the drawn images' patches)")
    return "\n".join(lines)
