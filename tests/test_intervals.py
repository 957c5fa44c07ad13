"""Bootstrap intervals (`sr_lib.intervals`, `evaluate.difference`): right where the answer is known."""
import json

import pytest
import torch

from sr_lib import intervals
from sr_lib.evaluate import difference, evaluate, find_row
from sr_lib.perceptual import SWDReference, pyramid_descriptors

OFFLINE = {"lpips": None, "fid": None, "unavailable": {}}


def test_image_counts_draw_every_replicate_whole_and_are_seeded():
    counts = intervals.image_counts(5, resamples=300)
    assert counts.shape == (300, 5) and (counts.sum(1) == 5).all()
    assert torch.equal(counts, intervals.image_counts(5, resamples=300))
    assert 0.9 < counts.mean().item() < 1.1  # each image drawn once per replicate on average


def test_mean_intervals_cover_the_mean_and_shrink_with_more_images():
    gen = torch.Generator().manual_seed(0)
    widths = []
    for n in (4, 64):
        values = (torch.randn(n, generator=gen) + 10).tolist()
        low, high = intervals.interval(intervals.mean_replicates(values, intervals.image_counts(n)))
        assert low <= sum(values) / n <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(n)
    assert intervals.interval(intervals.mean_replicates([3.0] * 6, intervals.image_counts(6))) == [3.0, 3.0]


def _descriptors(images):
    return [pyramid_descriptors(image[None]) for image in images]


def test_swd_replicates_are_zero_for_the_originals_and_centred_on_the_estimate():
    gen = torch.Generator().manual_seed(1)
    originals = torch.rand(3, 3, 48, 48, generator=gen)
    blurred = torch.nn.functional.avg_pool2d(originals, 3, 1, 1, count_include_pad=False)
    per_image = _descriptors(originals)
    reference = SWDReference([torch.cat(level) for level in zip(*per_image)])
    estimate = reference.distance([torch.cat(level) for level in zip(*_descriptors(blurred))])["swd"]
    counts = intervals.image_counts(3)
    same, other = intervals.swd_replicates([per_image, _descriptors(blurred)], per_image, reference, counts,
                                           [0.0, estimate])
    assert same.abs().max() < 1e-9  # every resample of the originals against itself: distance 0
    low, high = intervals.interval(other)
    assert low <= estimate <= high and high - low > 0
    whole = intervals.swd_replicates([_descriptors(blurred)], per_image, reference, torch.ones(1, 3), [estimate])
    assert whole[0].item() == pytest.approx(estimate)  # the whole set's replicate is the estimate


def test_evaluate_rows_carry_intervals_and_paired_differences(tiny_checkpoints, small_faces):
    result = evaluate(tiny_checkpoints, str(small_faces), OFFLINE, temperatures=(0.0, 0.8))
    json.dumps(result)  # JSON-able, replicates included
    for row in result["rows"]:
        for key, (low, high) in row["intervals"].items():
            assert low <= row[key] + 1e-9 and row[key] <= high + 1e-9, (row["method"], key)
    assert result["bootstrap"]["resamples"] == intervals.RESAMPLES
    itself = difference(result, ("sr", None), ("sr", None), "psnr")
    assert itself == {"difference": 0.0, "interval": [0.0, 0.0], "supported": False}
    gap = difference(result, ("flow", 0.8), ("sr", None), "swd")
    assert gap["interval"][0] <= gap["difference"] <= gap["interval"][1]
    assert gap["difference"] == pytest.approx(find_row(result, "flow", 0.8)["swd"] - find_row(result, "sr")["swd"])
    with pytest.raises(KeyError, match="no row flow@0.5"):
        find_row(result, "flow", 0.5)
