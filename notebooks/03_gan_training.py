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
# # 03 · Training the GAN: SR pre-training, then adversarial training
#
# **You will learn** what the pixel loss and the adversarial loss each make a generator produce, how to
# tell whether a discriminator actually discriminates, and what GAN artefacts look like and measure as.
# **Prerequisites:** convolutional networks, binary cross-entropy, notebook 01's notation ($x$ HR image,
# $y$ LR image). **Time:** 40 minutes; about 20 s to run with the shipped
# checkpoints (measured in full: this project's 2-core machine with another job on the other core, where the thread default is one).
#
# SRGAN's generator $G$ maps a low-resolution image to a 4x larger one. Trained with a pixel loss alone
# (the **SR, no GAN** baseline) it learns one compromise among all high-resolution images that fit the
# input: with the L2 loss the *conditional mean*, with the L1 loss used here the per-pixel *conditional
# median*. Either is blurry wherever the input is ambiguous. SRGAN adds a discriminator $D$ that learns
# to tell real HR crops from generated ones, and the generator is rewarded for fooling it:
#
# $$\min_G \max_D \; \mathbb E_{x}\big[\log D(x)\big] + \mathbb E_{y}\big[\log\big(1 - D(G(y))\big)\big],
# \qquad \mathcal L_G = \underbrace{\mathcal L_\text{content}(G(y), x)}_{\text{L1 or VGG}} + \lambda\,
# \underbrace{-\log D(G(y))}_{\text{adversarial}} .$$
#
# The adversarial term pulls outputs towards the *manifold* of real images instead of their average:
# sharper, but the details are invented. Training two networks against each other is notoriously
# delicate, which is why SRGAN starts from the pre-trained SR generator. We use ESRGAN's *relativistic
# average* form of the loss ($D$ judges whether a real crop looks more real than the average fake, and the
# generator is rewarded for the reverse; $\lambda$ = 0.005, ESRGAN's), and two stabilisers from later work:
# a spectrally normalised $D$ (Miyato et al. 2018) and an exponential moving average of the generator's
# weights as the model we evaluate. `sr_lib/methods/srgan.py` (the method's file: network, loss,
# defaults) says why for each. Our content term is L1 plus two more terms against what invented
# detail must not do, which "A failure mode you can see" below shows.
#
# This notebook loads the shipped checkpoints (the `cpu` configuration, trained on the bundled photographs
# by `sr_lib/checkpoints/cpu/TRAIN.sh`); set `RETRAIN = True` to train them again here.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from sr_lib import fast_mode
from sr_lib.checkpoint import DEFAULT_CHECKPOINTS, load_checkpoint, load_model
from sr_lib.config import get_config
from sr_lib.data import HELDOUT_DETAIL, RandomCrops, bundled_heldout, bundled_training_images
from sr_lib.exercises import check_content_loss_direction, check_discriminator_loss, check_generator_loss
from sr_lib.imaging import degrade
from sr_lib.methods import label, load_methods, super_resolve
from sr_lib.metrics import grid_pattern, lattice, psnr
from sr_lib.perceptual import hf_energy_ratio, swd
from sr_lib.plotting import image_rows, plot_history
from sr_lib.train import TrainSettings, train
from sr_lib.threads import use_threads

use_threads()  # torch's CPU threads as the command line sets them: no oversubscription on a shared machine
torch.manual_seed(0)
RETRAIN = False  # True: train SR and SRGAN here (times in TRAIN.sh) instead of loading them
cfg = get_config("cpu")
checkpoints = DEFAULT_CHECKPOINTS
print(f"shipped checkpoints in {checkpoints}")

# %% [markdown]
# ## The data
# Offline, the training set is four real photographs that scikit-image and scikit-learn ship (the study
# used FFHQ faces): those whose finest colour detail is like a portrait's (`sr_lib/data.py` measures it;
# photographs whose finest colour is sensor noise or JPEG blocks taught our first discriminator that real
# images have colour speckle). Two portraits are held out for evaluation. A batch is a set of random
# crops, each in one of its 8 flips and quarter turns, and its LR version comes from the one
# degradation used everywhere: 4x antialiased bicubic.

# %%
stream = RandomCrops(bundled_training_images(), cfg.crop, 8, seed=0)
hr_batch, lr_batch = next(stream)
fig = image_rows({"HR crops": {f"{i}": hr_batch[i] for i in range(8)},
                  "LR (4x smaller)": {f"{i}": lr_batch[i] for i in range(8)}})
plt.show()

# %% [markdown]
# ## Train (optional) or load
# With `RETRAIN = False` the shipped checkpoints are used. When the notebooks are tested automatically
# (quick mode), a few steps of each trainer run on a temporary folder, so the loops are exercised; the
# figures below still use the shipped models.

