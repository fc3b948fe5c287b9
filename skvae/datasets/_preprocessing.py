"""Preprocessing for anomaly detection on heavy-tailed counts, and a ready pipeline."""

import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

__all__ = ["anomaly_preprocessor", "make_anomaly_pipeline", "signed_log1p"]


def signed_log1p(X):
    """``sign(X) * log1p(|X|)``: ``log1p`` for counts, odd for negative values.

    Monotone, 0 at 0, close to the identity near 0 and logarithmic for large
    magnitudes, so it compresses heavy tails on both sides without discarding
    the sign (a flow's skewness or excess kurtosis can be negative). The input
    is never modified in place.

    Parameters
    ----------
    X : array-like
        Values of any sign.

    Returns
    -------
    X_log : ndarray or DataFrame
        Of the shape (and container) of ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.datasets import signed_log1p
    >>> signed_log1p(np.array([-np.e + 1, 0.0, 9.0]))
    array([-1.        ,  0.        ,  2.30258509])
    """
    return np.sign(X) * np.log1p(np.abs(X))


def _clipped_log1p(X):
    return np.log1p(np.maximum(X, 0))


def anomaly_preprocessor(*, clip_negative=False):
    """Build the recommended preprocessing of counts for anomaly detection.

    Network flows and similar tabular data are counts, sizes and durations
    with heavy tails: a few rows are orders of magnitude above the rest.
    Min-max scaling squeezes the bulk of such a column near 0, where a
    Bernoulli likelihood finds any row that is mostly zeros very likely (an
    attack that does little scores as normal). The logarithm spreads the bulk
    and tames the tail; standardisation then puts every feature on the scale
    that a Gaussian decoder with a learned noise level
    (``likelihood='calibrated_gaussian'``, the default of
    :class:`~skvae.VAEOutlierDetector`) expects.

    Parameters
    ----------
    clip_negative : bool, default=False
        Whether negative values go to 0 before ``log1p`` (what the seed did
        with negative skewness and kurtosis). By default they keep their sign:
        :func:`signed_log1p`.

    Returns
    -------
    preprocessor : Pipeline
        ``make_pipeline(FunctionTransformer(signed_log1p), StandardScaler())``,
        unfitted. It passes feature names through, so it works with DataFrames
        and ``set_output(transform="pandas")``.

    See Also
    --------
    make_anomaly_pipeline : This preprocessing followed by the detector.
    flows_preprocessor : The seed's min-max scaling, for a Bernoulli VAE.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.datasets import anomaly_preprocessor, make_flows
    >>> X, y = make_flows(random_state=0)
    >>> X_log = anomaly_preprocessor().fit_transform(X)
    >>> X_log.shape
    (755, 48)
    >>> bool(np.allclose(X_log.mean(axis=0), 0))
    True
    """
    transform = _clipped_log1p if clip_negative else signed_log1p
    return make_pipeline(
        FunctionTransformer(transform, feature_names_out="one-to-one"),
        StandardScaler(),
    )


def make_anomaly_pipeline(*, clip_negative=False, **detector_params):
    """Build :func:`anomaly_preprocessor` followed by a VAE outlier detector.

    Parameters
    ----------
    clip_negative : bool, default=False
        Passed to :func:`anomaly_preprocessor`.

    **detector_params
        Parameters of :class:`~skvae.VAEOutlierDetector`, e.g.
        ``contamination=0.01`` or ``random_state=0``.

    Returns
    -------
    pipeline : Pipeline
        Unfitted; its steps are named ``'pipeline'`` (the preprocessing) and
        ``'vaeoutlierdetector'``, so a grid search addresses the detector's
        parameters as ``vaeoutlierdetector__n_components``.

    See Also
    --------
    skvae.VAEOutlierDetector : The detector.

    Examples
    --------
    >>> from skvae.datasets import make_anomaly_pipeline, make_flows
    >>> X, y = make_flows(random_state=0)
    >>> model = make_anomaly_pipeline(max_iter=10, random_state=0)
    >>> model.fit(X[y == 0]).predict(X[:5]).shape
    (5,)
    >>> list(model.named_steps)
    ['pipeline', 'vaeoutlierdetector']
    """
    from skvae._outlier import VAEOutlierDetector

    return make_pipeline(
        anomaly_preprocessor(clip_negative=clip_negative),
        VAEOutlierDetector(**detector_params),
    )
