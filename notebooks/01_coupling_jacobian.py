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
# # 01 · The affine coupling layer and its Jacobian
#
# **You will learn** why a normalizing flow needs the log-determinant of its Jacobian, how an affine
# coupling layer makes that determinant free, and how to check such a claim numerically.
# **Prerequisites:** the chain rule and determinants (a triangular matrix's determinant is the product of
# its diagonal); PyTorch tensors. **Time:** 30 minutes reading and exercises; the notebook runs in about 10 s.
#
# **Notation** (all notebooks): $x$ the high-resolution (HR) image, $y$ the low-resolution (LR) image,
# $z$ the latent, $T$ the sampling temperature. Inside one layer, $u$ is its input and $v$ its output.
#
# A normalizing flow turns an HR image $x$ into a latent $z = f(x; y)$ of **the same dimension**, given
# the LR image $y$, and scores it by the change-of-variables formula
#
# $$\log p(x \mid y) = \log \mathcal N\big(f(x; y); 0, I\big) + \log\left|\det \frac{\partial f}{\partial x^T}\right| .$$
#
# The second term is the catch: for a $3 \times 256 \times 256$ image the Jacobian is a
# $196\,608 \times 196\,608$ matrix. This notebook derives why an **affine coupling layer** makes that
# determinant free, builds one from `sr_lib`, and checks the claim numerically.
#
# ## Derivation
# Split the layer's input channels in two halves, $u = (u_{1:d}, u_{d+1:D})$, and let $s(\cdot)$ and
# $t(\cdot)$ be *any* networks (here: conditioned on features $c$ of the LR image as well):
#
# $$v_{1:d} = u_{1:d}, \qquad v_{d+1:D} = u_{d+1:D} \odot \exp\big(s(u_{1:d}, c)\big) + t(u_{1:d}, c).$$
#
# **Inverse.** $v_{1:d}$ *is* $u_{1:d}$, so $s$ and $t$ can be recomputed from the output, and
#
# $$u_{1:d} = v_{1:d}, \qquad u_{d+1:D} = \big(v_{d+1:D} - t(v_{1:d}, c)\big) \odot \exp\big(-s(v_{1:d}, c)\big).$$
#
# Nothing about $s$ or $t$ needs to be inverted: they can be deep, non-invertible CNNs.
#
# **Jacobian.** $v_{1:d}$ does not depend on $u_{d+1:D}$, and $v_{d+1:D}$ depends on $u_{d+1:D}$ only
# element-wise:
#
# $$\frac{\partial v}{\partial u^T} = \begin{bmatrix} \mathbb I_d & 0 \\
#   \dfrac{\partial v_{d+1:D}}{\partial u_{1:d}^T} & \operatorname{diag}\big(\exp[s(u_{1:d}, c)]\big) \end{bmatrix}.$$
#
# The matrix is lower block-triangular, so its determinant is the product of the diagonal:
#
# $$\log\left|\det \frac{\partial v}{\partial u^T}\right| = \sum_{j} s_j(u_{1:d}, c).$$
#
# The dense lower-left block, where all the expressive power lives, never enters the determinant
# (Dinh et al., RealNVP, 2017).

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Code, display

from sr_lib import fast_mode
from sr_lib.config import get_config
from sr_lib.exercises import check_brute_force_logdet, check_coupling_inverse
from sr_lib.logdet import compare_logdet_cost, dense_jacobian
from sr_lib.models import AffineCoupling
from sr_lib.threads import use_threads

use_threads()  # torch's CPU threads as the command line sets them: no oversubscription on a shared machine
torch.manual_seed(0)
cfg = get_config("cpu")

# %% [markdown]
# ## The code the maths describes
# These are the forward and inverse passes of `sr_lib`'s coupling, exactly as the flow runs them:
# `chunk` splits the channels into $u_{1:d}$ and $u_{d+1:D}$, `scale_and_shift` is the network computing
# $s$ and $t$ from the first half and the condition, and the log-determinant is `s.flatten(1).sum(1)`.

# %%
display(Code(inspect.getsource(AffineCoupling.forward) + "\n" + inspect.getsource(AffineCoupling.inverse),
             language="python"))

