"""
=====================================================
Posterior collapse and the reconstruction weight
=====================================================

The experiment of the blog post this project grew from, "Variational
Autoencoders" by Ke He (below, "the original post"): a variational
autoencoder with a Bernoulli (binary cross-entropy) likelihood and three latent
dimensions, trained on network flows of two classes, benign traffic and the
Slowloris denial-of-service attack.

Trained with the reconstruction term averaged over the 48 features (the Keras
convention, ``recon_weight=1``), the KL term wins and every latent dimension
collapses onto the prior: the codes say nothing about the input. Weighting the
reconstruction term by the number of features (``recon_weight="auto"``, which
is the textbook evidence lower bound) keeps the latent space informative and
the classes apart. See :ref:`posterior_collapse` for why.
"""

import textwrap
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from skvae import PosteriorCollapseWarning, VAETransformer
from skvae.analysis import latent_clustering_scores
from skvae.datasets import flows_preprocessor, make_flows
from skvae.plotting import (
    LatentDistributionDisplay,
    LatentSpaceDisplay,
    LossCurveDisplay,
)

max_iter = 500
# sphinx_gallery_start_ignore
# The documentation's quick build (SKVAE_DOCS_QUICK=1) trains for a few epochs
# only; the figures are then not meaningful. Hidden from the page.
import os  # noqa: E402

if os.environ.get("SKVAE_DOCS_QUICK") == "1":
    max_iter = 5
# sphinx_gallery_end_ignore

# sphinx_gallery_thumbnail_number = 2

# %%
# The data
# --------
# :func:`~skvae.datasets.make_flows` simulates the 755 flows of the original
# post's capture, 150 of them Slowloris, described by the 48 statistics of a flow
# extractor. :func:`~skvae.datasets.flows_preprocessor` does what the original
# post did: negative values to 0, then min-max scaling into [0, 1], the support of
# a Bernoulli likelihood.
X_raw, y = make_flows(random_state=0)
X = flows_preprocessor().fit_transform(X_raw)
labels = np.array(["benign", "slowloris"])[y]
print(X.shape)
print(pd.Series(labels).value_counts())

# %%
# Two models, one difference
# --------------------------
# Both have three latent dimensions, as in the original post, and the same seed.
# Only ``recon_weight`` differs. Both train exactly ``max_iter`` epochs, as the
# original post's Keras ``fit(epochs=...)`` did (``n_iter_no_change=max_iter``
# turns off the stop on a stalled loss, which on these flows ends training
# before the informative dimension opens). The collapsed model warns after
# ``fit``.
models = {}
for recon_weight in [1, "auto"]:
    vae = VAETransformer(
        n_components=3,
        likelihood="bernoulli",
        recon_weight=recon_weight,
        max_iter=max_iter,
        n_iter_no_change=max_iter,
        random_state=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PosteriorCollapseWarning)
        vae.fit(X)
    for warning in caught:
        if issubclass(warning.category, PosteriorCollapseWarning):
            text = f"recon_weight={recon_weight!r}: {warning.message}"
            print(textwrap.fill(text, width=72), end="\n\n")
    models[f"recon_weight={recon_weight!r}"] = vae

# %%
# The training curves show collapse as it happens: with ``recon_weight=1``
# the KL divergence falls to the floor within a few epochs and stays there,
# while the reconstruction error stalls well above that of the weighted model.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
for name, vae in models.items():
    LossCurveDisplay.from_estimator(vae, ax=axes, name=name)
axes[0].set_yscale("log")
plt.show()

# %%
# The latent space
# ----------------
# The original post's "standard" and "weighted" charts side by side, on the same
# scale. The collapsed model puts every flow at the origin; the weighted one
# spreads them out and the two classes apart. The axis labels give each
# dimension's mean KL divergence: a dimension below 0.01 nats is inactive.
# Both panels draw the same two dimensions, the weighted model's two most
# informative (largest KL), so that they compare like with like.
fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.5), layout="constrained")
codes = {name: vae.transform(X) for name, vae in models.items()}
limit = max(np.abs(Z).max() for Z in codes.values()) * 1.05
weighted = list(models.values())[-1]
dims = tuple(int(d) for d in np.argsort(-weighted.kl_per_dimension_)[:2])
for ax, (name, vae) in zip(axes, models.items(), strict=True):
    LatentSpaceDisplay(
        Z=codes[name], y=labels, kl_per_dimension=vae.kl_per_dimension_
    ).plot(ax=ax, name=name, dims=dims)
    if ax is axes[0]:
        ax.get_legend().remove()  # one legend for both
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit))
plt.show()

# %%
# Per latent dimension, the original post's second pair of charts. Under collapse
# all three dimensions show the same spike at zero for both classes. In the
# weighted model, a dimension with a large KL divergence spreads the flows out
# and sets the Slowloris flows apart, while one whose KL is near the 0.01-nat
# threshold carries little more than a collapsed one. The bins are shared, so
# the panels compare.
bins = np.linspace(-limit, limit, 41)
fig, axes = plt.subplots(2, 3, figsize=(10, 5.5), sharex=True, layout="constrained")
for row, (name, vae) in zip(axes, models.items(), strict=True):
    LatentDistributionDisplay(
        Z=codes[name], y=labels, kl_per_dimension=vae.kl_per_dimension_
    ).plot(ax=row, name=name, bins=bins)
plt.show()

# %%
# Numbers, and a caveat about the silhouette
# ------------------------------------------
# :func:`~skvae.analysis.latent_clustering_scores` scores how well the codes
# separate the classes. The silhouette ignores scale: the codes of a collapsed
# model are tiny, but if they are still ordered by class they can score well.
# Hence ``silhouette_active``, the silhouette of the active dimensions only,
# which is -1 (the worst) when no dimension is active, and the KL per dimension
# next to it.
table = {}
for name, vae in models.items():
    scores = latent_clustering_scores(vae, X, labels)
    table[name] = {
        "silhouette": scores["silhouette"],
        "silhouette_active": scores["silhouette_active"],
        "active_units": scores["active_units"],
        **{f"KL of z{k} (nats)": kl for k, kl in enumerate(scores["kl_per_dimension"])},
    }
print(pd.DataFrame(table).round(3))

# %%
# The command ``python -m skvae demo`` runs this experiment over several seeds
# with :class:`~sklearn.model_selection.GridSearchCV` and scores held-out rows;
# :ref:`sphx_glr_auto_examples_plot_grid_search_recon_weight.py` searches over
# more weights.
