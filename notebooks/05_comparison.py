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
# **You will learn** how super-resolution methods are compared (distortion, perception, diversity,
# cost), why no single number ranks them, and how the perception-distortion trade-off shows in pictures.
# **Prerequisites:** notebooks 03 and 04 (what each method is); means and covariances. **Time:** 45
# minutes; about 100 s to run
# (measured in full: this project's 2-core machine with another job on the other core, where the thread default is one). Notation: $x$ HR image, $y$ LR image, $z$ latent, $T$ temperature.
#
# The study's result, measured on CelebA faces by networks trained on FFHQ:
#
# | | SRGAN | Norm. Flow | SR (no GAN) |
# |---|---|---|---|
# | FID (lower better) | 3.858 | 6.026 | 5.822 |
# | LPIPS (lower better) | 0.1480 | 0.2061 | 0.2267 |
#
# **LPIPS** compares each output with *its own* original: both go through all five convolutional stages
# of an ImageNet-trained AlexNet, each stage's features are normalised, weighted by linear layers
# learnt from human similarity judgements, and the distances summed. **FID** compares the *distributions*
# of Inception features of all outputs and all originals. **PSNR** and **SSIM** compare pixels.
#
# **Perception and distortion** (Blau & Michaeli, 2018). A *distortion* measure compares each output with
# its own original ($\mathbb E\,\Delta(x, \hat x)$: MSE, PSNR, SSIM, and in their terms LPIPS too, a
# learnt one). *Perceptual quality* is how far the *distribution* of outputs is from the distribution of
# natural images, a divergence $d(p_X, p_{\hat X})$: FID estimates one, and so does the SWD below. Their
# theorem: the best distortion achievable at a given perceptual quality, $D(P) = \min\, \mathbb
# E\,\Delta(X, \hat X)$ subject to $d(p_X, p_{\hat X}) \le P$, is non-increasing and (for convex $d$ in
# its second argument) convex in $P$: below some distortion, better perception must cost distortion,
# for *any* algorithm. For the MSE they also bound the price: drawing the output from the posterior
# $p(x \mid y)$ gives perfect perceptual quality ($P = 0$) at exactly twice the minimum MSE, so
# $D(0) \le 2\,D_\text{min}$. The flow samples from an approximate posterior, and its temperature moves
# it along the trade-off with one trained model.
#
# **Offline**, LPIPS and FID need ImageNet weights that cannot be downloaded here: `python -m sr_lib
# weights` says which file goes where, and the table marks those columns unavailable instead of inventing
# numbers. Our weight-free perception measure is the **sliced Wasserstein distance (SWD)** of Karras et al.
# (2018): the distribution of 7x7 neighbourhoods of every level of a Laplacian pyramid (fine detail to
# coarse shape), outputs against originals, compared along 512 random directions; 0 means the outputs'
# local structure is distributed like the originals' (reported x 1000, as Karras et al. do).
#
# Everything here uses the shipped `cpu` checkpoints (notebooks 03 and 04), on two held-out portraits.

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from sr_lib import fast_mode
from sr_lib.checkpoint import DEFAULT_CHECKPOINTS
from sr_lib.data import HELDOUT_DETAIL, bundled_heldout, heldout_crops
from sr_lib.evaluate import difference, load_perceptual, run_all
from sr_lib.exercises import check_frechet_distance, check_sliced_wasserstein, check_swd_prefers_noise
from sr_lib.methods import SHOWN_TEMPERATURES, TEMPERATURES, label, load_methods
from sr_lib.perceptual import fid_patches, frechet_between_halves, swd_by_sample_size
from sr_lib.plotting import comparison_figure, perception_distortion_figure, sample_size_figure
from sr_lib.report import markdown_table, report
from sr_lib.imaging import degrade
from sr_lib.widgets import CropComparator, PhotoUpscaler, TemperatureScrubber
from sr_lib.threads import use_threads

