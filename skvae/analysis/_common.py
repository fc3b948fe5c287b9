"""What every analysis function shares: finding the VAE, the input space, chunks.

Rows come from :mod:`skvae._data` (:func:`~skvae._data.tensor_blocks`), in
chunks of :func:`rows_per_chunk` rows: the package's one chunk-size rule.

A function of :mod:`skvae.analysis` takes a fitted ``VAETransformer`` or a
``Pipeline`` whose last step is one. The steps before the VAE map the caller's
features into the VAE's own input space; derivatives with respect to the
caller's features need the derivative of those steps too.

One rule for every analysis function and Display, chosen by ``input_space``:

- ``'pipeline'`` (the default): derivatives, traversals and feature names are
  those of the pipeline's input. The chain rule goes through the steps whose
  derivative is known: the element-wise affine scalers (``StandardScaler``,
  ``MinMaxScaler`` with or without ``clip``, ``MaxAbsScaler``,
  ``RobustScaler``), 'passthrough', and the clip-at-zero
  ``FunctionTransformer`` of :func:`skvae.datasets.flows_preprocessor`
  (piecewise linear: derivative 1 at and above zero, 0 below). Any other step
  raises the same ValueError, which names the step and the way out.
- ``'vae'``: everything in the VAE's own input space, after the steps: ``X``
  is passed through them, the derivatives are with respect to (or of) the
  features the VAE sees, and any step is accepted.

The Displays and :func:`~skvae.analysis.latent_feature_importance` record the
choice (``input_space`` attribute, ``DataFrame.attrs['input_space']``).

Tables. A VAE fitted on a table reads ``X`` as it did in fit (a DataFrame with
category or string columns included). Its *analysis features*
(:func:`analysis_feature_names`) are one per numeric column and, for a
categorical column, one per level seen in fit, named as ``OneHotEncoder``'s
``get_feature_names_out`` names them (``species_Adelie``), in the order of the
table's columns. On the decoder side a level's feature is its probability; on
the encoder side it is the level's indicator in the one-hot input the encoder
sees. Such features are not those of any step in front of the VAE, so for a
model with categorical columns ``input_space='pipeline'`` with steps raises a
ValueError that points to ``input_space='vae'``. A model without categorical
columns (numbers, counts, flags) has one feature per column and follows the
rule above.
"""

import numpy as np
import torch
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils.validation import check_array, check_is_fitted

from .._data import check_chunk_rows
from .._modules import widest_layer
from .._vae import VAETransformer, check_numeric_input, inference_module

_SUPPORTED_STEPS = (
    "StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, skvae's "
    "clip-at-zero FunctionTransformer (flows_preprocessor)"
)
INPUT_SPACES = ("pipeline", "vae")


def check_input_space(input_space):
    """``input_space`` if it is 'pipeline' or 'vae'; a ValueError otherwise."""
    if not isinstance(input_space, str) or input_space not in INPUT_SPACES:
        raise ValueError(
            f"input_space must be 'pipeline' or 'vae', got {input_space!r}."
        )
    return input_space


def resolve_vae(estimator):
    """Split ``estimator`` into its fitted VAE and the steps in front of it.

    Returns
    -------
    vae : VAETransformer
    steps : list of estimators
        The fitted steps before the VAE, in order, flattened out of nested
        pipelines, without 'passthrough' and None.
    """
    if isinstance(estimator, Pipeline):
        if not estimator.steps:
            raise TypeError(
                "Expected a Pipeline ending in a VAETransformer, got an empty Pipeline."
            )
        vae = estimator.steps[-1][1]
        if isinstance(vae, Pipeline):
            inner_vae, inner_steps = resolve_vae(vae)
            return inner_vae, _flatten_steps(estimator.steps[:-1]) + inner_steps
        if not isinstance(vae, VAETransformer):
            raise TypeError(
                "Expected a Pipeline whose last step is a VAETransformer, but its "
                f"last step is {vae!r}."
            )
        steps = _flatten_steps(estimator.steps[:-1])
    elif isinstance(estimator, VAETransformer):
        vae, steps = estimator, []
    else:
        raise TypeError(
            "Expected a fitted VAETransformer or a Pipeline whose last step is "
            f"one, got {type(estimator).__name__}."
        )
    for step in steps:
        check_is_fitted(step)
    check_is_fitted(vae)
    return vae, steps


def _flatten_steps(steps):
    flat = []
    for _, step in steps:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        if isinstance(step, Pipeline):
            flat.extend(_flatten_steps(step.steps))
        else:
            flat.append(step)
    return flat


