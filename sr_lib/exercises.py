"""Checkers for the notebooks' exercises: each runs the student's function on cases with known answers
and says, in one sentence, what is wrong, naming the typical mistake when it recognises one.

A checker returns a one-line confirmation when the answer is right and raises `NotYet` (an
AssertionError, so "Run All" stops there) when it is not. A function that still raises the student
version's `NotImplementedError("exercise: ...")` is passed through unchanged. The typical mistakes are
recognised by computing them: the answer is compared with each wrong formula on the same case.
"""
import math
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch


class NotYet(AssertionError):
    """An exercise's answer is not right yet; the message says what to look at."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback through the checker's code: the one sentence."""
        return [f"\x1b[1;31mNot yet:\x1b[0m {self}"]


def _call(fn: Callable, *args, what: str):
    """fn(*args), with any error other than the exercise's NotImplementedError turned into a sentence."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as error:  # the student's code: say which call failed, not where in sr_lib
        raise NotYet(f"calling your function on {what} raised {type(error).__name__}: {error}") from None


def _names_used(fn) -> set[str]:
    """Every global, attribute and enclosing-scope name the code of `fn` (and of functions defined inside it)
    refers to."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return set()
    names, stack = set(), [code]
    while stack:
        code = stack.pop()
        names.update(code.co_names + code.co_freevars)
        stack += [const for const in code.co_consts if hasattr(const, "co_names")]
    return names


