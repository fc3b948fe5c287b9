"""The encoder side: how each input feature moves each latent dimension."""

from functools import partial
from numbers import Integral

import numpy as np
import torch

from .._data import tensor_blocks
from ._common import (
    analysis_feature_names,
    analysis_features,
    check_input_space,
    module_and_device,
    resolve_vae,
    rows_per_chunk,
    to_vae_input,
)

_COLUMNS = [
    "component",
    "feature",
    "direction",
    "rank",
    "mean_gradient",
    "mean_abs_gradient",
    "sign_agreement",
]


def encoder_jacobian(vae, X, *, batch_size=None, input_space="pipeline"):
    """Jacobian of the posterior mean with respect to the input, per sample.

    ``J[n, k, j]`` is the derivative of latent dimension ``k`` of
    ``transform(X)`` with respect to feature ``j`` at sample ``n``: which
    features raise a latent dimension (positive entries) and which lower it
    (negative ones), the "forward derivative" of the Jacobian-based saliency
    map attack (Papernot et al. 2016).

    Parameters
    ----------
    vae : VAETransformer or Pipeline
        A fitted ``VAETransformer``, or a fitted ``Pipeline`` whose last step
        is one. The derivative is then taken with respect to the pipeline's
        input, by the chain rule through the steps before the VAE; these must
        be ``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``,
        ``RobustScaler``, 'passthrough' or the clip-at-zero step of
        :func:`skvae.datasets.flows_preprocessor` (a ValueError says so
        otherwise), unless ``input_space='vae'``.

    X : array-like or DataFrame of shape (n_samples, n_features)
        Points at which to differentiate. A VAE fitted on a table takes the
        table as ``transform`` does (category and string columns included).

    batch_size : int, default=None
        Rows per chunk; bounds the memory of the computation besides the
        result. None means the package's chunk rule: as many rows as keep a
        chunk's ``n_components`` x (widest layer) values at 2**20, at most
        16,384.

    input_space : {'pipeline', 'vae'}, default='pipeline'
        For a Pipeline: differentiate with respect to the pipeline's input
        (through its steps), or with respect to the VAE's own input, the
        features after the steps (any step is then accepted). No effect for
        a VAETransformer.

    Returns
    -------
    J : ndarray of shape (n_samples, n_components, n_features_out)
        The Jacobians, float64 for float64 input and float32 for float32
        input (computed by a float64 copy of the weights, or by the float32
        weights; a table is read as float64). ``n_features_out`` is
        ``n_features``, except for a model with categorical columns, where
        each such column gives one feature per level seen in fit, in the
        column's place, named ``<column>_<level>`` as by ``OneHotEncoder``
        (see Notes).

    See Also
    --------
    latent_feature_importance : A ranked, named summary of these Jacobians.
    decoder_jacobian : The other direction, from latent codes to features.

    Notes
    -----
    Computed by reverse-mode autograd: one forward pass per chunk, then one
    backward pass per latent dimension, each giving that dimension's gradient
    for every row of the chunk at once (rows do not interact in the encoder).
    With ``n_components`` much smaller than ``n_features`` this is the cheap
    direction; it measured as fast as ``torch.func.vmap(torch.func.jacrev(...))``
    and holds a chunk of ``batch_size x n_features`` gradients at a time rather
    than ``batch_size x n_components x n_features``
    (``benchmarks/bench_jacobian.py``).

    Memory: the call holds the result, ``X`` as the VAE sees it, and for one
    chunk of rows at a time its copy as a tensor, the encoder's activations
    (kept for the backward passes) and one gradient, ``batch_size x
    n_features``.

    With ``MinMaxScaler(clip=True)`` in front, the derivative is zero for
    values outside the range the scaler was fitted on, and at its edges it is
    the derivative from the inside.

    A model fitted on a table (``likelihood='auto'`` or a list of pairs)
    encodes its columns before the encoder sees them. A numeric column
    (numbers, counts, flags) is differentiated in its own units, through
    that encoding (standardisation; ``log1p`` of counts, so a count's
    derivative shrinks as ``1 / (1 + x)``; ``log`` of lognormal values, as
    ``1 / x``). A categorical column has no derivative as a level, so it is
    differentiated with respect to its one-hot input: ``J[n, k, j]`` for the
    feature ``<column>_<level>`` is the change of ``z_k`` per unit of
    probability put on that level, the other levels' indicators held fixed.
    Only differences between levels of a column are meaningful (the
    probabilities sum to one): moving a small probability ``d`` from level
    ``a`` to level ``b`` changes ``z_k`` by about ``d (J_b - J_a)``, the
    first-order part of the finite change that switching the level makes.
    With ``input_space='pipeline'``, such a model with steps in front raises
    a ValueError: the levels are not features of the steps' input.

    References
    ----------
    Papernot, N., McDaniel, P., Jha, S., Fredrikson, M., Celik, Z. B. and
    Swami, A. (2016). The Limitations of Deep Learning in Adversarial Settings.
    IEEE European Symposium on Security and Privacy.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAETransformer
    >>> from skvae.analysis import encoder_jacobian
    >>> X = np.random.RandomState(0).uniform(size=(100, 5))
    >>> vae = VAETransformer(n_components=2, max_iter=2, random_state=0).fit(X)
    >>> J = encoder_jacobian(vae, X[:3])
    >>> J.shape
    (3, 2, 5)
    >>> J.dtype
    dtype('float64')

    A table with a category: one feature per level, in the column's place.

    >>> import pandas as pd
    >>> table = pd.DataFrame({"size": X[:, 0],
    ...                       "kind": pd.Categorical(np.where(X[:, 1] > 0.5,
    ...                                                       "big", "small"))})
    >>> mixed = VAETransformer(likelihood="auto", max_iter=2,
    ...                        random_state=0).fit(table)
    >>> encoder_jacobian(mixed, table[:3]).shape
    (3, 2, 3)
    """
    _, J, blocks = jacobian_blocks(
        vae, X, batch_size, full=True, input_space=input_space
    )
    for _ in blocks:
        pass
    return J


