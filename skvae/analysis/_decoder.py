"""The decoder side: what moving along each latent dimension does to the output."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils.validation import check_array

from .._data import tensor_blocks
from .._losses import decoder_mean
from ._common import (
    analysis_features,
    check_codes,
    check_feature_space,
    check_input_space,
    has_levels,
    module_and_device,
    output_derivative,
    reads_table,
    resolve_vae,
    rows_per_chunk,
    soft_encoder_input,
)

_METHODS = ("forward", "central")


def decoder_finite_differences(
    vae, Z, *, step=1e-3, method="central", batch_size=None, input_space="pipeline"
):
    """Finite-difference derivatives of the decoder mean at latent codes ``Z``.

    For every latent dimension ``i``, with ``e_i`` its unit vector and ``f``
    the decoder mean (what ``inverse_transform`` returns):

    - 'forward': ``(f(z + step e_i) - f(z)) / step``, error of order ``step``;
    - 'central': ``(f(z + step e_i) - f(z - step e_i)) / (2 step)``, error of
      order ``step ** 2``;

    until round-off, of order ``eps / step``, takes over (``eps`` is about
    1e-16 in float64 and 1e-7 in float32). This is the "change each dimension
    slightly and observe the output" view of the decoder;
    :func:`decoder_jacobian` gives the exact derivative.

    Parameters
    ----------
    vae : VAETransformer or Pipeline
        A fitted ``VAETransformer``, or a fitted ``Pipeline`` whose last step
        is one: the output is then mapped back to the pipeline's input space,
        as ``Pipeline.inverse_transform`` does, through steps that must be
        ``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``,
        ``RobustScaler``, 'passthrough' or the clip-at-zero step of
        :func:`skvae.datasets.flows_preprocessor` (whose inverse is the
        identity), unless ``input_space='vae'``.

    Z : array-like of shape (n_samples, n_components)
        Latent codes, e.g. the output of ``transform``.

    step : float, default=1e-3
        The finite-difference step ``h``, positive.

    method : {'forward', 'central'}, default='central'
        The difference quotient.

    batch_size : int, default=None
        Codes per chunk. Each chunk is one decoder call on all its perturbed
        codes (``n_components + 1`` or ``2 * n_components`` per code). None
        means the package's chunk rule: as many codes as keep a chunk's
        decoder activations (perturbed codes x widest layer) at 2**20
        values, at most 16,384 codes.

    input_space : {'pipeline', 'vae'}, default='pipeline'
        For a Pipeline: the derivative of the output mapped back through the
        steps (the pipeline's input space), or of the VAE's own output
        (any step is then accepted). No effect for a VAETransformer.

    Returns
    -------
    D : ndarray of shape (n_samples, n_features_out, n_components)
        ``D[n, j, i]`` approximates the derivative of output feature ``j``
        with respect to latent dimension ``i`` at ``Z[n]``. The dtype follows
        ``Z`` (float32 or float64). ``n_features_out`` is ``n_features``, or
        for a model with categorical columns one per level of those (see
        Notes).

    See Also
    --------
    decoder_jacobian : The same derivative by automatic differentiation.
    latent_traversal : Decoded outputs along one latent dimension.

    Notes
    -----
    With piecewise-linear activations ('relu', 'leaky_relu') the decoder has
    kinks; a difference quotient whose points straddle one is the slope of a
    secant, which matches the derivative on neither side. Smooth activations
    ('tanh', 'gelu', 'silu', ...) do not have this problem.

    Memory: the call holds the result and, for one chunk of codes at a time,
    the decoder's activations on its perturbed codes.

    A model with categorical columns (fitted on a table) has one output
    feature per level of such a column, the probability of that level
    (``softmax`` of its logits), named ``<column>_<level>`` as by
    ``OneHotEncoder`` and placed where the column is in the table; the
    derivatives of a column's levels sum to zero. Other columns give the
    mean of their family (counts as expected counts, not rounded). With
    steps in front, ``input_space='pipeline'`` raises a ValueError for such a
    model: probabilities of levels do not map back through the steps; pass
    ``input_space='vae'``.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAETransformer
    >>> from skvae.analysis import decoder_finite_differences, decoder_jacobian
    >>> X = np.random.RandomState(0).uniform(size=(100, 5))
    >>> vae = VAETransformer(n_components=2, activation="tanh", max_iter=2,
    ...                      random_state=0).fit(X)
    >>> Z = vae.transform(X[:4])
    >>> D = decoder_finite_differences(vae, Z, step=1e-4)
    >>> D.shape
    (4, 5, 2)
    >>> bool(np.allclose(D, decoder_jacobian(vae, Z), atol=1e-7))
    True
    """
    _, Z, blocks = finite_difference_blocks(
        vae,
        Z,
        step=step,
        method=method,
        batch_size=batch_size,
        input_space=input_space,
    )
    D = None
    for rows, block in blocks:
        if D is None:
            D = np.empty((Z.shape[0], *block.shape[1:]), dtype=block.dtype)
        D[rows] = block
    return D


def finite_difference_blocks(
    estimator, Z, *, step, method, batch_size, input_space="pipeline"
):
    """Check the arguments of :func:`decoder_finite_differences`, then compute.

    Returns ``(vae, Z, blocks)``: the VAE, the validated codes and a
    generator of ``(rows, D[rows])``, the derivatives of the codes ``Z[rows]``
    (a new array per block, already mapped through the inverse steps), one
    chunk at a time. Invalid arguments raise here, before any block.
    """
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be 'forward' or 'central', got {method!r}.")
    if (
        isinstance(step, bool)
        or not isinstance(step, Real)
        or not np.isfinite(step)
        or step <= 0
    ):
        raise ValueError(f"step must be a positive finite number, got {step!r}.")
    vae_, steps, Z = _check_decoder_input(estimator, Z)
    # Below the spacing of the values the network computes with (relative to
    # max(1, |z|)), z + step rounds to z, or the change is lost in the first
    # layer's bias: the quotient is zero or noise.
    resolution = np.finfo(Z.dtype).eps * max(1.0, float(np.max(np.abs(Z))))
    if step < resolution:
        raise ValueError(
            f"step={step!r} is below the resolution of {Z.dtype} codes "
            f"(eps * max(1, max |z|) = {resolution:.3g}): the differences would "
            "be zero or rounding noise. Use a step well above it, about the "
            "square root of eps (1e-3 for float32, 1e-5 for float64 codes), or "
            "pass float64 Z."
        )
    factor = output_derivative(steps, input_space, vae_)
    order = analysis_features(vae_)[1]
    n_components = Z.shape[1]
    n_points = n_components + 1 if method == "forward" else 2 * n_components
    batch_size = rows_per_chunk(vae_, batch_size, n_points)

    def blocks():
        module, device = module_and_device(vae_, Z.dtype)
        torch_dtype = next(module.parameters()).dtype
        eye = step * torch.eye(n_components, dtype=torch_dtype, device=device)
        if method == "forward":
            offsets = torch.cat([torch.zeros_like(eye[:1]), eye])
        else:
            offsets = torch.cat([eye, -eye])
        for rows, z in tensor_blocks(Z, batch_size, device):
            # Not across the yield: grad mode is the caller's between blocks.
            with torch.no_grad():
                # (m, n_points, n_components) perturbed codes, decoded at once.
                perturbed = (z.unsqueeze(1) + offsets).reshape(-1, n_components)
                out = _features(module, module.decode(perturbed), order)
                out = out.reshape(z.shape[0], n_points, -1)
                if method == "forward":
                    block = (out[:, 1:] - out[:, :1]) / step
                else:
                    block = out[:, :n_components] - out[:, n_components:]
                    block = block / (2 * step)
            yield rows, _scale_rows(block.transpose(1, 2).cpu().numpy(), factor)

    return vae_, Z, blocks()


def decoder_jacobian(vae, Z, *, batch_size=None, input_space="pipeline"):
    """Jacobian of the decoder mean at latent codes ``Z``, by autograd.

    The exact counterpart of :func:`decoder_finite_differences`, computed by
    automatic differentiation: one Jacobian-vector product per latent
    dimension, for all codes of a chunk at once, the cheap direction when
    ``n_components`` is smaller than ``n_features``. Safe to call from several
    threads on one model (the products use reverse-mode autograd only, not
    torch's forward-mode AD, whose state is process-wide).

    Parameters
    ----------
    vae : VAETransformer or Pipeline
        A fitted ``VAETransformer``, or a fitted ``Pipeline`` ending in one
        (see :func:`decoder_finite_differences`).

    Z : array-like of shape (n_samples, n_components)
        Latent codes.

    batch_size : int, default=None
        Codes per chunk. None means the package's chunk rule: as many codes
        as keep a chunk's ``n_components`` x (widest layer) values at 2**20,
        at most 16,384.

    input_space : {'pipeline', 'vae'}, default='pipeline'
        For a Pipeline: the derivative of the output mapped back through the
        steps (the pipeline's input space), or of the VAE's own output
        (any step is then accepted). No effect for a VAETransformer.

    Returns
    -------
    J : ndarray of shape (n_samples, n_features_out, n_components)
        ``J[n, j, i]`` is the derivative of output feature ``j`` (the decoder
        mean: probabilities for 'bernoulli', the probability of each level
        for a categorical column) with respect to latent dimension ``i`` at
        ``Z[n]``. The dtype follows ``Z``. ``n_features_out`` is
        ``n_features``, or for a model with categorical columns one per
        level of those (see Notes).

    See Also
    --------
    decoder_finite_differences : The same derivative by finite differences.
    encoder_jacobian : The other direction, from features to latent codes.

    Notes
    -----
    Memory: the call holds the result and, for one chunk of codes at a time,
    the decoder's graph of the double-backward products (a few activations
    of each layer per code) and the chunk's ``n_features x n_components``
    derivatives.

    A model with categorical columns (fitted on a table) has one output
    feature per level of such a column, the probability of that level
    (``softmax`` of its logits), named ``<column>_<level>`` as by
    ``OneHotEncoder`` and placed where the column is in the table; the
    derivatives of a column's levels sum to zero. Other columns give the
    mean of their family (counts as expected counts, not rounded). With
    steps in front, ``input_space='pipeline'`` raises a ValueError for such a
    model: probabilities of levels do not map back through the steps; pass
    ``input_space='vae'``.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAETransformer
    >>> from skvae.analysis import decoder_jacobian
    >>> X = np.random.RandomState(0).uniform(size=(100, 5))
    >>> vae = VAETransformer(n_components=2, likelihood="bernoulli", max_iter=2,
    ...                      random_state=0).fit(X)
    >>> decoder_jacobian(vae, np.zeros((3, 2))).shape
    (3, 5, 2)

    A categorical column gives the probability of each of its levels, whose
    derivatives sum to zero:

    >>> import pandas as pd
    >>> table = pd.DataFrame({"size": X[:, 0],
    ...                       "kind": pd.Categorical(np.where(X[:, 1] > 0.5,
    ...                                                       "big", "small"))})
    >>> mixed = VAETransformer(likelihood="auto", max_iter=2,
    ...                        random_state=0).fit(table)
    >>> J = decoder_jacobian(mixed, np.zeros((3, 2)))
    >>> J.shape
    (3, 3, 2)
    >>> bool(np.allclose(J[:, 1:].sum(axis=1), 0.0))
    True
    """
    vae_, steps, Z = _check_decoder_input(vae, Z)
    factor = output_derivative(steps, input_space, vae_)
    order = analysis_features(vae_)[1]
    J = _forward_jacobian(
        vae_,
        lambda module, z: _features(module, module.decode(z), order),
        Z,
        rows_per_chunk(vae_, batch_size, vae_.n_components),
    )
    return _scale_rows(J, factor)


def latent_coupling(vae, Z, *, batch_size=None):
    """How each latent dimension moves the others through a decode-encode trip.

    The Jacobian of ``z -> transform(inverse_transform(z))``, which by the
    chain rule is ``J_enc(dec(z)) @ J_dec(z)``, averaged over the codes
    ``Z``. Identity means each latent dimension comes back as itself and
    alone; off-diagonal entries show that moving one dimension moves others
    (entanglement); a diagonal entry near zero shows a dimension the decoder
    ignores or the encoder does not recover (e.g. a collapsed one).

    Parameters
    ----------
    vae : VAETransformer or Pipeline
        A fitted ``VAETransformer``, or a Pipeline ending in one. The
        coupling is that of the VAE alone: the steps before it would be
        undone and redone on the round trip.

    Z : array-like of shape (n_samples, n_components)
        Latent codes at which to evaluate the coupling, e.g. ``transform(X)``
        or draws from the prior.

    batch_size : int, default=None
        Codes per chunk: the call holds the ``(n_components, n_components)``
        result and, for one chunk at a time, the graph of the round trip's
        double-backward products. None means the package's chunk rule, as in
        :func:`decoder_jacobian`.

    Returns
    -------
    C : ndarray of shape (n_components, n_components)
        ``C[k, i]``: the average derivative of latent dimension ``k`` of the
        re-encoded output with respect to latent dimension ``i`` of the code.
        The dtype follows ``Z``.

    Notes
    -----
    A categorical column comes back as its most probable level, whose
    derivative is zero almost everywhere; for a model with categorical
    columns the round trip therefore feeds the encoder the probability of
    each level in place of the level's one-hot indicator (the expected
    indicator), so that the coupling through those columns is seen. Numeric
    columns come back as the decoder's mean, as in ``inverse_transform``.

    See Also
    --------
    decoder_jacobian : The decoder's half of the product.
    encoder_jacobian : The encoder's half of the product.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAETransformer
    >>> from skvae.analysis import latent_coupling
    >>> X = np.random.RandomState(0).uniform(size=(100, 5))
    >>> vae = VAETransformer(n_components=3, max_iter=2, random_state=0).fit(X)
    >>> latent_coupling(vae, vae.transform(X)).shape
    (3, 3)
    """
    vae_, _, Z = _check_decoder_input(vae, Z)
    if has_levels(vae_):

        def round_trip(module, z):
            # A level's code (the arg-max) has no derivative: the encoder is
            # fed each level's probability in place of its one-hot indicator.
            encoded = soft_encoder_input(module.likelihood, module.decode(z))
            return module.encoder(encoded)[:, : module.n_components]

    else:

        def round_trip(module, z):
            # Back into the encoder as internal values (a count, a number).
            return module.encode(module.likelihood.mean(module.decode(z)))[0]

    total = np.zeros((vae_.n_components, vae_.n_components))
    batch_size = rows_per_chunk(vae_, batch_size, vae_.n_components)
    blocks = _forward_jacobian_blocks(vae_, round_trip, Z, batch_size)
    for _, block in blocks:
        total += block.sum(axis=0, dtype=np.float64)
    return (total / Z.shape[0]).astype(Z.dtype)


def latent_traversal(vae, z0=None, dim=0, values=None, *, input_space="pipeline"):
    """Decode codes that sweep one latent dimension while the others stay put.

    Row ``r`` of the result is ``inverse_transform(z)`` with ``z = z0`` except
    ``z[dim] = values[r]``: the original post's "change each dimension and observe
    the output".

    Parameters
    ----------
    vae : VAETransformer or Pipeline
        A fitted ``VAETransformer``, or a Pipeline ending in one, whose
        ``inverse_transform`` then maps the output back through the steps.

    z0 : array-like of shape (n_components,), default=None
        The code the sweep starts from. None means zeros, the prior's mean.

    dim : int, default=0
        The latent dimension that sweeps, in ``[0, n_components)``.

    values : array-like of shape (n_values,), default=None
        The values it takes. None means ``np.linspace(-3, 3, 7)``, three
        prior standard deviations either side of zero.

    input_space : {'pipeline', 'vae'}, default='pipeline'
        For a Pipeline: decode with the pipeline's ``inverse_transform``
        (back through its steps) or with the VAE's own.

    Returns
    -------
    X_traversal : ndarray of shape (n_values, n_features_out)
        The decoded outputs (the decoder's mean: probabilities for
        'bernoulli'), one row per value, float64 unless both ``z0`` and
        ``values`` are float32. For a model fitted on a table
        (``likelihood='auto'``, a list of pairs), whose ``inverse_transform``
        gives levels and whole counts, the decoder's mean as numbers
        instead: expected counts, and for a categorical column the
        probability of each level (one column per level, named
        ``<column>_<level>``, in the column's place). For such a model with
        categorical columns and steps in front, ``input_space='pipeline'``
        raises a ValueError (pass ``input_space='vae'``).

    See Also
    --------
    decoder_jacobian : The derivative of these outputs at a point.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAETransformer
    >>> from skvae.analysis import latent_traversal
    >>> X = np.random.RandomState(0).uniform(size=(100, 5))
    >>> vae = VAETransformer(n_components=2, likelihood="bernoulli", max_iter=2,
    ...                      random_state=0).fit(X)
    >>> latent_traversal(vae, dim=1, values=[-2.0, 0.0, 2.0]).shape
    (3, 5)
    """
    estimator = vae
    vae_, _ = resolve_vae(estimator)
    if check_input_space(input_space) == "vae":
        estimator = vae_
    n_components = vae_.n_components
    if z0 is None:
        z0 = np.zeros(n_components)
    z0 = check_array(
        z0, dtype=[np.float64, np.float32], ensure_2d=False, input_name="z0"
    )
    if z0.shape != (n_components,):
        raise ValueError(
            f"z0 must have shape ({n_components},), one value per latent "
            f"dimension; got shape {z0.shape}."
        )
    if values is None:
        values = np.linspace(-3.0, 3.0, 7)
    values = check_array(
        values, dtype=[np.float64, np.float32], ensure_2d=False, input_name="values"
    )
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}.")
    if (
        isinstance(dim, bool)
        or not isinstance(dim, Integral)
        or not 0 <= dim < n_components
    ):
        raise ValueError(f"dim must be an integer in [0, {n_components}), got {dim!r}.")
    Z = np.tile(z0.astype(np.result_type(z0, values)), (values.shape[0], 1))
    Z[:, dim] = values
    if not reads_table(vae_):
        return np.asarray(estimator.inverse_transform(Z))
    # A table's inverse_transform gives levels and whole counts; a traversal
    # shows the decoder's mean as numbers: each level's probability.
    steps = resolve_vae(estimator)[1]
    check_feature_space(vae_, steps, input_space)
    out = decoded_features(vae_, Z)
    for step in reversed(steps):
        out = step.inverse_transform(out)
    return np.asarray(out)


def decoded_features(vae, Z):
    """The decoder mean per analysis feature at codes ``Z`` (no gradient)."""
    order = analysis_features(vae)[1]
    module, device = module_and_device(vae, Z.dtype)
    out = None
    with torch.no_grad():
        for rows, z in tensor_blocks(Z, rows_per_chunk(vae, None), device):
            block = _features(module, module.decode(z), order).cpu().numpy()
            if out is None:
                out = np.empty((Z.shape[0], block.shape[1]), dtype=Z.dtype)
            out[rows] = block
    return out


def _features(module, decoded, order):
    """The decoder mean per analysis feature, in the table's column order."""
    out = decoder_mean(module, decoded)
    return out if order is None else out[..., order]


def _check_decoder_input(estimator, Z):
    vae, steps = resolve_vae(estimator)
    return vae, steps, check_codes(vae, Z)


def _forward_jacobian(vae, fn, Z, batch_size):
    """``(n, n_out, n_components)`` Jacobian of ``fn(module, z)`` at the rows of Z."""
    J = None
    for rows, block in _forward_jacobian_blocks(vae, fn, Z, batch_size):
        if J is None:
            J = np.empty((Z.shape[0], *block.shape[1:]), dtype=Z.dtype)
        J[rows] = block
    return J


def _forward_jacobian_blocks(vae, fn, Z, batch_size):
    """Yield ``(rows, J[rows])``, the Jacobian of ``fn(module, z)``, by chunks.

    Each column ``J v`` (``v`` a latent direction) is a Jacobian-vector product
    computed with reverse mode only, by the double-backward trick: with ``u``
    a dummy cotangent, ``g(u) = J^T u`` is one backward pass, and ``J v`` is
    the gradient of ``g . v`` with respect to ``u``. That is exact, like
    forward-mode AD, but unlike ``torch.func.jacfwd`` it is safe to run from
    several threads at once: torch's forward-mode AD keeps process-wide state
    (its dual level), reverse-mode autograd builds one graph per call. Rows do
    not interact in the network, so each pass serves every row of the chunk.
    """
    module, device = module_and_device(vae, Z.dtype)
    n_components = Z.shape[1]
    for rows, z in tensor_blocks(Z, batch_size, device):
        z.requires_grad_(True)
        # Grad mode is per thread: a caller's no_grad block must not stop it.
        with torch.enable_grad():
            out = fn(module, z)
            cotangent = torch.zeros_like(out, requires_grad=True)
            (vjp,) = torch.autograd.grad(out, z, cotangent, create_graph=True)
            columns = []
            for i in range(n_components):
                direction = torch.zeros_like(z)
                direction[:, i] = 1.0
                (column,) = torch.autograd.grad(
                    vjp, cotangent, direction, retain_graph=i + 1 < n_components
                )
                columns.append(column)
        yield rows, torch.stack(columns, dim=-1).cpu().numpy()


def _scale_rows(D, factor):
    """Apply the diagonal derivative of the inverse steps to the feature axis."""
    if factor is None:
        return D
    return D * np.asarray(factor, dtype=D.dtype)[:, np.newaxis]