@contextmanager
def _forbid(module, name: str, advice: str, answer: Callable):
    """Refuse an `answer` that is, names or calls `module.name`, the library's own solution: a checker that
    compares the library with itself teaches nothing. The name is looked for in the answer's code (also
    where it was imported under its own name before), and calls are watched while the answer runs."""
    original, calls = getattr(module, name), []
    message = f"that calls the library's own solution, {module.__name__}.{name}: {advice}"
    if answer is original or name in _names_used(answer):
        raise NotYet(message)

    def watched(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    setattr(module, name, watched)
    try:
        yield
    finally:
        setattr(module, name, original)
    if calls:
        raise NotYet(message)


def _as_tensor(answer, what: str) -> torch.Tensor:
    """The answer as a float64 tensor, or a sentence saying why it cannot be one."""
    if answer is None:
        raise NotYet("your function returned None: did you forget `return`?")
    if isinstance(answer, tuple):
        raise NotYet(f"on {what} your function returned a tuple of {len(answer)}; return one tensor or number "
                     "(torch.linalg.slogdet, for one, returns (sign, logabsdet))")
    try:
        return torch.as_tensor(np.asarray(answer.detach() if torch.is_tensor(answer) else answer), dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise NotYet(f"on {what} your function returned a {type(answer).__name__}, not a tensor or a number") from None


def _close(a: torch.Tensor, b, tol: float) -> bool:
    b = torch.as_tensor(np.asarray(b.detach() if torch.is_tensor(b) else b), dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol, atol=tol, equal_nan=True))


def _judge(answer, correct, mistakes: list[tuple[str, object]], what: str, tol: float = 1e-6,
           hint: str = "compare it with the formula above, term by term") -> None:
    """Pass if answer is close to correct; else raise with the message of the first mistake it matches,
    or a generic one naming the case and `hint`."""
    answer = _as_tensor(answer, what)
    if _close(answer, correct, tol):
        return
    for message, wrong in mistakes:
        if _close(answer, wrong, tol):
            raise NotYet(message)
    expected = tuple(torch.as_tensor(np.asarray(correct)).shape) if not torch.is_tensor(correct) else tuple(correct.shape)
    if tuple(answer.shape) != expected:
        raise NotYet(f"on {what} your answer has shape {tuple(answer.shape)}, expected {expected}"
                     + ("; return one number (average over everything)" if expected == () else ""))
    raise NotYet(f"not yet: on {what} your answer differs from the expected one; {hint}")


def _choose(answer, correct: str, wrong: dict[str, str]) -> None:
    """Pass if `answer` is the letter `correct` (case, spaces and brackets ignored); else raise with the
    explanation of the wrong letter chosen, or say which letters there are."""
    letters = sorted([correct, *wrong])
    letter = str(answer).strip().strip("()").lower() if isinstance(answer, str) else None
    if letter not in letters:
        raise NotYet(f"answer with one of the letters {', '.join(letters)}, as a string such as \"{letters[0]}\"")
    if letter != correct:
        raise NotYet(wrong[letter])


# ---------------------------------------------------------------- 01: the coupling
def check_coupling_inverse(inverse: Callable) -> str:
    """inverse(v2, s, t) -> (u2, logdet) for v2 = u2 * exp(s) + t; logdet per sample, shape (N,)."""
    gen = torch.Generator().manual_seed(1)
    v2, s, t = (torch.randn(2, 2, 3, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    result = _call(inverse, v2, s, t, what="v2, s, t of shape (2, 2, 3, 3)")
    if not (isinstance(result, tuple) and len(result) == 2):
        raise NotYet("return two things, u2 and the log-determinant: `return u2, logdet`")
    u2, logdet = result
    _judge(u2, (v2 - t) * torch.exp(-s), [
        ("your u2 is off by a factor exp(-s): did you divide by exp(s) twice?", (v2 - t) * torch.exp(-2 * s)),
        ("you undid the scale before the shift: the forward adds t last, so subtract t first, then divide "
         "by exp(s)", v2 * torch.exp(-s) - t),
        ("you multiplied by exp(s); the inverse divides by it (multiplies by exp(-s))", (v2 - t) * torch.exp(s)),
        ("the scale is missing: after subtracting t, divide by exp(s)", v2 - t),
    ], "the u2 part")
    correct = -s.flatten(1).sum(1)
    _judge(logdet, correct, [
        ("your log-det has the wrong sign: the inverse's is minus the forward's sum(s)", s.flatten(1).sum(1)),
        ("one log-det per sample, shape (N,): sum over every dimension but the first (the batch)", correct.sum()),
        ("the log-det is the sum of the *log* of the Jacobian's diagonal, -s, not of exp(-s) itself",
         torch.exp(-s).flatten(1).sum(1)),
    ], "the log-det")
    return "correct: u2 = (v2 - t) * exp(-s), log-det = -sum(s) per sample"


def check_brute_force_logdet(logdet: Callable) -> str:
    """logdet(f, x) -> log|det J_f(x)| for f mapping a vector (D,) to (D,), by building J. The map is
    nonlinear, so that a J built at another point than x gives another number."""
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    if torch.linalg.det(a) > 0:
        a[0] = -a[0]  # a negative determinant: log|det|, not log det
    x = torch.randn(4, generator=gen, dtype=torch.float64)

    def f(v):
        return a @ (v + 0.5 * torch.sin(v))

    def jacobian_at(w):  # a diag(1 + cos(w) / 2): the diagonal is positive, so det's sign is a's
        return a * (1 + 0.5 * torch.cos(w))

    jac = jacobian_at(x)
    answer = _call(logdet, f, x, what="a nonlinear map with a negative determinant")
    det = torch.linalg.det(jac)
    elsewhere = ("you built J at another point than x, the second argument: this f is not linear, so its "
                 "Jacobian changes from point to point; take it there, torch.autograd.functional.jacobian(f, x)")
    _judge(answer, torch.log(det.abs()), [
        ("that is det J itself: take the log of its absolute value (torch.linalg.slogdet gives it stably)", det),
        ("the determinant is negative here: the change of variables needs log|det J|, so take the absolute "
         "value first (torch.linalg.slogdet)", torch.log(det)),
        ("the trace is not the log-det (that holds only for the matrix exponential): build J and take "
         "slogdet", torch.trace(jac)),
        ("the diagonal gives the determinant only for triangular matrices; this J is dense: use slogdet",
         torch.log(torch.diagonal(jac).abs()).sum()),
    ] + [(elsewhere, torch.linalg.slogdet(jacobian_at(w))[1]) for w in (torch.zeros_like(x), torch.ones_like(x), f(x))],
        "a dense 4x4 Jacobian", tol=1e-5,
        hint="build J with torch.autograd.functional.jacobian(f, w), then take torch.linalg.slogdet(J)[1]")
    return "correct: log|det J| from the dense Jacobian at x, negative determinants included"


def check_logdet_prediction(prediction) -> str:
    """prediction: log|det J|, a number, of the coupling of notebook 01's Exercise 1.3 on a 12 x 3 x 3 input
    (D = 108) whose s is log 2 and t is 0 everywhere: u2 (6 channels x 3 x 3) doubled, u1 kept."""
    elements = 6 * 3 * 3
    correct = elements * math.log(2)
    _judge(prediction, correct, [
        ("only u2 is scaled: v1 = u1 contributes log 1 = 0 for each of its 54 elements, so count half of D",
         2 * correct),
        ("that is one element's share: the log-det sums s over every element of u2", math.log(2)),
        ("that counts u2's channels, not its elements: each of the 6 channels has 3 x 3 positions", 6 * math.log(2)),
        ("each element contributes s = log 2 (about 0.69), not 1", elements),
        ("that sums the diagonal entries exp(s) = 2 themselves; the log-det sums their logs, s", 2 * elements),
        ("that is det J itself (2 to the 54th): the question asks for its log", 2.0 ** elements),
        ("a scale of 2 does change volumes: only a layer with s = 0 everywhere has log-det 0", 0.0),
    ], "your prediction", tol=5e-3,
        hint="log|det J| is the sum of s over the scaled elements: how many elements does u2 have?")
    return "correct: 54 elements of u2, each log 2: log|det J| = 54 log 2, about 37.43"


# ---------------------------------------------------------------- 02: invertibility
def check_conv1x1_logdet(logdet: Callable) -> str:
    """logdet(weight (C, C), height, width) -> log|det| of the 1x1 convolution on a C x H x W input."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    if torch.linalg.det(w) > 0:
        w[0] = -w[0]
    h, width = 5, 7
    answer = _call(logdet, w, h, width, what="a 3x3 weight with a negative determinant, 5x7 pixels")
    log_abs = torch.log(torch.linalg.det(w).abs())
    _judge(answer, h * width * log_abs, [
        ("that is log|det W| for one pixel: the same W acts on all H*W pixels, so multiply by H*W", log_abs),
        ("the determinant is negative here: use log|det W| (torch.linalg.slogdet)",
         h * width * torch.log(torch.linalg.det(w))),
        ("the diagonal gives det W only for a triangular W: use slogdet (or Glow's LU form)",
         h * width * torch.log(torch.diagonal(w).abs()).sum()),
        ("one copy of W per pixel: H*W copies, not C*H*W", 3 * h * width * log_abs),
    ], "a 3x3 weight on a 5x7 image")
    return "correct: H * W * log|det W|"


def check_soft_clamp(soft_clamp: Callable) -> str:
    """soft_clamp(raw, c) -> a smooth version of clamp(raw, -c, c). Any function passes that has, for every
    c tried (3, 0.5, 1, 10), the properties the scales need: smooth (a finite, positive gradient
    everywhere), odd, slope 1 at 0, bounded by c and approaching it for large |raw|. c * tanh(raw / c) is
    the usual one (c * raw / (c + |raw|) passes too); the typical near misses are named."""
    ratios = torch.arange(-24, 25, dtype=torch.float64) / 4  # raw / c, exactly symmetric; float32 tanh(6) < 1
    c = 3.0
    plain = c * ratios
    at_3 = _soft_clamp_case(soft_clamp, c, ratios, [
        ("a hard clamp has zero gradient beyond +-c: a scale stuck there could never be trained back",
         plain.clamp(-c, c)),
        ("c * tanh(raw) has slope c at 0, so it changes small scales too: divide raw by c inside the tanh",
         c * torch.tanh(plain)),
        ("tanh(raw / c) is bounded by 1, not c, and has slope 1/c at 0: multiply by c", torch.tanh(plain / c))])
    with_10 = _as_tensor(_call(soft_clamp, plain, 10.0, what="the raw of c = 3 with c = 10"), "c = 10")
    if _close(with_10, at_3, 1e-9):
        raise NotYet("your clamp ignores c: with c = 10 it gives what it gives with c = 3; write the bound "
                     "and the scale of raw in terms of c, not as a number")
    for c in (0.5, 1.0, 10.0):
        _soft_clamp_case(soft_clamp, c, ratios)
    return ("correct: smooth, odd, bounded by c, slope 1 at 0, a gradient everywhere, for every c tried "
            "(c * tanh(raw / c) is the usual choice)")


def _soft_clamp_case(soft_clamp: Callable, c: float, ratios: torch.Tensor,
                     near_misses: list[tuple[str, torch.Tensor]] = ()) -> torch.Tensor:
    """The values of soft_clamp on raw = c * ratios, after naming a near miss it matches and checking the
    properties of `check_soft_clamp` there."""
    raw = (c * ratios).requires_grad_()
    what = f"raw from {raw.min().item():g} to {raw.max().item():g} and c = {c:g}"
    answer = _call(soft_clamp, raw, c, what=what)
    values = _as_tensor(answer, what)
    for message, wrong in near_misses:
        if _close(values, wrong, 1e-6):
            raise NotYet(message)
    if values.shape != raw.shape:
        raise NotYet("return a tensor of the same shape as raw")
    if values.abs().max() >= c or values.abs().max() < 0.8 * c:
        raise NotYet(f"on {what} your values reach {values.abs().max():.3g}: they must stay below c but come "
                     "close to it for large |raw|")
    if not _close(values.flip(0), -values, 1e-9):
        raise NotYet(f"on {what} your clamp is not odd: soft_clamp(-raw, c) must be -soft_clamp(raw, c), or "
                     "it treats growing and shrinking scales differently")
    if not torch.is_tensor(answer) or not answer.requires_grad:
        raise NotYet("compute with torch operations on raw, so that gradients flow through your clamp")
    (grad,) = torch.autograd.grad(answer.sum(), raw)
    if not torch.isfinite(grad).all() or (grad <= 0).any():
        raise NotYet("somewhere your clamp has zero (or no) gradient: training could not pull such a scale back")
    slope = grad[len(ratios) // 2].item()
    if abs(slope - 1) > 1e-3:
        raise NotYet(f"with c = {c:g} the slope at 0 is {slope:.3g}, not 1: small scales would be changed too")
    return values


def check_clamp_failure(reason) -> str:
    """reason: the letter of notebook 02's Exercise 2.3, why the clamped flow's round trip is wrong at large
    weights: (c) the inverse amplifies the error it receives, through exp(|s|) and the unbounded shift t."""
    _choose(reason, "c", {
        "a": "not overflow: the cell checked that every clamped value is finite, and float32 never turns inf back "
             "into a finite number; the error is finite and large",
        "b": "the clamp does not break invertibility: s is recomputed from v1 = u1, which the inverse gets back "
             "exactly, so any s, clamped or not, is undone exactly on paper; the error comes from the arithmetic",
        "d": "the growth factor scales only the couplings' and injectors' output layers; the 1x1 mixers are "
             "untouched, and their log|det W| stays what it was",
    })
    return ("correct: each inverse layer amplifies the rounding error it receives, by up to exp(|s|) and through "
            "the shift t; the clamp bounds the first, not the second")


# ---------------------------------------------------------------- 03: the GAN's losses
def _logits():
    gen = torch.Generator().manual_seed(4)
    return torch.randn(8, generator=gen, dtype=torch.float64), torch.randn(8, generator=gen, dtype=torch.float64) - 1


def check_discriminator_loss(loss: Callable) -> str:
    """loss(real_logits, fake_logits) -> D's binary cross-entropy, real labelled 1, fake 0 (mean)."""
    real, fake = _logits()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    answer = _call(loss, real, fake, what="8 real and 8 fake logits")
    correct = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    _judge(answer, correct, [
        ("the labels are swapped: D should call real images 1 and generated ones 0",
         bce(real, torch.zeros_like(real)) + bce(fake, torch.ones_like(fake))),
        ("the sign is flipped: D *minimises* the cross-entropy (it maximises the log-likelihood of the right "
         "labels)", -(bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))),
        ("average over the batch, not sum: the loss should not grow with the batch size",
         bce(real, torch.ones_like(real), reduction="sum") + bce(fake, torch.zeros_like(fake), reduction="sum")),
        ("D is trained on both kinds of image: add the fake images' term", bce(real, torch.ones_like(real))),
        ("that is half of it: add the two batches' mean cross-entropies (one over all 16 logits gives the mean "
         "of the two, not their sum)", (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))) / 2),
    ], "8 real and 8 fake logits")
    return "correct: BCE(D(x), 1) + BCE(D(G(y)), 0), averaged over the batch"


