# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["colab-setup"]
# Colab only: install sr_lib from the project's repository (does nothing anywhere else).
import importlib.util
import subprocess
import sys

REPOSITORY = ""  # written by scripts/notebook_headers.py from pyproject.toml
if "google.colab" in sys.modules and importlib.util.find_spec("sr_lib") is None:
    if not REPOSITORY:
        raise RuntimeError("sr_lib is not installed, and this copy of the notebook names no repository to install it "
                           "from: upload the project folder and run `pip install ./<folder>` in a cell, then rerun.")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", f"sr-lib @ git+{REPOSITORY}"])

# %% [markdown]
# # 04 · Training the conditional flow by maximum likelihood
#
# **You will learn** how a conditional flow is trained (one exact likelihood, no adversary), what bits
# per dimension and dequantization mean, and what sampling temperature does to the pictures.
# **Prerequisites:** notebooks 01 and 03; the Gaussian density. **Time:** 40 minutes; about 25 s to run
# with the shipped checkpoint (measured in full: this project's 2-core machine with another job on the other core, where the thread default is one).
#
# The flow $f_\theta(\cdot\,; y)$ maps an HR image $x$ to a latent $z$ of the same size, conditioned on
# the LR image $y$. Training maximises the exact log-likelihood from notebook 01:
#
# $$\log p_\theta(x \mid y) = \log \mathcal N\big(f_\theta(x; y); 0, I\big) + \sum_{\text{layers}} \log|\det J| .$$
#
# One loss, no adversary. We report it in **bits per dimension** (bpd), the negative
# log-likelihood divided by the number of dimensions $D = 3HW$ and by $\ln 2$: the average number of
# bits an ideal coder would need per colour value *given the LR image*. Raw 8-bit pixels cost 8 bpd.
#
# **Dequantization.** Images are discrete (256 levels), a flow is a density on continuous values. Fitting
# a density to discrete points lets it pile infinite density on them and the likelihood diverges. Adding
# uniform noise $u \sim U(0,1)$ to the integer values, $\tilde x = (255x + u)/256$, spreads every level over
# its bin; the continuous likelihood of $\tilde x$ is then a lower bound on the discrete likelihood of $x$:
#
# $$\log P(x) \ge \mathbb E_u\big[\log p(\tilde x)\big] - D \log 256 .$$
#
# **Our flow's structure.** Like SRFlow, the flow is built on a pixel-loss SR network: $f_\theta$ maps the
# *residual* $x - G(y)$ to $z$, where $G$ is the trained SR generator of notebook 03, frozen, whose
# features also condition every flow step. Each step mixes channels ($1\times1$ convolution), scales and
# shifts them by the LR features (an *affine injector*) and applies a coupling; four steps work at half
# resolution (12 channels), then a second squeeze gives 48 channels at the LR image's resolution, where
# four more steps can treat each LR pixel's 4x4 block as a whole (the printout says "4 + 4 steps"). Why:
# maximum likelihood learns the conditional mean slowly (the likelihood weighs each pixel's error by its predicted inverse
# variance, so edges, where PSNR is decided, count least); with an encoder of its own our flow was
# barely better than bicubic after thousands of CPU steps. The price is compute, measured below.
#
# The shipped checkpoint is loaded; `RETRAIN = True` trains it again (the times are in
# `sr_lib/checkpoints/cpu/TRAIN.sh`).

# %%
import math
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from sr_lib import fast_mode
from sr_lib.checkpoint import DEFAULT_CHECKPOINTS, load_checkpoint, load_model
from sr_lib.complexity import audit, count_params
from sr_lib.config import get_config
from sr_lib.data import HELDOUT_DETAIL, bundled_heldout
from sr_lib.evaluate import diversity_maps
from sr_lib.exercises import check_bits_per_dim, check_dequantize, check_unit_gaussian_bits
from sr_lib.imaging import degrade, upsample
from sr_lib.metrics import diversity, psnr
from sr_lib.methods.flow import ConditionalFlow
from sr_lib.plotting import diversity_figure, image_rows, plot_history
from sr_lib.train import TrainSettings, train
from sr_lib.threads import use_threads

use_threads()  # torch's CPU threads as the command line sets them: no oversubscription on a shared machine
torch.manual_seed(0)
RETRAIN = False  # True: train SR and the flow here (times in TRAIN.sh) instead of loading them
cfg = get_config("cpu")
checkpoints = DEFAULT_CHECKPOINTS

