"""Every checker passes the solution and names at least two typical wrong answers correctly."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.linalg import sqrtm

from pytorch_fid import fid_score

from sr_lib import exercises as ex
from sr_lib import perceptual, toy

bce = F.binary_cross_entropy_with_logits


def _dense_logdet(f, x):
    return torch.linalg.slogdet(torch.autograd.functional.jacobian(f, x))[1]


CASES = {
    # checker: (solution, [(wrong answer, words its message must contain), ...])
    ex.check_coupling_inverse: (
        lambda v2, s, t: ((v2 - t) * torch.exp(-s), -s.flatten(1).sum(1)),
        [(lambda v2, s, t: ((v2 - t) / torch.exp(s) / torch.exp(s), -s.flatten(1).sum(1)), "divide by exp(s) twice"),
         (lambda v2, s, t: (v2 * torch.exp(-s) - t, -s.flatten(1).sum(1)), "subtract t first"),
         (lambda v2, s, t: ((v2 - t) * torch.exp(-s), s.flatten(1).sum(1)), "wrong sign"),
         (lambda v2, s, t: ((v2 - t) * torch.exp(-s), -s.sum()), "one log-det per sample")]),
    ex.check_brute_force_logdet: (
        _dense_logdet,
        [(lambda f, x: torch.linalg.det(torch.autograd.functional.jacobian(f, x)), "take the log of its absolute"),
         (lambda f, x: torch.log(torch.linalg.det(torch.autograd.functional.jacobian(f, x))), "negative here"),
         (lambda f, x: torch.trace(torch.autograd.functional.jacobian(f, x)), "trace is not the log-det"),
         (lambda f, x: _dense_logdet(f, torch.zeros_like(x)), "another point than x"),
         (lambda f, x: _dense_logdet(f, torch.ones_like(x)), "another point than x")]),
    ex.check_logdet_prediction: (
        54 * math.log(2),
        [(108 * math.log(2), "only u2 is scaled"),
         (math.log(2), "one element's share"),
         (6 * math.log(2), "counts u2's channels"),
         (2.0 ** 54, "det J itself"),
         (37.0, "differs from the expected one")]),
    ex.check_conv1x1_logdet: (
        lambda w, h, width: h * width * torch.linalg.slogdet(w)[1],
        [(lambda w, h, width: torch.linalg.slogdet(w)[1], "multiply by H*W"),
         (lambda w, h, width: h * width * torch.log(torch.linalg.det(w)), "negative"),
         (lambda w, h, width: h * width * torch.log(torch.diagonal(w).abs()).sum(), "triangular")]),
    ex.check_clamp_failure: (
        "c",
        [("a", "not overflow"), ("b", "does not break invertibility"), (" D ", "only the couplings'"),
         ("e", "one of the letters a, b, c, d"), (3, "one of the letters")]),
    ex.check_soft_clamp: (
        lambda raw, c: c * torch.tanh(raw / c),
        [(lambda raw, c: raw.clamp(-c, c), "hard clamp has zero gradient"),
         (lambda raw, c: c * torch.tanh(raw), "divide raw by c"),
         (lambda raw, c: torch.tanh(raw / c), "multiply by c"),
         (lambda raw, c: 3 * torch.tanh(raw / 3), "your clamp ignores c")]),
    ex.check_discriminator_loss: (
        lambda real, fake: bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)),
        [(lambda real, fake: bce(real, torch.zeros_like(real)) + bce(fake, torch.ones_like(fake)), "labels are swapped"),
         (lambda real, fake: bce(real, torch.ones_like(real), reduction="sum") + bce(fake, torch.zeros_like(fake),
                                                                                      reduction="sum"), "not sum"),
         (lambda real, fake: bce(real, torch.ones_like(real)), "add the fake images' term"),
         (lambda real, fake: F.binary_cross_entropy(real, torch.ones_like(real)), "raised RuntimeError"),
         (lambda real, fake: (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))) / 2, "half of it")]),
    ex.check_generator_loss: (
        lambda fake: -F.logsigmoid(fake).mean(),
        [(lambda fake: torch.log(1 - torch.sigmoid(fake)).mean(), "saturating"),
         (lambda fake: F.logsigmoid(fake).mean(), "sign is flipped"),
         (lambda fake: bce(fake, torch.zeros_like(fake)), "labelled 1")]),
    ex.check_content_loss_direction: (
        "(C)",
        [("a", "does not point towards lower pixel loss"), ("b", "leaves the pixel loss's minimum"),
         ("rises", "one of the letters a, b, c")]),
    ex.check_dequantize: (
        lambda levels, gen: (levels.float() + torch.rand(levels.shape, generator=gen)) / 256,
        [(lambda levels, gen: levels.float() / 256, "no random noise"),
         (lambda levels, gen: (levels.float() + 0.5) / 256, "no random noise"),
         (lambda levels, gen: (levels.float() + torch.rand(levels.shape, generator=gen) - 0.5) / 256, "[-0.5, 0.5)"),
         (lambda levels, gen: levels.float() / 256 + torch.rand(levels.shape, generator=gen), "divide the noise by 256"),
         (lambda levels, gen: (levels.float() + torch.rand(levels.shape)) / 256, "equally seeded generators"),
         (lambda levels, gen: (levels.float() + torch.rand(levels.shape, generator=gen)) / 255, "not 255"),
         (lambda levels, gen: (levels.float() + 0.5 + 0.3 * torch.randn(levels.shape, generator=gen)) / 256,
          "not Gaussian"),
         (lambda levels, gen: (levels.float() + torch.rand(len(levels), 1, 1, 1, generator=gen)) / 256,
          "one noise value per image"),
         (lambda levels, gen: (levels.float() + torch.rand(len(levels), generator=gen)[:, None, None, None]) / 256,
          "every value needs its own u"),
         (lambda levels, gen: (levels.float() + torch.rand(levels.shape[1:], generator=gen)) / 256,
          "the same across the images")]),
    ex.check_bits_per_dim: (
        lambda log_p, dims: (-log_p / dims + math.log(256)) / math.log(2),
        [(lambda log_p, dims: -log_p / dims / math.log(2), "off by exactly 8 bits"),
         (lambda log_p, dims: -log_p / dims + math.log(256), "nats"),
         (lambda log_p, dims: (-log_p + dims * math.log(256)) / math.log(2), "divide the code length"),
         (lambda log_p, dims: (-log_p / dims - math.log(256)) / math.log(2), "off by 16 bits")]),
    ex.check_unit_gaussian_bits: (
        lambda r: (0.5 * math.log(2 * math.pi) + 0.5 * r ** 2 + math.log(256)) / math.log(2),
        [(lambda r: 0.5 * math.log(2 * math.pi) + 0.5 * r ** 2 + math.log(256), "nats"),
         (lambda r: (0.5 * math.log(2 * math.pi) + 0.5 * r ** 2) / math.log(2), "off by exactly 8 bits"),
         (lambda r: (0.5 * math.log(2 * math.pi) + 0.5 * r + math.log(256)) / math.log(2), "rms squared")]),
    ex.check_frechet_distance: (
        lambda m1, c1, m2, c2: ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * sqrtm(c1 @ c2).real),
        [(lambda m1, c1, m2, c2: ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * np.sqrt(np.abs(c1 @ c2))),
          "not element-wise"),
         (lambda m1, c1, m2, c2: ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - sqrtm(c1 @ c2).real), "factor 2"),
         (lambda m1, c1, m2, c2: np.trace(c1 + c2 - 2 * sqrtm(c1 @ c2).real), "means' term is missing"),
         (lambda m1, c1, m2, c2: fid_score.calculate_frechet_distance(m1, c1, m2, c2),
          "that calls the library's own solution")]),
    ex.check_sliced_wasserstein: (
        lambda a, b, d: ((a @ d.T).sort(0).values - (b @ d.T).sort(0).values).abs().mean(),
        [(lambda a, b, d: ((a @ d.T) - (b @ d.T)).abs().mean(), "sort the projections"),
         (lambda a, b, d: ((a @ d.T).mean(0) - (b @ d.T).mean(0)).abs().mean(), "only the means"),
         (lambda a, b, d: ((a @ d.T).sort(0).values - (b @ d.T).sort(0).values).square().mean(), "W2"),
         (lambda a, b, d: ((a @ d.T).sort().values - (b @ d.T).sort().values).abs().mean(), "dim=0"),
         (lambda a, b, d: perceptual.sliced_wasserstein(a, b, d), "that calls the library's own solution")]),
    ex.check_posterior_mean: (
        lambda y: (2 * toy.W_UP - 1) * toy.mode(y),
        [(lambda y: toy.mode(y), "upper ridge"),
         (lambda y: 0.4 * toy.mode(y), "use toy.W_UP"),
         (lambda y: 0 * y, "plain average"),
         (lambda y: toy.W_UP * toy.mode(y), "pulls the mean down"),
         (lambda y: toy.posterior_mean(y), "that calls the library's own solution, sr_lib.toy.posterior_mean")]),
    ex.check_toy_projection: (
        lambda x, y: x + (y - x.mean(1, keepdim=True)),
        [(lambda x, y: y.expand(-1, 2), "throws away the null-space part"),
         (lambda x, y: x - (y - x.mean(1, keepdim=True)), "the sign"),
         (lambda x, y: x + (y - x.mean()), "of each pair"),
         (lambda x, y: x + 0.5 * (y - x.mean(1, keepdim=True)), "A^+ = A^T (A A^T)^-1")]),
}


@pytest.mark.parametrize("checker", CASES, ids=lambda c: c.__name__)
def test_checker_passes_the_solution_and_names_typical_mistakes(checker):
    solution, mistakes = CASES[checker]
    assert checker(solution).startswith("correct: ")
    assert len(mistakes) >= 2
    for wrong, words in mistakes:
        with pytest.raises(ex.NotYet) as caught:
            checker(wrong)
        assert words in str(caught.value), f"{checker.__name__}: {caught.value}"


ANSWER_CHECKERS = {ex.check_logdet_prediction, ex.check_clamp_failure, ex.check_content_loss_direction}  # a value


@pytest.mark.parametrize("checker", [c for c in CASES if c not in ANSWER_CHECKERS], ids=lambda c: c.__name__)
def test_an_unsolved_exercise_passes_its_own_message_through(checker):
    def unsolved(*args):
        raise NotImplementedError("exercise: write it")
    with pytest.raises(NotImplementedError, match="exercise: write it"):
        checker(unsolved)


def test_an_unrecognised_wrong_answer_gets_the_generic_sentence():
    with pytest.raises(ex.NotYet, match="differs from the expected one; E\\[n | y\\] = sum over the two ridges"):
        ex.check_posterior_mean(lambda y: 0.3 * y)
    with pytest.raises(ex.NotYet, match="must stay below c"):
        ex.check_soft_clamp(lambda raw, c: raw * 0.5)
    with pytest.raises(ex.NotYet, match=r"shape \(\), expected \(2,\)"):
        ex.check_bits_per_dim(lambda log_p, dims: torch.tensor(1.0))
    with pytest.raises(ex.NotYet, match="returned None: did you forget `return`"):
        ex.check_coupling_inverse(lambda v2, s, t: (None, None))
    for checker in (ex.check_frechet_distance, ex.check_sliced_wasserstein, ex.check_bits_per_dim):
        with pytest.raises(ex.NotYet, match="returned None"):
            checker(lambda *args: None)
    with pytest.raises(ex.NotYet, match="tuple of 2"):
        ex.check_brute_force_logdet(lambda f, w: torch.linalg.slogdet(torch.autograd.functional.jacobian(f, w)))


PREDICTIONS = {
    # checker of a prediction or interpretation (a letter or a number): (answers it accepts, [(wrong answer,
    # words its message must contain), ...])
    ex.check_swd_prefers_noise: (
        ["b", " B "],
        [("a", "never compares an output with its own original"), ("c", "not chance"), ("d", "T = 1.2"),
         ("e", "one letter"), ("b and d", "one letter"), (2, "one letter")]),
    ex.check_symmetric_median: (
        [0, 0.0, "0.02", -0.03],
        [(0.5, "on a ridge"), (-0.5, "on a ridge"), (0.44, "W_UP = 0.7"), (0.25, "not yet"), ("zero", "one number")]),
}


@pytest.mark.parametrize("checker", PREDICTIONS, ids=lambda c: c.__name__)
def test_a_prediction_checker_accepts_the_answer_and_says_why_each_wrong_one_is_wrong(checker):
    right, mistakes = PREDICTIONS[checker]
    for answer in right:
        assert checker(answer).startswith("correct: ")
    for wrong, words in mistakes:
        with pytest.raises(ex.NotYet) as caught:
            checker(wrong)
        assert words in str(caught.value), f"{checker.__name__}({wrong!r}): {caught.value}"
    assert toy.W_UP == 0.7  # the symmetric prior is tried and put back


def test_any_soft_clamp_with_the_properties_passes_and_others_are_told_which_one_fails():
    assert ex.check_soft_clamp(lambda raw, c: c * raw / torch.sqrt(c ** 2 + raw ** 2)).startswith("correct")
    assert ex.check_soft_clamp(lambda raw, c: 2 * c / math.pi * torch.atan(math.pi * raw / (2 * c))).startswith("correct")
    assert ex.check_soft_clamp(lambda raw, c: c * raw / (c + raw.abs())).startswith("correct")  # softsign
    assert ex.check_soft_clamp(lambda raw, c: c * torch.tanh(raw.float() / c)).startswith("correct")
    with pytest.raises(ex.NotYet, match="not odd"):
        ex.check_soft_clamp(lambda raw, c: torch.where(raw > 0, c * torch.tanh(raw / c),
                                                       c / 2 * torch.tanh(2 * raw / c)))
    with pytest.raises(ex.NotYet, match="slope at 0"):
        ex.check_soft_clamp(lambda raw, c: c * torch.tanh(raw / (2 * c)) * 1.0 + 0 * raw)


def test_the_library_functions_watched_during_a_check_are_restored_even_when_the_answer_fails():
    originals = toy.posterior_mean, perceptual.sliced_wasserstein, fid_score.calculate_frechet_distance
    with pytest.raises(ex.NotYet, match="raised ZeroDivisionError"):
        ex.check_posterior_mean(lambda y: 1 / 0)
    with pytest.raises(ex.NotYet, match="library's own solution"):
        ex.check_sliced_wasserstein(lambda a, b, d: 2 * perceptual.sliced_wasserstein(a, b, d))
    ex.check_frechet_distance(CASES[ex.check_frechet_distance][0])
    with pytest.raises(ex.NotYet, match="library's own solution"):  # the library's function itself
        ex.check_sliced_wasserstein(perceptual.sliced_wasserstein)
    from sr_lib.toy import posterior_mean  # imported under its own name before the check

    def estimate(y):
        return posterior_mean(y)
    with pytest.raises(ex.NotYet, match="library's own solution, sr_lib.toy.posterior_mean"):
        ex.check_posterior_mean(estimate)
    assert (toy.posterior_mean, perceptual.sliced_wasserstein, fid_score.calculate_frechet_distance) == originals


def test_ipython_shows_the_sentence_without_a_traceback():
    error = ex.NotYet("your u2 is off")
    assert error._render_traceback_() == ["\x1b[1;31mNot yet:\x1b[0m your u2 is off"]
