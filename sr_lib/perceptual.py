"""Perceptual metrics: LPIPS (lpips package, AlexNet) and FID (pytorch-fid, Inception); the multi-scale
sliced Wasserstein distance (SWD), which needs no trained weights; and a sharpness measure.

The backbones' ImageNet weights come only from torch hub's cache (see `sr_lib.weights`); the cache is
checked before a network is built, so nothing reaches for the internet.

FID on a handful of images: the distance compares two *distributions* of Inception features, so we draw
many overlapping patches per image (`fid_patches`: 64x64 px every 32 px, 49 per 256x256 image). With
fewer samples than feature dimensions the covariance is singular and the value is biased; the result says
how many samples it used and warns. Smaller feature sizes (64, 192, 768) are available and labelled.
"""
import math
import warnings

import numpy as np
import torch

from .errors import UserError
from .config import SCALE
from .imaging import check_images
from .weights import weight_path

FID_SIZES = (64, 192, 768, 2048)  # the feature sizes pytorch-fid offers
FID_STANDARD = 2048  # pool3: the FID every paper reports
FID_PATCH, FID_STRIDE = 64, 32


# ---------------------------------------------------------------- LPIPS
def lpips_model() -> torch.nn.Module:
    """LPIPS with the AlexNet trunk and the package's linear heads, as the study and SRFlow use it."""
    weight_path("alexnet")  # MissingWeights (with file and folder) before torchvision tries to download
    import lpips
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        return lpips.LPIPS(net="alex", verbose=False).eval()


@torch.no_grad()
def lpips_distance(model: torch.nn.Module, output: torch.Tensor, target: torch.Tensor) -> float:
    """Mean LPIPS over the batch; images in [0, 1] are mapped to the [-1, 1] the network expects."""
    check_images(output, "output")
    check_images(target, "target")
    return model(output.clamp(0, 1) * 2 - 1, target * 2 - 1).mean().item()