# %%
if RETRAIN or fast_mode() or not (checkpoints / "srgan.pt").exists():
    run_dir = Path(tempfile.mkdtemp(prefix="sr_gan_"))
    steps = (10, 5) if fast_mode() else (6000, 3000)  # the shipped checkpoints' steps (TRAIN.sh)
    train(TrainSettings("sr", cfg, run_dir, steps[0]))  # learning rates etc.: the defaults in methods/sr.py, srgan.py
    train(TrainSettings("srgan", cfg, run_dir, steps[1]))
    assert load_checkpoint(run_dir / "srgan.pt", "srgan", cfg)["step"] == steps[1]
    if not fast_mode():
        checkpoints = run_dir
sr_payload, srgan_payload = load_checkpoint(checkpoints / "sr.pt", "sr"), load_checkpoint(checkpoints / "srgan.pt", "srgan")
srgan_settings = srgan_payload["settings"]
print(f"SR trained {sr_payload['step']} steps, SRGAN {srgan_payload['step']} steps, content loss "
      f"{srgan_settings['content']} + {srgan_settings['grid_weight']} x grid term + "
      f"{srgan_settings['consistency_weight']} x LR-consistency term, adversarial weight {srgan_settings['adv_weight']}")

# %% [markdown]
# ## Loss curves
# ### Exercise 3.1: predict a curve before you see it
# Adversarial training starts from the SR generator, which was trained to minimise the L1 loss. SRGAN's
# content loss is that L1 plus two terms (introduced below), and the generator now minimises it
# *plus* $\lambda$ times the adversarial term. Over the 3,000 adversarial steps, what does the content
# loss do? One letter, as a string:
#
# * **a** it keeps falling: the adversarial term is one more gradient pointing towards better images;
# * **b** it stays flat: with $\lambda = 0.005$ the adversarial term is too small to move the generator;
# * **c** it rises: the generator starts near the minimum of the pixel loss, and any step the adversarial
#   term pulls it away from there costs pixel accuracy.

# %% nbgrader={"grade": false, "grade_id": "ex-3-1", "locked": false, "schema_version": 3, "solution": true}
"""Exercise 3.1: the letter of your prediction for SRGAN's content loss during adversarial training."""
### BEGIN SOLUTION
prediction = "c"
### END SOLUTION
print(check_content_loss_direction(prediction))

# %% [markdown]
# Now the curves. Left: the pixel-loss pre-training. Then adversarial training, each quantity on its own
# axis: the generator's content loss, the discriminator's loss, and D's two relativistic verdicts: how
# likely a real crop looks more real than the average generated one, and the reverse. Unlike a single
# objective, none of the last three has to fall: they describe a game.

# %%
fig, axes = plt.subplots(1, 4, figsize=(19, 3.8))
plot_history(sr_payload["history"], {"l1": "SR's L1 loss"}, axes[0], log=True,
             ylabel="mean |error| (pixel values 0-1)")
axes[0].set_title("SR pre-training: L1")
plot_history(srgan_payload["history"], {"content": "content loss"}, axes[1],
             ylabel="L1 + weighted terms (pixel values 0-1)")
axes[1].set_title("SRGAN: content loss")
plot_history(srgan_payload["history"], {"d_loss": "discriminator loss"}, axes[2], ylabel="relativistic BCE (nats)")
axes[2].set_title("SRGAN: discriminator loss")
plot_history(srgan_payload["history"], {"d_real": "real judged more real", "d_fake": "fake judged more real"},
             axes[3], ylabel="probability")
axes[3].set_title("D: real > average fake, fake > average real")
fig.tight_layout()
plt.show()


def mean_of(history: list[dict], key: str, first: int, last: int) -> float:
    """The mean of `key` over the history's entries first..last-1 (one per step)."""
    return float(np.mean([h[key] for h in history[first:last]]))


sr_start, sr_200, sr_end = (mean_of(sr_payload["history"], "l1", a, b) for a, b in ((0, 10), (150, 250), (-500, None)))
gan_start, gan_end = mean_of(srgan_payload["history"], "content", 0, 200), mean_of(srgan_payload["history"], "content", -500, None)
print(f"SR's L1: {sr_start:.3f} over the first 10 steps, {sr_200:.4f} around step 200, {sr_end:.4f} over the last 500")
print(f"SRGAN's content loss: {gan_start:.4f} over the first 200 steps, {gan_end:.4f} over the last 500 "
      f"({100 * (gan_end / gan_start - 1):+.0f}%)")