use_threads()  # torch's CPU threads as the command line sets them: no oversubscription on a shared machine
# LPIPS and FID need two pretrained networks (325 MB). Where the internet is reachable (Colab, your own
# machine, not this project's offline test machines), set FETCH_WEIGHTS = True once to download them into
# torch hub's cache; they are verified by their hash, and every later run finds them there.
FETCH_WEIGHTS = False
if FETCH_WEIGHTS:
    from sr_lib import weights
    for key in ("alexnet", "inception"):
        print(f"fetched {weights.fetch(key)}")

torch.manual_seed(0)
models = load_methods(DEFAULT_CHECKPOINTS)
faces = bundled_heldout()
perceptual = load_perceptual()
for metric, reason in perceptual["unavailable"].items():
    print(f"{metric.upper()} unavailable: {reason}")
print(f"methods: {', '.join(label(name) for name in models)}")

# %% [markdown]
# ## The table
# `report` is what `python -m sr_lib report --out report/` runs: every method on both held-out faces,
# the flow at six temperatures (4 samples at each $T > 0$), the networks' measured cost, and the study's scores
# beside ours.

# %%
report_dir = tempfile.mkdtemp(prefix="sr_report_")
temperatures = (0.0, 0.5, 0.8) if fast_mode() else TEMPERATURES
result = report(report_dir, DEFAULT_CHECKPOINTS, perceptual=perceptual, temperatures=temperatures)
display(Markdown(markdown_table(result)))

# %% [markdown]
# ## How sure are these numbers?
# Two faces are a tiny sample. Next to every mean the table shows a **bootstrap interval**: the faces are
# drawn again with replacement 200 times (seeded), every measure is recomputed on each draw, and the
# central 95% of the results is shown. For SWD, a distance between two *sets*, each draw keeps the drawn
# faces' patches, outputs and originals alike. `difference(result, a, b, measure)` does the same for the
# gap between two rows, with the *same* draws for both (a paired comparison). We call an ordering
# *supported* only where that gap's interval excludes 0. With two faces "supported" means no more than
# "both faces, and their union, agree": the interval cannot see the faces we did not measure. An SWD
# can sit at one end of its own interval (the flow at $T = 1$): the distance of the two faces together
# is smaller than that of either face alone, so the draws that repeat one face all lie above it.

# %%
rows = {(r["method"], r["temperature"]): r for r in result["rows"]}
bicubic, sr, srgan = rows[("bicubic", None)], rows[("sr", None)], rows[("srgan", None)]
flow0, flow8 = rows[("flow", 0.0)], rows[("flow", 0.8)]
SR, SRGAN, BICUBIC, FLOW8 = ("sr", None), ("srgan", None), ("bicubic", None), ("flow", 0.8)


def gap(a, b, measure):
    """a's measure minus b's, its paired interval, and whether the interval excludes 0."""
    d = difference(result, a, b, measure)
    print(f"{measure:>15}: {label(a[0])}{'' if a[1] is None else f' T={a[1]}'} - "
          f"{label(b[0])}{'' if b[1] is None else f' T={b[1]}'} = {d['difference']:+.2f} "
          f"[{d['interval'][0]:+.2f}, {d['interval'][1]:+.2f}]" + ("" if d["supported"] else "  (not supported)"))
    return d


assert result["bootstrap"]["resamples"] == 200 and len(result["images"]) == 2
sr_over_bicubic = gap(SR, BICUBIC, "psnr")
assert sr_over_bicubic["supported"] and sr_over_bicubic["difference"] >= 1.0, "SR beats bicubic by >= 1 dB"
assert all(gap(SR, other, "psnr")["interval"][0] > 0 for other in (SRGAN, FLOW8)), "SR has the best PSNR"
assert gap(SRGAN, FLOW8, "swd")["interval"][1] < 0, "SRGAN's SWD below the flow's at T = 0.8"
assert gap(FLOW8, SR, "swd")["interval"][1] < 0, "the flow's SWD at T = 0.8 below SR's"
assert gap(SRGAN, SR, "swd")["interval"][1] < 0, "SRGAN's SWD below SR's"
assert all(gap(SR, other, "hf_energy_ratio")["interval"][1] < 0 for other in (SRGAN, FLOW8)), "SR is the smoothest"
assert flow8["diversity"] > flow0["diversity"] == 0.0
assert abs(flow0["psnr"] - sr["psnr"]) < 0.2, "the flow's T = 0 image is close to the SR output"
rising = [rows[("flow", t)] for t in temperatures if t <= 1.0]
assert all(a["psnr"] > b["psnr"] and a["hf_energy_ratio"] < b["hf_energy_ratio"] and a["diversity"] <= b["diversity"]
           for a, b in zip(rising, rising[1:])), "raising T up to 1 adds detail and diversity and costs PSNR"