def to_vae_input(estimator, X, *, derivative=False, input_space="pipeline"):
    """``X`` mapped into the VAE's input space and validated against the VAE.

    Returns ``(vae, X_vae, dX_vae_dX)``: ``X_vae`` is a float32 or float64 array
    (for a VAE fitted on a table, its internal values: a category as the code
    of its level, read by the VAE as at fit); ``dX_vae_dX`` is None unless
    ``derivative`` is True, ``input_space`` is 'pipeline' and there are steps
    before the VAE. Every supported step maps
    each feature on its own, so its Jacobian is diagonal: ``dX_vae_dX`` is that
    diagonal, of shape ``(n_samples, n_features)``, or ``(n_features,)`` when
    it does not depend on ``X``. A step that is not supported raises a
    ValueError naming it (for 'pipeline' only).
    """
    check_input_space(input_space)
    vae, steps = resolve_vae(estimator)
    derivative = derivative and input_space == "pipeline"
    check_numeric_input(X)
    if derivative:
        check_feature_space(vae, steps, input_space)
        for step in steps:
            _check_supported(step)
    dX = None
    for step in steps:
        # transform first: it is what checks X against the fitted step.
        X_next = step.transform(X)
        if derivative:
            factor = _step_derivative(step, X)
            dX = factor if dX is None else dX * factor
        X = X_next
    # The estimator's own reading: a table becomes its internal values (a
    # level's code for a category), validated as at fit.
    X = vae._validate_rows(X)
    return vae, X, dX


def output_derivative(steps, input_space="pipeline", vae=None):
    """Derivative of the inverse of ``steps``: from the VAE's space back to X's.

    The inverses of the supported steps are affine (clipping happens in the
    forward direction only; the clip-at-zero FunctionTransformer has no
    inverse function, so its inverse is the identity, as in
    ``Pipeline.inverse_transform``), so this is a constant ``(n_features,)``
    vector, or None for no steps or ``input_space='vae'``. With ``vae``, a
    model with categorical columns raises (see :func:`check_feature_space`).
    """
    if check_input_space(input_space) == "vae":
        return None
    derivative = None
    if steps and vae is not None:
        check_feature_space(vae, steps, input_space)
    for step in steps:
        _check_supported(step)
        factor = 1.0 / _linear_factor(step)
        derivative = factor if derivative is None else derivative * factor
    return derivative


def _is_clip_negative(step):
    """Whether ``step`` is the clip-at-zero step of ``flows_preprocessor``."""
    if not isinstance(step, FunctionTransformer):
        return False
    from ..datasets._flows import clip_negative

    return step.func is clip_negative and step.inverse_func is None


def _check_supported(step):
    if not (
        isinstance(step, StandardScaler | MinMaxScaler | MaxAbsScaler | RobustScaler)
        or _is_clip_negative(step)
    ):
        raise ValueError(
            f"Cannot differentiate through the pipeline step {step!r}: derivatives "
            f"are known for {_SUPPORTED_STEPS} and 'passthrough' only. Pass "
            "input_space='vae' to work in the VAE's own input space (the "
            "features after the steps), or pass the VAE (pipeline[-1]) and "
            "pipeline[:-1].transform(X)."
        )


def _linear_factor(step):
    """``dX_out / dX_in`` of a supported scaler, ignoring MinMaxScaler's clip."""
    if _is_clip_negative(step):
        return np.ones(step.n_features_in_)
    scale = getattr(step, "scale_", None)
    if scale is None:
        # StandardScaler(with_std=False), RobustScaler(with_scaling=False).
        return np.ones(step.n_features_in_)
    scale = np.asarray(scale, dtype=np.float64)
    if isinstance(step, MinMaxScaler):
        return scale
    return 1.0 / scale


def _step_derivative(step, X):
    _check_supported(step)
    if _is_clip_negative(step):
        # max(x, 0): slope 1 at and above zero (zero counts do move the code
        # when they grow), 0 below, where every value maps to 0.
        X = check_array(X, dtype=[np.float64, np.float32])
        return (X >= 0).astype(X.dtype)
    factor = _linear_factor(step)
    if isinstance(step, MinMaxScaler) and step.clip:
        # Clipped values do not move with the input. At the edge of the range
        # the derivative from the inside is kept (training minima and maxima
        # land exactly there).
        X = check_array(X, dtype=[np.float64, np.float32])
        unclipped = X * step.scale_ + step.min_
        low, high = step.feature_range
        inside = (unclipped >= low) & (unclipped <= high)
        return factor * inside
    return factor


def input_feature_names(estimator, input_space="pipeline"):
    """Names of the features that ``input_space`` refers to, as strings.

    'pipeline': the pipeline's (or the VAE's) ``feature_names_in_``, else
    ``x0, x1, ...``. 'vae': the VAE's ``feature_names_in_``, else the output
    names of the steps before it, else ``x0, x1, ...``.
    """
    vae, steps = resolve_vae(estimator)
    if check_input_space(input_space) == "pipeline" or not steps:
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            return [str(name) for name in names]
        n_in = getattr(estimator, "n_features_in_", vae.n_features_in_)
        return [f"x{i}" for i in range(n_in)]
    if hasattr(vae, "feature_names_in_"):
        return [str(name) for name in vae.feature_names_in_]
    names = None
    try:
        # Chained as Pipeline.get_feature_names_out does.
        for step in steps:
            names = step.get_feature_names_out(names)
    except (AttributeError, ValueError, TypeError):
        names = None
    if names is not None and len(names) == vae.n_features_in_:
        return [str(name) for name in names]
    return [f"x{i}" for i in range(vae.n_features_in_)]