assert sr_start > 3 * sr_200 and abs(sr_end / sr_200 - 1) < 0.2, "a drop within 200 steps, then a plateau"
assert gan_end > gan_start, "the content loss rises under adversarial training"

# %% [markdown]
# SR's L1 drops within the first 200 steps and then sits on a flat, noisy plateau: the last 500 steps'
# mean is within 20% of the mean around step 200 (printed above), and the faint raw curve's spread there
# is the batch-to-batch noise of random crops. Under adversarial training the content loss *rises* (the
# cell checks that the last 500 steps' mean is above the first 200 steps'): as predicted in Exercise 3.1,
# the generator gives up pixel accuracy for detail the discriminator accepts.

# %% [markdown]
# ### Exercise 3.2: the discriminator's loss
# In the min-max objective above, $D$ maximises $\log D(x) + \log(1 - D(G(y)))$. Written as a loss to
# *minimise* over a batch, with $D$ returning logits (scores before the sigmoid), that is the sum of two
# mean binary cross-entropies: the real crops' with label 1 plus the generated crops' with label 0. Write
# it (`torch.nn.functional.binary_cross_entropy_with_logits` helps).

# %% nbgrader={"grade": false, "grade_id": "ex-3-2", "locked": false, "schema_version": 3, "solution": true}
def discriminator_loss(real_logits, fake_logits):
    """Exercise 3.2: D's loss, real labelled 1 and generated labelled 0, averaged over each batch."""
    ### BEGIN SOLUTION
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    return bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits))
    ### END SOLUTION


print(check_discriminator_loss(discriminator_loss))

# %% [markdown]
# ### Exercise 3.3: the generator's adversarial loss
# Minimising $\log(1 - D(G(y)))$ (the min-max form) gives the generator almost no gradient early on,
# when $D$ easily rejects its outputs. Goodfellow et al. (2014) proposed the *non-saturating* form
# instead: minimise $-\log D(G(y))$. Write it for logits, averaged over the batch.

# %% nbgrader={"grade": false, "grade_id": "ex-3-3", "locked": false, "schema_version": 3, "solution": true}
def generator_loss(fake_logits):
    """Exercise 3.3: G's non-saturating adversarial loss, -log D(G(y)), from D's logits."""
    ### BEGIN SOLUTION
    return -torch.nn.functional.logsigmoid(fake_logits).mean()
    ### END SOLUTION


print(check_generator_loss(generator_loss))
logits = torch.linspace(-8, 0, 5, requires_grad=True)  # D rejects the fakes, from strongly to not at all
generator_loss(logits).backward()
saturating = torch.linspace(-8, 0, 5, requires_grad=True)
torch.log1p(-torch.sigmoid(saturating)).mean().backward()
print("gradient per logit, non-saturating:", [f"{g:.4f}" for g in logits.grad.tolist()])
print("gradient per logit, saturating:    ", [f"{g:.4f}" for g in saturating.grad.tolist()])
assert abs(logits.grad[0]) > 100 * abs(saturating.grad[0])

# %% [markdown]
# Where $D$ rejects a fake with confidence (logit $-8$), the saturating loss gives the generator more than
# 100 times less gradient than the non-saturating one: it would learn nothing just when it most needs to.
# `sr_lib` trains with ESRGAN's relativistic version of these two losses (`relativistic_loss` in
# `sr_lib/methods/srgan.py`): the same cross-entropies, applied to the difference between a crop's score and
# the other set's average score.
#
# ## What the discriminator sees
# The discriminator saved with SRGAN scores 64 px crops of the held-out faces (never seen in training):
# the real crops, and the SR and SRGAN outputs for the same places. With the relativistic loss only the
# *difference* between its scores means something, so we show the raw scores (logits) and one number
# per pair of sets: the probability that D scores a random real crop above a random generated one
# (0.5: it cannot tell them apart; 1: it always can).

# %%
models = load_methods(checkpoints)
disc = load_model(checkpoints / "srgan.pt", "srgan", part="discriminator")[0]
faces = bundled_heldout()
real = torch.stack([face[:, top:top + cfg.crop, left:left + cfg.crop] for face in faces.values()
                    for top in range(0, 256, 64) for left in range(0, 256, 64)])  # 16 crops per face
with torch.no_grad():
    scores = {"real HR": disc(real)}
    for name, t, out in super_resolve({k: models[k] for k in ("sr", "srgan")}, degrade(real)):
        scores[label(name)] = disc(out[0])


def ranked_above(a: torch.Tensor, b: torch.Tensor) -> float:
    """P(a random element of a > a random element of b): the area under the ROC curve."""
    return (a[:, None] > b[None, :]).float().mean().item()