consistent = [sr, srgan] + rising
assert min(r["lr_psnr"] for r in consistent) >= 40, "every learned output up to T = 1 explains its input"
assert all(("lpips" in r) == ("lpips" not in result["unavailable"]) for r in result["rows"]), "no made-up LPIPS"
print(f"PSNR: SR {sr['psnr']:.2f}, flow T=0.8 {flow8['psnr']:.2f}, SRGAN {srgan['psnr']:.2f}, bicubic {bicubic['psnr']:.2f} dB")
print(f"SWD:  SRGAN {srgan['swd']:.1f} < flow T=0.8 {flow8['swd']:.1f} < SR {sr['swd']:.1f}")
print(f"LR-PSNR up to T = 1: at least {min(r['lr_psnr'] for r in consistent):.1f} dB")

# %% [markdown]
# **Reading it.** SR (no GAN) has the best PSNR, a decibel above bicubic, and less fine detail than SRGAN
# and the flow at $T = 0.8$ (a lower HF ratio): one smooth compromise. SRGAN gives up some PSNR for detail,
# and its local statistics are closer to the originals' than SR's and the flow's at $T = 0.8$ (lower SWD).
# On these two faces every one of those orderings is supported (the gaps printed above). The flow's
# $T = 0$ image is within 0.2 dB of SR's, *by construction*: the flow is trained on top of the frozen SR
# network, whose output the flow adds its residual to, so "the flow lies between SR and SRGAN" is partly built in: at $T = 0$
# it starts at SR. Raising $T$ up to 1 adds detail and diversity at the cost of PSNR. The LR-PSNR column
# checks consistency with the input: whatever a method invents, its output downsampled again should
# match the LR image, and every learned output up to $T = 1$ does to 40 dB or better.
#
# **Which study order do we reproduce?** The study's *perception* measure is FID, and it orders
# SRGAN (3.858) < SR (5.822) < flow (6.026): its flow is *behind* SR. Its LPIPS, a learnt *distortion*
# measure in Blau and Michaeli's terms, orders SRGAN < flow < SR. Our SWD at $T = 0.8$ puts the flow
# between SRGAN and SR, like the study's LPIPS and unlike its FID; a different measure, other networks
# and two faces, so neither agreement nor disagreement is a replication.

# %%
extremes = [t for t in (1.0, 1.2) if ("flow", t) in rows]
gaps = {t: gap(("flow", t), SRGAN, "swd") for t in extremes}
for t in extremes:
    print(f"flow T={t}: PSNR {rows[('flow', t)]['psnr']:.2f} dB, LR-PSNR {rows[('flow', t)]['lr_psnr']:.2f} dB")
if 1.0 in extremes:  # the full run (fast mode stops at T = 0.8)
    flow1 = rows[("flow", 1.0)]
    assert gaps[1.0]["interval"][1] < 0, "at T = 1 the flow's SWD is below SRGAN's"
    assert flow1["intervals"]["swd"][0] >= flow1["swd"] - 1e-6, "its SWD at the low end of its interval"
    assert rows[("flow", 1.2)]["swd"] > flow1["swd"] and rows[("flow", 1.2)]["lr_psnr"] < 40, "T = 1.2 overshoots"

