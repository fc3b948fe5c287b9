"""
=========================================================
Choosing the reconstruction weight with a grid search
=========================================================

``recon_weight`` is a hyperparameter like any other: search over it with
:class:`~sklearn.model_selection.GridSearchCV`. Two scores make sense, and this
example computes both in one search:

- :func:`~skvae.analysis.latent_silhouette_scorer`, how well the codes of the
  held-out fold separate known classes (the silhouette of the active latent
  dimensions; -1 when the posterior has collapsed);
- the estimator's default score, the held-out evidence lower bound (ELBO), with
  the features summed and the KL term weighted one whatever the training
  weights were, so that models trained with different weights compare. It needs
  no labels.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from skvae import PosteriorCollapseWarning, VAETransformer
from skvae.analysis import latent_silhouette_scorer
from skvae.datasets import flows_preprocessor, make_flows

max_iter = 200
# sphinx_gallery_start_ignore
# The documentation's quick build (SKVAE_DOCS_QUICK=1) trains for a few epochs
# only; the scores are then not meaningful. Hidden from the page.
import os  # noqa: E402

if os.environ.get("SKVAE_DOCS_QUICK") == "1":
    max_iter = 5
# sphinx_gallery_end_ignore

# %%
# The search
# ----------
# The preprocessing goes inside the pipeline, so that each fold is scaled with
# the training rows only. Its :class:`~sklearn.preprocessing.MinMaxScaler` has
# ``clip=True``: a held-out row outside the training range still lands in
# [0, 1], the support of the Bernoulli likelihood, where
# :meth:`~skvae.VAETransformer.score_samples` would otherwise raise an error.
#
# A multi-metric search needs a callable for the default score too; it is
# just ``estimator.score(X)``.
X, y = make_flows(random_state=0)
pipe = make_pipeline(
    flows_preprocessor(),
    VAETransformer(
        n_components=3, likelihood="bernoulli", max_iter=max_iter, random_state=0
    ),
)


def elbo_score(estimator, X, y=None):
    return estimator.score(X)


recon_weights = [1, 8, 16, 32, "auto", 96, 192]
search = GridSearchCV(
    pipe,
    {"vaetransformer__recon_weight": recon_weights},
    scoring={"silhouette": latent_silhouette_scorer, "elbo": elbo_score},
    refit="silhouette",
    # Shuffled and stratified: every fold needs both classes for a silhouette.
    cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0),
)
with warnings.catch_warnings():
    # Collapse at small weights is what we are looking for here.
    warnings.simplefilter("ignore", PosteriorCollapseWarning)
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X, y)

results = pd.DataFrame(search.cv_results_)
summary = pd.DataFrame(
    {
        "recon_weight": results["param_vaetransformer__recon_weight"],
        "silhouette": results["mean_test_silhouette"],
        "sil. sd": results["std_test_silhouette"],
        "ELBO": results["mean_test_elbo"],
        "ELBO sd": results["std_test_elbo"],
    }
)
print(summary.round(3).to_string(index=False))
print("best:", search.best_params_)

# %%
# Both scores against the weight
# ------------------------------
# ``"auto"`` is the number of features, 48 here. Below some weight every
# latent dimension collapses and the silhouette scorer returns its floor of
# -1, whatever the plain silhouette of the tiny codes would be.
#
# ``"auto"`` trains on the ELBO itself, so one might expect the held-out ELBO
# to peak there. It need not: training stops at a local optimum, and a larger
# weight, by holding the KL term back, can reach a better one (the idea behind
# KL warm-up, ``kl_warmup``). The two scores also need not agree with each
# other: one asks how well the model explains the data, the other how well its
# codes separate two classes.
n_features = X.shape[1]
weights = [n_features if w == "auto" else w for w in recon_weights]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
for ax, metric, label in [
    (axes[0], "silhouette", "silhouette of the active dimensions"),
    (axes[1], "elbo", "held-out ELBO (nats per flow)"),
]:
    ax.errorbar(
        weights,
        results[f"mean_test_{metric}"],
        yerr=results[f"std_test_{metric}"],
        marker="o",
        capsize=3,
    )
    ax.axvline(n_features, color="grey", linestyle=":", label='"auto" (48)')
    ax.set(xscale="log", xlabel="recon_weight", ylabel=label)
    ax.legend(loc="lower right")
axes[0].set_title("latent_silhouette_scorer")
axes[1].set_title("default score")
plt.show()

# %%
# The refitted best model is an ordinary pipeline. Check its collapse
# diagnostics before trusting the silhouette: a dimension just above the
# 0.01-nat threshold counts as active but carries little.
best = search.best_estimator_[-1]
print("active units:", best.active_units_, "of", best.n_components)
print("KL per dimension (nats):", np.round(best.kl_per_dimension_, 3))