# %% [markdown]
# ### Exercise 1.1: invert a coupling
# Write the inverse of $v_2 = u_2 \odot \exp(s) + t$ for given tensors $s$ and $t$ (shape
# $N \times C \times H \times W$), and the log-determinant of the *inverse* map, one number per sample.
# The check below runs your function on cases with known answers and says what is wrong, if anything.

# %% nbgrader={"grade": false, "grade_id": "ex-1-1", "locked": false, "schema_version": 3, "solution": true}
def coupling_inverse(v2, s, t):
    """Exercise 1.1: return u2 with v2 = u2 * exp(s) + t, and the inverse's log-determinant per sample."""
    ### BEGIN SOLUTION
    u2 = (v2 - t) * torch.exp(-s)
    logdet = -s.flatten(1).sum(1)
    ### END SOLUTION
    return u2, logdet


print(check_coupling_inverse(coupling_inverse))

# %% [markdown]
# ## One conditional coupling from `sr_lib`
# The flow works on the HR image squeezed to 12 channels at half resolution, so a coupling sees
# 6 channels and predicts 6 log-scales and 6 shifts. Its last convolution starts at zero (an untrained
# coupling is the identity); we draw it at random here so that $s$ and $t$ are not trivially zero.

# %%
coupling = AffineCoupling(12, cfg.gen_channels, cfg.flow_hidden, cfg.flow_scale_clamp).double().eval()
torch.nn.init.normal_(coupling.out.weight, std=0.1)

side = 3  # a 12 x 3 x 3 input: D = 108, a Jacobian small enough to look at
u = torch.randn(1, 12, side, side, dtype=torch.float64)
cond = torch.randn(1, cfg.gen_channels, side, side, dtype=torch.float64)

jacobian = dense_jacobian(lambda w: coupling(w, cond)[0], u)
v, logdet_structured = coupling(u, cond)
s, t = coupling.scale_and_shift(u[:, :6], cond)
print(f"Jacobian {tuple(jacobian.shape)}, sum(s) = {logdet_structured.item():.6f}")

# %%
half = jacobian.shape[0] // 2
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
magnitude = np.log10(jacobian.abs().numpy() + 1e-12)
im = axes[0].imshow(magnitude, cmap="viridis", vmin=-6, vmax=magnitude.max(), interpolation="nearest")
axes[0].axhline(half - 0.5, color="white", lw=1)
axes[0].axvline(half - 0.5, color="white", lw=1)
axes[0].set_title("log10 |∂v/∂u| of one coupling (D = 108)")
axes[0].set_xlabel("input index (u1 | u2)")
axes[0].set_ylabel("output index (v1 | v2)")
fig.colorbar(im, ax=axes[0], fraction=0.046)
axes[1].plot(torch.diagonal(jacobian)[half:].numpy(), "o", label="diagonal of the v2/u2 block")
axes[1].plot(torch.exp(s).flatten().detach().numpy(), "x", label="exp(s)")
axes[1].set_xlabel("element of u2")
axes[1].set_ylabel("∂v2/∂u2 (dimensionless)")
axes[1].legend()
axes[1].set_title("the lower-right block is diag(exp(s))")
fig.tight_layout()
plt.show()

# %% [markdown]
# The picture shows the four blocks of the derivation: identity top-left, exact zeros top-right, a dense
# lower-left block, and a diagonal lower-right block whose entries are $\exp(s)$. Now the numbers:

# %%
upper_right = jacobian[:half, half:]
lower_right = jacobian[half:, half:]
sign, logdet_brute = torch.linalg.slogdet(jacobian)
print(f"slogdet of the dense Jacobian: {logdet_brute.item():.12f}")
print(f"sum(s) from the coupling:      {logdet_structured.item():.12f}")

assert torch.equal(jacobian[:half, :half], torch.eye(half, dtype=torch.float64)), "v1 = u1"
assert torch.count_nonzero(upper_right) == 0, "v1 does not depend on u2"
assert torch.count_nonzero(lower_right - torch.diag(torch.diagonal(lower_right))) == 0, "diagonal block"
assert torch.allclose(torch.diagonal(lower_right), torch.exp(s).flatten(), rtol=0, atol=1e-12)
assert sign.item() == 1.0
assert abs(logdet_brute.item() - logdet_structured.item()) < 1e-10
assert torch.count_nonzero(jacobian[half:, :half]) > 0.9 * half * half, "the dense block is where t and s act"