# %% [markdown]
# ### Exercise 5.3: why does SWD prefer $T = 1$?
# In the full run (all six temperatures) the flow at $T = 1$ has a *lower* SWD than SRGAN, although its
# samples are visibly speckled (slide the temperature scrubber below to 1), and at $T = 1.2$ the SWD
# rises again and LR-consistency drops below 40 dB: worse on both axes. Before reading on, choose the
# explanation and set `answer` to its letter:
#
# * **a** the $T = 1$ samples are closer to their own originals, pixel by pixel;
# * **b** SWD compares only the distribution of local patches with the originals': grain adds fine-scale
#   energy that real skin and hair have too, wherever the grain sits;
# * **c** chance: SWD's random directions happened to favour the flow;
# * **d** SWD measures sharpness: the sharper an output, the lower its SWD.

# %% nbgrader={"grade": false, "grade_id": "ex-5-3", "locked": false, "schema_version": 3, "solution": true}
"""Exercise 5.3: set answer to the letter of the explanation you choose."""
### BEGIN SOLUTION
answer = "b"
### END SOLUTION
print(check_swd_prefers_noise(answer))

# %% [markdown]
# **The V-shape.** SWD compares
# the *distribution* of local patches with the originals' and nothing else: the grain of $T = 1$ adds
# fine-scale energy that real skin and hair also have, so the patch statistics match better, whether or
# not the grain sits where the original's detail was. A distribution distance rewards the right
# *amount* of detail, a distortion measure the right *place*; neither sees speckle as an artefact. That
# is why one number cannot rank these methods, and why notebook 06 looks at *where* the detail goes.
#
# Our numbers are not the study's: it trained paper-size networks on 70,000 FFHQ faces and scored
# thousands of CelebA faces; we trained the `cpu` configuration on four photographs and score two
# portraits. Compare the *orderings* and the trade-off, not the values.
#
# ## Why a few images cannot rank methods by a distribution distance
# SWD and FID compare two *sets*: how large must a set be? We cut many 96 px crops from the two held-out
# photographs (whole photos, not only the faces), run SR and SRGAN on their LR versions, and score random
# subsets of $k$ crops, each method's outputs against the same $k$ originals, with the same subsets for
# both methods.

# %%
crops = heldout_crops(32)
with torch.no_grad():
    crop_outputs = {name: models[name](degrade(crops)).clamp(0, 1) for name in ("sr", "srgan")}
by_size = swd_by_sample_size(crop_outputs, crops, sizes=(1, 2, 4, 8, 16), subsets=16, keep=128, projections=64)
fig = sample_size_figure(by_size)
plt.show()
spread = {k: {name: np.percentile(v, 95) - np.percentile(v, 5) for name, v in per.items()} for k, per in by_size.items()}
reversed_share = {k: float((per["srgan"] >= per["sr"]).mean()) for k, per in by_size.items()}
for k, per in by_size.items():
    print(f"k = {k:2}: " + ", ".join(f"{label(name)} {v.mean():5.1f} (90% of subsets within {spread[k][name]:5.1f})"
                                    for name, v in per.items()) + f"; SRGAN not below SR on {reversed_share[k]:.0%}")
assert all(spread[1][name] > 3 * spread[16][name] for name in crop_outputs), "one image: >3x the spread of 16"
assert reversed_share[1] >= 0.1 and reversed_share[16] == 0.0, "one image can reverse the order; 16 do not"
assert by_size[1]["srgan"].mean() - by_size[16]["srgan"].mean() > 2 * abs(by_size[1]["sr"].mean() - by_size[16]["sr"].mean())

# %% [markdown]
# **Reading it.** With one image the value depends more on *which* image was drawn than on the method:
# the central 90% of single-image scores is more than three times as wide as with 16 images, and on at
# least one draw in ten SRGAN is not below SR, the order that every subset of 16 shows. The mean moves
# too: SRGAN's mean SWD falls with $k$ more than twice as much as SR's, so a small sample does not even
# shift both methods alike. (These are 96 px crops scored with fewer patches and directions than the
# table, so their values are not the table's.) That is why the table's intervals matter, and why
# "supported" on two faces says little about faces in general.
#
# **FID has the same problem, worse.** Its Gaussian fit needs a covariance of the features: with fewer
# samples than feature dimensions it is singular, and the distance is biased *upwards* at small $N$.
# Below, the Fréchet distance between two disjoint random halves of the *same* set of 192-number patches
# (true distance 0), for $N$ samples in each half:

# %%
patch_features = torch.nn.functional.unfold(crops.double(), 8, stride=8).transpose(1, 2).reshape(-1, 192).numpy()
null_fid = frechet_between_halves(patch_features, sizes=(8, 64, 192, 512, 2048))
for n, value in null_fid.items():
    print(f"N = {n:4} per half: Frechet distance {value:.3f} (covariance rank {min(n - 1, 192)} of 192)")
values = list(null_fid.values())
assert all(a > b for a, b in zip(values, values[1:])) and null_fid[8] > 20 * null_fid[2048], "biased upwards at small N"
assert np.linalg.matrix_rank(np.cov(patch_features[:8], rowvar=False)) == 7 < 192, "8 samples: a singular covariance"
assert len(fid_patches(list(faces.values()))) == 98 < 2048, "our report's FID: 98 patches for 2,048 features"

# %% [markdown]
# Two sets from one distribution are not 0 apart: the smaller the sets, the larger the distance, falling
# with every size here and more than twenty times larger at 8 samples than at 2,048; with 8 samples of 192
# dimensions the covariance has rank 7. The study scored thousands of CelebA faces with 2,048 Inception
# features; our report would score our two faces' 98 patches (49 each), far fewer than 2,048. So an FID we
# computed would sit on a different bias than the study's 3.858 to 6.026: its values cannot be set beside
# the study's, and even its order is only as safe as the N = 8 line printed above.
#
# ## Perception vs. distortion
# Each method is a point; the flow is a curve parametrised by the temperature.

# %%
fig = perception_distortion_figure(result)
plt.show()

# %% [markdown]
# ### Exercise 5.1: the sliced Wasserstein distance
# The perception axis above needs no trained network. Its core: project two point sets (here, image
# patches flattened to vectors) onto random unit directions; in one dimension the Wasserstein-1 distance
# between two equally large samples is the mean absolute difference of their *sorted* values. Average over
# the directions.

# %% nbgrader={"grade": false, "grade_id": "ex-5-1", "locked": false, "schema_version": 3, "solution": true}
def sliced_wasserstein(a, b, directions):
    """Exercise 5.1: mean over unit directions (K, D) of the 1-D W1 between projected sets a, b (N, D)."""
    ### BEGIN SOLUTION
    projected_a = (a @ directions.T).sort(dim=0).values
    projected_b = (b @ directions.T).sort(dim=0).values
    return (projected_a - projected_b).abs().mean()
    ### END SOLUTION


print(check_sliced_wasserstein(sliced_wasserstein))

# %% [markdown]
# Applied to the faces: 8x8 patches (192 numbers each) of the originals against those of each method's
# output, along 256 random directions. `sr_lib`'s version (used inside the multi-scale SWD of the table)
# must give the same numbers.

# %%
from sr_lib.perceptual import sliced_wasserstein as sliced_wasserstein_sr_lib

hr = torch.stack(list(faces.values()))
patches = {"original": hr}
with torch.no_grad():
    for name in ("sr", "srgan"):
        patches[label(name)] = models[name](degrade(hr)).clamp(0, 1)
patches = {name: torch.nn.functional.unfold(x.double(), 8, stride=8).transpose(1, 2).reshape(-1, 192)
           for name, x in patches.items()}