def check_generator_loss(loss: Callable) -> str:
    """loss(fake_logits) -> G's non-saturating adversarial loss, -log sigmoid(D(G(y))) averaged."""
    _, fake = _logits()
    answer = _call(loss, fake, what="8 fake logits")
    correct = -torch.nn.functional.logsigmoid(fake).mean()
    _judge(answer, correct, [
        ("that is the saturating loss log(1 - D(G(y))): when D wins early its gradient vanishes; "
         "minimise -log D(G(y)) instead", torch.log1p(-torch.sigmoid(fake)).mean()),
        ("the sign is flipped: G minimises -log D(G(y)), i.e. wants D to say 'real'",
         torch.nn.functional.logsigmoid(fake).mean()),
        ("G wants its images labelled 1 (real), not 0",
         torch.nn.functional.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))),
        ("average over the batch, not sum", -torch.nn.functional.logsigmoid(fake).sum()),
    ], "8 fake logits")
    return "correct: the non-saturating loss -log sigmoid(D(G(y)))"


def check_content_loss_direction(prediction) -> str:
    """prediction: the letter of notebook 03's Exercise 3.1, what SRGAN's content loss does during adversarial
    training from the SR generator: (c) it rises, since the generator starts near the pixel loss's minimum."""
    _choose(prediction, "c", {
        "a": "the adversarial gradient does not point towards lower pixel loss: it rewards detail that fools the "
             "discriminator, and invented detail is not the original's, pixel by pixel",
        "b": "a small weight moves the generator slowly, not never: over 3,000 steps it leaves the pixel loss's "
             "minimum, and leaving a minimum in any direction raises the loss",
    })
    return ("correct: the generator starts at the pixel loss's minimum, so the adversarial term can only pull "
            "the content loss up; check it in the curves below")


