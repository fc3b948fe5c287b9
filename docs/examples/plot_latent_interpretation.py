"""
=============================================================
What each latent dimension means: Jacobians and traversals
=============================================================

Two views of a fitted VAE, as in the original post:

- the **encoder** side: which input features raise or lower each latent
  dimension, the Jacobian of the posterior mean with respect to the input
  (the "forward derivative" of the Jacobian-based saliency map attack);
- the **decoder** side: what moving along one latent dimension does to the
  reconstruction, by finite differences ("change each dimension slightly and
  observe the output") and by sweeping the dimension over the prior's range.

See :ref:`interpretation` for how to read them.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np

from skvae import VAETransformer
from skvae.analysis import latent_coupling, latent_feature_importance
from skvae.datasets import flows_preprocessor, make_flows
from skvae.plotting import JacobianDisplay, LatentTraversalDisplay

max_iter = 200
# sphinx_gallery_start_ignore
# The documentation's quick build (SKVAE_DOCS_QUICK=1) trains for a few epochs
# only; the figures are then not meaningful. Hidden from the page.
import os  # noqa: E402

if os.environ.get("SKVAE_DOCS_QUICK") == "1":
    max_iter = 5
# sphinx_gallery_end_ignore

# %%
# A model whose inputs have names
# -------------------------------
# Fitted on a DataFrame, the VAE keeps the column names in
# ``feature_names_in_`` and every display labels its axes with them. The
# derivatives are taken in the scaled space the VAE sees, where every feature
# lies in [0, 1]: there a derivative of 1 means the same thing for the
# duration of a flow as for its count of SYN flags.
X_raw, y = make_flows(random_state=0, as_frame=True)
X = flows_preprocessor().set_output(transform="pandas").fit_transform(X_raw)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a short max_iter in the quick build
    vae = VAETransformer(
        n_components=3, likelihood="bernoulli", max_iter=max_iter, random_state=0
    ).fit(X)
print("KL per dimension (nats):", np.round(vae.kl_per_dimension_, 3))

# %%
# The encoder Jacobian
# --------------------
# Entry (k, j) is the derivative of latent dimension k with respect to feature
# j, averaged over the flows: red raises the dimension, blue lowers it, white
# does nothing. Ignore the columns of features that never vary (``protocol``
# is always TCP, the URG flags are never set): the weights that read them were
# never trained.
fig, ax = plt.subplots(figsize=(11, 3.8), layout="constrained")
JacobianDisplay.from_estimator(vae, X, ax=ax)
plt.show()

# %%
# The same derivatives, ranked and named: the three features that raise and
# the three that lower each dimension most. ``sign_agreement`` is the share
# of flows whose derivative has the sign of the mean; well below 1 means the
# effect depends on where the flow is.
table = latent_feature_importance(vae, X, n_top=3)
columns = ["component", "feature", "direction", "mean_gradient", "sign_agreement"]
print(table[columns].round(3).to_string(index=False))

# %%
# The decoder's sensitivity
# -------------------------
# The other direction: the derivative of each reconstructed feature with
# respect to each latent dimension, by central finite differences at the
# codes of the flows, one bar chart per dimension, all on the same scale.
fig, axes = plt.subplots(3, 1, figsize=(11, 6.5), sharex=True, layout="constrained")
JacobianDisplay.from_estimator(vae, X, side="decoder", kind="bars", ax=axes)
plt.show()

# %%
# Latent traversals
# -----------------
# Derivatives are local. A traversal sweeps one dimension over the range its
# codes take on the data (from the 1st to the 99th percentile, as the axis
# says) with the others held at the mean code of the data, and plots the
# decoded features that change most. A collapsed dimension would change
# nothing; ``span="prior"`` sweeps -3 to 3, the bulk of the standard normal
# prior, instead, an extrapolation for a dimension whose codes stay narrow.
fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
for dim, ax in enumerate(axes):
    LatentTraversalDisplay.from_estimator(vae, X, dim=dim, ax=ax, n_features=4)
plt.show()

# %%
# The same sweep of the most informative dimension as a heatmap of every
# feature, for the whole picture.
most_informative = int(np.argmax(vae.kl_per_dimension_))
fig, ax = plt.subplots(figsize=(11, 4.2), layout="constrained")
LatentTraversalDisplay.from_estimator(
    vae, X, dim=most_informative, kind="heatmap", ax=ax
)
plt.show()

# %%
# Do the dimensions stay apart?
# -----------------------------
# :func:`~skvae.analysis.latent_coupling` follows a code through the decoder
# and back through the encoder. Its average Jacobian is the identity for a
# model whose dimensions come back as themselves; off-diagonal entries show
# dimensions that move each other, and a diagonal entry near zero a dimension
# that the decoder ignores or the encoder does not recover: compare the
# diagonal with the KL per dimension printed at the top.
print(np.round(latent_coupling(vae, vae.transform(X)), 2))