def jacobian_blocks(estimator, X, batch_size, full=False, input_space="pipeline"):
    """The VAE, an output array and a generator of ``(rows, J[rows])``.

    With ``full``, the output holds the whole ``(n_samples, n_components,
    n_features)`` Jacobian once the generator is exhausted, and blocks are
    views of it; otherwise it is a buffer of ``batch_size`` rows, reused, and
    each block is valid until the next.
    """
    vae, _ = resolve_vae(estimator)
    batch_size = rows_per_chunk(vae, batch_size, vae.n_components)
    vae, X_vae, dX = to_vae_input(
        estimator, X, derivative=True, input_space=input_space
    )
    features, order = analysis_features(vae)
    # The supported steps keep the number of features; a categorical column
    # has one feature per level.
    shape = (X_vae.shape[0], vae.n_components, len(features))
    if dX is not None:
        # A diagonal Jacobian of the steps: scales the last axis of J.
        dX = np.asarray(dX, dtype=X_vae.dtype)
        dX = dX[:, np.newaxis, :] if dX.ndim == 2 else dX

    n_rows = shape[0] if full else min(batch_size, shape[0])
    out = np.empty((n_rows, *shape[1:]), dtype=X_vae.dtype)
    chunk = (
        _encoder_jacobian_chunk
        if vae.module_.likelihood.is_identity_encoding
        else partial(_encoded_jacobian_chunk, order=order)
    )

    def blocks():
        module, device = module_and_device(vae, X_vae.dtype)
        for rows, x in tensor_blocks(X_vae, batch_size, device):
            block = out[rows] if full else out[: rows.stop - rows.start]
            chunk(module, x, block)
            if dX is not None:
                block *= dX[rows] if dX.ndim == 3 else dX
            yield rows, block

    return vae, out, blocks()


def _encoder_jacobian_chunk(module, x, out):
    """Write the Jacobian of the posterior mean at rows ``x`` into ``out``.

    ``out`` has shape ``(m, n_components, n_features)``.
    """
    n_components = module.n_components
    with torch.enable_grad():
        x.requires_grad_(True)
        mean = module.encode(x)[0]
        for k in range(n_components):
            # Rows are independent, so the gradient of the column sum is, row
            # by row, the gradient of each row's own output.
            (gradient,) = torch.autograd.grad(
                mean[:, k].sum(), x, retain_graph=k < n_components - 1
            )
            out[:, k] = gradient.cpu().numpy()


