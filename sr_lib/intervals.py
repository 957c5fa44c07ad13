"""How sure a row's numbers are: a seeded percentile bootstrap over the evaluation images.

Every replicate draws the images again with replacement (the same draw for every row, so differences
between two rows are paired) and recomputes each measure:
* per-image measures (PSNR, SSIM, diversity, LPIPS, ...): the mean over the drawn images;
* SWD, a distance between two *sets*: the drawn images' descriptors, each weighted by how often its
  image was drawn, in the outputs and in the originals alike (a cluster bootstrap: the image is the
  unit that is independent; the patches of one face are not). Drawing the patches again within each
  image as well was tried and rejected: it adds sampling noise to both sets, and a distance between
  two noisy sets is biased upwards (bicubic on the two held-out faces: SWD 122, such replicates 149 to
  205, an interval beside the value instead of around it).
  A resample only changes the weights on each set's sorted projections, so each projection is sorted
  once and every replicate is a weighted quantile comparison; replicates that draw the same images
  (only 3 distinct draws exist for two images) are computed once. The channel normalisation stays the
  full reference set's, and the replicates use the first `PROJECTIONS` of its seeded directions: their
  extra direction noise makes the interval a little wider, never narrower, and each row's replicates
  are centred on its full estimate (see `swd_replicates`). Using only every k-th descriptor in the
  replicates was tried and rejected: on 40 faces it moved the ends by under 1% of the width, but on the
  two held-out faces it narrowed the flow's intervals (T = 0.8: [46.8, 78.0] to [57.9, 74.2]).
The interval is the central 95% of `RESAMPLES` replicates. With two images it is close to the range
of the two images' values: two images cannot say more, and the interval says so.
"""
import torch

from .perceptual import SWDReference, sorted_projections

RESAMPLES = 200
LEVEL = 0.95
SEED = 0
PROJECTIONS = 64  # of the reference's directions, for the SWD replicates
QUANTILES = 512  # levels at which the replicates' quantile functions are compared
CHUNK = 8  # distinct replicates computed at once (memory: CHUNK x PROJECTIONS x descriptors values)


def image_counts(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> torch.Tensor:
    """(resamples, n): how often each of n images is drawn in each replicate."""
    draws = torch.randint(n, (resamples, n), generator=torch.Generator().manual_seed(seed))
    return torch.zeros(resamples, n, dtype=torch.float64).scatter_add_(1, draws, torch.ones(resamples, n,
                                                                                            dtype=torch.float64))


def mean_replicates(values: list[float], counts: torch.Tensor) -> torch.Tensor:
    """(resamples,) weighted means of per-image values."""
    return counts @ torch.tensor(values, dtype=torch.float64) / counts.sum(1)


def interval(replicates: torch.Tensor, level: float = LEVEL) -> list[float]:
    """[low, high]: the central `level` of the replicates."""
    tail = (1 - level) / 2
    low, high = torch.quantile(replicates.double(), torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return [low.item(), high.item()]


class _SortedLevel:
    """One set's projections at one pyramid level, sorted once per direction, with the image each sorted
    descriptor came from; a replicate's weights are its image counts (B, n)."""

    def __init__(self, descriptors: torch.Tensor, image_of: torch.Tensor, counts: torch.Tensor, mean, std,
                 directions):
        self.values, order = sorted_projections(SWDReference.normalised(descriptors, mean, std), directions, True)
        self.image_of = image_of[order]  # (P, M), like the values
        self.counts = counts.float()  # whole counts: exact in float32, and half the memory traffic

    def quantiles(self, replicates: slice, levels: torch.Tensor) -> torch.Tensor:
        """(b, P, len(levels)) the weighted quantile functions of replicates[replicates]."""
        cdf = self.counts[replicates][:, self.image_of].cumsum(2)  # (b, P, M), in each direction's order
        targets = levels.float() * cdf[..., -1:]  # the unnormalised cdf's levels
        position = torch.searchsorted(cdf, targets, right=True).clamp_(max=self.values.shape[1] - 1)
        return self.values.expand(len(cdf), -1, -1).gather(2, position)


def swd_replicates(outputs: list[list[list[torch.Tensor]]], originals: list[list[torch.Tensor]],
                   reference: SWDReference, counts: torch.Tensor, estimates: list[float]) -> list[torch.Tensor]:
    """Per row, (resamples,) SWD replicates. outputs: per row, per image, per level its descriptors;
    originals the same for the reference set; counts from `image_counts`, shared by every row and the
    reference (paired). Each row's replicates are shifted by its `estimate` (all directions) minus the
    replicate of the whole set (PROJECTIONS directions): what varies is the resampling alone."""
    whole = torch.ones(1, counts.shape[1], dtype=counts.dtype)
    distinct, which = torch.unique(torch.cat([whole, counts]), dim=0, return_inverse=True)
    levels = (torch.arange(QUANTILES, dtype=torch.float64) + 0.5) / QUANTILES
    found = [torch.zeros(len(distinct), dtype=torch.float64) for _ in outputs]
    for level, (mean, std, directions, _) in enumerate(reference.levels):
        def sorted_set(per_image):
            parts = [image[level] for image in per_image]
            image_of = torch.arange(len(parts)).repeat_interleave(torch.tensor([len(p) for p in parts]))
            return _SortedLevel(torch.cat(parts), image_of, distinct, mean, std, directions[:PROJECTIONS])
        ref = sorted_set(originals)
        rows = [sorted_set(per_image) for per_image in outputs]
        for start in range(0, len(distinct), CHUNK):
            part = slice(start, start + CHUNK)
            ref_q = ref.quantiles(part, levels)
            for total, row in zip(found, rows):
                total[part] += 1e3 * (row.quantiles(part, levels) - ref_q).abs().mean(dim=(1, 2))
    found = [total[which] / len(reference.levels) for total in found]
    return [drawn[1:] - drawn[0] + estimate for drawn, estimate in zip(found, estimates)]