# ---------------------------------------------------------------- 04: likelihood
def check_dequantize(dequantize: Callable) -> str:
    """dequantize(levels uint8 tensor, generator) -> float tensor: (levels + u) / 256, u ~ U[0, 1)."""
    levels = torch.randint(0, 256, (8, 3, 16, 16), generator=torch.Generator().manual_seed(9), dtype=torch.uint8)
    what = "8 images of 3 x 16 x 16 random levels"
    answer = _call(dequantize, levels, torch.Generator().manual_seed(5), what=what)
    if not torch.is_tensor(answer) or answer.shape != levels.shape or not answer.is_floating_point():
        raise NotYet("return a float tensor of the same shape as the levels")
    again = dequantize(levels, torch.Generator().manual_seed(5))
    if not torch.equal(answer, again):
        raise NotYet("two calls with equally seeded generators differ: draw the noise with the `generator` given "
                     "(torch.rand(shape, generator=generator))")
    k = levels.double()
    noise = answer.double() * 256 - k  # the u your function added, if it divided by 256
    if noise.var() < 1e-6:
        raise NotYet("no random noise: every level maps to one value, and a continuous density on single "
                     "values can grow without bound; add u ~ U[0, 1) before dividing")
    own_u = "every value needs its own u (torch.rand(levels.shape, generator=generator))"
    if (noise.flatten(1).amax(1) - noise.flatten(1).amin(1)).max() < 1e-3:  # 1e-3: float32 rounding, times 256
        raise NotYet(f"one noise value per image, the same for all its pixels and channels: {own_u}")
    for dim, name in enumerate(("images", "channels", "rows", "columns")):
        if (noise.amax(dim) - noise.amin(dim)).max() < 1e-3:
            raise NotYet(f"your noise is the same across the {name} (dimension {dim} of the levels): {own_u}")
    in_bins = bool(noise.min() >= 0 and noise.max() < 1)
    if in_bins and abs(noise.mean().item() - 0.5) < 0.02 and abs(noise.var().item() - 1 / 12) < 0.01:
        return "correct: (k + u) / 256 with u uniform on [0, 1): every value stays in its own bin"
    over_255 = answer.double() * 255 - k
    if over_255.min() >= 0 and over_255.max() < 1:
        raise NotYet("divide by 256, not 255: the 256 bins [k/256, (k+1)/256) must tile [0, 1) exactly")
    if noise.min() >= -0.5 and noise.max() < 0.5:
        raise NotYet("your noise lies in [-0.5, 0.5): use u in [0, 1), so that each value stays in its level's bin "
                     "[k/256, (k+1)/256)")
    if noise.max() > 200:
        raise NotYet("divide the noise by 256 too: (k + u) / 256, not k / 256 + u")
    if not in_bins:
        raise NotYet("some values leave their bin [k/256, (k+1)/256): the noise must be uniform on [0, 1) "
                     "(torch.rand), not Gaussian")
    raise NotYet("the noise inside each bin is not uniform on [0, 1): use torch.rand")


