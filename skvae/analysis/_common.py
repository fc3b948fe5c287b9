"""What every analysis function shares: finding the VAE, the input space, chunks.

A function of :mod:`skvae.analysis` takes a fitted ``VAETransformer`` or a
``Pipeline`` whose last step is one. The steps before the VAE map the caller's
features into the VAE's own input space; derivatives with respect to the
caller's features need the derivative of those steps too. Here that is known
for the element-wise affine scalers only, which are also the steps one puts in
front of a VAE in practice.
"""

from numbers import Integral

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .._vae import VAETransformer, inference_module

# Rows per chunk when a call does not say: bounds the memory of the
# intermediate tensors, never the size of the result.
DEFAULT_BATCH_SIZE = 4096
# Values held by the largest intermediate tensor of a chunk when a call does
# not say otherwise (16 MiB in float32, 32 MiB in float64).
CHUNK_VALUES = 2**22

_SUPPORTED_STEPS = "StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler"


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


def to_vae_input(estimator, X, *, derivative=False):
    """``X`` mapped into the VAE's input space and validated against the VAE.

    Returns ``(vae, X_vae, dX_vae_dX)``: ``X_vae`` is a float32 or float64 array;
    ``dX_vae_dX`` is None unless ``derivative`` is True and there are steps
    before the VAE. Every supported step maps each feature on its own, so its
    Jacobian is diagonal: ``dX_vae_dX`` is that diagonal, of shape
    ``(n_samples, n_features)``, or ``(n_features,)`` when it does not depend
    on ``X``. A step that is not supported raises a ValueError naming it.
    """
    vae, steps = resolve_vae(estimator)
    if derivative:
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
    X = validate_data(vae, X, dtype=[np.float64, np.float32], reset=False)
    return vae, X, dX


def output_derivative(steps):
    """Derivative of the inverse of ``steps``: from the VAE's space back to X's.

    The inverses of the supported steps are affine (clipping happens in the
    forward direction only), so this is a constant ``(n_features,)`` vector,
    or None for no steps.
    """
    derivative = None
    for step in steps:
        _check_supported(step)
        factor = 1.0 / _linear_factor(step)
        derivative = factor if derivative is None else derivative * factor
    return derivative


def _check_supported(step):
    if not isinstance(
        step, StandardScaler | MinMaxScaler | MaxAbsScaler | RobustScaler
    ):
        raise ValueError(
            f"Cannot differentiate through the pipeline step {step!r}: derivatives "
            f"are known for {_SUPPORTED_STEPS} and 'passthrough' only. Work in the "
            "VAE's own input space instead: pass the VAE (pipeline[-1]) and data "
            "already transformed by the steps before it (pipeline[:-1].transform(X))."
        )


def _linear_factor(step):
    """``dX_out / dX_in`` of a supported scaler, ignoring MinMaxScaler's clip."""
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


def check_codes(vae, Z, name="Z"):
    """Validate latent codes: a 2-D float array with ``n_components`` columns."""
    Z = check_array(Z, dtype=[np.float64, np.float32], input_name=name)
    if Z.shape[1] != vae.n_components:
        raise ValueError(
            f"{name} has {Z.shape[1]} columns, but the VAETransformer has "
            f"n_components={vae.n_components}: pass latent codes such as the "
            "output of transform."
        )
    return Z


def check_batch_size(batch_size, values_per_row=None):
    """``batch_size``, or the default: 4096 rows, fewer when each row's
    largest intermediate holds ``values_per_row`` values, so that a chunk holds
    at most ``CHUNK_VALUES``."""
    if batch_size is None:
        if values_per_row is None:
            return DEFAULT_BATCH_SIZE
        return max(1, min(DEFAULT_BATCH_SIZE, CHUNK_VALUES // values_per_row))
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, Integral)
        or batch_size < 1
    ):
        raise ValueError(
            f"batch_size must be a positive integer or None, got {batch_size!r}."
        )
    return int(batch_size)


def module_and_device(vae, dtype):
    """The VAE's torch module in ``dtype`` (a copy unless it is float32), and
    the device it lives on."""
    module = inference_module(vae, dtype)
    return module, next(module.parameters()).device


def chunks(n_samples, batch_size):
    """``slice`` objects covering ``range(n_samples)`` in ``batch_size`` steps."""
    for start in range(0, n_samples, batch_size):
        yield slice(start, min(start + batch_size, n_samples))
