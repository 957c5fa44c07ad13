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
# # 05 · The comparison: SRGAN vs. flow vs. SR (no GAN) vs. bicubic
#
# The seed's punchline, on the same held-out faces for every method:
#
# | | SRGAN | Norm. Flow | SR (no GAN) |
# |---|---|---|---|
# | FID (lower better) | 3.858 | 6.026 | 5.822 |
# | LPIPS (lower better) | 0.1480 | 0.2061 | 0.2267 |
#
# **FID** compares the *distribution* of deep Inception features of outputs and originals; **LPIPS**
# compares each output with its original through the *first* layers of AlexNet. Both reward realistic
# texture; PSNR and SSIM reward pixel agreement and therefore the blur of the conditional mean. The
# **perception-distortion trade-off** (Blau & Michaeli, 2018) says no method can be best at both; the
# flow's temperature lets us *move along* the trade-off with one trained model.
#
# Everything here uses the shipped `cpu` checkpoints (notebooks 03 and 04). LPIPS and FID need ImageNet
# backbone weights that cannot be downloaded in an offline environment; `python -m sr_lib weights` says
# which file goes where, and the table marks those columns unavailable instead of inventing numbers.
#
# *Runtime:* about 30 s from a fresh kernel on a 2-core CPU; nothing trains.

# %%
import tempfile

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from sr_lib import fast_mode
from sr_lib.compare import (LABELS, comparison_figure, compare, load_perceptual, markdown_table,
                            perception_distortion_figure)
from sr_lib.data import bundled_heldout
from sr_lib.evaluate import DEFAULT_CHECKPOINTS, collect, load_methods
from sr_lib.widgets import CropComparator, TemperatureScrubber

torch.manual_seed(0)
methods = load_methods(DEFAULT_CHECKPOINTS)
faces = bundled_heldout()
perceptual = load_perceptual()
for metric, reason in perceptual["unavailable"].items():
    print(f"{metric.upper()} unavailable: {reason}")
print(f"fast mode (CI): {fast_mode()}; methods: {', '.join(LABELS[m] for m in methods)}")

# %% [markdown]
# ## The table
# `compare` is what `python -m sr_lib compare --out report/` runs: every method on both held-out faces,
# the flow at six temperatures (4 samples each), the networks' measured cost, and the seed's scores beside
# ours. It takes about 15 s on a 2-core CPU.

# %%
report_dir = tempfile.mkdtemp(prefix="sr_report_")
temperatures = (0.0, 0.5, 0.8) if fast_mode() else (0.0, 0.2, 0.5, 0.8, 1.0, 1.2)
result = compare(report_dir, DEFAULT_CHECKPOINTS, perceptual=perceptual, temperatures=temperatures)
display(Markdown(markdown_table(result)))

# %%
rows = {(r["method"], r["temperature"]): r for r in result["rows"]}
bicubic, sr, srgan = rows[("bicubic", None)], rows[("sr", None)], rows[("srgan", None)]
assert sr["psnr"] > bicubic["psnr"], "the pixel-loss SR beats bicubic in PSNR"
assert srgan["hf_energy_ratio"] > sr["hf_energy_ratio"], "the GAN restores more fine detail than the pixel loss"
assert rows[("flow", 0.8)]["diversity"] > rows[("flow", 0.0)]["diversity"] == 0.0
assert all(("lpips" in r) == ("lpips" not in result["unavailable"]) for r in result["rows"]), "no made-up LPIPS"

# %% [markdown]
# **Reading it.** SR (no GAN) has the best PSNR and the least fine detail (HF ratio well below 1): the
# conditional mean. SRGAN trades some PSNR for detail. The flow at $T=0$ is close to the mean; raising $T$
# adds detail and diversity and costs PSNR, and at $T \ge 1$ it adds more high-frequency energy than the
# original has (noise the model is unsure about). The LR-PSNR column checks consistency with the input:
# whatever a method invents, its output should still downsample to the LR image.
#
# Our numbers are not the seed's: the seed trained paper-size networks on 70,000 FFHQ faces and scored
# thousands of CelebA faces; we trained the `cpu` configuration for minutes on eight photographs and score
# two portraits. Compare the *orderings* and the trade-off, not the values.
#
# ## Perception vs. distortion
# Each method is a point; the flow is a curve parametrised by the temperature.

# %%
fig = perception_distortion_figure(result)
plt.show()

# %% [markdown]
# ## Side by side
# Original, bicubic, SR, SRGAN and the flow at two temperatures, with the eyes enlarged 4x
# (nearest-neighbour, so you see pixels, not interpolation).

# %%
pairs, outputs = collect(methods, faces, (0.5, 0.8))
fig = comparison_figure(pairs, outputs, faces)
plt.show()

# %% [markdown]
# ## Temperature scrubber
# Move the slider: the flow's output is regenerated at the new latent temperature (same latent noise, so
# only the temperature changes), and its LR-PSNR, diversity (per-pixel spread of 4 draws) and HF-energy
# ratio update. The bicubic, SR and SRGAN outputs to its left do not move: they have no latent.
# "New sample" draws a different latent at the same temperature.

# %%
scrubber = TemperatureScrubber(methods, faces)
scrubber.widget

# %%
before = (scrubber.flow_image.value, dict(scrubber.last_stats))
scrubber.slider.value = 0.0
assert scrubber.flow_image.value != before[0] and scrubber.last_stats["diversity"] == 0.0
scrubber.slider.value = 0.8
print(f"T = 0.8 again: LR-PSNR {scrubber.last_stats['lr_psnr']:.2f} dB, diversity {scrubber.last_stats['diversity']:.4f}")

# %% [markdown]
# ## Crop comparator
# Pick an image, a crop position and a size: every method's crop of the same pixels, enlarged to about
# 192 px with nearest-neighbour, with the PSNR of that crop alone. Small crops on hair or skin show the
# difference between *plausible* detail (GAN, flow) and *average* detail (SR) best.

# %%
comparator = CropComparator(methods, faces)
comparator.widget

# %%
comparator.top.value, comparator.left.value, comparator.size.value = 120, 100, 32
panel = comparator.last_panel
assert all(image.shape[-2:] == (32, 32) for image, _ in panel.values())
assert torch.equal(panel["original"][0], faces[comparator.image_choice.value][:, 120:152, 100:132])
for label, (_, value) in panel.items():
    print(f"{label:16} {'reference' if label == 'original' else f'{value:.2f} dB'}")

# %% [markdown]
# ## What the benchmarks say
# `python -m sr_lib bench` measures, in one run on your machine, the speed and memory ratios behind the
# seed's "comparable compute": the structured log-det against brute force, the training throughput of
# generator + discriminator against the flow, inference time per megapixel against bicubic, and the
# activation memory of a training step. The README quotes a run.
