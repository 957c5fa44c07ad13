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
# SRGAN's generator $G$ maps a low-resolution image to a 4x larger one. Trained with a pixel loss alone
# (the **SR, no GAN** baseline) it learns the *conditional mean* of all high-resolution images that fit
# the input, which is blurry wherever the input is ambiguous. SRGAN adds a discriminator $D$ that
# learns to tell real HR crops from generated ones, and the generator is rewarded for fooling it:
#
# $$\min_G \max_D \; \mathbb E_{x}\big[\log D(x)\big] + \mathbb E_{y}\big[\log\big(1 - D(G(y))\big)\big],
# \qquad \mathcal L_G = \underbrace{\mathcal L_\text{content}(G(y), x)}_{\text{L1 or VGG}} + \lambda\,
# \underbrace{-\log D(G(y))}_{\text{adversarial}} .$$
#
# The adversarial term pulls outputs towards the *manifold* of real images instead of their mean:
# sharper, but the details are invented. Training two networks against each other is notoriously
# delicate, which is why SRGAN starts from the pre-trained SR generator.
#
# This notebook loads the shipped checkpoints (the `cpu` configuration, trained on the bundled photographs
# by `sr_lib/checkpoints/cpu/TRAIN.sh`); set `RETRAIN = True` to train them again here.
#
# *Runtime:* about 10 s from a fresh kernel on a 2-core CPU up to the last section, whose short live training
# run (the failure mode) adds about 50 s; `RETRAIN = True` adds about 15 min.

# %%
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from sr_lib import fast_mode
from sr_lib.checkpoint import load_checkpoint, load_discriminator, load_model
from sr_lib.config import get_config
from sr_lib.data import HELDOUT_DETAIL, RandomCrops, bundled_heldout, bundled_training_images
from sr_lib.evaluate import DEFAULT_CHECKPOINTS
from sr_lib.imaging import degrade, upsample
from sr_lib.metrics import psnr
from sr_lib.plotting import image_rows, plot_history
from sr_lib.train import TrainSettings, train

torch.manual_seed(0)
RETRAIN = False  # True: train SR (about 10 min) and SRGAN (about 5 min) on a 2-core CPU instead of loading them
cfg = get_config("cpu")
checkpoints = DEFAULT_CHECKPOINTS
print(f"fast mode (CI): {fast_mode()}; shipped checkpoints in {checkpoints}")

# %% [markdown]
# ## The data
# Offline, the training set is eight real photographs that scikit-image and scikit-learn ship (the seed
# used FFHQ faces); two portraits are held out for evaluation. A batch is a set of random crops with
# flips, and its LR version comes from the one degradation used everywhere: 4x antialiased bicubic.

# %%
stream = RandomCrops(bundled_training_images(), cfg.crop, 8, seed=0)
hr_batch, lr_batch = next(stream)
fig = image_rows({"HR crops": {f"{i}": hr_batch[i] for i in range(8)},
                  "LR (4x smaller)": {f"{i}": lr_batch[i] for i in range(8)}}, scale=1.4)
plt.show()

# %% [markdown]
# ## Train (optional) or load
# With `RETRAIN = False` the shipped checkpoints are used. In CI's fast mode a few steps of each trainer
# run on a temporary folder, so the loops are exercised; the figures below still use the shipped models.

# %%
if RETRAIN or fast_mode() or not (checkpoints / "srgan.pt").exists():
    run_dir = Path(tempfile.mkdtemp(prefix="sr_gan_"))
    steps = (10, 5) if fast_mode() else (2500, 1000)
    train(TrainSettings("sr", cfg, run_dir, steps[0], lr=2e-4))
    train(TrainSettings("srgan", cfg, run_dir, steps[1], lr=1e-4))
    assert load_checkpoint(run_dir / "srgan.pt", "srgan", cfg)["step"] == steps[1]
    if not fast_mode():
        checkpoints = run_dir
sr_payload, srgan_payload = load_checkpoint(checkpoints / "sr.pt", "sr"), load_checkpoint(checkpoints / "srgan.pt", "srgan")
print(f"SR trained {sr_payload['step']} steps, SRGAN {srgan_payload['step']} steps, content loss "
      f"{srgan_payload['settings']['content']}, adversarial weight {srgan_payload['settings']['adv_weight']}")

# %% [markdown]
# ## Loss curves
# Left: the pixel-loss pre-training, a smooth descent. Right: adversarial training. The content loss
# rises a little (the generator trades pixel accuracy for realism); the discriminator's loss and its
# mean outputs on real and fake crops oscillate, the signature of a two-player game rather than a
# single objective.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
plot_history(sr_payload["history"], ["l1"], axes[0], log=True, ylabel="mean |error| (pixel values 0-1)")
axes[0].set_title("SR pre-training: L1")
plot_history(srgan_payload["history"], ["content", "d_loss"], axes[1], ylabel="loss (L1 0-1 scale; D: nats)")
axes[1].set_title("SRGAN: content and discriminator loss")
plot_history(srgan_payload["history"], ["d_real", "d_fake"], axes[2], ylabel="mean D output (probability 'real')")
axes[2].set_title("SRGAN: mean D output, real vs. fake")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What the discriminator sees
# The discriminator saved with SRGAN scores held-out HR face crops (never seen in training), the
# SR outputs and the SRGAN outputs. A perfect judge gives 1 to the real crops and 0 to both fakes; the
# generator has succeeded when its outputs score like the real ones.