fig, ax = plt.subplots(figsize=(6.5, 3.5))
every = torch.cat(list(scores.values()))
bins = np.linspace(every.min().item(), every.max().item(), 25)  # the same bins for the three sets
for name, s in scores.items():
    ax.hist(s.numpy(), bins=bins, histtype="step", lw=2, label=name)
ax.set_xlabel("D(crop), raw score (logit)")
ax.set_ylabel(f"number of {cfg.crop} px crops")
ax.legend()
plt.show()
separation = {name: ranked_above(scores["real HR"], s) for name, s in scores.items() if name != "real HR"}
for name, value in separation.items():
    print(f"P(D scores a real crop above a {name} crop) = {value:.2f}")
assert separation["SR (no GAN)"] > 0.7 and 0.5 < separation["SRGAN"] < separation["SR (no GAN)"]

# %% [markdown]
# The discriminator does separate: it scores most real crops above the SR crops of the same places
# (the smooth ones are easy to spot), and fewer, but still more than half, above SRGAN's: the generator
# has learnt to fool it partly, not completely.
#
# ## Outputs on the held-out faces
# Bicubic, SR (pixel loss) and SRGAN from the same LR input, with a 4x zoom into the eye region.
# PSNR (dB, higher = closer to the original pixels) is in the titles.

# %%
rows = {}
for name, face in faces.items():
    hr = face[None]
    rows[name] = {f"{label(m)} {psnr(out[0], hr):.2f} dB": out[0, 0]
                  for m, t, out in super_resolve({k: models[k] for k in ("bicubic", "sr", "srgan")}, degrade(hr))}
    rows[name]["original"] = face
fig = image_rows(rows, boxes=HELDOUT_DETAIL)
plt.show()
hr = torch.stack(list(faces.values()))
(_, _, bicubic_out), (_, _, sr_out), (_, _, gan_out) = super_resolve(
    {k: models[k] for k in ("bicubic", "sr", "srgan")}, degrade(hr))
sharpness = {"SR": hf_energy_ratio(sr_out[0], hr), "SRGAN": hf_energy_ratio(gan_out[0], hr)}
gain = psnr(sr_out[0], hr) - psnr(bicubic_out[0], hr)
print(f"SR beats bicubic by {gain:.2f} dB on the two faces; fine-detail energy relative to the original: "
      f"SR {sharpness['SR']:.2f}, SRGAN {sharpness['SRGAN']:.2f}")
assert gain > 1 and sharpness["SRGAN"] > sharpness["SR"] and psnr(gan_out[0], hr) < psnr(sr_out[0], hr)

# %% [markdown]
# SR is about a decibel closer to the original pixels than bicubic (0.8 and 1.3 dB on the two faces; see the
# titles), and smooth; SRGAN restores more
# fine-detail energy (the ratio is 1 for as much as the original has), at the price of some PSNR.

# %% [markdown]
# ## A failure mode you can see
# A deterministic generator pushed towards texture has one cheap way to add it: the same small pattern in
# every LR pixel's 4x4 block of output pixels, a lattice of dots. One number measures it: take the detail
# that the LR image cannot carry (the image minus its bicubic round trip), average it separately over each
# of the 16 positions within the 4x4 blocks (`grid_pattern` in `sr_lib/metrics.py`), and take the spread
# of those 16 averages (`lattice`, in grey levels). A natural image's detail does not care where the LR
# pixel grid lies; a lattice does.
#
# Beside the shipped SRGAN we load one trained by the same recipe, from the same SR generator, without
# the one term of its loss that is there against the lattice (`ablations/srgan_no_grid_term.pt`, made by
# `TRAIN.sh`; it always comes from the shipped folder, so after `RETRAIN = True` it stands beside your
# SRGAN, not beside its own twin).

# %%
ablation = load_model(DEFAULT_CHECKPOINTS / "ablations" / "srgan_no_grid_term.pt", "srgan")[0]
hr = torch.stack(list(faces.values()))
with torch.no_grad():
    no_term_out = ablation(degrade(hr)).clamp(0, 1)
outputs = {"original": hr, "SR (no GAN)": sr_out[0], "SRGAN without the grid term": no_term_out,
           "SRGAN": gan_out[0]}