def check_bits_per_dim(bits_per_dim: Callable) -> str:
    """bits_per_dim(log_density (N,), dims) -> bits per dimension of 8-bit data, where log_density is the
    natural-log density of the dequantized image in [0, 1]^dims."""
    log_density = torch.tensor([1500.0, -300.0], dtype=torch.float64)
    dims = 3 * 16 * 16
    answer = _call(bits_per_dim, log_density, dims, what="log-densities (1500, -300) over 768 dimensions")
    correct = (-log_density / dims + math.log(256)) / math.log(2)
    _judge(answer, correct, [
        ("off by exactly 8 bits: the density is of x in [0, 1]; a bin of the 256 levels has width 1/256, so "
         "add log(256) per dimension", -log_density / dims / math.log(2)),
        ("that is nats per dimension: divide by log(2) for bits", -log_density / dims + math.log(256)),
        ("per dimension: divide the code length by the number of dimensions",
         (-log_density + dims * math.log(256)) / math.log(2)),
        ("the sign: the code length is -log p (a likely image costs few bits)",
         (log_density / dims + math.log(256)) / math.log(2)),
        ("off by 16 bits: the bin width 1/256 *adds* log 256 per dimension to the code length (the bound "
         "subtracts D log 256 from the log-likelihood)", (-log_density / dims - math.log(256)) / math.log(2)),
    ], "log-densities (1500, -300) over 768 dimensions")
    return "correct: (-log p / D + log 256) / log 2 bits per dimension"


