"""The outlier detector: a VAE whose anomaly score is a log-likelihood estimate."""

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import OutlierMixin
from sklearn.utils.validation import check_is_fitted

from ._compat import Interval, StrOptions, fit_context, get_output_config
from ._data import tensor_blocks
from ._losses import importance_weighted_bound, importance_weighted_terms
from ._vae import VAETransformer, inference_module

# Seed of the fixed standard-normal draws of the importance-weighted bound:
# the same draws for every row and every call, so scores are deterministic and
# a row's score does not depend on the other rows.
_IMPORTANCE_SEED = 20_160_502
# Floats of the largest per-chunk array, (n_draws, rows, n_features) in
# float64: 2**22 of them is 32 MiB.
_CHUNK_FLOATS = 2**22
# Tukey's fence: contamination='auto' flags scores below Q1 - 1.5 * IQR of the
# training scores, the lower whisker of a box plot.
_FENCE = 1.5


class VAEOutlierDetector(OutlierMixin, VAETransformer):
    """Outlier detection with a variational autoencoder's log-likelihood.

    A VAE is fitted to (mostly) normal data; the score of a sample is an
    estimate of its log-likelihood under the model, the importance-weighted
    bound of Burda et al. (2016): rows the model finds unlikely are outliers.
    The API is that of :class:`~sklearn.ensemble.IsolationForest` and
    :class:`~sklearn.neighbors.LocalOutlierFactor` with ``novelty=True``:
    ``score_samples`` is higher for more normal rows, ``decision_function`` is
    ``score_samples - offset_`` (negative for outliers) and ``predict`` returns
    +1 for inliers and -1 for outliers. :meth:`feature_contributions` says
    which features make a row unlikely.

    Every parameter of :class:`VAETransformer` is a parameter here, with the
    same meaning; only the defaults of ``n_components``, ``activation``,
    ``likelihood`` and ``batch_size`` differ.
    :func:`skvae.datasets.anomaly_preprocessor` is the preprocessing
    recommended for heavy-tailed counts such as network flows.

    Parameters
    ----------
    n_components : int, default=4
        Dimension of the latent space.

    contamination : 'auto' or float, default='auto'
        Expected proportion of outliers in the training data; sets
        ``offset_``. A float in (0, 0.5] puts the threshold at that quantile
        of the training scores. 'auto' uses Tukey's fence on the training
        scores, ``Q1 - 1.5 * (Q3 - Q1)``: rows less likely than the lower
        whisker of their box plot are outliers.

    n_importance_samples : int, default=64
        Number of draws from ``q(z | x)`` in the importance-weighted bound
        (the ``k`` of Burda et al.). One gives a one-draw estimate of the
        ELBO; more give a tighter bound on ``log p(x)`` at a cost linear in
        the number. The draws are fixed and shared by all rows.

    hidden_layer_sizes : array-like of int, default=(64, 32)
        Widths of the encoder's hidden layers; the decoder mirrors them.

    activation : {'relu', 'tanh', 'logistic', 'elu', 'gelu', 'silu', \
'leaky_relu'}, default='tanh'
        Activation between hidden layers. 'tanh' gave a higher ROC AUC than
        the transformer's 'relu' on each data set of
        ``benchmarks/bench_anomaly.py`` (flows 1.000 vs 0.996, breast_cancer
        0.963 vs 0.955, digits 0.992 vs 0.990).

    likelihood : {'gaussian', 'bernoulli', 'calibrated_gaussian'}, \
default='calibrated_gaussian'
        The decoder's observation model (see :class:`VAETransformer`). The
        calibrated Gaussian learns one noise level per feature, so a feature
        that normal rows reconstruct well costs an outlier more when it is
        off.

    recon_weight : float or 'auto', default='auto'
        Weight of the reconstruction term in training; 'auto' is the textbook
        ELBO. The score always uses the unweighted likelihood.

    beta : float, default=1.0
        Weight of the KL term in training.

    kl_warmup : int, default=0
        Epochs over which the KL weight ramps up from 0 to ``beta``.

    max_iter : int, default=200
        Maximum number of epochs.

    batch_size : int, default=32
        Minibatch size. Smaller than the transformer's default: a detector is
        often fitted on a few hundred normal rows, and at 128 it would take
        too few steps in ``max_iter`` epochs (``benchmarks/bench_anomaly.py``).

    buffer_size : int, default=262_144
        Rows held by the shuffle buffer when ``fit`` streams an out-of-core
        ``X`` (memmap, zarr, h5py or dask array), as in
        :class:`VAETransformer`.

    learning_rate_init : float, default=1e-3
        Adam's learning rate.

    tol : float, default=1e-4
        Improvement below which an epoch counts as no improvement.

    n_iter_no_change : int, default=10
        Epochs without improvement after which training stops.

    early_stopping : bool, default=False
        Whether to stop on the ELBO of a held-out ``validation_fraction``.

    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping.

    warm_start : bool, default=False
        Whether ``fit`` continues from the previous solution.

    random_state : int, RandomState instance or None, default=None
        Seeds the training (see :class:`VAETransformer`). The scores of a
        fitted model are deterministic whatever it is.

    device : str or torch.device, default='cpu'
        Where to train: 'cpu', 'cuda' or 'auto'.

    verbose : int, default=0
        Whether to print one line per epoch.

    Attributes
    ----------
    offset_ : float
        Threshold of ``score_samples``: ``decision_function`` is
        ``score_samples - offset_``.

    column_nll_ : ndarray of shape (n_features,)
        Mean negative log-likelihood of each column on the training rows that
        observe it, in nats: what ``score_samples`` charges a missing (NaN)
        cell of that column, so that a row with holes scores like a complete
        row of its kind instead of looking more normal for having fewer
        cells to explain.

    module_ : torch.nn.Module
        The trained network.

    n_iter_ : int
        Number of epochs run.

    loss_curve_ : list of float
        The objective minimised, per sample, at each epoch.

    reconstruction_curve_ : list of float
        Negative log-likelihood per sample at each epoch.

    kl_curve_ : list of float
        KL divergence per sample at each epoch.

    validation_scores_ : list of float or None
        Mean held-out ELBO per epoch with ``early_stopping``, else None.

    best_validation_score_ : float or None
        Best of ``validation_scores_``, else None.

    kl_per_dimension_ : ndarray of shape (n_components,)
        Mean KL divergence of each latent dimension on the training data.

    active_units_ : int
        Number of latent dimensions that carry information.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit. Defined only when ``X`` has feature
        names that are all strings.

    See Also
    --------
    VAETransformer : The model, as a transformer.
    skvae.datasets.anomaly_preprocessor : Preprocessing for heavy-tailed counts.
    skvae.plotting.FeatureContributionDisplay : The explanations, drawn.
    sklearn.ensemble.IsolationForest : An outlier detector with the same API.

    Notes
    -----
    The detector is a subclass of :class:`VAETransformer`: training, warm
    starts, early stopping, devices and pickling are the transformer's, and so
    are ``transform`` (latent codes) and ``inverse_transform``. It adds the
    outlier API and replaces ``score_samples``, and relies on the
    transformer's ``fit`` and on ``module_.encode`` / ``module_.decode`` only,
    so that changes to how the transformer trains carry over. Its ``__init__``
    passes its parameters to the transformer's, so a parameter the transformer
    gains later keeps its default here until it is listed.

    The score is the importance-weighted bound with ``K =
    n_importance_samples`` fixed draws ``eps_k`` shared by all rows::

        log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x),  z_k = mu(x) + sigma(x) eps_k

    computed with log-sum-exp in float64 (the network runs in the dtype of
    ``X``). In expectation over the draws it lies between the ELBO
    (:meth:`VAETransformer.score_samples`) and ``log p(x)``, and it grows
    with ``K``. Measured on held-out normal rows by
    ``benchmarks/bench_anomaly.py`` (default detector), the bound at
    ``K = 64`` was above the ELBO by 3.5 nats per row on
    :func:`~skvae.datasets.make_flows` (log-standardised), 1.3 on
    breast_cancer (standardised) and 0.0 on one digit of load_digits;
    ``K = 1024`` added another 0.6, 0.1 and 0.0. Where the posterior is not
    Gaussian, the ELBO understates the likelihood by nats, unevenly across
    rows. The training weights ``recon_weight`` and ``beta`` do not enter the
    score. The proposal's log-variance is clamped to [-30, 20], which keeps
    the score finite for distant rows and leaves it a bound.

    For model selection on labelled validation data, label normal rows +1 and
    outliers -1 (as ``predict`` does) and use ``scoring='roc_auc'`` or
    ``'average_precision'`` in :class:`~sklearn.model_selection.GridSearchCV`:
    these scorers rank by ``decision_function``, higher for the normal class.
    Without ``scoring``, ``score`` (the mean log-likelihood estimate, no labels
    needed) is used.

    Missing values (NaN) are marginalised: the bound is that of the observed
    cells, ``log p(x_obs)``, and each missing cell adds ``-column_nll_[j]``,
    its column's typical log-likelihood. A row with fewer observed cells
    would otherwise have a larger log-likelihood (fewer terms, most of them
    negative) and pass as normal because of its holes
    (``tests/test_missing.py`` measures both on data). An all-missing row
    scores ``-column_nll_.sum()``. ``feature_contributions`` are NaN for
    missing cells.

    ``offset_`` is computed from the scores of the training data, on which
    the model is optimistic; held-out normal rows score a little lower, so
    slightly more of them than ``contamination`` are flagged.

    References
    ----------
    Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted
    Autoencoders. ICLR.

    An, J. and Cho, S. (2015). Variational Autoencoder based Anomaly
    Detection using Reconstruction Probability. SNU Data Mining Center.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAEOutlierDetector
    >>> rng = np.random.RandomState(0)
    >>> mixing = rng.normal(size=(2, 6))
    >>> X_train = rng.normal(size=(300, 2)) @ mixing
    >>> X_test = np.r_[rng.normal(size=(5, 2)) @ mixing, np.full((1, 6), 3.0)]
    >>> detector = VAEOutlierDetector(max_iter=20, random_state=0).fit(X_train)
    >>> detector.predict(X_test)
    array([ 1,  1,  1,  1,  1, -1])
    >>> detector.score_samples(X_test).shape
    (6,)
    >>> detector.feature_contributions(X_test[-1:]).shape
    (1, 6)
    """

    _parameter_constraints = {
        **VAETransformer._parameter_constraints,
        "contamination": [
            StrOptions({"auto"}),
            Interval(Real, 0, 0.5, closed="right"),
        ],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_components=4,
        *,
        contamination="auto",
        n_importance_samples=64,
        hidden_layer_sizes=(64, 32),
        activation="tanh",
        likelihood="calibrated_gaussian",
        recon_weight="auto",
        beta=1.0,
        kl_warmup=0,
        max_iter=200,
        batch_size=32,
        buffer_size=262_144,
        learning_rate_init=1e-3,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        random_state=None,
        device="cpu",
        verbose=0,
    ):
        super().__init__(
            n_components=n_components,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            likelihood=likelihood,
            recon_weight=recon_weight,
            beta=beta,
            kl_warmup=kl_warmup,
            max_iter=max_iter,
            batch_size=batch_size,
            buffer_size=buffer_size,
            learning_rate_init=learning_rate_init,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            warm_start=warm_start,
            random_state=random_state,
            device=device,
            verbose=verbose,
        )
        self.contamination = contamination
        self.n_importance_samples = n_importance_samples

    # ------------------------------------------------------------------ fit

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to ``X`` and set ``offset_`` from its scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, mostly normal rows.
        y : None
            Ignored.

        Returns
        -------
        self : VAEOutlierDetector
            The fitted detector.
        """
        return self._train_and_threshold(super().fit, X)

    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Update the model with one epoch over ``X``; ``offset_`` from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data.
        y : None
            Ignored.

        Returns
        -------
        self : VAEOutlierDetector
            The updated detector.
        """
        return self._train_and_threshold(super().partial_fit, X)

    def _train_and_threshold(self, train, X):
        """``train(X)``, then ``offset_`` from the scores of ``X``.

        All or nothing: a threshold that cannot be computed (e.g. a score that
        raises) undoes the training of this call too.
        """
        snapshot = self._restorable()
        train(X)
        try:
            bound, nll = self._importance_terms(X, contributions=True)
            # What a missing cell costs a row's score: its column's mean
            # negative log-likelihood on the training rows that observe it.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # none observed
                column_nll = np.nanmean(nll, axis=0)
            self.column_nll_ = np.where(np.isfinite(column_nll), column_nll, 0.0)
            missing = np.isnan(nll)
            self.offset_ = self._offset(bound - missing @ self.column_nll_)
        except BaseException:
            snapshot.restore(self)
            raise
        return self

    def _offset(self, scores):
        if self.contamination == "auto":
            q1, q3 = np.percentile(scores, [25.0, 75.0])
            return float(q1 - _FENCE * (q3 - q1))
        return float(np.percentile(scores, 100.0 * self.contamination))

    # ------------------------------------------------------------ inference

    def score_samples(self, X):
        """Importance-weighted bound on the log-likelihood of each row, in nats.

        Higher is more normal. The bound uses ``n_importance_samples`` fixed
        draws shared by all rows (see Notes of the class): deterministic, and a
        row's score does not depend on the other rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
            Estimated ``log p(x)`` of each sample.
        """
        bound, missing = self._importance_terms(X, contributions=False)
        if missing is not None:
            bound = bound - missing @ self.column_nll_
        return bound

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.

        Returns
        -------
        decision : ndarray of shape (n_samples,), float64
            Shifted scores; higher is more normal, the threshold is 0.
        """
        check_is_fitted(self, "offset_")
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for inliers and -1 for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to classify.

        Returns
        -------
        labels : ndarray of shape (n_samples,), int
            -1 where ``decision_function(X) < 0``, else +1.
        """
        decision = self.decision_function(X)
        labels = np.ones(decision.shape[0], dtype=int)
        labels[decision < 0] = -1
        return labels

    def score(self, X, y=None):
        """Mean of :meth:`score_samples`: the mean log-likelihood estimate.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.
        y : None
            Ignored.

        Returns
        -------
        score : float
            Mean importance-weighted bound, in nats; higher is better.
        """
        return float(np.mean(self.score_samples(X)))

    def feature_contributions(self, X):
        """Per-feature negative log-likelihood of the reconstruction, in nats.

        Entry ``(i, j)`` is ``E_q[-log p(x_ij | z)]``, averaged over the
        ``n_importance_samples`` draws of ``q(z | x_i)`` that
        :meth:`score_samples` uses. A row's entries sum to the reconstruction
        term of its ELBO estimated on those draws; the features with the
        largest entries are those the model finds least likely given the rest
        of the row. With ``likelihood='calibrated_gaussian'`` an entry is
        ``0.5 * (residual / scale_j)**2 + log(scale_j) + 0.5 * log(2 pi)``:
        compare a row with normal rows feature by feature (as
        :class:`~skvae.plotting.FeatureContributionDisplay` does), since the
        constant differs between features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to explain.

        Returns
        -------
        contributions : ndarray or DataFrame of shape (n_samples, n_features)
            float64. A pandas DataFrame with the feature names as columns when
            ``X`` is a DataFrame (with its index) or when
            ``set_output(transform="pandas")`` is in effect.
        """
        _, contributions = self._importance_terms(X, contributions=True)
        return self._wrap_features(contributions, X)

    def _importance_terms(self, X, contributions):
        """The bound per row and, if asked, the mean per-feature NLL per row.

        The NLL of a missing cell is NaN. Without ``contributions``, the second
        value is the missing-cell mask (None when every cell is observed).
        """
        check_is_fitted(self)
        X = self._validate_rows(X)
        self._check_support(X)
        # The cached copy in X's dtype (the trained module stays float32).
        module = inference_module(self, X.dtype)
        device = next(module.parameters()).device
        n_draws = int(self.n_importance_samples)
        eps = importance_noise(n_draws, self.n_components).to(device)
        width = max(X.shape[1], module.likelihood.n_outputs, 1)
        chunk = max(1, _CHUNK_FLOATS // (n_draws * width))
        bound = np.empty(X.shape[0], dtype=np.float64)
        nll = np.empty(X.shape, dtype=np.float64) if contributions else None
        with torch.no_grad():
            for rows, x in tensor_blocks(X, chunk, device):
                log_weights, nll_draws = importance_weighted_terms(module, x, eps)
                bound[rows] = importance_weighted_bound(log_weights).cpu()
                if contributions:
                    nll[rows] = nll_draws.mean(dim=0).cpu()
        missing = np.isnan(X) if np.isnan(X).any() else None
        if contributions and missing is not None:
            nll[missing] = np.nan
        if not np.all(np.isfinite(bound)):
            raise ValueError(
                "The log-likelihood estimate is not finite for some rows; the "
                "input is finite, so the model's weights are not. Refit it, for "
                "example with a smaller learning_rate_init."
            )
        return bound, (nll if contributions else missing)

    def _wrap_features(self, values, X):
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = [f"x{i}" for i in range(self.n_features_in_)]
        columns = [str(name) for name in names]
        if hasattr(X, "columns") and hasattr(X, "iloc"):
            import pandas as pd

            return pd.DataFrame(values, columns=columns, index=X.index)
        container = get_output_config("transform", self)["dense"]
        if container == "pandas":
            import pandas as pd

            return pd.DataFrame(values, columns=columns)
        if container == "polars":
            import polars as pl

            return pl.DataFrame(values, schema=columns, orient="row")
        return values


def importance_noise(n_draws, n_components):
    """The fixed standard-normal draws of the importance-weighted bound, float64."""
    generator = torch.Generator().manual_seed(_IMPORTANCE_SEED)
    return torch.randn(n_draws, n_components, generator=generator, dtype=torch.float64)
