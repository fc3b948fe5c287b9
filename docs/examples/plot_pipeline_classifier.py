"""
==================================================
A VAE in a Pipeline, feeding a classifier, vs PCA
==================================================

:class:`~skvae.VAETransformer` is a scikit-learn transformer: it goes in a
:class:`~sklearn.pipeline.Pipeline` between a scaler and a classifier, is
cross-validated like any other step, and compares directly with
:class:`~sklearn.decomposition.PCA`. Here both reduce the 64 pixels of
scikit-learn's handwritten digits to a few dimensions for a logistic
regression.
"""

import warnings

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skvae import PosteriorCollapseWarning, VAETransformer
from skvae.plotting import LatentSpaceDisplay

max_iter = 200
X, y = load_digits(return_X_y=True)
# sphinx_gallery_start_ignore
# The documentation's quick build (SKVAE_DOCS_QUICK=1) trains for a few epochs
# on part of the data; the scores are then not meaningful. Hidden from the page.
import os  # noqa: E402

if os.environ.get("SKVAE_DOCS_QUICK") == "1":
    max_iter = 5
    X, y = X[:600], y[:600]
# sphinx_gallery_end_ignore


# sphinx_gallery_thumbnail_number = 2


# %%
# Two pipelines, one difference
# -----------------------------
# Pixel intensities scaled into [0, 1] suit a Bernoulli likelihood.
# ``MinMaxScaler(clip=True)`` keeps the held-out folds in [0, 1] too.
def reducer_pipeline(reducer):
    return make_pipeline(
        MinMaxScaler(clip=True), reducer, LogisticRegression(max_iter=1000)
    )


def vae(n_components):
    return VAETransformer(
        n_components=n_components,
        likelihood="bernoulli",
        max_iter=max_iter,
        random_state=0,
    )


cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
rows = []
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    # Looked at below, once, rather than once per fold.
    warnings.simplefilter("ignore", PosteriorCollapseWarning)
    for n_components in [2, 8]:
        for name, reducer in [("PCA", PCA(n_components)), ("VAE", vae(n_components))]:
            scores = cross_val_score(reducer_pipeline(reducer), X, y, cv=cv)
            rows.append((name, n_components, scores.mean(), scores.std()))
    all_pixels = cross_val_score(reducer_pipeline("passthrough"), X, y, cv=cv)
accuracy = pd.DataFrame(rows, columns=["reducer", "n_components", "mean", "std"])
print(accuracy.round(3).to_string(index=False))
print(f"all 64 pixels: {all_pixels.mean():.3f} +- {all_pixels.std():.3f}")

# %%
# In two dimensions the non-linear map keeps more of what tells the digits
# apart. With more dimensions PCA catches up, and neither beats the classifier
# on all the pixels. Accuracy as bars:
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
table = accuracy.pivot(index="n_components", columns="reducer", values="mean")
errors = accuracy.pivot(index="n_components", columns="reducer", values="std")
table.plot.bar(ax=ax, yerr=errors, capsize=3, rot=0)
ax.axhline(all_pixels.mean(), color="grey", linestyle=":", label="all 64 pixels")
ax.set(ylabel="accuracy (3-fold CV)", ylim=(0, 1.05))
ax.legend(loc="lower right")
plt.show()

# %%
# Why the VAE does not gain from eight dimensions
# -----------------------------------------------
# A VAE pays for every latent dimension it uses with KL divergence, and
# switches off those that do not earn their cost: some of the eight collapse
# onto the prior and carry nothing (a :class:`~skvae.PosteriorCollapseWarning`
# says which). ``active_units_`` counts the others. A larger ``recon_weight``
# or a smaller ``beta`` would keep more of them, at the price of a less
# regular latent space.
scaled = MinMaxScaler(clip=True).fit_transform(X)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for recon_weight in ["auto", 256]:
        wide = vae(8).set_params(recon_weight=recon_weight).fit(scaled)
        print(
            f"recon_weight={recon_weight!r}: {wide.active_units_} active of 8; "
            f"KL per dimension {wide.kl_per_dimension_.round(3)}"
        )

# %%
# The two-dimensional maps
# ------------------------
# Fitted on all the digits, each reducer places every image in the plane. The
# displays take any codes, so PCA's are drawn the same way.
Z_pca = PCA(2).fit_transform(scaled)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    model = vae(2).fit(scaled)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
LatentSpaceDisplay(Z=Z_pca, y=y).plot(ax=axes[0], name="PCA")
LatentSpaceDisplay(Z=model.transform(scaled), y=y).plot(ax=axes[1], name="VAE")
axes[0].get_legend().remove()  # the same colours: one legend, beside the maps
plt.show()

# %%
# Pandas output
# -------------
# Like every scikit-learn transformer, ``set_output`` gives DataFrames, with
# column names from ``get_feature_names_out``.
model.set_output(transform="pandas")
print(model.transform(scaled[:3]))