def check_unit_gaussian_bits(bits: Callable, rms: float | None = None, measured: float | None = None) -> str:
    """bits(rms) -> bits per dimension of a standard Gaussian on residuals whose root mean square is rms,
    for 8-bit data in [0, 1]: the untrained flow's score predicted from one number. With the notebook's
    rms and measured score, the prediction is also compared with the measurement."""
    def correct(r):
        return (0.5 * math.log(2 * math.pi) + 0.5 * r ** 2 + math.log(256)) / math.log(2)
    cases = [0.05, 0.2, 1.0]
    answer = [_call(bits, r, what=f"rms = {r}") for r in cases]
    _judge(answer, [correct(r) for r in cases], [
        ("that is in nats: divide by log(2) for bits", [correct(r) * math.log(2) for r in cases]),
        ("off by exactly 8 bits: each of the 256 bins has width 1/256, which adds log(256) per dimension",
         [correct(r) - 8 for r in cases]),
        ("the Gaussian's exponent is -x^2 / 2: its cost per dimension grows with rms squared, not rms",
         [(0.5 * math.log(2 * math.pi) + 0.5 * r + math.log(256)) / math.log(2) for r in cases]),
        ("the normalisation of N(0, 1) is 1 / sqrt(2 pi): its cost is 0.5 log(2 pi) nats, not log(2 pi)",
         [(math.log(2 * math.pi) + 0.5 * r ** 2 + math.log(256)) / math.log(2) for r in cases]),
    ], "rms = 0.05, 0.2 and 1", tol=1e-6,
        hint="add the Gaussian's cost per dimension, 0.5 log(2 pi) + rms^2 / 2 nats, to the bins' log 256")
    if rms is None:
        return "correct: (0.5 log(2 pi) + rms^2 / 2 + log 256) / log 2"
    return (f"correct: your formula predicts {correct(rms):.3f} bits per dimension from rms = {rms:.4f}; the "
            f"untrained flow measured {measured:.3f}: a unit Gaussian is far wider than the residual")