directions = torch.randn(256, 192, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
directions = directions / directions.norm(dim=1, keepdim=True)
for name in ("SR (no GAN)", "SRGAN"):
    yours = float(sliced_wasserstein(patches["original"], patches[name], directions))
    theirs = sliced_wasserstein_sr_lib(patches["original"], patches[name], directions)
    print(f"original vs {name:12}: yours {yours:.5f}, sr_lib {theirs:.5f}")
    assert abs(yours - theirs) < 1e-9

# %% [markdown]
# ### Exercise 5.2: the Fréchet distance
# FID fits a Gaussian to the Inception features of each image set and measures the Fréchet (Wasserstein-2)
# distance between the two Gaussians (Heusel et al. 2017). In one dimension its square is
# $(m_1 - m_2)^2 + (s_1 - s_2)^2 = (m_1 - m_2)^2 + s_1^2 + s_2^2 - 2\sqrt{s_1^2 s_2^2}$. Generalise that last
# form to means $\mu_1, \mu_2$ and covariance matrices $\Sigma_1, \Sigma_2$: squares of differences become
# squared norms, variances become covariances, a sum over dimensions becomes a trace and the square root
# a *matrix* square root (`scipy.linalg.sqrtm`; keep its real part). Write it for numpy arrays.

# %% nbgrader={"grade": false, "grade_id": "ex-5-2", "locked": false, "schema_version": 3, "solution": true}
def frechet_distance(mu1, cov1, mu2, cov2):
    """Exercise 5.2: the Frechet distance between N(mu1, cov1) and N(mu2, cov2)."""
    ### BEGIN SOLUTION
    from scipy.linalg import sqrtm
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * sqrtm(cov1 @ cov2).real))
    ### END SOLUTION


print(check_frechet_distance(frechet_distance))

# %% [markdown]
# The formula: $\lVert\mu_1 - \mu_2\rVert^2 + \operatorname{tr}\big(\Sigma_1 + \Sigma_2 - 2(\Sigma_1\Sigma_2)^{1/2}\big)$.
# Without the Inception weights we cannot compute FID here, but the formula works on any features. On
# the 192-number patches above, yours must agree with the pytorch-fid formula that `sr_lib` calls.

# %%
from sr_lib.perceptual import frechet_distance as frechet_from_features

features = {name: x.numpy() for name, x in patches.items()}
stats = {name: (f.mean(0), np.cov(f, rowvar=False)) for name, f in features.items()}
for name in ("SR (no GAN)", "SRGAN"):
    yours = frechet_distance(*stats["original"], *stats[name])
    theirs = frechet_from_features(features["original"], features[name])
    print(f"original vs {name:12}: yours {yours:.5f}, pytorch-fid's formula {theirs:.5f}")
    assert abs(yours - theirs) < 1e-4 * max(1.0, abs(theirs))

# %% [markdown]
# ## Side by side
# Original, bicubic, SR, SRGAN and the flow at two temperatures, with one eye enlarged 4x
# (nearest-neighbour, so you see pixels, not interpolation).

# %%
pairs, outputs = run_all(models, faces, SHOWN_TEMPERATURES)
fig = comparison_figure(list(faces), pairs, outputs, HELDOUT_DETAIL)
plt.show()

# %% [markdown]
# ## Temperature scrubber
# Move the slider: the flow's output is regenerated at the new latent temperature (same latent noise, so
# only the temperature changes), and its LR-PSNR, diversity (per-pixel spread of 4 draws) and HF-energy
# ratio update. The bicubic, SR and SRGAN outputs to its left do not move: they have no latent.
# "New sample" draws a different latent at the same temperature.

# %%
scrubber = TemperatureScrubber(models, faces)
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
# 192 px with nearest-neighbour, with the PSNR of that crop alone. Small crops on hair or skin show
# *what kind* of detail each method makes: *plausible* detail (GAN, flow) or *average* detail (SR). Tick
# **LR-consistent** to see every output projected onto the images that explain the LR input exactly
# (notebook 06): what still differs is what each method invented.

# %%
comparator = CropComparator(models, faces)
comparator.widget

# %%
comparator.top.value, comparator.left.value, comparator.size.value = 120, 100, 32
panel = comparator.last_panel
assert all(image.shape[-2:] == (32, 32) for image, _ in panel.values())
assert torch.equal(panel["original"][0], faces[comparator.image_choice.value][:, 120:152, 100:132])
for name, (_, value) in panel.items():
    print(f"{name:16} {'reference' if name == 'original' else f'{value:.2f} dB'}")
