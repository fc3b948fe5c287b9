"""Shared helpers of the Display classes: matplotlib import, unwrapping, labels."""

import numpy as np


def import_pyplot(caller):
    """Import ``matplotlib.pyplot`` on first use, with an install hint if missing."""
    try:
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the env
        raise ImportError(
            f"{caller} requires matplotlib, an optional dependency of skvae; "
            "install it with: pip install 'skvae[plot]'"
        ) from exc
    return plt


def unwrap_vae(estimator, X=None, caller="This display"):
    """Split a fitted VAETransformer, or a Pipeline ending in one, into its parts.

    Returns ``(vae, X_vae, feature_names)``: the VAETransformer, ``X`` passed
    through the steps before it (``None`` if ``X`` is ``None``), and the names
    of the features the VAETransformer sees. Nested pipelines are unwrapped as
    :mod:`skvae.analysis` does.
    """
    from skvae.analysis._common import resolve_vae

    try:
        vae, steps = resolve_vae(estimator)
    except TypeError as exc:
        raise TypeError(
            f"{caller} needs a VAETransformer or a Pipeline ending in one, got "
            f"{type(estimator).__name__}."
        ) from exc
    X_vae = X
    if X is not None:
        for step in steps:
            X_vae = step.transform(X_vae)
    return vae, X_vae, _feature_names(vae, steps)


def resolve_steps(estimator):
    """The fitted steps before the VAE (empty for a bare VAETransformer)."""
    from skvae.analysis._common import resolve_vae

    return resolve_vae(estimator)[1]


def _feature_names(vae, steps):
    from skvae.analysis._common import input_feature_names

    if not steps:
        return input_feature_names(vae)
    from sklearn.pipeline import make_pipeline

    return input_feature_names(make_pipeline(*steps, vae), "vae")


def component_label(dim, kl_per_dimension=None):
    """Axis label of latent dimension ``dim``, with its KL when known."""
    label = f"z{dim}"
    if kl_per_dimension is not None:
        label += f" (KL {kl_per_dimension[dim]:.2f} nats)"
    return label


def class_groups(y, n_samples):
    """``(labels, masks)`` per class in sorted order; one group when ``y`` is None."""
    if y is None:
        return [None], [np.ones(n_samples, dtype=bool)]
    y = np.asarray(y)
    if y.shape != (n_samples,):
        raise ValueError(
            f"y has shape {y.shape}, but the latent codes have {n_samples} rows."
        )
    classes = np.unique(y)
    return list(classes), [y == label for label in classes]


def class_colors(n_classes):
    """Distinct colours from matplotlib's default cycle, one per class."""
    import matplotlib as mpl

    cycle = mpl.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    return [cycle[i % len(cycle)] for i in range(n_classes)]


def axes_array(ax, n_axes, caller, *, figsize, column=False):
    """Return ``n_axes`` Axes as a flat object array: ``ax``'s, or a new figure's.

    A new figure has its Axes in a row, or in a column sharing the x axis.
    """
    if ax is None:
        plt = import_pyplot(caller)
        shape = (n_axes, 1) if column else (1, n_axes)
        _, axes = plt.subplots(*shape, figsize=figsize, squeeze=False, sharex=column)
        return axes.ravel()
    axes = np.asarray(ax, dtype=object).ravel()
    if axes.size != n_axes:
        raise ValueError(
            f"{caller} draws on {n_axes} Axes, but ax holds {axes.size}; pass "
            f"{n_axes} Axes (e.g. plt.subplots(1, {n_axes})[1]) or ax=None."
        )
    return axes


def single_axes(ax, caller, *, figsize=None, projection=None):
    """Return ``ax``, or the Axes of a new figure if it is None."""
    if ax is not None:
        return ax
    plt = import_pyplot(caller)
    fig = plt.figure(figsize=figsize)
    return fig.add_subplot(projection=projection)