# ---------------------------------------------------------------- FID
def inception_model(dims: int = 2048) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 returning `dims`-dimensional features (2048 = pool3, the standard FID)."""
    if dims not in FID_SIZES:
        raise UserError(f"FID feature size must be one of {FID_SIZES}, got {dims}")
    weight_path("inception")  # before importing pytorch-fid: nothing is loaded without its weights
    from pytorch_fid.inception import InceptionV3
    return InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()


@torch.no_grad()
def inception_features(model: torch.nn.Module, images: torch.Tensor, batch: int = 50) -> np.ndarray:
    """(N, dims) features of images in [0, 1] (pytorch-fid resizes to 299 and rescales internally).

    The smaller feature sizes are spatial maps; like pytorch-fid's own script we average them over space.
    """
    feats = [torch.nn.functional.adaptive_avg_pool2d(model(images[i:i + batch])[0], 1)
             for i in range(0, len(images), batch)]
    return torch.cat(feats).flatten(1).double().numpy()


def fid_patches(images: list[torch.Tensor], patch: int = FID_PATCH, stride: int = FID_STRIDE) -> torch.Tensor:
    """All patch x patch windows every `stride` px of each (3, H, W) image, stacked (N, 3, patch, patch)."""
    windows = [img.unfold(1, patch, stride).unfold(2, patch, stride).permute(1, 2, 0, 3, 4).reshape(-1, 3, patch, patch)
               for img in images]
    return torch.cat(windows)


class FeatureMoments:
    """Running count, sum and sum of outer products of feature vectors: the mean and covariance FID needs,
    gathered image by image without keeping the features (a streaming evaluation's memory)."""

    def __init__(self):
        self.count, self.total, self.outer = 0, None, None

    def add(self, features: np.ndarray) -> None:
        features = np.asarray(features, dtype=np.float64)
        if self.total is None:
            self.total, self.outer = np.zeros(features.shape[1]), np.zeros((features.shape[1],) * 2)
        self.count += len(features)
        self.total += features.sum(0)
        self.outer += features.T @ features

    def merge(self, other: "FeatureMoments") -> None:
        """Add another set's moments (another rank's share of the images)."""
        if other.count:
            self.total = other.total if self.total is None else self.total + other.total
            self.outer = other.outer if self.outer is None else self.outer + other.outer
            self.count += other.count

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and the unbiased covariance (as numpy's cov)."""
        mean = self.total / self.count
        return mean, (self.outer - self.count * np.outer(mean, mean)) / max(1, self.count - 1)


def frechet_from_moments(a: FeatureMoments, b: FeatureMoments) -> float:
    """Frechet distance between Gaussians of two feature sets' moments (pytorch-fid's stable formula)."""
    from pytorch_fid.fid_score import calculate_frechet_distance
    (mu_a, cov_a), (mu_b, cov_b) = a.stats(), b.stats()
    with warnings.catch_warnings():  # pytorch-fid 0.3 passes scipy's deprecated `disp=` (see pyproject's scipy pin)
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(calculate_frechet_distance(mu_a, np.atleast_2d(cov_a), mu_b, np.atleast_2d(cov_b)))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets."""
    moments = [FeatureMoments() for _ in range(2)]
    for m, f in zip(moments, (features_a, features_b)):
        m.add(f)
    return frechet_from_moments(*moments)


def fid_moments(model: torch.nn.Module, images: list[torch.Tensor], moments: FeatureMoments | None = None) -> FeatureMoments:
    """Add the Inception features of every FID patch of `images` (each (3, H, W)) to `moments`."""
    moments = moments or FeatureMoments()
    moments.add(inception_features(model, fid_patches(images)))
    return moments


def fid_result(generated: FeatureMoments, reference: FeatureMoments, dims: int) -> dict:
    """FID with the sample count, and a warning when it is below the feature size (singular covariance)."""
    n = min(generated.count, reference.count)
    result = {"fid": frechet_from_moments(generated, reference), "dims": dims, "samples": n}
    if n < dims:
        result["warning"] = f"{n} samples < {dims} feature dimensions: covariance singular, FID biased upwards"
        warnings.warn(result["warning"], stacklevel=2)
    return result


# ---------------------------------------------------------------- perception without weights: SWD
SWD_PATCH = 7  # descriptor: a 7x7 neighbourhood of all three channels (147 numbers)
SWD_MIN_SIDE = 16  # the coarsest pyramid level
SWD_GRID = 45  # neighbourhoods per image and level: at most 45 x 45, on an evenly spaced grid
SWD_PROJECTIONS = 512  # random unit directions, seeded
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def _blur(x: torch.Tensor) -> torch.Tensor:
    """5x5 binomial blur per channel (the pyramid filter of Burt and Adelson), reflected borders."""
    kernel = (_BINOMIAL[:, None] * _BINOMIAL[None, :]).to(x)[None, None].repeat(x.shape[1], 1, 1, 1)
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect"), kernel,
                                      groups=x.shape[1])


def laplacian_pyramid(images: torch.Tensor, min_side: int = SWD_MIN_SIDE) -> list[torch.Tensor]:
    """Band-pass levels, finest first: each is an image minus its blurred, halved and re-expanded self;
    the last level is the remaining low-pass image (at least `min_side` px)."""
    levels, current = [], images
    while min(current.shape[-2:]) // 2 >= min_side:
        smaller = _blur(current)[..., ::2, ::2]
        expanded = torch.zeros_like(current)
        expanded[..., ::2, ::2] = 4 * smaller  # zero-insertion, then the same filter: its inverse step
        levels.append(current - _blur(expanded))
        current = smaller
    return levels + [current]


def _descriptors(level: torch.Tensor) -> torch.Tensor:
    """The 7x7x3 neighbourhoods of a (N, 3, H, W) level on an even grid of at most SWD_GRID^2 per image,
    as (count, 49, 3): the same multiset whatever the order of the images."""
    strides = [max(1, math.ceil((side - SWD_PATCH + 1) / SWD_GRID)) for side in level.shape[-2:]]
    windows = level.unfold(2, SWD_PATCH, strides[0]).unfold(3, SWD_PATCH, strides[1])  # N, 3, h, w, 7, 7
    return windows.permute(0, 2, 3, 4, 5, 1).reshape(-1, SWD_PATCH * SWD_PATCH, level.shape[1])


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> float:
    """Mean over the unit `directions` (K, D) of the 1-D Wasserstein-1 distance between the empirical
    distributions of the projected point sets a (N, D) and b (M, D).

    In 1-D, W1 is the mean gap between the two quantile functions; they are compared at max(N, M) evenly
    spaced levels, which is exact when one set size divides the other (e.g. 4 samples per reference)."""
    return _w1_of_sorted(*(sorted_projections(x, directions) for x in (a, b)))


def sorted_projections(x: torch.Tensor, directions: torch.Tensor, indices: bool = False):
    """(K, N) the points x (N, D) projected on each direction and sorted, one direction per row (sorting
    along the contiguous dimension takes half the time of sorting the (N, K) product's columns); with
    `indices`, (values, the points' order)."""
    order = (x @ directions.T).T.contiguous().sort(1)
    return order if indices else order.values


def _w1_of_sorted(pa: torch.Tensor, pb: torch.Tensor) -> float:
    """`sliced_wasserstein` from the two sets' `sorted_projections`."""
    size = max(pa.shape[1], pb.shape[1])
    levels = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    qa, qb = (p[:, (levels * p.shape[1]).long()] for p in (pa, pb))
    return (qa - qb).abs().mean().item()


def pyramid_descriptors(images: torch.Tensor, keep: int | None = None, seed: int = 0) -> list[torch.Tensor]:
    """Per Laplacian-pyramid level, finest first, the (count, 147) descriptors of a set (N, 3, H, W) in
    [0, 1] (float64). `keep`: at most that many per image and level, a seeded random choice (what a
    streaming evaluation of thousands of images can hold); None keeps all."""
    check_images(images, "images")
    gen = torch.Generator().manual_seed(seed)
    levels = []
    for level in laplacian_pyramid(images.double().clamp(0, 1)):
        per_image = _descriptors(level).flatten(1).view(len(images), -1, SWD_PATCH * SWD_PATCH * 3)
        if keep is not None and per_image.shape[1] > keep:
            chosen = torch.stack([torch.randperm(per_image.shape[1], generator=gen)[:keep] for _ in per_image])
            per_image = torch.gather(per_image, 1, chosen[..., None].expand(-1, -1, per_image.shape[2]))
        levels.append(per_image.reshape(-1, per_image.shape[2]))
    return levels


class SWDReference:
    """The reference set's side of the multi-scale SWD (see `swd`), computed once: per pyramid level its
    channel mean and std, the seeded projection directions and its sorted projections. An evaluation
    compares many outputs with the same originals; sorting their projections once halves its time."""

    def __init__(self, references: list[torch.Tensor], projections: int = SWD_PROJECTIONS, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.levels = []
        for ref in references:
            channels = ref.view(len(ref), -1, 3)
            mean, std = channels.mean(dim=(0, 1)), channels.std(dim=(0, 1)).clamp_min(1e-8)
            directions = torch.randn(projections, ref.shape[1], generator=gen, dtype=torch.float64)
            directions = directions / directions.norm(dim=1, keepdim=True)
            self.levels.append((mean, std, directions, sorted_projections(self.normalised(ref, mean, std), directions)))

    @staticmethod
    def normalised(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return ((x.view(len(x), -1, 3) - mean) / std).flatten(1)

    def distance(self, outputs: list[torch.Tensor]) -> dict:
        """{'swd': mean over levels, 'levels': per level} of the outputs' `pyramid_descriptors`."""
        per_level = [1e3 * _w1_of_sorted(sorted_projections(self.normalised(out, mean, std), directions), ref)
                     for out, (mean, std, directions, ref) in zip(outputs, self.levels)]
        return {"swd": sum(per_level) / len(per_level), "levels": per_level}


def swd_from_descriptors(outputs: list[torch.Tensor], references: list[torch.Tensor],
                         projections: int = SWD_PROJECTIONS, seed: int = 0) -> dict:
    """The multi-scale SWD of two sets given their `pyramid_descriptors` (see `swd`)."""
    return SWDReference(references, projections, seed).distance(outputs)


def swd(outputs: torch.Tensor, references: torch.Tensor, projections: int = SWD_PROJECTIONS, seed: int = 0) -> dict:
    """Multi-scale sliced Wasserstein distance (Karras et al. 2018, sec. 5 and appendix D) between two
    image sets (N, 3, H, W) in [0, 1]; lower = the outputs' local structure is distributed like the
    references', at every scale. Needs no trained weights.

    Per Laplacian-pyramid level: 7x7 neighbourhoods of all three channels on an even grid (at most
    45 x 45 per image), every channel normalised by the *references'* mean and std at that level
    (ProGAN normalises each set by its own, which would hide the missing energy of a blurred level),
    then the sliced Wasserstein distance over `projections` seeded random directions. Returns {'swd':
    mean over levels, 'levels': per level, finest first}, x 1e3 as in the paper.
    """
    check_images(references, "references")
    return swd_from_descriptors(pyramid_descriptors(outputs), pyramid_descriptors(references), projections, seed)


# ---------------------------------------------------------------- sharpness without weights
def high_frequency_energy(images: torch.Tensor, cutoff: float = 0.5 / SCALE, planes=None) -> torch.Tensor:
    """Per image, the spectral energy above `cutoff` cycles/px (default: the LR image's Nyquist limit) of
    its grey values, or, with planes = a function (N, 3, H, W) -> (N, C, H, W), summed over those planes."""
    planes = images.mean(1, keepdim=True) if planes is None else planes(images)
    planes = planes - planes.mean(dim=(-2, -1), keepdim=True)
    spectrum = torch.fft.fft2(planes).abs().square()
    fy = torch.fft.fftfreq(planes.shape[-2]).abs()[:, None]
    fx = torch.fft.fftfreq(planes.shape[-1]).abs()[None, :]
    return (spectrum * (torch.maximum(fx, fy) > cutoff)).flatten(1).sum(1)


def chroma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 2, H, W) BT.601 colour-difference planes Cb, Cr (without their offset)."""
    weights = torch.tensor([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=images.dtype)
    return torch.einsum("cd,ndhw->nchw", weights.to(images.device), images)


def hf_energy_ratio(output: torch.Tensor, target: torch.Tensor) -> float:
    """Energy above the LR Nyquist limit of the output over that of the ground truth (mean over the batch).

    That band is exactly what the LR input cannot carry, so every bit of it is invented: 1 means as much
    fine detail as the original, below 1 blurrier, above 1 noisier or over-sharpened. It says nothing about
    whether the invented detail is the right one.
    """
    return (high_frequency_energy(output.clamp(0, 1).double()) / high_frequency_energy(target.double())).mean().item()


def chroma_hf_ratio(output: torch.Tensor, target: torch.Tensor) -> float:
    """The HF-energy ratio of the colour-difference planes alone (Cb, Cr; mean over the batch): colour
    speckle, red and green dots where the original's colour is smooth, raises it above 1, while the grey
    values' HF ratio may look natural. Faces carry little fine colour detail, so it is a sensitive test."""
    return (high_frequency_energy(output.clamp(0, 1).double(), planes=chroma)
            / high_frequency_energy(target.double(), planes=chroma)).mean().item()


# ---------------------------------------------------------------- how many images a distance needs
def swd_by_sample_size(outputs: dict[str, torch.Tensor], originals: torch.Tensor, sizes: tuple[int, ...],
                       subsets: int = 16, keep: int = 256, projections: int = 128,
                       seed: int = 0) -> dict[int, dict[str, np.ndarray]]:
    """The multi-scale SWD (see `swd`) of small image sets, and how much it depends on which images were
    drawn: for every size k in `sizes`, `subsets` seeded random choices of k of the images (without
    replacement, the same choices for every method), each method's outputs of those k images against the
    originals of the same k, from `keep` seeded descriptors per image and pyramid level (see
    `pyramid_descriptors`). outputs: {method: (N, 3, H, W)}, originals (N, 3, H, W), all in [0, 1].
    Returns {k: {method: SWD x 1e3 per subset, shape (subsets,)}}."""
    per_image = {name: [pyramid_descriptors(x[None], keep, seed) for x in images]
                 for name, images in {"originals": originals, **outputs}.items()}
    gen = torch.Generator().manual_seed(seed)

    def levels(name, chosen):
        return [torch.cat(level) for level in zip(*(per_image[name][i] for i in chosen))]

    values = {}
    for k in sizes:
        draws = [torch.randperm(len(originals), generator=gen)[:k].tolist() for _ in range(subsets)]
        values[k] = {name: np.array([swd_from_descriptors(levels(name, chosen), levels("originals", chosen),
                                                          projections, seed)["swd"] for chosen in draws])
                     for name in outputs}
    return values


def frechet_between_halves(features: np.ndarray, sizes: tuple[int, ...], seed: int = 0) -> dict[int, float]:
    """The Frechet distance between two disjoint random sets of n feature vectors drawn from the same
    `features` (M, dims), for every n in `sizes` (2n <= M): the true distance is 0, so what remains is the
    estimator's small-sample bias."""
    order = np.random.default_rng(seed).permutation(len(features))
    return {n: frechet_distance(features[order[:n]], features[order[n:2 * n]]) for n in sizes}