# %% [markdown]
# ### Exercise 1.2: the log-determinant by brute force
# Write `brute_force_logdet(f, w)`: build the Jacobian of a function `f` from vectors to vectors at the
# point `w` (`torch.autograd.functional.jacobian`) and return $\log|\det J|$. Careful: determinants can
# be negative. The check tries a dense map; then we apply your function to the coupling above and compare
# it with `sum(s)`.

# %% nbgrader={"grade": false, "grade_id": "ex-1-2", "locked": false, "schema_version": 3, "solution": true}
def brute_force_logdet(f, w):
    """Exercise 1.2: log|det J| of f at w, from the dense Jacobian."""
    ### BEGIN SOLUTION
    jac = torch.autograd.functional.jacobian(f, w)
    return torch.linalg.slogdet(jac)[1]
    ### END SOLUTION


print(check_brute_force_logdet(brute_force_logdet))
flat = u.flatten()
yours = brute_force_logdet(lambda w: coupling(w.view_as(u), cond)[0].flatten(), flat)
print(f"your brute force on the coupling: {yours.item():.10f}, sum(s): {logdet_structured.item():.10f}")
assert abs(yours.item() - logdet_structured.item()) < 1e-9

# %% [markdown]
# ## What the structure saves
# Brute force needs the whole Jacobian (one backward pass per dimension, all $D^2$ entries) and an
# $O(D^3)$ determinant. The coupling gives the same number as a by-product of its forward pass.
# Timing both as the input grows (the best of three runs on this machine):

# %%
sides = [2, 4, 6, 8] if fast_mode() else [2, 4, 6, 8, 12, 16]
rows = compare_logdet_cost(coupling, cfg.gen_channels, sides)
for row in rows:
    print(f"D = {row['dim']:5d}: brute force {row['brute_force_s'] * 1e3:9.2f} ms, sum(s) "
          f"{row['structured_s'] * 1e3:6.3f} ms, ratio {row['speed_ratio']:8.0f}x, |difference| {row['abs_difference']:.1e}")
assert all(row["abs_difference"] < 1e-9 for row in rows)

fig, ax = plt.subplots(figsize=(6, 4))
dims = [row["dim"] for row in rows]
ax.loglog(dims, [row["brute_force_s"] for row in rows], "o-", label="autograd Jacobian + slogdet")
ax.loglog(dims, [row["structured_s"] for row in rows], "s-", label="coupling forward, sum(s)")
ax.set_xlabel("input dimension D")
ax.set_ylabel("seconds")
ax.legend()
ax.grid(True, which="both", alpha=0.3)
plt.show()
print(f"at D = {rows[-1]['dim']} the structured log-det is {rows[-1]['speed_ratio']:.0f}x faster; "
      f"a 3x256x256 training crop has D = 196,608")

# %% [markdown]
# The ratio grows with $D$: brute force scales at least as $D^2$ (and $D^3$ for the determinant),
# the structured sum as $D$. At the study's $256 \times 256$ training crops the brute-force way is not
# merely slow but impossible (the Jacobian alone would need about 300 GB in float64).
#
# ## Summary
# * A flow's likelihood needs $\log|\det J|$; for a general network that is an $O(D^3)$ computation on a
#   $D \times D$ matrix, impossible for images.
# * An affine coupling keeps half its input, scales and shifts the other half with networks of the first:
#   its inverse needs no inverse of those networks, and its Jacobian is triangular, so
#   $\log|\det J| = \sum s$.
# * Checked here: the four blocks of the Jacobian, the determinant to $10^{-10}$, and the cost gap.
#
# ## Going further
# * Dinh, Sohl-Dickstein, Bengio, [Density estimation using Real NVP](https://arxiv.org/abs/1605.08803), ICLR 2017: the coupling layer.
# * Kingma, Dhariwal, [Glow](https://arxiv.org/abs/1807.03039), NeurIPS 2018: 1x1 convolutions between couplings (notebook 02).
# * Try: make $s$ depend on $u_{d+1:D}$ too (edit `scale_and_shift`'s input) and watch the upper-right
#   block of the Jacobian fill in: the determinant is no longer a sum.
#
# **Next:** [02 · numerical invertibility](02_invertibility.ipynb), where 16 of these layers are chained
# and we check how exact "invertible" really is in floating point.