def _encoded_jacobian_chunk(module, x, out, order=None):
    """:func:`_encoder_jacobian_chunk` for a likelihood that encodes its columns.

    ``x`` holds internal values. A numeric column is differentiated in its
    own units, through its encoding (standardisation, ``log1p`` of counts,
    ``log`` of lognormal values); a categorical column with respect to each
    level's indicator in the one-hot input the encoder sees (a level's code
    has no derivative). ``out`` has shape ``(m, n_components, n_features)``,
    its features in the table's order (``order``: see
    :func:`~skvae.analysis._common.analysis_features`).
    """
    likelihood = module.likelihood
    n_components = module.n_components
    with torch.enable_grad():
        leaves, parts = [], []
        blocks = zip(likelihood.families, likelihood.columns, strict=True)
        for family, columns in blocks:
            values = x[:, columns]
            if family.discrete:
                # The one-hot indicators are the variables: the encoder sees
                # them as numbers (the probability of each level).
                with torch.no_grad():
                    leaf = family.encode(values)
                leaf.requires_grad_(True)
                parts.append(leaf)
            else:
                # Every numeric family encodes element-wise: autograd through
                # encode is the chain rule, d encoder / d x = (d encoder / d
                # encoded) (d encoded / d x), column by column.
                leaf = values.detach().requires_grad_(True)
                parts.append(family.encode(leaf))
            leaves.append(leaf)
        if likelihood.mask_inputs:
            # A model trained with holes also sees which cells are observed.
            parts.append((~torch.isnan(x)).to(x.dtype))
        mean = module.encoder(torch.cat(parts, dim=-1))[:, :n_components]
        for k in range(n_components):
            gradients = torch.autograd.grad(
                mean[:, k].sum(), leaves, retain_graph=k < n_components - 1
            )
            gradient = torch.cat(gradients, dim=-1)
            if order is not None:
                gradient = gradient[:, order]
            out[:, k] = gradient.cpu().numpy()