comparator.consistent.value = True
projected_panel = comparator.last_panel
assert torch.equal(projected_panel["original"][0], panel["original"][0])
assert not torch.equal(projected_panel["SRGAN"][0], panel["SRGAN"][0])
comparator.consistent.value = False
crop_psnr = {name: value for name, (_, value) in panel.items() if name != "original"}
assert crop_psnr["bicubic"] > crop_psnr["SR (no GAN)"] > crop_psnr["SRGAN"], "this crop reverses the table's order"
assert sr_over_bicubic["interval"][0] > 0, "over both whole faces SR beats bicubic"

# %% [markdown]
# On this default crop (32 px of the astronaut's face) bicubic, the weakest method over whole faces, has the highest PSNR,
# above SR, and SRGAN is below SR, although over both whole faces SR beats bicubic
# (a supported gap). A crop of 1,024 pixels is one tiny sample, and on a smooth patch bicubic's blur costs
# little while any invented detail in the wrong place costs PSNR. A crop shows *what* each method makes,
# not which is closer to the original: rank methods on whole image sets, with intervals.

# %% [markdown]
# ## Your own photo
# Click **your photo** and upload any picture (PNG, JPEG, TIFF, 8 or 16 bit, grayscale or colour): it is
# the *low-resolution input*, nothing is downsampled first, and every method makes it 4x larger. Only its
# central 96x96 pixels are used, so the notebook stays quick. Mind what that means for a phone photo: 96
# of its thousands of pixels across are a tiny patch, already sharp at its own resolution, while the
# models learnt to undo a 4x antialiased downsampling. For a fair test, make the photo 4x smaller yourself
# first (any image editor, or `sr_lib.imaging.degrade`) and upload that; for a whole photo of any size,
# run `python -m sr_lib upscale photo.jpg --out results/` (it works tile by tile, so memory stays bounded).
# Until you upload, the astronaut's face, made 4x smaller, stands in.
#
# There is no ground truth for your photo, so PSNR, SSIM and SWD cannot be computed. What remains is
# **LR-consistency**: downsample each output again and compare it with your photo. It tells whether an
# output *explains* your photo, not whether its invented detail is right.

# %%
upscaler = PhotoUpscaler(models, degrade(faces["astronaut"][None])[0], "the astronaut's face, 4x smaller")
upscaler.widget

# %%
consistency = upscaler.lr_psnr
for name, value in consistency.items():
    print(f"{name:16} LR-PSNR {value:.1f} dB")
learned = [name for name in consistency if name != "bicubic"]
assert all(consistency[name] > consistency["bicubic"] + 2 for name in learned)

# %% [markdown]
# Every learned method explains the input more than 2 dB better than bicubic interpolation does: bicubic
# upsampling followed by the (antialiased) downsampling blurs, so even the "no invention" baseline does
# not reproduce its own input. Upload a photo of your own and compare the crops: where do SRGAN and the
# flow invent texture that SR leaves smooth?

# %% [markdown]
# ## What the benchmarks say
# `python -m sr_lib bench` measures, in one run on your machine, the speed and memory ratios behind the
# study's "comparable compute": the structured log-det against brute force, the training throughput and
# activation memory of each method's training step, and inference time per megapixel against bicubic.
# The README quotes a run.
#
# ## Summary
# * Distortion (PSNR, SSIM) rewards the smooth average; perception measures (SWD here, FID and LPIPS
#   with weights) reward outputs distributed like real images; no method wins both.
# * The flow's temperature moves one trained model along that trade-off; the GAN sits at one point of it.
# * Without a ground truth (your own photo) only LR-consistency can be measured.
#
# ## Going further
# * Blau, Michaeli, [The perception-distortion tradeoff](https://arxiv.org/abs/1711.06077), CVPR 2018.
# * Heusel et al., [GANs trained by a two time-scale update rule converge to a local Nash equilibrium](https://arxiv.org/abs/1706.08500) (FID), NeurIPS 2017.
# * Zhang et al., [The unreasonable effectiveness of deep features as a perceptual metric](https://arxiv.org/abs/1801.03924) (LPIPS), CVPR 2018.
# * Karras et al., [Progressive growing of GANs](https://arxiv.org/abs/1710.10196), ICLR 2018: the sliced Wasserstein distance of Exercise 5.1.
# * Notebook 06 studies the same trade-off where everything can be computed exactly.
