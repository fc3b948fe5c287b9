"""
===============================================
Multiple imputation and Rubin's rules
===============================================

A regression fitted on a table whose holes were filled once treats the guesses
as measurements, and its standard errors are too small. Multiple imputation
fills the table several times with draws from ``p(x_miss | x_obs)``, fits the
regression on each completed table and pools the results with Rubin's rules.
Here :class:`~skvae.VAEImputer` with ``sample_posterior=True`` completes
scikit-learn's diabetes data, with 20% of the cells of ``X`` removed completely
at random, five times; a :class:`~sklearn.linear_model.LinearRegression` is
fitted on each, and the pooled coefficients are compared with the fit on the
complete data.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

from skvae import VAEImputer

m = 5  # completed tables
params = dict(n_importance_samples=100)
X, y = load_diabetes(return_X_y=True)
names = load_diabetes().feature_names
# sphinx_gallery_start_ignore
# The documentation's quick build (SKVAE_DOCS_QUICK=1) trains briefly with few
# draws; the intervals are then not meaningful. Hidden from the page.
import os  # noqa: E402

if os.environ.get("SKVAE_DOCS_QUICK") == "1":
    import warnings  # noqa: E402

    from sklearn.exceptions import ConvergenceWarning  # noqa: E402

    params = dict(n_importance_samples=10, max_iter=10)
    warnings.simplefilter("ignore", ConvergenceWarning)
# sphinx_gallery_end_ignore

rng = np.random.RandomState(0)
X_missing = X.copy()
X_missing[rng.uniform(size=X.shape) < 0.2] = np.nan
print(f"{np.isnan(X_missing).mean():.0%} of the cells missing, "
      f"{np.isnan(X_missing).any(axis=1).mean():.0%} of the rows incomplete")


# %%
# Ordinary least squares with its covariance
# ------------------------------------------
# Rubin's rules need each fit's estimate and its variance: the usual
# ``sigma^2 (X'X)^-1`` of least squares, intercept included.
def ols(X, y):
    model = LinearRegression().fit(X, y)
    design = np.column_stack([np.ones(len(X)), X])
    residual = y - model.predict(X)
    sigma2 = residual @ residual / (len(X) - design.shape[1])
    covariance = sigma2 * np.linalg.inv(design.T @ design)
    return model.coef_, np.diag(covariance)[1:]


complete_coef, complete_var = ols(X, y)

# %%
# Five completed tables
# ---------------------
# Each seed trains a VAE and draws the missing cells from its posterior
# predictive; the observed cells are the same in every table.
estimates, variances = [], []
for seed in range(m):
    imputer = VAEImputer(sample_posterior=True, random_state=seed, **params)
    completed = imputer.fit_transform(X_missing)
    coef, var = ols(completed, y)
    estimates.append(coef)
    variances.append(var)
estimates, variances = np.array(estimates), np.array(variances)

# %%
# Rubin's rules
# -------------
# The pooled estimate is the mean over the tables; its variance is the mean
# within-table variance plus ``(1 + 1/m)`` times the variance between tables,
# which is what single imputation leaves out.
pooled = estimates.mean(axis=0)
within = variances.mean(axis=0)
between = estimates.var(axis=0, ddof=1)
total = within + (1 + 1 / m) * between
print("fraction of the variance due to the missing values:",
      np.round((1 + 1 / m) * between / total, 2))

# %%
# Against the complete data
# -------------------------
# 95% intervals of each coefficient: from the complete data, and pooled over
# the five completed tables. The pooled intervals are wider (less was
# observed) and cover the complete-data estimates.
positions = np.arange(len(names))
fig, ax = plt.subplots(figsize=(7, 4))
ax.errorbar(positions - 0.15, complete_coef, yerr=1.96 * np.sqrt(complete_var),
            fmt="o", label="complete data")
ax.errorbar(positions + 0.15, pooled, yerr=1.96 * np.sqrt(total), fmt="s",
            label=f"multiple imputation (m={m}), Rubin's rules")
ax.axhline(0, color="grey", lw=0.8)
ax.set_xticks(positions, names)
ax.set_ylabel("coefficient")
ax.legend()
fig.tight_layout()
plt.show()