# ---------------------------------------------------------------- 05: distribution distances
def check_frechet_distance(frechet: Callable) -> str:
    """frechet(mu1, cov1, mu2, cov2) -> |mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)), numpy."""
    from pytorch_fid import fid_score  # what sr_lib's own Frechet distance calls
    from scipy.linalg import sqrtm
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    c1, c2 = a @ a.T + np.eye(3), b @ b.T + np.eye(3)
    m1, m2 = rng.normal(size=3), rng.normal(size=3)
    with _forbid(fid_score, "calculate_frechet_distance", "write the formula with scipy.linalg.sqrtm yourself",
                 frechet):
        answer = _call(frechet, m1, c1, m2, c2, what="two 3-D Gaussians")
    mean_term = float(((m1 - m2) ** 2).sum())
    root = sqrtm(c1 @ c2).real
    correct = mean_term + np.trace(c1 + c2 - 2 * root)
    _judge(answer, correct, [
        ("the square root of cov1 @ cov2 is a matrix square root (scipy.linalg.sqrtm), not element-wise",
         mean_term + np.trace(c1 + c2 - 2 * np.sqrt(np.abs(c1 @ c2)))),
        ("the cross term is -2 tr((cov1 cov2)^(1/2)): the factor 2 is missing", mean_term + np.trace(c1 + c2 - root)),
        ("the means' term is missing: add |mu1 - mu2|^2", np.trace(c1 + c2 - 2 * root)),
        ("the means' term is the *squared* distance |mu1 - mu2|^2", math.sqrt(mean_term) + np.trace(c1 + c2 - 2 * root)),
    ], "two 3-D Gaussians", tol=1e-5)
    return "correct: |mu1 - mu2|^2 + tr(cov1 + cov2 - 2 sqrtm(cov1 cov2))"


def check_sliced_wasserstein(swd: Callable) -> str:
    """swd(a (N, D), b (N, D), directions (K, D) unit rows) -> mean over directions of the 1-D W1."""
    from . import perceptual
    gen = torch.Generator().manual_seed(7)
    a = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    b = 0.5 * torch.randn(64, 5, generator=gen, dtype=torch.float64) + 0.3
    d = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    d = d / d.norm(dim=1, keepdim=True)
    with _forbid(perceptual, "sliced_wasserstein", "project onto the directions, sort and average yourself",
                 swd):
        answer = _call(swd, a, b, d, what="two sets of 64 points in 5-D and 16 directions")
    pa, pb = a @ d.T, b @ d.T
    sa, sb = pa.sort(0).values, pb.sort(0).values
    _judge(answer, (sa - sb).abs().mean().item(), [
        ("sort along the points (dim=0), not across the directions (the last dimension)",
         ((pa.sort(1).values - pb.sort(1).values).abs().mean().item())),
        ("sort the projections first: W1 in 1-D pairs the i-th smallest with the i-th smallest (quantiles), "
         "not points in the order given", (pa - pb).abs().mean().item()),
        ("that compares only the means of the projections: W1 compares whole distributions, point by sorted "
         "point", (pa.mean(0) - pb.mean(0)).abs().mean().item()),
        ("squared differences give W2 squared; W1 averages the absolute differences", (sa - sb).square().mean().item()),
    ], "two 64-point sets and 16 directions")
    return "correct: project, sort, average |differences|, average over directions"


def _choice(answer, options: str) -> str:
    """The answer as one lower-case letter among `options`, or a sentence asking for one."""
    letter = answer.strip().lower() if isinstance(answer, str) else None
    if letter is None or len(letter) != 1 or letter not in options:
        raise NotYet(f"answer with one letter, one of {', '.join(repr(o) for o in options)} (you gave {answer!r})")
    return letter


def check_swd_prefers_noise(answer) -> str:
    """Exercise 5.3: why the flow at T = 1 has a lower SWD than SRGAN although its samples are speckled;
    the answer is the letter of one of four explanations, each wrong one answered with why not."""
    wrong = {
        "a": "not that: SWD never compares an output with its own original (PSNR does, and the flow's PSNR "
             "falls as T rises); look at what SWD compares",
        "c": "not chance: the paired bootstrap interval of the gap to SRGAN excludes 0, and 512 directions "
             "average the projections' randomness out; look at what SWD compares, not at its noise",
        "d": "if sharper always scored lower, T = 1.2, grainier still, would beat T = 1; its SWD rises again. "
             "SWD rewards the originals' *amount* of fine detail, not the most",
    }
    letter = _choice(answer, "abcd")
    if letter in wrong:
        raise NotYet(wrong[letter])
    return ("correct: SWD compares the distribution of local patches, and grain at the originals' energy "
            "matches it wherever the grain sits")


