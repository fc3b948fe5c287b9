"""How well the latent codes separate known classes, and whether they are alive."""

import numpy as np
import torch
from sklearn.metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)
from sklearn.utils.validation import check_consistent_length, column_or_1d

from .._data import tensor_blocks
from .._losses import kl_divergence
from .._vae import KL_ACTIVE_THRESHOLD
from ._common import module_and_device, rows_per_chunk, to_vae_input

# The score of a latent space with no active dimension: the worst silhouette
# there is, so that a fully collapsed model never wins a search.
COLLAPSED_SILHOUETTE = -1.0


def latent_clustering_scores(vae, X, y):
    """Cluster-separation scores of the latent codes, with collapse diagnostics.

    The scores are computed by :mod:`sklearn.metrics` on ``transform(X)``
    against the labels ``y``. Next to them, the diagnostics that keep them
    honest: the silhouette is scale-invariant, so a collapsed latent space
    whose codes are tiny (the posterior noise drowns them, the decoder ignores
    them) but still ordered by class can score well. ``kl_per_dimension``,
    ``active_units``, ``latent_std``, ``collapsed`` and ``silhouette_active``
    make that visible.

    Parameters
    ----------
    vae : VAETransformer or Pipeline
        A fitted ``VAETransformer``, or a fitted ``Pipeline`` whose last step
        is one (any steps before it).

    X : array-like of shape (n_samples, n_features)
        Samples to encode.

    y : array-like of shape (n_samples,)
        Class labels: at least 2 distinct values, and fewer distinct values
        than samples.

    Returns
    -------
    scores : dict
        - 'silhouette' : float, ``sklearn.metrics.silhouette_score`` of the
          codes; in [-1, 1], higher is better.
        - 'davies_bouldin' : float, ``davies_bouldin_score``; >= 0, lower is
          better.
        - 'calinski_harabasz' : float, ``calinski_harabasz_score``; higher is
          better.
        - 'silhouette_active' : float, the silhouette of the active
          dimensions' codes only, what :func:`latent_silhouette_scorer`
          returns; -1.0 (the worst silhouette) when no dimension is active.
        - 'kl_per_dimension' : ndarray of shape (n_components,), the mean KL
          divergence of each latent dimension's posterior from the prior,
          recomputed on ``X`` (not the fitted ``kl_per_dimension_``, which is
          that of the training data), in nats.
        - 'active_units' : int, the number of dimensions whose
          'kl_per_dimension' exceeds ``KL_ACTIVE_THRESHOLD`` (0.01 nats).
        - 'latent_std' : ndarray of shape (n_components,), the standard
          deviation of each dimension's codes over ``X``; next to the prior's
          1, a tiny value betrays a collapsed dimension.
        - 'collapsed' : bool, whether at least one dimension is inactive
          (``active_units < n_components``), the criterion of
          ``PosteriorCollapseWarning``.

    Raises
    ------
    ValueError
        If ``y`` has fewer than 2 distinct labels, as many labels as samples,
        or a length other than ``X``'s; or if the codes are not finite (a
        diverged model).

    See Also
    --------
    latent_silhouette_scorer : The 'silhouette_active' score as a scorer for
        model selection.

    Notes
    -----
    For codes that are all identical the metrics have conventional values
    (silhouette 0, Davies-Bouldin 0, Calinski-Harabasz 1), never NaN.

    Memory: the call holds ``X`` as the VAE sees it (after the pipeline's
    steps, as float32 or float64) and its codes, ``n_samples x
    n_components``; the KL pass encodes one chunk of rows at a time (the
    package's chunk rule, at most 16,384 rows); the silhouette's pairwise
    distances are computed by scikit-learn in chunks of its
    ``working_memory`` setting (``sklearn.config_context``).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skvae import VAETransformer
    >>> from skvae.analysis import latent_clustering_scores
    >>> X, y = load_digits(return_X_y=True)
    >>> X = MinMaxScaler().fit_transform(X[:300])
    >>> vae = VAETransformer(n_components=2, likelihood="bernoulli",
    ...                      max_iter=3, random_state=0).fit(X)
    >>> scores = latent_clustering_scores(vae, X, y[:300])
    >>> sorted(scores)  # doctest: +NORMALIZE_WHITESPACE
    ['active_units', 'calinski_harabasz', 'collapsed', 'davies_bouldin',
     'kl_per_dimension', 'latent_std', 'silhouette', 'silhouette_active']
    >>> -1.0 <= scores["silhouette"] <= 1.0
    True
    """
    Z, kl = _codes_and_kl(vae, X)
    y = _check_labels(y, Z)
    active = kl > KL_ACTIVE_THRESHOLD
    return {
        "silhouette": float(silhouette_score(Z, y)),
        "davies_bouldin": float(davies_bouldin_score(Z, y)),
        "calinski_harabasz": float(calinski_harabasz_score(Z, y)),
        "silhouette_active": _silhouette_active(Z, y, active),
        "kl_per_dimension": kl,
        "active_units": int(np.sum(active)),
        "latent_std": Z.std(axis=0, dtype=np.float64),
        "collapsed": bool(np.sum(active) < Z.shape[1]),
    }


