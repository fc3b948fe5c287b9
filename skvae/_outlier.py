"""The outlier detector: a VAE whose anomaly score is a log-likelihood estimate."""

import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import OutlierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted

from ._compat import Interval, StrOptions, fit_context, get_output_config, num_samples
from ._data import is_out_of_core, tensor_blocks
from ._losses import importance_weighted_bound, importance_weighted_terms
from ._vae import PosteriorCollapseWarning, VAETransformer, inference_module
from ._warnings import find_stack_level

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
# batch_size='auto': about this many steps per epoch, within these bounds.
_AUTO_STEPS_PER_EPOCH = 32
_AUTO_BATCH_BOUNDS = (32, 256)
# max_iter='auto': the epochs that make about this many gradient steps.
_AUTO_STEPS = 1600
# support_fraction=None with contamination='auto': the share left out of the
# second fit (see Notes of the class for the measurement behind it).
_AUTO_TRIMMED_SHARE = 0.1


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
    same meaning; the defaults of ``n_components``, ``activation``,
    ``likelihood``, ``max_iter`` and ``batch_size`` differ, and the last two
    also take 'auto'. The fit is robust to anomalies in the training data:
    it trains on all rows, then on the rows the model finds most likely
    (``support_fraction``; see Notes).
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

    n_importance_samples : int, default=16
        Number of draws from ``q(z | x)`` in the importance-weighted bound
        (the ``k`` of Burda et al.). One gives a one-draw estimate of the
        ELBO; more give a tighter bound on ``log p(x)`` at a cost linear in
        the number. The draws are fixed and shared by all rows. 64 instead
        of 16 cost the scoring 4 times as much for no gain in ROC AUC on
        ``benchmarks/bench_adbench.py`` (0.724 against 0.731; see Notes) or
        ``benchmarks/bench_anomaly.py``.

    support_fraction : float in (0, 1] or None, default=None
        Share of the training rows that the second half of the fit trains
        on: those the model of the first half finds most likely (a trimmed
        fit, as :class:`~sklearn.covariance.MinCovDet` estimates from its
        most central rows). None: ``1 - contamination`` when
        ``contamination`` is a float, and 0.9 for 'auto'. 1.0 fits once, on
        all rows. The rows used are ``support_``.

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

    max_iter : int or 'auto', default='auto'
        Maximum number of epochs, of both halves of a trimmed fit together.
        'auto': the epochs that make about 1,600 gradient steps, so that
        the cost of a fit hardly grows with the number of rows (as
        IsolationForest's subsamples of 256 rows keep its cost flat): 229
        epochs of 200 rows, 73 of 700 and about 50 from 1,024 rows to 8,192.

    batch_size : int or 'auto', default='auto'
        Minibatch size. 'auto': ``n_samples // 32`` within [32, 256], about
        32 steps per epoch. Small data keeps batches of 32 (at the
        transformer's 128, a few hundred normal rows would take too few
        steps, ``benchmarks/bench_anomaly.py``); larger data gets larger
        batches, which cost less per row.

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

    support_ : ndarray of shape (n_samples,), bool
        The training rows of the second half of the fit: all True with
        ``support_fraction=1.0``, after ``partial_fit`` and for an out-of-core
        ``X``.

    module_ : torch.nn.Module
        The trained network.

    n_iter_ : int
        Number of epochs run, both halves of a trimmed fit together.

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
    ``K = 8`` was above the ELBO by 2.2 nats per row on
    :func:`~skvae.datasets.make_flows` (log-standardised), 2.4 on
    breast_cancer (standardised) and 1.6 on one digit of load_digits;
    ``K = 64`` added another 0.5, 0.5 and -0.1 and ``K = 1024`` 0.3, 0.2 and
    0.0. Where the posterior is not
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

    **Training data with anomalies in it.** Rows to fit on rarely come
    cleaned of the anomalies the detector should flag, and a VAE learns
    whatever it is fitted to. ``fit`` therefore trains in two halves of
    ``max_iter``: the first on all rows, the second, continuing from the
    first, on the ``support_fraction`` of the rows that the first model finds
    most likely (``support_``), the idea of trimmed likelihood estimators
    and of :class:`~sklearn.covariance.MinCovDet`. ``offset_`` still comes
    from the scores of all rows. The model, the scores and the threshold
    stay deterministic and a row's score does not depend on the other rows:
    only training changed. ``partial_fit`` and out-of-core input train on
    all rows.

    The defaults were chosen on ADBench's 13 classical sets under its
    protocol, in which the detector is fitted on a training part that holds
    the anomalies (``benchmarks/bench_adbench.py --variants``, one seed,
    leave-one-set-out view in ``benchmarks/results/adbench_variants.md``).
    Leaving out the least likely tenth raised the mean ROC AUC from 0.698 to
    0.731 and the mean average precision from 0.278 to 0.379 (musk 0.62 to
    1.00, pendigits 0.90 to 0.97); leaving out a quarter gave 0.722, a
    twentieth 0.726, the share below Tukey's fence of the first fit's scores
    0.725, and trimming twice (three stages) 0.719. The budget of about 1,600
    steps, with batches of about ``n_samples / 32`` rows, brought the median
    fit+score time from 56 times IsolationForest's (200 epochs of batches of
    32, 64 draws) to 8 to 10 times (with the machine's load). 64 draws
    instead of 16 gave 0.724 at 16 times; the mean score of three seeds 0.730
    at 28 times: the gap to IsolationForest is not the variance of one fit.

    What the budget leaves unfitted is the noise level. Adam moves the
    calibrated log-scale of a feature by about ``learning_rate_init`` per
    step from 0, so after 1,600 steps each noise level is near 0.2: wider
    than many min-max scaled features (spreads of 0.03 to 0.1). On
    annthyroid, SpamBase, vertebral and Wilt the latent code then collapses
    (``active_units_`` is 0) and the score is a weighted distance from the
    mean. Trained until the noise fits (200 epochs of batches of 32,
    trimmed), the detector lifted annthyroid from 0.577 to 0.857, Wilt from
    0.362 to 0.699 and the mean to 0.748, at 50 times IsolationForest's time,
    but the fitted model also learns some of the anomalies among its
    training rows (pendigits 0.973 to 0.747; Cardiotocography, 22% of whose
    rows are anomalies, 0.724 to 0.556). Screening with the short fit and
    then fitting the support for 4,000 steps kept pendigits (0.980) and
    reached 0.739 at 23 times; the second half at a learning rate of 1e-2,
    0.734 at 10 times, won and lost 0.04 to 0.06 on three sets each.
    Learning rates of 3e-3 and 1e-2 throughout, budgets of 800 and 3,200
    steps, standardised inputs and unit noise gave 0.694 to 0.710. Chosen on
    the other 12 sets, the candidates within 10 times IsolationForest's time
    scored 0.715 on the held-out sets, the default kept for every set 0.731.

    The price is on clean training data: fitted on normal rows only
    (``benchmarks/bench_anomaly.py``, 5 splits), leaving out a tenth of them
    cost 0.008 of ROC AUC on flows (0.953 against 0.961 with
    ``support_fraction=1.0``) and 0.009 on breast_cancer (0.955 against
    0.964), within one standard deviation over the splits (0.011 and 0.019).
    When the training rows are known to be clean, pass
    ``support_fraction=1.0``.

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
        "support_fraction": [None, Interval(Real, 0, 1, closed="right")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "max_iter": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
    }

    def __init__(
        self,
        n_components=4,
        *,
        contamination="auto",
        n_importance_samples=16,
        support_fraction=None,
        hidden_layer_sizes=(64, 32),
        activation="tanh",
        likelihood="calibrated_gaussian",
        recon_weight="auto",
        beta=1.0,
        kl_warmup=0,
        max_iter="auto",
        batch_size="auto",
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
        self.support_fraction = support_fraction

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
        return self._train_and_threshold(self._fit_trimmed, X)

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
        with _overridden(self, batch_size=self._batch_size(num_samples(X))):
            return self._train_and_threshold(super().partial_fit, X)

    def _train_and_threshold(self, train, X):
        """``train(X)``, then ``offset_`` from the scores of ``X``.

        All or nothing: a threshold that cannot be computed (e.g. a score that
        raises), or a second stage of a trimmed fit that fails after the first
        succeeded, undoes the training of this call too.
        """
        snapshot = self._restorable()
        try:
            train(X)
            self.offset_ = self._offset(self._calibrated_scores(X))
        except BaseException:
            snapshot.restore(self)
            raise
        return self

    def _calibrated_scores(self, X):
        """Set ``column_nll_`` from the training rows ``X``; their scores.

        What a missing cell costs a row's score: its column's mean negative
        log-likelihood on the training rows that observe it.
        """
        bound, nll = self._importance_terms(X, contributions=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # none observed
            column_nll = np.nanmean(nll, axis=0)
        self.column_nll_ = np.where(np.isfinite(column_nll), column_nll, 0.0)
        return bound - np.isnan(nll) @ self.column_nll_

    def _fit_trimmed(self, X):
        """Fit on all rows, then again on the most likely ones (see Notes)."""
        n_samples = num_samples(X)
        batch_size = self._batch_size(n_samples)
        max_iter = self._max_iter(n_samples, batch_size)
        # An out-of-core X is streamed once per epoch, not indexed by row.
        streamed = is_out_of_core(X) and not n_samples <= self.buffer_size
        if self.support_fraction == 1.0 or max_iter < 2 or streamed:
            with (
                _overridden(self, batch_size=batch_size, max_iter=max_iter),
                _without_warnings(ConvergenceWarning) as dropped,
            ):
                super().fit(X)
            support = np.ones(n_samples, dtype=bool)
        else:
            screening = max_iter // 2
            with (
                _overridden(self, batch_size=batch_size, max_iter=screening),
                _without_warnings(ConvergenceWarning, PosteriorCollapseWarning),
            ):
                super().fit(X)
            scores = self._calibrated_scores(X)
            n_trimmed = int(round(self._trimmed_share(scores) * n_samples))
            n_support = max(1, n_samples - n_trimmed)
            # Ties broken by row order, so the support is deterministic.
            support = np.zeros(n_samples, dtype=bool)
            support[np.argsort(-scores, kind="stable")[:n_support]] = True
            with (
                _overridden(
                    self,
                    batch_size=self._batch_size(n_support),
                    max_iter=max_iter - screening,
                    warm_start=True,
                ),
                _without_warnings(ConvergenceWarning) as dropped,
            ):
                super().fit(_rows(X, np.flatnonzero(support)))
        self.support_ = support
        if dropped:
            # Said once, of the whole fit (the transformer's counts one stage).
            warnings.warn(
                f"Stochastic optimizer: Maximum iterations ({max_iter}) reached "
                "and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=find_stack_level(),
            )

    def _trimmed_share(self, scores):
        """Share of the training rows left out of the second fit."""
        if self.support_fraction is not None:
            return 1.0 - self.support_fraction
        if self.contamination == "auto":
            return _AUTO_TRIMMED_SHARE
        return float(self.contamination)

    def _max_iter(self, n_samples, batch_size):
        """Epochs of the whole fit: ``max_iter``, or those of the step budget."""
        if self.max_iter != "auto":
            return self.max_iter
        # max(1, ...): no rows is the transformer's error to raise, not ours.
        steps_per_epoch = max(1, -(-n_samples // batch_size))
        return max(1, -(-_AUTO_STEPS // steps_per_epoch))

    def _batch_size(self, n_samples):
        if self.batch_size != "auto":
            return self.batch_size
        low, high = _AUTO_BATCH_BOUNDS
        return int(min(max(n_samples // _AUTO_STEPS_PER_EPOCH, low), high))

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
        missing = np.isnan(X)
        if not missing.any():
            missing = None
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


def _rows(X, rows):
    """The ``rows`` of ``X``; a DataFrame stays one, with its column names."""
    if hasattr(X, "columns"):
        return _safe_indexing(X, rows)
    return np.asarray(X)[rows]


@contextmanager
def _overridden(estimator, **params):
    """Run the block with ``estimator``'s attributes set to ``params``, then restore.

    How the detector runs the transformer's ``fit`` with a resolved batch size
    and the two stages of a trimmed fit, without changing its parameters.
    """
    saved = {name: getattr(estimator, name) for name in params}
    for name, value in params.items():
        setattr(estimator, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(estimator, name, value)


@contextmanager
def _without_warnings(*categories):
    """Hold back warnings of ``categories`` raised in the block; re-raise the others.

    Yields the list that receives the held-back warnings. The first stage of a
    trimmed fit stops at its share of ``max_iter`` by design, and its model is
    not the one returned: its convergence and collapse warnings would be about
    nothing the user holds.
    """
    dropped = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield dropped
    for record in caught:
        if issubclass(record.category, categories):
            dropped.append(record)
        else:
            warnings.warn_explicit(
                record.message, record.category, record.filename, record.lineno
            )


def importance_noise(n_draws, n_components):
    """The fixed standard-normal draws of the importance-weighted bound, float64."""
    generator = torch.Generator().manual_seed(_IMPORTANCE_SEED)
    return torch.randn(n_draws, n_components, generator=generator, dtype=torch.float64)