# ---------------------------------------------------------------- 06: the toy posterior
def check_posterior_mean(estimate: Callable) -> str:
    """estimate(y) -> the L2-optimal n_hat for the toy problem, from toy.W_UP and toy.mode(y)."""
    from . import toy
    y = torch.linspace(-1, 1, 21, dtype=torch.float64)[:, None]
    with _forbid(toy, "posterior_mean", "write E[n | y] from toy.W_UP and toy.mode(y)", estimate):
        answer = _call(estimate, y, what="21 LR values from -1 to 1")
    mu = toy.mode(y)
    mistakes = [
        ("that is the plain average of the two modes: weight each by its probability (W_UP and 1 - W_UP)",
         torch.zeros_like(y)),
        ("that is mu(y), the upper ridge: the lower one sits at -mu(y), so its term enters with a minus sign "
         "(and the L2 loss averages over both ridges)", mu),
        ("the lower mode, at -mu(y) with probability 1 - W_UP, pulls the mean down too", toy.W_UP * mu),
    ]
    _judge(answer, toy.posterior_mean(y), mistakes, "21 LR values from -1 to 1",
           hint="E[n | y] = sum over the two ridges of probability times position")
    w_up = toy.W_UP
    try:  # the same formula must hold for another prior: no number copied from the printout
        toy.W_UP = 0.6
        _judge(_call(estimate, y, what="a prior with W_UP = 0.6"), toy.posterior_mean(y), [],
               "a prior with W_UP = 0.6", hint="use toy.W_UP, not its value 0.7")
    finally:
        toy.W_UP = w_up
    return "correct: E[n | y] = W mu(y) - (1 - W) mu(y) = (2W - 1) mu(y), between the modes, where no image is"


def check_toy_projection(project: Callable) -> str:
    """project(x_hat (N, 2), y (N, 1)) -> the nearest pair whose average is y."""
    gen = torch.Generator().manual_seed(8)
    x_hat = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(6, 1, generator=gen, dtype=torch.float64)
    answer = _call(project, x_hat, y, what="6 pairs and their LR values")
    gap = y - x_hat.mean(1, keepdim=True)
    _judge(answer, x_hat + gap, [
        ("(y, y) is consistent but throws away the null-space part, the detail x_hat invented: change x_hat "
         "as little as possible instead", y.expand(-1, 2)),
        ("the correction goes to both pixels equally (that is the least change); you put it all on one",
         x_hat + torch.cat([2 * gap, torch.zeros_like(gap)], 1)),
        ("the sign: add y - mean(x_hat), so that the new mean is y", x_hat - gap),
        ("take the mean of each pair, x_hat.mean(dim=1, keepdim=True), not of the whole batch",
         x_hat + (y - x_hat.mean())),
        ("that adds A^T (y - A x_hat), half the gap per pixel: A^+ = A^T (A A^T)^-1 = (1, 1)^T here, so add the "
         "whole gap y - mean(x_hat) to both pixels", x_hat + gap / 2),
    ], "6 pairs and their LR values", hint="the pair's mean must become y: shift both pixels by the same amount "
                                           "(x_hat.mean(dim=1, keepdim=True) keeps the shapes aligned)")
    return "correct: x_hat + (y - mean(x_hat)) on both pixels, the least change that makes it consistent"


def check_symmetric_median(prediction) -> str:
    """Exercise 6.3: the prediction (a number) of where the L1 regressor's output lies at y = 0 once the
    prior is symmetric (toy.W_UP = 0.5): the median of p(n | y = 0)."""
    from . import toy
    try:
        value = float(prediction)
    except (TypeError, ValueError):
        raise NotYet(f"give one number, the n you predict (you gave {prediction!r})") from None
    y = torch.zeros(1, 1, dtype=torch.float64)
    w_up = toy.W_UP
    try:
        toy.W_UP = 0.5
        correct = toy.posterior_median(y).item()
        toy.W_UP = 0.7
        median_now = toy.posterior_median(y).item()
    finally:
        toy.W_UP = w_up
    ridge = toy.mode(y).item()
    if abs(value - correct) < 0.05:
        return ("correct: with equal weights half the probability lies below n = 0, so the median sits between "
                "the ridges, where no image is, like the mean")
    if abs(value - median_now) < 0.05:
        raise NotYet(f"{value:g} is the median of the prior as it is now (W_UP = 0.7), on the heavier ridge's "
                     "flank; with W_UP = 0.5 the ridges weigh the same: where is half the probability below?")
    if abs(abs(value) - ridge) < toy.SIGMA:
        raise NotYet(f"{value:g} is on a ridge (they sit at +-{ridge:g}): with equal weights neither ridge holds "
                     "more than half the probability, so the point with half of it below lies elsewhere")
    raise NotYet(f"not yet: {value:g} is not where half the probability of p(n | y = 0) lies below, once the two "
                 "ridges weigh the same")
