"""The scikit-learn estimator: validation, state and the public API."""

import copy
import dataclasses
import inspect
import os
import threading
import warnings
import weakref
from functools import partial
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._compat import Interval, StrOptions, fit_context
from ._data import (
    InMemoryRows,
    RowSource,
    StreamedRows,
    block_ranges,
    check_out_of_core,
    chunk_rows,
    format_rows,
    is_dask_array,
    is_out_of_core,
    refuse_overflow,
    to_tensor,
    torch_dtype,
)
from ._inference import (
    Workspace,
    allocator_trims_eagerly,
    decode,
    elbo_rows,
    encode,
    heap_kept,
    inference_threads,
    inference_view,
)
from ._interrupt import deferred_interrupts, prime_lazy_imports
from ._likelihoods import single_family
from ._losses import kl_divergence
from ._modules import ACTIVATIONS, VAEModule, widest_layer
from ._persistence import plain_state, torch_state
from ._tables import build_likelihood, needs_table, pairs, read_spec, to_frame
from ._tables import to_internal as table_to_internal
from ._training import (
    DivergenceError,
    Objective,
    TrainingHistory,
    fit_loop,
    make_adam,
    torch_threads,
)
from ._warnings import find_stack_level

# A latent dimension whose mean KL divergence on the training data is below this
# many nats carries (almost) no information about the input: it is "inactive"
# in the sense of Burda et al. (2016), who threshold the variance of the
# posterior mean at 0.01; for a collapsed unit both are close to zero.
KL_ACTIVE_THRESHOLD = 0.01

# Antithetic pairs of fixed standard-normal draws for score_samples.
_N_SCORE_PAIRS = 8
_SCORE_SEED = 20_161_110


class PosteriorCollapseWarning(UserWarning):
    """Warning emitted when latent dimensions carry no information after fit.

    A latent dimension is inactive when its mean KL divergence on the training
    data is below ``KL_ACTIVE_THRESHOLD`` (0.01 nats). The remedy is a larger
    ``recon_weight`` or a smaller ``beta``.

    Examples
    --------
    >>> import warnings
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skvae import PosteriorCollapseWarning, VAETransformer
    >>> X = MinMaxScaler().fit_transform(load_digits().data[:300])
    >>> vae = VAETransformer(likelihood="bernoulli", recon_weight=1, max_iter=30,
    ...                      random_state=0)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = vae.fit(X)
    >>> any(issubclass(w.category, PosteriorCollapseWarning) for w in caught)
    True
    >>> vae.active_units_
    0
    """


class TrainingInterruptedWarning(UserWarning):
    """Warning emitted when Ctrl-C stops ``fit``; the model stays usable.

    As in :class:`~sklearn.neural_network.MLPRegressor`, a ``KeyboardInterrupt``
    during training ends the loop and ``fit`` returns the model with the weights
    of the last completed step. Turn this warning into an error to stop a whole
    grid search instead of a single fit.

    Only the training loop is interruptible: a Ctrl-C in the main thread
    before it (while the network and optimiser are built, and torch imports
    what it imports lazily) or after it (the diagnostics such as
    ``kl_per_dimension_``) is honoured once that part is done, so the model is
    always consistent: untrained with ``n_iter_ == 0`` when no epoch ran.

    Examples
    --------
    >>> import warnings
    >>> from skvae import TrainingInterruptedWarning
    >>> warnings.simplefilter("error", TrainingInterruptedWarning)
    >>> issubclass(TrainingInterruptedWarning, UserWarning)
    True
    >>> warnings.resetwarnings()
    """


def _no_early_stopping(vae):
    """``partial_fit`` exists only without early stopping, as in MLPRegressor."""
    if vae.early_stopping:
        raise AttributeError(
            "partial_fit does not support early_stopping=True: each call is one "
            "epoch over its chunk, with no held-out data to stop on. Set "
            "early_stopping=False for partial_fit, or use fit."
        )
    return True


class VAETransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Variational autoencoder as a scikit-learn transformer.

    ``transform`` maps samples to the mean of the approximate posterior
    ``q(z | x)``, ``inverse_transform`` maps latent codes to the decoder's mean.
    Encoder and decoder are multilayer perceptrons trained with Adam on the
    negative evidence lower bound, with a weighted reconstruction term::

        loss = recon_weight * mean_over_features(-log p(x | z))
               + beta * KL(q(z | x) || N(0, I))

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the latent space.

    hidden_layer_sizes : array-like of int, default=(64, 32)
        Widths of the encoder's hidden layers; the decoder mirrors them.

    activation : {'relu', 'tanh', 'logistic', 'elu', 'gelu', 'silu', \
'leaky_relu'}, default='relu'
        Activation between hidden layers.

    likelihood : str or list of (str, columns), default='gaussian'
        The decoder's observation model: one family for every column, 'auto'
        (one per column, read from a DataFrame's dtypes) or a list of
        ``(family, columns)`` pairs in ColumnTransformer's style (names,
        indices, a boolean mask or ``make_column_selector``). The families:
        'gaussian', 'calibrated_gaussian', 'bernoulli', 'categorical',
        'poisson', 'negative_binomial', 'lognormal' and 'log1p_normal'; the
        rules of 'auto'
        and what tables get back are in the user guide (:ref:`tables`).
        'gaussian' has unit variance and
        suits standardised real-valued data (e.g. after ``StandardScaler``).
        'bernoulli' is binary cross-entropy for data in [0, 1] (computed from
        logits); ``inverse_transform`` then returns probabilities.
        'calibrated_gaussian' learns one standard deviation per feature (the
        "sigma-VAE" of Rybkin et al. 2021): with the textbook ELBO
        (``recon_weight='auto'``) the learned scale sets the balance between
        reconstruction and KL that a fixed-variance Gaussian leaves to the data's
        scale. It does not undo a reconstruction term shrunk by averaging over
        features: with ``recon_weight=1`` it can still collapse.

    recon_weight : float or 'auto', default='auto'
        Multiplies the reconstruction term, which is the negative
        log-likelihood averaged over features (the Keras convention). 'auto'
        means ``n_features_in_``, i.e. the textbook ELBO (sum over features).
        ``recon_weight=1`` reproduces the classic setting in which the KL term
        wins and the posterior collapses.

    beta : float, default=1.0
        Weight of the KL term.

    kl_warmup : int, default=0
        Number of epochs over which the KL weight ramps linearly from 0 to
        ``beta``. Epochs in the warm-up do not count towards convergence.

    max_iter : int, default=200
        Maximum number of epochs.

    batch_size : int, default=128
        Minibatch size, clipped to the number of training samples.

    learning_rate_init : float, default=1e-3
        Adam's learning rate.

    tol : float, default=1e-4
        Improvement of the training loss (or, with ``early_stopping``, of the
        validation ELBO) below which an epoch counts as no improvement.

    n_iter_no_change : int, default=10
        Number of epochs without improvement after which training stops.

    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the data, stop when its
        ELBO stops improving and restore the best weights.

    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping.

    warm_start : bool, default=False
        Whether ``fit`` continues from the previous solution.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, the validation split and the
        reparameterisation noise. An int gives bitwise-identical results on
        CPU. torch's global generator is never used.

    buffer_size : int, default=262_144
        Rows held in memory at a time when ``fit`` or ``partial_fit`` streams
        an out-of-core ``X`` (a ``np.memmap``, zarr array, h5py dataset or
        dask array): ``X`` is read in contiguous blocks of ``buffer_size / 8``
        rows (following the array's own chunks), the blocks are visited in a
        new random order every epoch, and the rows are shuffled inside a
        buffer of about ``buffer_size`` rows before they are cut into batches.
        The memory of such a fit is about two buffers of float32 rows plus
        the model. An in-memory ``X``, or one of at most ``buffer_size`` rows,
        is loaded and shuffled whole.

    device : str or torch.device, default='cpu'
        Where to train: 'cpu', 'cuda' (or 'cuda:N'), or 'auto' for CUDA when
        available. Inference runs where the model is; a pickled model always
        loads on CPU.

    verbose : int, default=0
        Whether to show progress: epoch i/max_iter, the loss, the
        reconstruction and KL terms, the time per epoch and the time left, as
        a live tqdm bar on a terminal when tqdm is installed, otherwise one
        aligned line per epoch; then a one-line summary (epochs, why training
        stopped, active units). The same display as ``skvae demo``'s.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network, with ``encoder`` and ``decoder`` sub-modules and
        ``encode(x) -> (mean, logvar)`` and ``decode(z)`` methods.

    n_iter_ : int
        Number of epochs run.

    loss_curve_ : list of float
        The objective minimised, per sample, at each epoch.

    reconstruction_curve_ : list of float
        Negative log-likelihood, summed over features, per sample, at each
        epoch (unweighted).

    kl_curve_ : list of float
        KL divergence, summed over latent dimensions, per sample, at each epoch
        (unweighted). A curve that goes to zero is posterior collapse.

    validation_scores_ : list of float or None
        Mean ELBO of the held-out data at each epoch; None without
        ``early_stopping``.

    best_validation_score_ : float or None
        Best of ``validation_scores_``; None without ``early_stopping``.

    kl_per_dimension_ : ndarray of shape (n_components,)
        Mean KL divergence of each latent dimension under the final weights:
        on every row of ``X`` (the chunk passed, for ``partial_fit``), or, when
        an out-of-core ``X`` was streamed, on a bounded sample of it (evenly
        spaced blocks, at most ``buffer_size`` rows, read once after
        training) instead of another pass over ``X``.

    active_units_ : int
        Number of latent dimensions whose ``kl_per_dimension_`` exceeds
        ``KL_ACTIVE_THRESHOLD`` (0.01 nats).

    likelihoods_ : list of (str, list)
        The family of every column, as ``likelihood`` takes it: what 'auto'
        chose, or the one family over all columns.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit. Defined only when ``X`` has feature
        names that are all strings.

    See Also
    --------
    sklearn.decomposition.PCA : Linear dimensionality reduction.
    sklearn.neural_network.MLPRegressor : The training loop this one follows.

    Notes
    -----
    A :class:`PosteriorCollapseWarning` is emitted after ``fit`` when latent
    dimensions are inactive; the remedy is a larger ``recon_weight`` or a
    smaller ``beta``.

    Training runs in float32; a float64 input is transformed by a float64 copy
    of the trained weights, so the output dtype follows the input.

    On CPU, small training steps (up to about 64 million floating-point
    operations: the default network up to ``batch_size=1024``) run on one
    thread, which is faster for them; ``torch.set_num_threads`` is set for each
    epoch and restored after it. The setting is process-wide: other Python
    threads that run torch during a fit see it too. Larger steps use torch's
    own setting.

    References
    ----------
    Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.

    Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted
    Autoencoders. ICLR.

    Rybkin, O., Daniilidis, K. and Levine, S. (2021). Simple and Effective
    VAE Training with Calibrated Decoders. ICML.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skvae import VAETransformer
    >>> X = MinMaxScaler().fit_transform(load_digits().data)
    >>> vae = VAETransformer(n_components=2, likelihood="bernoulli",
    ...                      max_iter=5, random_state=0)
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (1797, 2)
    >>> vae.inverse_transform(Z).shape
    (1797, 64)

    A table as it comes, one family per column from its dtype:

    >>> import pandas as pd
    >>> table = pd.DataFrame({
    ...     "size": [1.2, 3.4, 0.7, 2.2] * 25,
    ...     "packets": [0, 3, 1, 12] * 25,
    ...     "protocol": pd.Categorical(["tcp", "udp", "tcp", "icmp"] * 25),
    ... })
    >>> vae = VAETransformer(likelihood="auto", max_iter=3, random_state=0)
    >>> vae = vae.fit(table)
    >>> vae.likelihoods_
    [('lognormal', ['size']), ('negative_binomial', ['packets']), \
('categorical', ['protocol'])]
    >>> [str(dtype) for dtype in vae.sample(2, random_state=0).dtypes]
    ['float64', 'int64', 'category']
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATIONS))],
        # Names are checked by skvae._likelihoods.get_family, with the one
        # message every path gives; lists by skvae._tables.read_spec.
        "likelihood": [str, list],
        "recon_weight": [
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup": [Interval(Integral, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "buffer_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(64, 32),
        activation="relu",
        likelihood="gaussian",
        recon_weight="auto",
        beta=1.0,
        kl_warmup=0,
        max_iter=200,
        batch_size=128,
        learning_rate_init=1e-3,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        random_state=None,
        buffer_size=262_144,
        device="cpu",
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.recon_weight = recon_weight
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.random_state = random_state
        self.buffer_size = buffer_size
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ fit

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. For ``likelihood='bernoulli'``, values in [0, 1].
        y : None
            Ignored.

        Returns
        -------
        self : VAETransformer
            The fitted estimator.

        Raises
        ------
        ValueError
            If training diverges (the loss or the weights stop being finite).
            This call, like any call of ``fit`` that raises, then leaves the
            estimator exactly as it was before it: unfitted, or with its
            previous weights, optimiser state, curves and attributes.
        """
        return self._fit_all_or_nothing(X, incremental=False)

    @available_if(_no_early_stopping)
    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Update the model with one epoch over ``X``.

        For data that arrives in chunks. The first call initialises the model;
        the optimiser's state and the random stream carry over between calls.
        With ``early_stopping=True`` there is no ``partial_fit`` (an
        AttributeError says so, and ``hasattr`` is False): a chunk is one epoch
        and there is no held-out data to stop on. MLPRegressor refuses it too.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data.
        y : None
            Ignored.

        Returns
        -------
        self : VAETransformer
            The updated estimator. A call that raises (e.g. on divergence)
            leaves it as it was before that call.
        """
        return self._fit_all_or_nothing(X, incremental=True)

    def _fit_all_or_nothing(self, X, incremental):
        """``_fit``, but a call that raises leaves ``self`` exactly as it was.

        ``_fit`` updates the network, the optimiser, the history and the random
        stream in place; a snapshot of them (one copy, so the optimiser still
        refers to the snapshot's parameters) goes back into ``self.__dict__`` on
        any exception. A fit whose weights end up not finite counts as diverged.
        """
        # Ctrl-C outside the training loop is deferred until the state is
        # consistent (_interrupt.py): no half-built estimator, no half-imported
        # module, no diagnostics of other weights.
        with deferred_interrupts() as interrupts:
            prime_lazy_imports()
            return self._fit_or_restore(X, incremental, interrupts)

    def _restorable(self):
        """A snapshot of ``self``; its ``restore(self)`` undoes what came after.

        For subclasses whose ``fit`` does more after ``VAETransformer.fit``
        (e.g. the outlier detector's threshold), so that the whole call stays
        all or nothing.
        """
        return _Snapshot(self)

    def _fit_or_restore(self, X, incremental, interrupts):
        snapshot = _Snapshot(self)
        try:
            self._fit(X, incremental, interrupts)
            if not all(
                bool(torch.isfinite(p).all()) for p in self.module_.parameters()
            ):
                raise DivergenceError(
                    "Training diverged: the weights are not finite after "
                    f"{self.n_iter_} epochs. Lower learning_rate_init (now "
                    f"{self.learning_rate_init!r}), or scale the input (e.g. "
                    "StandardScaler or MinMaxScaler)."
                )
        except BaseException as exc:
            snapshot.restore(self)
            if isinstance(exc, DivergenceError):
                kept = (
                    "(it is still unfitted)."
                    if not snapshot.fitted
                    else "(its previous weights, optimiser state and curves)."
                )
                kept = f"The estimator keeps its state from before this call {kept}"
                raise ValueError(f"{exc} {kept}") from None
            raise
        return self

    def _fit(self, X, incremental, interrupts):
        first_pass = not hasattr(self, "module_") or not (
            self.warm_start or incremental
        )
        _check_integer_params(self)
        X = _detached(X)
        check_numeric_input(X)
        # Out-of-core data larger than one buffer is streamed; anything else
        # is converted whole.
        # (An unknown number of rows, NaN, counts as more: check_out_of_core
        # then says how to fix it, instead of loading the whole array.)
        streamed = is_out_of_core(X) and X.ndim >= 1
        streamed = streamed and not X.shape[0] <= self.buffer_size
        table = None if first_pass else getattr(self, "_table", None)
        if streamed:
            if (first_pass and needs_table(self.likelihood, X)) or table is not None:
                raise ValueError(
                    f"likelihood={self.likelihood!r} reads a table column by "
                    "column, which the streaming paths (memmap, zarr, h5py, "
                    "dask) do not: they take numeric arrays under one family "
                    "name, such as likelihood='calibrated_gaussian'. Load the "
                    "table into memory (e.g. a pandas DataFrame) to use it."
                )
            n_samples, n_features = check_out_of_core(
                X, None if first_pass else self.n_features_in_
            )
        else:
            if first_pass and needs_table(self.likelihood, X):
                table = read_spec(self.likelihood, X)
            if table is not None:
                X = table_to_internal(table, X)
            X = validate_data(
                self,
                X,
                dtype=[np.float64, np.float32],
                reset=first_pass,
                ensure_all_finite="allow-nan",
            )
            n_samples, n_features = X.shape
        # NaN marks a missing value; None: not known before the stream is read.
        missing = None if streamed else bool(np.isnan(X).any())
        if first_pass:
            # The encodings' statistics are a few elementwise passes over X:
            # one thread unless X is large, as for inference (two threads on a
            # busy 2-core machine made them 20x slower, 5 ms -> 100 ms).
            threads = inference_threads(20 * n_samples * n_features, "cpu")
            with torch_threads(threads):
                if table is not None:
                    likelihood = build_likelihood(table, X, mask_inputs=bool(missing))
                else:
                    likelihood = single_family(
                        self.likelihood, n_features, mask_inputs=bool(missing)
                    )
                    if not streamed:
                        likelihood.fit_statistics(X)
        else:
            likelihood = self.module_.likelihood
        if not streamed:
            self._check_support(X, likelihood=likelihood)
            if not first_pass:
                # Bounds set from the first pass (a count's largest mean, a
                # transformed range) must not clip the rows trained on now.
                likelihood.extend_ranges(X)
        hidden = self._check_hidden_layer_sizes()
        if first_pass:
            _check_network_size(n_features, self.n_components, hidden)
        if first_pass or not incremental:
            # A fresh stream per fit; partial_fit calls continue the first one's.
            self._random_state = check_random_state(self.random_state)
        seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        device = _resolve_device(self.device)
        if streamed and first_pass:
            self.n_features_in_ = n_features
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        if first_pass:
            self._table = table
            self.likelihoods_ = _likelihood_pairs(self, table)

        # Any cached dtype copy of the weights is about to go stale.
        _MODULE_CACHES.pop(self, None)
        if first_pass:
            init_generator = torch.Generator().manual_seed(seed)
            self.module_ = VAEModule(
                likelihood,
                self.n_components,
                hidden,
                self.activation,
                generator=init_generator,
            )
            self._history = TrainingHistory()
            self._optimizer = None
            self._optimizer_state = None
        elif next(self.module_.parameters()).device != device and (
            self._optimizer is not None
        ):
            # Adam's moments live on the old device: rebuild the optimiser from its
            # state dict, which load_state_dict moves next to the parameters.
            self._optimizer_state = self._optimizer.state_dict()
            self._optimizer = None
        self.module_.to(device)
        optimizer = self._get_optimizer()

        validate = self.early_stopping and not incremental
        score_eps = val_rows = None
        if validate:
            score_eps = score_noise(self.n_components, torch.float32, device)
        if streamed:
            source = RowSource(
                X, np.float32, check_block=self._support_check
            )
            ranges = block_ranges(X, max(1, self.buffer_size // _BLOCKS_PER_BUFFER))
            if validate:
                ranges, val_ranges = _split_blocks(
                    ranges, self.validation_fraction, self._random_state
                )
                val_rows = StreamedRows(source, val_ranges, self.buffer_size, device)
            rows = StreamedRows(source, ranges, self.buffer_size, device)
            # Diagnostics after fit: a bounded sample, not another pass.
            diagnostic_rows = rows.sample(self.buffer_size)
        else:
            # The one copy of X that training makes; the validation split and
            # the shuffles index into it.
            X_all = to_tensor(X, np.float32, device)
            if X.dtype != np.float32:
                # X is finite (validate_data), but a float64 value beyond
                # float32's range became inf. Checked chunk by chunk: isfinite
                # of the whole copy would hold 1.5x its size in temporaries.
                chunk = chunk_rows(n_features)
                for start in range(0, n_samples, chunk):
                    finite = ~torch.isinf(X_all[start : start + chunk]).any(dim=1)
                    if not bool(finite.all()):
                        row = start + int(torch.nonzero(~finite)[0, 0])
                        refuse_overflow(X[row], row, "X", np.float32)
            rows = diagnostic_rows = InMemoryRows(X_all)
            if validate:
                train_idx, val_idx = _split_indices(
                    n_samples, self.validation_fraction, self._random_state
                )
                rows = InMemoryRows(X_all, torch.from_numpy(train_idx).to(device))
                val_rows = InMemoryRows(X_all, torch.from_numpy(val_idx).to(device))

        generator = torch.Generator(device=device).manual_seed(seed)
        epochs_before = self._history.n_epochs
        status = "interrupted"
        try:
            if interrupts.pending:
                raise KeyboardInterrupt  # Ctrl-C before the loop: no epoch run.
            interrupts.allow()
            status = fit_loop(
                self.module_,
                optimizer,
                self._objective(missing),
                rows,
                history=self._history,
                max_epochs=1 if incremental else self.max_iter,
                batch_size=min(self.batch_size, rows.n_rows),
                generator=generator,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                val_rows=val_rows,
                score_eps=score_eps,
                check_convergence=not incremental,
                verbose=self.verbose,
            )
        except KeyboardInterrupt:
            # Before fit_loop's own handler: nothing was trained.
            status = "interrupted"
        finally:
            interrupts.defer()
            self.module_.eval()
        self._set_fitted_attributes(diagnostic_rows)
        if interrupts.pending:
            status = "interrupted"
        if self.verbose and not incremental:
            from ._progress import fit_summary, stop_reason

            reason = stop_reason(
                status,
                max_iter=self.max_iter,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                early_stopping=self.early_stopping,
            )
            print(
                fit_summary(
                    self.n_iter_ - epochs_before,
                    reason,
                    self.active_units_,
                    self.n_components,
                    total_epochs=self.n_iter_,
                ),
                flush=True,
            )
        if status == "interrupted":
            warnings.warn(
                "Training interrupted by user; the model keeps the weights of the "
                f"last completed step (after {self.n_iter_} epochs).",
                TrainingInterruptedWarning,
                stacklevel=find_stack_level(),
            )
        elif status == "max_iter" and not incremental:
            warnings.warn(
                f"Stochastic optimizer: Maximum iterations ({self.max_iter}) reached "
                "and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=find_stack_level(),
            )
        if not incremental:
            self._warn_if_collapsed()
        return self

    def _check_hidden_layer_sizes(self):
        hidden = np.atleast_1d(np.asarray(self.hidden_layer_sizes))
        if (
            hidden.ndim != 1
            or hidden.size == 0
            or not np.issubdtype(hidden.dtype, np.integer)
        ):
            raise ValueError(
                "hidden_layer_sizes must be a non-empty sequence of positive "
                f"integers, got {self.hidden_layer_sizes!r}."
            )
        if np.any(hidden <= 0):
            raise ValueError(
                f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes!r}."
            )
        return [int(h) for h in hidden]

    def _check_support(self, X, rows=None, likelihood=None):
        """Refuse values outside their column's family (bernoulli: [0, 1]).

        ``rows``, a ``(start, stop)`` pair, names the block of a larger X that
        ``X`` is, for the error message. The error names the column, the row,
        the value and the family.
        """
        if likelihood is None:
            likelihood = self.module_.likelihood
        if X.size == 0:
            return
        bad = likelihood.check_support(X)
        if bad is None:
            return
        row, column, family = bad
        names = getattr(self, "feature_names_in_", None)
        name = names[column] if names is not None else f"x{column}"
        start = 0 if rows is None else rows[0]
        value = f"{float(X[row, column]):.10g}"
        where = "" if rows is None else f" (in {format_rows(*rows)})"
        raise ValueError(
            f"likelihood={family.name!r} needs {family.support} in column "
            f"{name!r}, but row {start + row}{where} holds {value}. "
            f"{family.support_hint}"
        )

    def _support_check(self, block, start, stop):
        self._check_support(block, (start, stop))

    def _objective(self, missing=False):
        recon_weight = (
            self.n_features_in_ if self.recon_weight == "auto" else self.recon_weight
        )
        return Objective(
            recon_weight=float(recon_weight),
            beta=float(self.beta),
            kl_warmup=int(self.kl_warmup),
            n_features=self.n_features_in_,
            missing=missing,
        )

    def _get_optimizer(self):
        if getattr(self, "_optimizer", None) is None:
            self._optimizer = make_adam(
                self.module_.parameters(),
                lr=self.learning_rate_init,
                state=getattr(self, "_optimizer_state", None),
            )
            self._optimizer_state = None
        for group in self._optimizer.param_groups:
            group["lr"] = self.learning_rate_init
        return self._optimizer

    def _set_fitted_attributes(self, diagnostic_rows):
        history = self._history
        self.n_iter_ = history.n_epochs
        self.loss_curve_ = list(history.loss)
        self.reconstruction_curve_ = list(history.reconstruction)
        self.kl_curve_ = list(history.kl)
        if self.early_stopping:
            self.validation_scores_ = list(history.validation_scores)
            self.best_validation_score_ = history.best_validation_score
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
        total = torch.zeros(self.n_components, dtype=torch.float64)
        module = inference_view(self.module_)
        chunk = chunk_rows(widest_layer(self.module_))
        weights = sum(p.numel() for p in self.module_.encoder.parameters())
        threads = inference_threads(
            2 * weights * min(chunk, diagnostic_rows.n_rows), diagnostic_rows.device
        )
        with torch.no_grad(), torch_threads(threads):
            for x in diagnostic_rows.chunks(chunk):
                kl = _posterior_kl(module, x).sum(dim=0, dtype=torch.float64)
                total += kl.cpu()
        self.kl_per_dimension_ = (total / diagnostic_rows.n_rows).numpy()
        self.active_units_ = int(np.sum(self.kl_per_dimension_ > KL_ACTIVE_THRESHOLD))

    def _warn_if_collapsed(self):
        n_inactive = self.n_components - self.active_units_
        if n_inactive == 0:
            return
        kl = ", ".join(f"{v:.3g}" for v in self.kl_per_dimension_)
        warnings.warn(
            f"Posterior collapse: {n_inactive} of {self.n_components} latent "
            f"dimensions are inactive (mean KL per dimension [{kl}] nats; "
            f"threshold {KL_ACTIVE_THRESHOLD}). Their codes carry almost no "
            "information about the input. Raise recon_weight (now "
            f"{self.recon_weight!r}) or lower beta (now {self.beta!r}).",
            PosteriorCollapseWarning,
            stacklevel=find_stack_level(),
        )

    # ------------------------------------------------------------ inference

    def transform(self, X):
        """Encode ``X`` as the mean of the approximate posterior.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means, with the dtype of ``X`` (float32 or float64). A
            dask array in gives a lazy dask array out, chunked like ``X``'s
            rows (see :ref:`scaling`).
        """
        check_is_fitted(self)
        if is_dask_array(X):
            return self._dask_map(X, "transform", self.n_features_in_, "X")
        X = self._validate_rows(X)
        return self._map_rows_finite(
            _posterior_mean, X, "transform", self.n_components, "encoder"
        )

    def inverse_transform(self, X):
        """Decode latent codes into the decoder's mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray or DataFrame of shape (n_samples, `n_features_in_`)
            Mean of ``p(x | z)`` per column: probabilities for 'bernoulli',
            the mean count for count families, the most probable level for
            'categorical' (its code, in an array). The dtype follows the input
            (float32 or float64). A model fitted on a DataFrame with
            ``likelihood='auto'``, a list of pairs or non-numeric columns
            returns a DataFrame with the columns, dtypes and categories of fit
            (counts rounded to integers, bools thresholded at 0.5). A dask
            array in gives a lazy dask array out.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            return self._dask_map(X, "inverse_transform", self.n_components, "Z")
        check_numeric_input(X, "Z")
        Z = check_array(X, dtype=[np.float64, np.float32], input_name="Z")
        if Z.shape[1] != self.n_components:
            raise ValueError(
                f"Z has {Z.shape[1]} columns, but this VAETransformer has "
                f"n_components={self.n_components}: pass latent codes such as "
                "the output of transform."
            )
        values = self._map_rows_finite(
            _decoder_mean, Z, "inverse_transform", self.n_features_in_, "decoder"
        )
        return self._as_table(values)

    def score_samples(self, X):
        """Evidence lower bound of each sample, in nats.

        The reconstruction log-likelihood is summed over features and the KL
        term has weight one, whatever ``recon_weight`` and ``beta`` were used
        for training, so models trained with different weights compare. The
        expectation over ``q(z | x)`` uses 8 fixed antithetic pairs of draws,
        the same for every row: the result is deterministic and a row's score
        does not depend on the other rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ELBO of each sample; higher is better. A dask array in gives a
            lazy dask array out. Always finite: the sums
            are taken in float64, and float32 rows whose activations overflow
            are scored in float64.

        Raises
        ------
        ValueError
            If the ELBO of some rows is not representable in the dtype of
            ``X`` (rows far outside the training data); the message names
            their indices.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            return self._dask_map(X, "score_samples", self.n_features_in_, "X")
        X = self._validate_rows(X)
        self._check_support(X)
        eps = score_noise(self.n_components, torch_dtype(X.dtype), "cpu")
        return self._map_rows_finite(
            partial(_row_elbo, eps),
            X,
            "score_samples",
            1,
            "elbo",
            n_draws=len(eps),
        )[:, 0]

    def score(self, X, y=None):
        """Mean ELBO of ``X`` in nats (see :meth:`score_samples`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.
        y : None
            Ignored.

        Returns
        -------
        score : float
            Mean per-sample evidence lower bound; higher is better.
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None):
        """Draw new rows from the model: ``z ~ N(0, I)``, then ``x ~ p(x | z)``.

        Each column is drawn from its family (0/1 for 'bernoulli', a level
        for 'categorical', integer counts, Gaussian noise of the learned or
        unit scale around the decoder's mean). For the decoder's means of
        prior draws instead, use ``inverse_transform`` of standard-normal
        codes.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seeds the latent draws and the observation noise.

        Returns
        -------
        X : ndarray or DataFrame of shape (n_samples, `n_features_in_`)
            float64 draws; a DataFrame with the columns, dtypes and levels of
            fit when ``inverse_transform`` returns one. Holds the draws and
            the decoder's outputs for all of them (``n_samples`` times the
            decoder's width).
        """
        check_is_fitted(self)
        if (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, Integral)
            or n_samples < 1
        ):
            raise ValueError(
                f"n_samples must be a positive integer, got {n_samples!r}."
            )
        rng = check_random_state(random_state)
        Z = rng.standard_normal((n_samples, self.n_components))
        likelihood = self.module_.likelihood
        decoded = self._map_rows_finite(
            _decoded, Z, "sample", likelihood.n_outputs, "decoder"
        )
        values = np.empty((n_samples, self.n_features_in_))
        chunk = chunk_rows(max(likelihood.n_outputs, 1))
        with torch.no_grad():
            for start, stop in block_ranges(decoded, chunk):
                values[start:stop] = likelihood.sample(decoded[start:stop], rng)
        return self._as_table(values)

    def _validate_rows(self, X):
        """``X`` read as the table of fit (if any), validated as at fit."""
        X = _detached(X)
        check_numeric_input(X)
        if getattr(self, "_table", None) is not None:
            X = table_to_internal(self._table, X)
        return validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            reset=False,
            ensure_all_finite="allow-nan",
        )

    def _as_table(self, values):
        """Internal values as the DataFrame of fit, where fit saw a table."""
        table = getattr(self, "_table", None)
        if table is None or not table["frame"]:
            return values
        return to_frame(table, values)

    def _map_rows_finite(self, fn, X, what, *args, **kwargs):
        """``_map_rows``, but finite input never gives a silent NaN or infinity.

        float32 activations overflow first (``exp(logvar / 2)`` at about 500
        times the training scale): rows whose result is not finite are redone
        in float64; rows still not finite, or not representable in the dtype
        of ``X``, raise a ValueError that names them.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            out = self._map_rows(fn, X, *args, **kwargs)
            bad = np.flatnonzero(~np.all(np.isfinite(out), axis=1))
            if bad.size and X.dtype != np.float64:
                out[bad] = self._map_rows(
                    fn, X[bad].astype(np.float64), *args, **kwargs
                )
                bad = bad[~np.all(np.isfinite(out[bad]), axis=1)]
        if bad.size:
            # float64 X was already tried in float64: only float32 X can gain.
            instead = "pass float64 X, " if X.dtype != np.float64 else ""
            raise ValueError(
                f"{what} gives NaN or infinity for {bad.size} of {X.shape[0]} rows "
                f"(row indices {_some(bad)}) in {X.dtype}: these rows lie far "
                "outside the training data (largest |value| in them "
                f"{float(np.max(np.abs(X[bad]))):.3g}), or the model's weights are "
                "not finite (a diverged fit). Scale X as the training data was, "
                f"{instead}or treat these rows as outliers."
            )
        return out

    def _dask_map(self, X, method, n_columns, name):
        """``method`` of every row block of the dask array ``X``, lazily.

        As dask-ml's ``ParallelPostFit``: a block function at module level,
        ``meta`` from a one-row run, and the estimator as one graph key
        (``dask.delayed``), so that it is sent to each worker once, not
        with every block.
        """
        import dask

        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2-D dask array of shape (n_samples, {n_columns}), "
                f"got a {X.ndim}-D one of shape {X.shape}. Reshape it first, "
                "e.g. X.reshape(-1, 1) for a single feature."
            )
        if X.shape[1] != n_columns:
            raise ValueError(
                f"{name} has {X.shape[1]} columns, but this VAETransformer "
                f"expects {n_columns} for {method}."
            )
        if len(X.chunks[1]) != 1:
            X = X.rechunk({1: -1})  # blocks of whole rows
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        # One row through the ordinary path: checks dtype and gives the meta.
        meta = _array_method(self, method)(np.zeros((1, n_columns), dtype=dtype))[:0]
        model = dask.delayed(self, pure=True)
        if meta.ndim == 1:
            return X.map_blocks(
                _dask_block, model, method, drop_axis=1, dtype=meta.dtype, meta=meta
            )
        return X.map_blocks(
            _dask_block,
            model,
            method,
            chunks=(X.chunks[0], (meta.shape[1],)),
            dtype=meta.dtype,
            meta=meta,
        )

    def _map_rows(self, fn, X, width, part, n_draws=1):
        """``fn(module, x_chunk, workspace)`` over the rows of ``X``; numpy out.

        ``part`` ('encoder', 'decoder' or 'elbo': encoder and ``n_draws``
        decoder passes) is what runs per row: it sets the chunk size (one
        rule, :func:`skvae._data.chunk_rows`) and the thread count (one
        thread unless a chunk's work is large, :func:`inference_threads`).
        The input chunk and the output are allocated once per call; each
        chunk is copied into the input buffer (the caller's array, possibly a
        read-only memmap, is never shared with torch). The module runs in the
        dtype of ``X``, as its cached :func:`inference_module` view. Where the
        allocator returns memory to the system eagerly (dask workers), it
        keeps it for the call (:func:`~skvae._inference.heap_kept`), or,
        where it cannot, the layers write into a
        :class:`~skvae._inference.Workspace`.
        """
        module = inference_module(self, X.dtype, view=True)
        device = next(self.module_.parameters()).device
        n_rows = X.shape[0]
        out = np.empty((n_rows, width), dtype=X.dtype)
        if n_rows == 0:
            return out
        encoder = sum(p.numel() for p in self.module_.encoder.parameters())
        decoder = sum(p.numel() for p in self.module_.decoder.parameters())
        weights = {"encoder": encoder, "decoder": decoder}.get(
            part, encoder + n_draws * decoder
        )
        chunk = min(n_rows, chunk_rows(n_draws * widest_layer(self.module_)))
        threads = inference_threads(2 * weights * chunk, device)
        x_host = np.empty((chunk, X.shape[1]), dtype=X.dtype)
        x_tensor = torch.from_numpy(x_host)
        with torch.no_grad(), torch_threads(threads), heap_kept() as kept:
            workspace = Workspace() if _use_workspace() and not kept else None
            for start, stop in block_ranges(X, chunk):
                np.copyto(x_host[: stop - start], X[start:stop])
                x = x_tensor[: stop - start].to(device)
                result = fn(module, x, workspace)
                torch.from_numpy(out[start:stop]).copy_(result)
        return out

    # ------------------------------------------------------------ sklearn API

    @property
    def _n_features_out(self):
        return self.n_components

    def get_feature_names_out(self, input_features=None):
        """Names of the latent dimensions: ``z0, z1, ...``.

        The names the figures of :mod:`skvae.plotting` and the tables of
        :mod:`skvae.analysis` use too. ``input_features`` is checked as
        scikit-learn's transformers check it, and otherwise unused.

        Returns
        -------
        feature_names_out : ndarray of str objects of shape (n_components,)
        """
        # The mixin validates input_features; only its class-name prefix goes.
        super().get_feature_names_out(input_features)
        return np.asarray([f"z{k}" for k in range(self._n_features_out)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------ pickling

    def __getstate__(self):
        # object.__getstate__ may hand back self.__dict__ itself: copy before editing.
        state = dict(super().__getstate__())
        optimizer = state.pop("_optimizer", None)
        if optimizer is not None:
            state["_optimizer_state"] = optimizer.state_dict()
        # The module and Adam's state as numpy arrays (CPU copies), the history as
        # a dict: the state holds no torch object, so a model fitted on 'cuda'
        # loads anywhere and skops.io can persist it.
        return plain_state(state)

    def __setstate__(self, state):
        state = torch_state(state)
        state.setdefault("_optimizer", None)
        if "module_" in state:
            state.setdefault("_table", None)
        # A pickle from before a parameter existed (buffer_size) gets its
        # default: get_params, repr, clone and fit read every parameter.
        signature = inspect.signature(type(self).__init__)
        for name, parameter in signature.parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                state.setdefault(name, parameter.default)
        super().__setstate__(state)


# An out-of-core X is read in blocks of buffer_size / 8 rows: each buffer
# mixes rows of 8 blocks from anywhere in X.
_BLOCKS_PER_BUFFER = 8


_MODULE_CACHE_LOCK = threading.Lock()
# estimator -> {(dtype, view): (key, network)}. Outside the estimator's
# __dict__, so that inference leaves the estimator as it was, and pickles,
# clones and copies never carry it.
_MODULE_CACHES = weakref.WeakKeyDictionary()


def inference_module(estimator, dtype, view=False):
    """The fitted network of ``estimator`` in ``dtype`` (float32 or float64).

    The float32 network is ``estimator.module_`` itself. Any other dtype is a
    copy, made once and cached on the estimator, so that calls that come
    block by block (a dask array's chunks, the analysis functions) do not
    copy the weights each time. The cache is keyed by dtype, device and the
    weights' version counters (an optimiser step or ``load_state_dict``
    changes them), dropped by ``fit`` and ``partial_fit``, built under a lock
    (safe from several threads), held outside the estimator (which it never
    changes) and never pickled. With ``view``, returns
    the module's :func:`~skvae._inference.inference_view` instead (cached the
    same way). The result is for inference under ``torch.no_grad()``; never
    modify it.
    """
    module = estimator.module_
    parameters = list(module.parameters())
    target = torch_dtype(dtype)
    key = (
        target,
        parameters[0].device,
        id(module),
        tuple(p._version for p in parameters),
    )
    if parameters[0].dtype == target and not view:
        return module
    entry = _MODULE_CACHES.get(estimator, {}).get((target, view))
    if entry is not None and entry[0] == key:
        return entry[1]
    with _MODULE_CACHE_LOCK:
        cache = _MODULE_CACHES.setdefault(estimator, {})
        entry = cache.get((target, view))
        if entry is not None and entry[0] == key:
            return entry[1]
        if parameters[0].dtype == target:
            converted = module
        else:
            # A copy, so that the trained module (and its dtype) never change.
            converted = copy.deepcopy(module).to(target).eval()
        result = inference_view(converted) if view else converted
        cache[(target, view)] = (key, result)
    return result


def _dask_block(block, model, method, block_info=None):
    """One block of :meth:`VAETransformer._dask_map`, run on a worker.

    An error names the block's rows in the whole array: the method itself
    only sees the block.
    """
    try:
        return _array_method(model, method)(block)
    except ValueError as exc:
        location = ((block_info or {}).get(0) or {}).get("array-location")
        if not location or location[0][0] >= location[0][1]:
            raise  # an empty block has no rows to name
        start, stop = location[0]
        raise ValueError(
            f"In {format_rows(start, stop)} of the dask array (row indices "
            f"below count from row {start:,}): {exc}"
        ) from exc


def _array_method(estimator, method):
    """``estimator.method`` without scikit-learn's ``set_output`` wrapper.

    A dask block (and the ``meta`` of one) must be an array: with
    ``set_output(transform="pandas")`` the public ``transform`` of a block
    would give a DataFrame. The wrapper then applies to the whole lazy result.
    """
    function = getattr(type(estimator), method)
    return partial(getattr(function, "__wrapped__", function), estimator)


def _use_workspace():
    return allocator_trims_eagerly()


def _posterior_mean(module, x, workspace=None):
    return encode(module, x, workspace)[0]


def _decoder_mean(module, z, workspace=None):
    return module.likelihood.mean(decode(module, z, workspace))


def _decoded(module, z, workspace=None):
    return decode(module, z, workspace)


def _row_elbo(eps, module, x, workspace=None):
    return elbo_rows(module, x, eps.to(x.device), workspace).unsqueeze(1)


def _posterior_kl(module, x):
    return kl_divergence(*module.encode(x))


def score_noise(n_components, dtype, device):
    """The fixed antithetic standard-normal draws used by ``score_samples``."""
    generator = torch.Generator().manual_seed(_SCORE_SEED)
    # Drawn in float32 whatever ``dtype``: torch's randn draws other numbers in
    # float64, and a row's score must not depend on the dtype it comes in.
    eps = torch.randn(_N_SCORE_PAIRS, n_components, generator=generator)
    return torch.cat([eps, -eps]).to(device=device, dtype=dtype)


class _Snapshot:
    """What an estimator holds, kept so that a failed ``_fit`` can be undone.

    ``_fit`` reassigns most attributes (the shallow copy of ``__dict__`` keeps
    the old values) but updates some objects in place: the network's weights,
    the optimiser's state, the history's lists, the random stream. Their
    values are copied (tensors cloned: cheaper than deep-copying the module
    and the optimiser, which matters for many small ``partial_fit`` calls)
    and written back into the same objects, so the optimiser still refers to
    the network's parameters.
    """

    def __init__(self, vae):
        state = vae.__dict__
        self.state = dict(state)
        module = state.get("module_")
        self.module = None
        if module is not None:
            device = next(module.parameters()).device
            self.module = (module, device, _clone_tensors(module.state_dict()))
        optimizer = state.get("_optimizer")
        self.optimizer = None
        if optimizer is not None:
            self.optimizer = (optimizer, _clone_tensors(optimizer.state_dict()))
        # A state dict (after unpickling) whose tensors Adam may adopt as is.
        self.optimizer_state = _clone_tensors(state.get("_optimizer_state"))
        history = state.get("_history")
        self.history = None
        if history is not None:
            self.history = dataclasses.replace(
                history,
                **{
                    f.name: list(getattr(history, f.name))
                    for f in dataclasses.fields(history)
                    if isinstance(getattr(history, f.name), list)
                },
            )
        # The stream, and a RandomState passed as random_state (which a fit
        # draws from directly): rewound in place.
        self.streams = [
            (stream, stream.get_state())
            for stream in {
                id(stream): stream
                for stream in (state.get("_random_state"), vae.random_state)
                if isinstance(stream, np.random.RandomState)
            }.values()
        ]

    @property
    def fitted(self):
        return "module_" in self.state

    def restore(self, vae):
        vae.__dict__.clear()
        vae.__dict__.update(self.state)
        if self.module is not None:
            module, device, tensors = self.module
            module.to(device)
            module.load_state_dict(tensors)
            module.eval()
        if self.optimizer is not None:
            optimizer, optimizer_state = self.optimizer
            optimizer.load_state_dict(optimizer_state)
        if "_optimizer_state" in self.state:
            vae._optimizer_state = self.optimizer_state
        if self.history is not None:
            vae._history = self.history
        for stream, stream_state in self.streams:
            stream.set_state(stream_state)


def _clone_tensors(obj):
    """``obj`` with every tensor in it cloned (dicts, lists, tuples walked)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {key: _clone_tensors(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_clone_tensors(value) for value in obj)
    return obj


def _detached(X):
    """A torch tensor as its values in numpy (detached, on the CPU)."""
    if isinstance(X, torch.Tensor):
        return X.detach().cpu().numpy()
    return X


def _likelihood_pairs(vae, table):
    """``likelihoods_``: the family of every column, as ``likelihood=`` takes it."""
    if table is not None:
        return pairs(table)
    names = getattr(vae, "feature_names_in_", None)
    columns = list(names) if names is not None else list(range(vae.n_features_in_))
    return [(vae.likelihood, columns)]


def check_numeric_input(X, name="X"):
    """Refuse what validation would silently take as numbers.

    ``check_array`` converts datetime64 and timedelta64 values to their
    integer counts and drops the mask of a masked array; neither is data a VAE
    can model as it stands.
    """
    if np.ma.isMaskedArray(X) and np.ma.getmaskarray(X).any():
        raise ValueError(
            f"{name} is a masked array with {int(np.ma.count_masked(X))} masked "
            "values; the mask would be ignored. Drop or impute them first, e.g. "
            f"{name}.filled(value) or SimpleImputer on {name}.filled(np.nan)."
        )
    dtypes = getattr(X, "dtypes", None)
    if dtypes is not None and not hasattr(dtypes, "kind"):  # a DataFrame
        columns = [
            str(column)
            for column, dtype in dtypes.items()
            if getattr(dtype, "kind", None) in ("M", "m")
        ]
    else:
        kind = getattr(getattr(X, "dtype", None), "kind", None)
        columns = ["all"] if kind in ("M", "m") else []
    if columns:
        raise TypeError(
            f"{name} holds dates or durations (datetime64/timedelta64; columns: "
            f"{', '.join(columns)}), which would be taken as raw integer counts. "
            "Convert them to numeric features first, e.g. elapsed seconds or "
            "calendar features, scaled like the rest."
        )


_INTEGER_PARAMS = (
    "n_components",
    "kl_warmup",
    "max_iter",
    "batch_size",
    "n_iter_no_change",
)


def _check_integer_params(vae):
    # bool is an Integral: n_components=True would silently mean 1.
    for name in _INTEGER_PARAMS:
        value = getattr(vae, name)
        if isinstance(value, bool | np.bool_):
            raise ValueError(
                f"{name} must be a positive integer, got the boolean {value!r}; "
                f"pass an int, e.g. {name}={int(value) or 1}."
            )


# Width of a layer beyond which torch's matrix kernels index with 32 bits.
_MAX_WIDTH = 2**31 - 1


def _check_network_size(n_features, n_components, hidden):
    """Refuse networks that cannot be built, before torch tries to allocate them."""
    sizes = [n_features, *hidden, 2 * n_components]
    if max(sizes) > _MAX_WIDTH:
        raise ValueError(
            f"hidden_layer_sizes={tuple(hidden)!r} (with n_features={n_features}, "
            f"n_components={n_components}) has a layer wider than {_MAX_WIDTH}, "
            "more than torch's kernels can index; use smaller layers."
        )
    n_weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    n_weights *= 2  # the decoder mirrors the encoder
    # Weights, gradients and Adam's two moments, in float32.
    needed = 16 * n_weights
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        available = None
    if available is not None and needed > available:
        raise ValueError(
            f"hidden_layer_sizes={tuple(hidden)!r} gives about {n_weights:.3g} "
            f"weights; training them needs about {needed / 2**30:.3g} GiB "
            "(weights, gradients and Adam's moments in float32), more than this "
            f"machine's {available / 2**30:.3g} GiB of memory. Use smaller layers."
        )


def _some(indices, limit=10):
    """The first ``limit`` of ``indices`` as a short string for an error message."""
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return f"[{shown}{', ...' if len(indices) > limit else ''}]"


def _split_indices(n_samples, validation_fraction, random_state):
    n_val = int(round(validation_fraction * n_samples))
    if n_val < 1 or n_val >= n_samples:
        raise ValueError(
            f"early_stopping with validation_fraction={validation_fraction} leaves "
            f"{n_val} of {n_samples} samples for validation; it needs at least one "
            "sample for validation and one for training. Pass more samples, change "
            "validation_fraction or set early_stopping=False."
        )
    order = random_state.permutation(n_samples)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _split_blocks(ranges, validation_fraction, random_state):
    """Hold out whole blocks for validation: about ``validation_fraction`` of rows.

    Out of core, the early-stopping split is by blocks, so that reading the
    validation rows is as cheap as reading the training rows.
    """
    n_blocks = len(ranges)
    n_val = int(round(validation_fraction * n_blocks))
    if n_val < 1 or n_val >= n_blocks:
        raise ValueError(
            f"early_stopping with validation_fraction={validation_fraction} on an "
            f"out-of-core X of {n_blocks} blocks holds out {n_val} blocks; it needs "
            "at least one block for validation and one for training. Lower "
            "buffer_size (blocks have buffer_size / 8 rows), change "
            "validation_fraction or set early_stopping=False."
        )
    order = random_state.permutation(n_blocks)
    val = sorted(order[:n_val].tolist())
    train = sorted(order[n_val:].tolist())
    return [ranges[i] for i in train], [ranges[i] for i in val]


def _resolve_device(device):
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'cpu', 'cuda' or 'auto'."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='cpu' or device='auto'."
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device={device!r} was requested but MPS is not available on this "
            "machine; use device='cpu' or device='auto'."
        )
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r} is not supported; use 'cpu' or 'cuda'.")
    return resolved