def latent_silhouette_scorer(estimator, X, y):
    """Silhouette of the active latent dimensions' codes: a scorer.

    A callable with scikit-learn's scorer signature, for model selection of a
    ``VAETransformer`` by how well its codes separate known classes::

        GridSearchCV(VAETransformer(likelihood="bernoulli"),
                     {"recon_weight": [1, 8, "auto"]},
                     scoring=latent_silhouette_scorer)

    It also goes in a dict of scorers for ``cross_validate``.

    Parameters
    ----------
    estimator : VAETransformer or Pipeline
        A fitted ``VAETransformer``, or a fitted ``Pipeline`` whose last step
        is one; ``X`` goes through all of its steps.

    X : array-like of shape (n_samples, n_features)
        Samples to encode (the held-out fold in a search).

    y : array-like of shape (n_samples,)
        Class labels.

    Returns
    -------
    score : float
        ``sklearn.metrics.silhouette_score`` of the codes restricted to the
        active dimensions (mean KL on ``X`` above ``KL_ACTIVE_THRESHOLD``),
        in [-1, 1], higher is better. Collapsed dimensions are left out
        because the silhouette ignores scale: tiny codes that the decoder
        cannot use would otherwise count in full. With no active dimension
        the score is -1.0, the worst; codes that are all identical score 0.0.
        Never NaN.

    Raises
    ------
    ValueError
        If ``y`` is None, has fewer than 2 distinct labels (a one-class fold:
        use a stratified or shuffled split), or as many labels as samples; if
        the codes are not finite.

    See Also
    --------
    latent_clustering_scores : This score with the plain silhouette, the
        other clustering scores and the collapse diagnostics.

    Notes
    -----
    Holds what :func:`latent_clustering_scores` holds: ``X`` as the VAE sees
    it, its codes, and one chunk of rows of the KL pass at a time.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skvae import VAETransformer
    >>> from skvae.analysis import latent_silhouette_scorer
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = MinMaxScaler().fit_transform(X[:300]), y[:300]
    >>> search = GridSearchCV(
    ...     VAETransformer(likelihood="bernoulli", max_iter=3, random_state=0),
    ...     {"recon_weight": [1, 8, "auto"]},
    ...     scoring=latent_silhouette_scorer, cv=3,
    ... ).fit(X, y)
    >>> search.best_params_["recon_weight"] in (1, 8, "auto")
    True
    """
    Z, kl = _codes_and_kl(estimator, X)
    y = _check_labels(y, Z)
    return _silhouette_active(Z, y, kl > KL_ACTIVE_THRESHOLD)


def _codes_and_kl(estimator, X):
    """``transform(X)`` and the mean KL per latent dimension on ``X``."""
    vae, X_vae, _ = to_vae_input(estimator, X)
    # The public transform, so the scores are those of what users see. Not
    # vae.transform(X_vae): X_vae is validated to numpy, and a VAE fitted on
    # the DataFrame output of the steps warns about missing feature names.
    Z = np.asarray(estimator.transform(X))
    if not np.all(np.isfinite(Z)):
        raise ValueError(
            "The latent codes contain NaN or infinity: the VAETransformer's "
            "training diverged; lower learning_rate_init or rescale the data."
        )
    module, device = module_and_device(vae, X_vae.dtype)
    total = np.zeros(vae.n_components)
    with torch.no_grad():
        for rows, x in tensor_blocks(X_vae, rows_per_chunk(vae, None), device):
            mean, logvar = module.encode(x)
            # In float64: exp(logvar) overflows float32 already at logvar > 88.
            kl = kl_divergence(mean.double(), logvar.double()).cpu().numpy()
            overflowed = np.flatnonzero(~np.all(np.isfinite(kl), axis=1))
            if overflowed.size:
                # An overflow is not information: refuse rather than count it
                # as an active unit.
                indices = overflowed[:10] + rows.start
                raise ValueError(
                    "The KL divergence of the posterior from the prior overflows "
                    f"for rows of X (row indices {indices.tolist()}"
                    f"{', ...' if overflowed.size > 10 else ''}): they lie far "
                    "outside the training "
                    "data (e.g. unscaled input). Scale X as the training data was."
                )
            total += kl.sum(axis=0, dtype=np.float64)
    return Z, total / X_vae.shape[0]


def _check_labels(y, Z):
    if y is None:
        raise ValueError(
            "Clustering scores of the latent codes need class labels y; got None."
        )
    y = column_or_1d(y, warn=True)
    check_consistent_length(Z, y)
    missing = y != y if y.dtype.kind in "fc" else [v is None or v != v for v in y]
    if y.dtype.kind in "fcO" and np.any(missing):
        raise ValueError(
            f"y contains {int(np.sum(missing))} missing labels (NaN or None); "
            "every sample needs a class label. Drop those samples or give them "
            "a label of their own."
        )
    try:
        n_labels = np.unique(y).shape[0]
    except TypeError as exc:
        kinds = sorted({type(v).__name__ for v in y})
        raise TypeError(
            f"y mixes label types ({', '.join(kinds)}) that cannot be compared; "
            "use labels of one type, e.g. y.astype(str)."
        ) from exc
    n_samples = Z.shape[0]
    if not 2 <= n_labels < n_samples:
        raise ValueError(
            f"Clustering scores need 2 to n_samples - 1 = {n_samples - 1} distinct "
            f"labels, got {n_labels} for {n_samples} samples. In a search, a "
            "fold with a single class comes from unshuffled sorted labels: pass "
            "cv=StratifiedKFold(...) or shuffle the data."
        )
    return y


def _silhouette_active(Z, y, active):
    if not np.any(active):
        return COLLAPSED_SILHOUETTE
    return float(silhouette_score(Z[:, active], y))