def analysis_features(vae):
    """The analysis features of ``vae`` and where its likelihood puts them.

    Returns ``(features, order)``: ``features`` lists, for each analysis
    feature in the order of the table's columns, ``(column, level)`` with
    ``level`` None for a numeric column and the level's index for a
    categorical one. The likelihood lays its features out block by block
    (``mean_features``, the encoder's input); ``order`` takes that layout to
    the table's (``out[..., order]``), None when they are the same.
    """
    pairs = vae.module_.likelihood.feature_columns()
    order = sorted(
        range(len(pairs)),
        key=lambda j: (pairs[j][0], -1 if pairs[j][1] is None else pairs[j][1]),
    )
    features = [pairs[j] for j in order]
    if order == list(range(len(pairs))):
        return features, None
    return features, np.asarray(order)


def reads_table(vae):
    """Whether ``vae`` was fitted on a table read column by column
    (``likelihood='auto'``, a list of pairs, or non-numeric columns)."""
    return getattr(vae, "_table", None) is not None


def has_levels(vae):
    """Whether ``vae`` models a categorical column (features per level)."""
    return any(level is not None for _, level in analysis_features(vae)[0])


def check_feature_space(vae, steps, input_space):
    """Refuse 'pipeline' through steps for a model with categorical columns.

    A level's probability or indicator is no feature of the steps in front of
    the VAE, so nothing maps it through them.
    """
    if steps and input_space == "pipeline" and has_levels(vae):
        names = input_feature_names(vae)
        columns = sorted({names[c] for c, level in analysis_features(vae)[0]
                          if level is not None}, key=names.index)
        raise ValueError(
            "This VAETransformer models categorical columns "
            f"({', '.join(columns)}): its features there are the levels' "
            "probabilities (decoder) or indicators (encoder), which the "
            "pipeline's steps cannot map back to their own input. Pass "
            "input_space='vae' to work in the VAE's own input space (the "
            "features after the steps), or pass the VAE (pipeline[-1]) and "
            "pipeline[:-1].transform(X)."
        )


def analysis_feature_names(estimator, input_space="pipeline"):
    """Names of the features the analysis functions return, as strings.

    For a model without categorical columns, :func:`input_feature_names`. For
    one with categorical columns, the names of the VAE's columns, where each
    categorical column gives one name per level seen in fit, named as
    ``OneHotEncoder.get_feature_names_out`` does: ``<column>_<level>``. This
    is the feature axis of the decoder's Jacobians, traversals and Displays,
    and of the encoder's Jacobian.
    """
    vae, steps = resolve_vae(estimator)
    check_input_space(input_space)
    if not has_levels(vae):
        return input_feature_names(estimator, input_space)
    check_feature_space(vae, steps, input_space)
    columns = input_feature_names(estimator, input_space)
    levels = vae._table["levels"]
    return [
        columns[c] if level is None else f"{columns[c]}_{levels[c][level]}"
        for c, level in analysis_features(vae)[0]
    ]


def soft_encoder_input(likelihood, decoded):
    """The encoder's input for the decoder's mean, probabilities for levels.

    ``likelihood.encode(likelihood.mean(decoded))``, except that a
    categorical column is given the probability of each level (its mean
    features) in place of the one-hot indicator of the most probable level:
    differentiable in ``decoded``.
    """
    parts = []
    start = 0
    for family in likelihood.families:
        block = decoded[..., start : start + family.n_outputs]
        start += family.n_outputs
        if family.discrete:
            parts.append(family.mean_features(block))
        else:
            parts.append(family.encode(family.mean(block)))
    if likelihood.mask_inputs:
        # The decoder's mean is a complete row: every cell observed.
        parts.append(decoded.new_ones((*decoded.shape[:-1], likelihood.n_columns)))
    return torch.cat(parts, dim=-1)


def check_codes(vae, Z, name="Z"):
    """Validate latent codes: a 2-D float array with ``n_components`` columns."""
    check_numeric_input(Z, name)
    Z = check_array(Z, dtype=[np.float64, np.float32], input_name=name)
    if Z.shape[1] != vae.n_components:
        raise ValueError(
            f"{name} has {Z.shape[1]} columns, but the VAETransformer has "
            f"n_components={vae.n_components}: pass latent codes such as the "
            "output of transform."
        )
    return Z


def rows_per_chunk(vae, batch_size, n_values=1):
    """Rows per chunk of an analysis call on ``vae``.

    ``batch_size`` as the caller gave it, or for None the package's rule
    (:func:`skvae._data.chunk_rows`) for chunks that hold ``n_values`` times
    the network's widest layer per row: at most 2**20 such values (4 MiB in
    float32, 8 MiB in float64) and 16,384 rows.
    """
    return check_chunk_rows(batch_size, n_values * widest_layer(vae.module_))


def module_and_device(vae, dtype):
    """The VAE's torch module in ``dtype`` (a copy unless it is float32), and
    the device it lives on."""
    module = inference_module(vae, dtype)
    return module, next(module.parameters()).device