# %%
generator_sr, generator_gan = load_model(checkpoints / "sr.pt", "sr")[0], load_model(checkpoints / "srgan.pt", "srgan")[0]
disc = load_discriminator(checkpoints / "srgan.pt")
faces = bundled_heldout()
crops = []
for face in faces.values():  # 16 crops of the training size from each held-out face
    for top in range(0, 256, 64):
        for left in range(0, 256, 64):
            crops.append(face[:, top:top + cfg.crop, left:left + cfg.crop])
real = torch.stack(crops)
with torch.no_grad():
    scores = {"real HR": torch.sigmoid(disc(real)),
              "SR (no GAN)": torch.sigmoid(disc(generator_sr(degrade(real)).clamp(0, 1))),
              "SRGAN": torch.sigmoid(disc(generator_gan(degrade(real)).clamp(0, 1)))}
fig, ax = plt.subplots(figsize=(6, 3.5))
for label, s in scores.items():
    ax.hist(s.numpy(), bins=20, range=(0, 1), alpha=0.6, label=f"{label}: mean {s.mean():.2f}")
ax.set_xlabel("D(crop) = probability 'real'")
ax.set_ylabel(f"number of {cfg.crop} px crops")
ax.legend()
plt.show()
for label, s in scores.items():
    print(f"{label:12} mean D = {s.mean():.3f}")
assert all(torch.isfinite(s).all() for s in scores.values())

# %% [markdown]
# ## Outputs on the held-out faces
# Bicubic, SR (pixel loss) and SRGAN from the same LR input, with a 4x zoom into the eye region.
# PSNR (dB, higher = closer to the original pixels) is in the titles.

# %%
rows = {}
for name, face in faces.items():
    hr = face[None]
    lr = degrade(hr)
    with torch.no_grad():
        outputs = {"bicubic": upsample(lr).clamp(0, 1), "SR (no GAN)": generator_sr(lr).clamp(0, 1),
                   "SRGAN": generator_gan(lr).clamp(0, 1)}
    rows[name] = {f"{label} {psnr(out, hr):.2f} dB": out[0] for label, out in outputs.items()}
    rows[name]["original"] = face
    if name == "astronaut":
        psnr_gain = psnr(outputs["SR (no GAN)"], hr) - psnr(outputs["bicubic"], hr)
fig = image_rows(rows, boxes=HELDOUT_DETAIL)
plt.show()
print(f"SR beats bicubic on the astronaut by {psnr_gain:.2f} dB")
assert psnr_gain > 0

# %% [markdown]
# ## Failure modes, live
# What happens when the adversarial term dominates? We continue from the SR generator with the
# adversarial weight raised from 0.005 to 1 and a higher learning rate for a short run (150 steps, about
# 50 s on a 2-core CPU; a few steps in CI). Watch the discriminator's outputs swing and the content loss climb:
# the generator now chases whatever currently fools $D$, and the images pick up high-frequency
# artefacts (texture, grid patterns from the pixel shuffle, colour shifts) that no pixel loss would allow.

# %%
unstable_dir = Path(tempfile.mkdtemp(prefix="sr_gan_unstable_"))
shutil.copy(checkpoints / "sr.pt", unstable_dir / "sr.pt")
unstable_steps = 5 if fast_mode() else 150
train(TrainSettings("srgan", cfg, unstable_dir, unstable_steps, lr=1e-3, adv_weight=1.0, save_every=10_000))
unstable = load_checkpoint(unstable_dir / "srgan.pt", "srgan")
generator_unstable = load_model(unstable_dir / "srgan.pt", "srgan")[0]

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
plot_history(unstable["history"], ["content"], axes[0], smooth=10, ylabel="L1 (pixel values 0-1)")
axes[0].set_title("content loss with adversarial weight 1")
plot_history(unstable["history"], ["d_real", "d_fake"], axes[1], smooth=10, ylabel="mean D output (probability 'real')")
axes[1].set_title("D outputs: a game, not a descent")
fig.tight_layout()
plt.show()

hr = faces["astronaut"][None]
lr = degrade(hr)
with torch.no_grad():
    panel = {"SRGAN (weight 0.005)": generator_gan(lr).clamp(0, 1)[0],
             f"weight 1, {unstable_steps} steps": generator_unstable(lr).clamp(0, 1)[0], "original": hr[0]}
fig = image_rows({"astronaut": panel}, boxes=HELDOUT_DETAIL)
plt.show()
print(f"PSNR: balanced SRGAN {psnr(generator_gan(lr).clamp(0, 1), hr):.2f} dB, "
      f"adversarial-dominated {psnr(generator_unstable(lr).clamp(0, 1), hr):.2f} dB")

# %% [markdown]
# **Take-aways.** The GAN gives sharper textures than the pixel loss, at the cost of a second network,
# a hyper-parameter ($\lambda$) that decides between blur and artefacts, and a training curve that does
# not tell you when you are done. Notebook 04 trains the flow, which has none of these problems but
# pays in other ways.