lattices = {name: lattice(x) for name, x in outputs.items()}
swds = {name: swd(x, hr)["swd"] for name, x in outputs.items() if name.startswith("SRGAN")}
for name, value in lattices.items():
    print(f"{name:28} lattice {value:.2f} grey levels" + (f", SWD {swds[name]:.1f}" if name in swds else ""))
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
patterns = {name: grid_pattern(x).mean(dim=(0, 1)).view(4, 4) * 255 for name, x in outputs.items()}
patterns = {name: pattern - pattern.mean() for name, pattern in patterns.items()}
limit = max(p.abs().max().item() for p in patterns.values())
for ax, (name, pattern) in zip(axes, patterns.items()):
    shown = ax.imshow(pattern, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"{name}\nlattice {lattices[name]:.2f}", fontsize=10)
    ax.set_xticks(range(4))
    ax.set_yticks(range(4))
fig.colorbar(shown, ax=axes, label="mean detail minus its mean (grey levels)")
plt.show()
fig = image_rows({"grace_hopper": {"SRGAN without the grid term": no_term_out[1], "SRGAN": gan_out[0, 1],
                                   "original": hr[1]}}, boxes=HELDOUT_DETAIL)
plt.show()
assert lattices["SRGAN without the grid term"] > 3 * lattices["original"]
assert 1 < lattices["SRGAN without the grid term"] < 2  # "a grey level or two"
assert lattices["SRGAN"] < 1.5 * lattices["original"] and lattices["SR (no GAN)"] < lattices["original"]
assert swds["SRGAN without the grid term"] < swds["SRGAN"], "the weight-free perception measure prefers the dots"

# %% [markdown]
# Trained without the term, SRGAN's output depends on the position within the LR pixel grid more than
# three times as much as the original does: its 4x4 averages (the squares above, both faces and all
# colours averaged) are far from flat. In the zoomed crop, at this figure's size, the dots are hard to
# see: that is why the number measures them. Its spread is a grey level or two (the cell checks: between
# 1 and 2). The term (`grid_loss` in `sr_lib/methods/srgan.py`) compares the output's 16 averages with the
# original crop's: averaged over a crop's blocks first, a pattern repeated in every block adds up, while
# natural texture, in no fixed place, averages out. With it, SRGAN's lattice is about the original's (the
# cell checks: under one and a half times it), and the pixel-loss SR, which has no reason to invent
# anything, stays below the original's.
#
# Notice the SWD printed beside the two SRGANs. It is the weight-free perception measure of notebook 05
# (lower = local statistics closer to the originals'), and it scores the version *with* the dots as the
# more natural one: it compares the statistics of 7x7 neighbourhoods, dots are texture of a kind, and it
# has no notion of "the same pattern in every block". No single number catches every artefact,
# which is why you need the numbers as well as the crops: here the lattice measure caught what the crop hides.
#
# Two more guards are built in. Each pixel shuffle of the generator is followed by a 2x2 average
# (`ZeroOrderHold` in `sr_lib/models.py`), so that a flat input gives a flat output whatever the four
# sub-pixel kernels learn; the ablation has it too, so it does not stop this lattice on its own. And a
# third term of the content loss keeps SRGAN's output consistent with its LR input, which the invented
# detail could otherwise change.
#
# **Take-aways.** The GAN gives sharper textures than the pixel loss, at the cost of a second network,
# a hyper-parameter ($\lambda$) that decides between blur and artefacts, and a training curve that does
# not tell you when you are done. Notebook 04 trains the flow: no discriminator and one loss, the
# likelihood, but problems of its own. It needs the pre-trained SR generator as its base, its gradient
# has to be clipped during training (notebook 04), notebook 02 showed its inverse going silently wrong
# once the weights grow, and its temperature still chooses between smooth and noisy, after training.
#
# ## Summary
# * The pixel loss gives one smooth compromise; the adversarial loss pulls outputs towards what real
#   crops look like, with invented detail.
# * A discriminator is only useful if it separates: measured here as the probability that it scores a
#   real crop above a generated one.
# * GAN artefacts are measurable, and a loss term aimed at one can remove it: the LR-grid lattice above.
#
# ## Going further
# * Ledig et al., [Photo-realistic single image super-resolution using a GAN](https://arxiv.org/abs/1609.04802) (SRGAN), CVPR 2017.
# * Wang et al., [ESRGAN](https://arxiv.org/abs/1809.00219), ECCV workshops 2018: the relativistic loss and the training recipe used here.
# * Goodfellow et al., [Generative adversarial nets](https://arxiv.org/abs/1406.2661), NeurIPS 2014: the non-saturating loss of Exercise 3.3.
# * Try: retrain (`RETRAIN = True`) with `TrainSettings("srgan", cfg, run_dir, steps[1], hyper={"grid_weight": 0.5})`:
#   how much of the lattice does a quarter of the weight remove? Then with `hyper={"adv_weight": 0.02}` (four times
#   ESRGAN's): what happens to the lattice, the SWD and the colours of the zoomed crops?