# %% [markdown]
# ## Train (optional) or load
# When the notebooks are tested automatically (quick mode), a few steps run on a temporary folder to
# exercise the loop; the figures use the shipped checkpoint (`sr_lib/checkpoints/cpu/TRAIN.sh` shows the
# command that produced it).

# %%
if RETRAIN or fast_mode() or not (checkpoints / "flow.pt").exists():
    run_dir = Path(tempfile.mkdtemp(prefix="sr_flow_"))
    steps = (10, 10) if fast_mode() else (6000, 6000)  # the shipped checkpoints' steps (TRAIN.sh)
    train(TrainSettings("sr", cfg, run_dir, steps[0]))  # the flow's base: the pixel-loss generator
    train(TrainSettings("flow", cfg, run_dir, steps[1]))  # learning rate etc.: the defaults in methods/flow.py
    assert load_checkpoint(run_dir / "flow.pt", "flow", cfg)["step"] == steps[1]
    if not fast_mode():
        checkpoints = run_dir
flow, payload = load_model(checkpoints / "flow.pt", "flow")
print(f"flow: {cfg.flow_couplings} + {cfg.flow_lr_couplings} steps on its base generator, {count_params(flow):,} "
      f"parameters, trained {payload['step']} steps")

# %% [markdown]
# ## The learning curve
# A single number that goes down, with no second network to balance. The gradient norm is clipped at 10
# (`methods/flow.py`): in the first half of training the norm is above 10 on most steps (right panel), so the
# clip shapes those steps, not only rare bad batches; it keeps the weights from the growth that
# notebook 02 showed can make the inverse silently wrong. The learning rate is halved at half and again
# at three quarters of the steps (`train.learning_rate`).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
plot_history(payload["history"], ["bpd"], axes[0], ylabel="bits per dimension", log=True)
axes[0].set_title("training NLL (bits per dimension)")
plot_history(payload["history"], ["grad_norm"], axes[1], log=True, ylabel="gradient L2 norm")
axes[1].set_title("gradient norm before clipping")
axes[1].axhline(10, color="k", lw=0.8, ls="--")  # the clip
fig.tight_layout()
plt.show()
half = payload["history"][:len(payload["history"]) // 2]
clipped = sum(h["grad_norm"] > 10 for h in half) / len(half)
print(f"steps clipped in the first half of training: {clipped:.0%}")
assert clipped > 0.5, "the clip acts on most steps of the first half"

# %% [markdown]
# ### Exercise 4.1: dequantize
# Turn 8-bit levels $k \in \{0, \dots, 255\}$ (a `uint8` tensor) into continuous values in $[0, 1)$,
# each spread uniformly over its own bin $[k/256, (k+1)/256)$. Use the given `torch.Generator` for the
# noise, so the result is reproducible.

# %% nbgrader={"grade": false, "grade_id": "ex-4-1", "locked": false, "schema_version": 3, "solution": true}
def dequantize(levels, generator):
    """Exercise 4.1: (k + u) / 256 with u uniform on [0, 1), for uint8 levels k."""
    ### BEGIN SOLUTION
    return (levels.float() + torch.rand(levels.shape, generator=generator)) / 256
    ### END SOLUTION


print(check_dequantize(dequantize))

# %% [markdown]
# ### Exercise 4.2: bits per dimension
# The flow gives the natural-log density $\log p(\tilde x \mid y)$ of a dequantized image $\tilde x$ in
# $[0, 1]^D$. Turn it into bits per dimension of the 8-bit image: per dimension, in bits, and counting
# that each of the 256 bins has width $1/256$: the probability of a bin is its density times $1/256$ per
# dimension, so the code length $-\log_2 P$ gains $\log_2 256 = 8$ bits per dimension (the $-D \log 256$ in
# the bound above).

# %% nbgrader={"grade": false, "grade_id": "ex-4-2", "locked": false, "schema_version": 3, "solution": true}
def bits_per_dim(log_density, dims):
    """Exercise 4.2: bits per dimension from the natural-log density over `dims` dimensions in [0, 1]."""
    ### BEGIN SOLUTION
    return (-log_density / dims + math.log(256)) / math.log(2)
    ### END SOLUTION


print(check_bits_per_dim(bits_per_dim))

# %% [markdown]
# Now both on the trained flow: dequantize a held-out face with your function, take the flow's exact
# log-density (the Gaussian log-density of $z$ plus the log-determinants), and compare your bits per
# dimension with `sr_lib`'s `bits_per_dim` on the same noisy image.

# %%
face = bundled_heldout()["astronaut"][None]
levels = (face * 255).round().to(torch.uint8)
noisy = dequantize(levels, torch.Generator().manual_seed(0))
with torch.no_grad():
    z, logdet = flow(noisy, degrade(noisy))
    log_density = -0.5 * (z.square() + math.log(2 * math.pi)).flatten(1).sum(1) + logdet
    reference = flow.bits_per_dim(noisy, degrade(noisy), dequantize=False)
yours = bits_per_dim(log_density, noisy[0].numel())
print(f"your bits per dimension: {yours.item():.4f}; sr_lib's: {reference.item():.4f}")
assert torch.allclose(yours, reference, atol=1e-4)

# %% [markdown]
# ## Likelihood on held-out faces, and what dequantization does
# The same number on the two held-out portraits (never trained on), beside three references:
# * the *untrained* flow (its injectors and couplings the identity, its 1x1 mixers random rotations): a
#   **standard** Gaussian on the residual over the same frozen base generator;
# * the best **single** Gaussian $\mathcal N(\text{base}(y), \sigma^2 I)$ on that residual, $\sigma$ fitted
#   to these two faces themselves (an optimistic baseline: one number learnt from the test images);
# * the trained flow scored on the raw 8-bit values without dequantization noise.
#
# Each number is one draw of the noise $u$ on two images: an estimate of the bound. Before running the
# cell, predict: is the untrained flow above or below 8 bits per dimension, the cost of storing the raw
# pixels?

# %%
faces = bundled_heldout()
hr = torch.stack(list(faces.values()))
lr = degrade(hr)
with torch.no_grad():
    torch.manual_seed(0)
    heldout_bpd = flow.bits_per_dim(hr, lr).mean().item()
    untrained = ConditionalFlow(cfg).freeze_base(flow.base.state_dict()).eval()  # the same base, identity steps
    untrained_bpd = untrained.bits_per_dim(hr, lr).mean().item()
    gaussian_bpd = flow.gaussian_bits_per_dim(hr, lr)
    raw_bpd = flow.bits_per_dim(hr, lr, dequantize=False).mean().item()
    residual_rms = ((255.0 * hr + 0.5) / 256.0 - flow.base(lr)).square().mean().sqrt().item()
train_bpd = sum(h["bpd"] for h in payload["history"][-100:]) / min(100, len(payload["history"]))
print(f"training bpd (last 100 steps):            {train_bpd:.3f}")
print(f"held-out faces, trained flow:              {heldout_bpd:.3f}")
print(f"held-out faces, one fitted Gaussian:       {gaussian_bpd:.3f}")
print(f"held-out faces, untrained flow:            {untrained_bpd:.3f}")
print(f"held-out faces, no dequantization noise:   {raw_bpd:.3f} ({raw_bpd - heldout_bpd:+.3f})")
print(f"the residual's root mean square:           {residual_rms:.3f}")
assert untrained_bpd > 8 and residual_rms < 0.1, "a unit Gaussian is far wider than the residual"
assert heldout_bpd < gaussian_bpd < untrained_bpd, "the flow beats one fitted Gaussian, which beats the untrained flow"
assert untrained_bpd - gaussian_bpd > gaussian_bpd - heldout_bpd, "most of the gap is the residual's width"
assert abs(raw_bpd - heldout_bpd) < 0.1, "without the noise the score moves little"

# %% [markdown]
# ### Exercise 4.3: explain the untrained flow's score with one number
# The untrained flow is a standard Gaussian $\mathcal N(0, I)$ on the residual $x - \text{base}(y)$: its
# rotations keep lengths and its couplings do nothing. Write its bits per dimension as a function of one
# number, the residual's root mean square `rms` (printed above), and see whether it predicts the measured
# score.

# %% nbgrader={"grade": false, "grade_id": "ex-4-3", "locked": false, "schema_version": 3, "solution": true}
def unit_gaussian_bits(rms):
    """Exercise 4.3: bits per dimension of N(0, I) on residuals of root mean square `rms` (8-bit data in [0, 1])."""
    ### BEGIN SOLUTION
    return (0.5 * math.log(2 * math.pi) + 0.5 * rms ** 2 + math.log(256)) / math.log(2)
    ### END SOLUTION


print(check_unit_gaussian_bits(unit_gaussian_bits, residual_rms, untrained_bpd))
assert abs(unit_gaussian_bits(residual_rms) - untrained_bpd) < 0.05, "one number predicts the untrained score"

# %% [markdown]
# **Why is the untrained flow above 8 bits?** 8 bits per dimension is the uniform distribution on
# [0, 1]: each of the 256 bins gets probability 1/256. The untrained flow puts a *standard* Gaussian on a
# residual whose root mean square is below 0.1 (printed above): its density near the true values is at
# most $1/\sqrt{2\pi} \approx 0.4$, so a bin of width 1/256 gets less than 1/256 of probability, more than
# 8 bits. **What the flow learnt:** one Gaussian of the right width, fitted to the test faces
# themselves, already removes most of that gap; the distance from it to the trained flow is what the
# flow steps learnt about the *structure* of the open detail (where it is, how neighbouring pixels move
# together) beyond its overall size.
#
# **Dequantization.** Scored on the raw 8-bit values without the noise, this flow's number moves by less
# than 0.1 bits per dimension (printed above): it was trained with the noise and has not learnt to put
# density spikes on the 256 levels. The noise matters for *training*: a continuous density evaluated on
# a grid is not a probability, and a flow trained on raw levels is rewarded for piling density onto them
# (Theis et al., 2016, in the reading list); this notebook does not run that experiment. With the noise,
# the dequantized number is an honest bound on the discrete likelihood.
#
# ## Sampling at a temperature
# Sampling draws $z \sim \mathcal N(0, T^2 I)$ and inverts the flow. $T = 0$ gives the one image that
# $z = 0$ maps to: in general neither the conditional mean nor its mode (a nonlinear map moves both),
# here close to the base's pixel-loss estimate and just as smooth. $T = 1$ samples the model's own
# distribution: more detail, and also speckle where the model is unsure (the T = 1 crop below). Lower
# temperatures trade detail and diversity for fidelity; the study does not say which it used, and
# SRFlow's released configurations sample at 0.9. The diversity below is the per-pixel standard
# deviation over 4 samples.
#
# **What to look for** (faces at 1:1, crops at 4x): at $T = 0$ the eye is as soft as bicubic's, only
# with cleaner edges; at 0.5 hardly anything changes; at 0.8 a faint grain appears, most visibly on the
# flat wall behind the head (compare it with the original's); at 1 the grain becomes speckle: bright
# and dark dots on the chin and neck and in the hair, and a mottled background. Where is the $T = 1$
# sample still smooth, and why there?

# %%
face = faces["astronaut"][None]
lr_face = degrade(face)
temperatures = [0.0, 0.5, 0.8, 1.0]
gen = torch.Generator().manual_seed(0)
row, spreads = {"bicubic": upsample(lr_face).clamp(0, 1)[0]}, {}
for t in temperatures:
    samples = torch.stack([flow.sample(lr_face, t, generator=gen).clamp(0, 1) for _ in range(4)])
    spreads[t] = diversity(samples)
    row[f"T = {t}: {psnr(samples[0], face):.2f} dB"] = samples[0, 0]
row["original"] = face[0]
fig = image_rows({"astronaut": row}, boxes=HELDOUT_DETAIL)
plt.show()
for t, d in spreads.items():
    print(f"T = {t}: diversity {d:.4f}")
assert spreads[0.0] == 0.0 and spreads[0.8] > 0 and spreads[1.0] > spreads[0.5]

# %% [markdown]
# ## Many samples, one input
# The flow is a *distribution* over HR images. Below, 8 draws at each of $T$ = 0.5, 0.8 and 1 (three of
# them shown; crops at 4x zoom, each image pixel a 4x4 block of screen pixels), and per temperature the
# per-pixel standard deviation over all 8, the **spread**, on one colour scale for all rows. Beside the
# original: the part of its detail that the LR image does not determine at all, its **null-space part**
# (the original minus the pseudo-inverse of its own LR image; notebook 06 derives it). $r$ is the
# correlation of the two maps' local 9x9 averages over the whole face: are the samples unsure where
# the LR image leaves the detail open? Before you run the cell, predict: will $r$ grow or shrink from
# $T = 0.8$ to $T = 1$?

# %%
maps = diversity_maps(flow, face)
fig = diversity_figure(maps, face[0], HELDOUT_DETAIL["astronaut"])
plt.show()
local = torch.nn.AvgPool2d(9, stride=1, padding=4, count_include_pad=False)  # where, not which pixel
open_local = local(maps["open"][None, None])[0, 0]
flat = open_local < open_local.quantile(0.25)  # the quarter of the face with the least open detail
for t, spread in maps["spread"].items():
    spread_local = local(spread[None, None])[0, 0]
    print(f"T = {t}: spread {spread.mean():.4f}, r = {maps['correlation'][t]:.2f}; spread on the flattest "
          f"quarter {spread_local[flat].mean():.4f}, elsewhere {spread_local[~flat].mean():.4f}")
    assert maps["correlation"][t] > 0.5 and 0 < spread_local[flat].mean() < spread_local[~flat].mean()
means = [maps["spread"][t].mean() for t in (0.5, 0.8, 1.0)]
assert means[0] < means[1] < means[2], "the spread grows with T"
assert maps["correlation"][1.0] < maps["correlation"][0.8], "at T = 1 the spread follows the open detail less"

# %% [markdown]
# The samples are unsure where the LR image leaves detail open: on this face the spread and the
# null-space part correlate with $r$ above 0.5 at every temperature, and the spread on the quarter of
# the face with the least open detail is below the rest. But it is not zero there: the flow spreads a
# little noise over flat skin and background, where a perfect model would be certain. From $T = 0.8$ to
# $T = 1$ the spread roughly doubles on the flattest quarter and elsewhere alike (the printed numbers),
# and $r$ falls a little: at $T = 1$ the spread follows the open detail less closely. The diversity
# printed earlier (4 samples) and the spread here (8 samples, another draw) are the same measure and
# differ by their samples. The colour scales: black is 0; the titles give the value of the brightest
# colour; $r$ is computed over the whole image, not the crop.
#
# ## Why flows are easy to train, and what invertibility costs
# * **Easy:** one exact objective, no second network to balance against, no adversarial weight, a
#   falling curve that also works as a held-out score; the temperature is chosen *after* training.
# * **Costly:** the latent must have the HR image's full dimension, and every layer must be invertible
#   with a cheap log-determinant. That rules out pooling, strided layers and most of the generator's
#   freedom. Reading the study's table literally (16 couplings of three 3x3 convs of width 64), the
#   couplings alone cost 2.1x the generator's multiply-accumulates per pixel at the study's sizes
#   (`python -m sr_lib complexity --config paper`; a test checks it); that is this project's reading, the
#   study itself reports "0.16 MOPS per pixel" for the flow and 0.15 for the generator, without defining
#   the unit. Our flow adds its base generator on top. Below, the measured cost of the `cpu`
#   configuration used here, and how far each output pixel sees: its receptive field with respect to the
#   latent $z$ and to the LR image.
# * **A choice, not a cost:** training here keeps every step's activations for the backward pass, as
#   any network does. An invertible network need not: RevNet and Glow recompute each layer's input from
#   its output during the backward pass, trading compute for memory that no longer grows with depth.

# %%
cost = audit(cfg)["models"]
ratio = cost["flow"]["macs_per_hr_pixel"] / cost["generator"]["macs_per_hr_pixel"]
print(f"cpu config: generator {cost['generator']['macs_per_hr_pixel']:,.0f} MACs per HR pixel, field "
      f"{cost['generator']['receptive_field_px']} px; flow {cost['flow']['macs_per_hr_pixel']:,.0f} ({ratio:.2f}x), "
      f"field {cost['flow']['receptive_field_z_px']} px w.r.t. z and {cost['flow']['receptive_field_lr_px']} px "
      "w.r.t. the LR image")
assert 1 < ratio < 2

# %% [markdown]
# ## Summary
# * A conditional flow is trained by one exact likelihood; we report it in bits per dimension of the
#   dequantized 8-bit image, an honest bound on the discrete likelihood.
# * Dequantization makes the score an honest bound; a flow *trained* without it is rewarded for putting
#   density on the 256 levels (Theis et al.; not run here). Ours, scored without it, moves by < 0.1 bits.
# * The temperature $T$ trades detail and diversity for fidelity after training; $T = 0$ is one smooth
#   image, $T = 1$ the model's own distribution.
#
# ## Going further
# * Lugmayr, Danelljan, Van Gool, Timofte, [SRFlow](https://arxiv.org/abs/2006.14200), ECCV 2020: the conditional flow for super-resolution this one follows.
# * Theis, van den Oord, Bethge, [A note on the evaluation of generative models](https://arxiv.org/abs/1511.01844), ICLR 2016: dequantization and why likelihood and sample quality can disagree.
# * Ho, Chen, Srinivas, Duan, Abbeel, [Flow++](https://arxiv.org/abs/1902.00275), ICML 2019: *variational* dequantization, a learned noise that tightens the bound.
#
# **Next:** notebook 05 compares all methods side by side.