def latent_feature_importance(
    vae, X, *, n_top=None, batch_size=None, input_space="pipeline"
):
    """Rank the input features that raise and that lower each latent dimension.

    A readable summary of :func:`encoder_jacobian` over the samples ``X``:
    for each latent dimension, the features whose increase raises its
    posterior mean on average, strongest first, then those that lower it.

    Parameters
    ----------
    vae : VAETransformer or Pipeline
        A fitted ``VAETransformer``, or a Pipeline ending in one (see
        :func:`encoder_jacobian` for the steps it may contain).

    X : array-like or DataFrame of shape (n_samples, n_features)
        Samples over which the derivatives are averaged, e.g. the training
        data (a table for a VAE fitted on one).

    n_top : int, default=None
        Keep only the ``n_top`` strongest features of each direction of each
        latent dimension. None keeps every feature.

    batch_size : int, default=None
        Rows per chunk, as in :func:`encoder_jacobian`: the call holds one
        chunk's Jacobians (``batch_size x n_components x n_features``) at a
        time, never all of them, besides ``X`` as the VAE sees it.

    input_space : {'pipeline', 'vae'}, default='pipeline'
        As in :func:`encoder_jacobian`; also which feature names are used.
        Recorded in ``importance.attrs['input_space']``.

    Returns
    -------
    importance : pandas.DataFrame
        One row per (latent dimension, feature), sorted by ``component``, then
        ``direction`` ('raises' first), then ``rank``. Columns:

        - ``component``: the latent dimension's name, from
          ``get_feature_names_out`` (e.g. 'z0', as in the figures).
        - ``feature``: the input feature's name, from ``feature_names_in_``
          when the estimator was fitted on a DataFrame, else 'x0', 'x1', ...;
          for a categorical column, one feature per level,
          ``<column>_<level>``, whose gradient is with respect to the
          level's one-hot indicator (see :func:`encoder_jacobian`).
        - ``direction``: 'raises' when ``mean_gradient > 0``, 'lowers' when it
          is negative, 'neutral' when it is exactly zero.
        - ``rank``: 1 for the largest ``|mean_gradient|`` within the component
          and direction, then 2, ...
        - ``mean_gradient``: the derivative of the latent dimension with
          respect to the feature, averaged over ``X`` (per unit of the
          feature as passed in).
        - ``mean_abs_gradient``: the average of its absolute value: large
          next to ``|mean_gradient|`` when the effect changes sign across
          samples.
        - ``sign_agreement``: the fraction of samples whose derivative has the
          sign of ``mean_gradient``.

    See Also
    --------
    encoder_jacobian : The per-sample derivatives summarised here.

    Notes
    -----
    Derivatives are per unit of each feature as passed in, so features with
    different units rank fairly only after scaling: pass standardised data
    to a VAE, or a Pipeline with a scaler, whose derivatives are then with
    respect to the raw features.

    pandas is needed for this function only.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skvae import VAETransformer
    >>> from skvae.analysis import latent_feature_importance
    >>> rng = np.random.RandomState(0)
    >>> X = pd.DataFrame(rng.uniform(size=(100, 3)), columns=["a", "b", "c"])
    >>> vae = VAETransformer(n_components=2, max_iter=2, random_state=0).fit(X)
    >>> table = latent_feature_importance(vae, X)
    >>> table.shape
    (6, 7)
    >>> list(table.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['component', 'feature', 'direction', 'rank', 'mean_gradient',
     'mean_abs_gradient', 'sign_agreement']
    >>> sorted(table["feature"].unique())
    ['a', 'b', 'c']
    """
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is in the test extras
        raise ImportError(
            "latent_feature_importance returns a pandas DataFrame: install pandas "
            "(pip install pandas)."
        ) from exc
    if n_top is not None and (
        isinstance(n_top, bool) or not isinstance(n_top, Integral) or n_top < 1
    ):
        raise ValueError(f"n_top must be a positive integer or None, got {n_top!r}.")

    check_input_space(input_space)
    model, buffer, blocks = jacobian_blocks(
        vae, X, batch_size, input_space=input_space
    )
    n_components, n_features = buffer.shape[1:]
    # Sums over samples, chunk by chunk: the full Jacobian is never held.
    total = np.zeros((n_components, n_features))
    total_abs = np.zeros((n_components, n_features))
    n_positive = np.zeros((n_components, n_features), dtype=np.intp)
    n_negative = np.zeros((n_components, n_features), dtype=np.intp)
    n_samples = 0
    for _, block in blocks:
        n_samples += block.shape[0]
        total += block.sum(axis=0, dtype=np.float64)
        total_abs += np.abs(block).sum(axis=0, dtype=np.float64)
        n_positive += np.count_nonzero(block > 0, axis=0)
        n_negative += np.count_nonzero(block < 0, axis=0)
    mean_gradient = total / n_samples
    mean_abs_gradient = total_abs / n_samples
    direction = np.sign(mean_gradient)
    n_agree = np.select(
        [direction > 0, direction < 0],
        [n_positive, n_negative],
        default=n_samples - n_positive - n_negative,
    )
    sign_agreement = n_agree / n_samples

    feature_names = analysis_feature_names(vae, input_space)
    component_names = model.get_feature_names_out()
    records = []
    for k in range(n_components):
        for label, sign in (("raises", 1), ("lowers", -1), ("neutral", 0)):
            (features,) = np.nonzero(direction[k] == sign)
            strength = np.abs(mean_gradient[k, features])
            order = features[np.argsort(-strength, kind="stable")]
            if n_top is not None:
                order = order[:n_top]
            records.extend(
                (
                    component_names[k],
                    feature_names[j],
                    label,
                    rank,
                    mean_gradient[k, j],
                    mean_abs_gradient[k, j],
                    sign_agreement[k, j],
                )
                for rank, j in enumerate(order, start=1)
            )
    table = pd.DataFrame.from_records(records, columns=_COLUMNS)
    table.attrs["input_space"] = input_space
    return table
