"""Display of a latent traversal: decoded features as one latent dimension sweeps."""

from numbers import Integral

import numpy as np

from ._base import resolve_steps, single_axes, unwrap_vae

_KINDS = ("lines", "heatmap")


class LatentTraversalDisplay:
    """Decoded features as one latent dimension sweeps, the others held fixed.

    Shows what a latent dimension means: the features whose reconstruction
    changes as ``z[dim]`` moves. Under posterior collapse nothing changes. It
    is recommended to use :meth:`from_estimator` to create a display.

    For a VAE fitted on a table, the decoded features are the decoder's mean
    as numbers (see :func:`skvae.analysis.latent_traversal`): expected
    counts, and for a categorical column the probability of each level,
    one feature per level named ``<column>_<level>``.

    Parameters
    ----------
    values : array-like of shape (n_values,)
        The values taken by ``z[dim]``.

    decoded : array-like of shape (n_values, n_features)
        The decoder's mean at each value (probabilities for a Bernoulli
        likelihood), in the space the VAETransformer sees.

    dim : int
        The latent dimension that sweeps.

    feature_names : array-like of str of shape (n_features,), default=None
        Feature labels. None uses ``x0, x1, ...``.

    estimator_name : str, default=None
        Name shown in the title.

    span : str, default=None
        Where ``values`` come from, shown under the x-axis label, e.g.
        '1st-99th percentile of the codes of X'. None shows nothing.

    input_space : {'pipeline', 'vae'} or None, default=None
        For a display of a Pipeline, the space of ``decoded`` (see
        :meth:`from_estimator`); 'vae' is said in the y-axis label.

    Attributes
    ----------
    features_ : ndarray of int
        Indices of the features drawn: for ``kind='lines'``, those that change
        most over the sweep (largest range), most changing first; for
        ``kind='heatmap'``, all of them.

    lines_ : list of matplotlib Line2D or None
        One line per drawn feature (``kind='lines'``).

    image_ : matplotlib AxesImage or None
        The heatmap (``kind='heatmap'``).

    ax_ : matplotlib Axes
        Axes with the plot.

    figure_ : matplotlib Figure
        Figure containing the plot.

    See Also
    --------
    skvae.analysis.latent_traversal : Computes ``decoded``.
    JacobianDisplay : The derivatives at the data, rather than a sweep.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skvae import VAETransformer
    >>> from skvae.plotting import LatentTraversalDisplay
    >>> X = MinMaxScaler(clip=True).fit_transform(load_breast_cancer().data)
    >>> vae = VAETransformer(n_components=2, likelihood="bernoulli",
    ...                      max_iter=5, random_state=0).fit(X)
    >>> disp = LatentTraversalDisplay.from_estimator(vae, X, dim=1, n_features=4)
    >>> disp.decoded.shape
    (25, 30)
    >>> len(disp.lines_)
    4
    >>> print(disp.ax_.get_xlabel())
    z1
    1st-99th percentile of the codes of X
    >>> bool(disp.values.min() >= vae.transform(X)[:, 1].min())
    True
    """

    def __init__(
        self,
        *,
        values,
        decoded,
        dim,
        feature_names=None,
        estimator_name=None,
        span=None,
        input_space=None,
    ):
        self.values = values
        self.decoded = decoded
        self.dim = dim
        self.feature_names = feature_names
        self.estimator_name = estimator_name
        self.span = span
        self.input_space = input_space

    def plot(self, ax=None, *, kind="lines", n_features=6, name=None, **kwargs):
        """Plot the traversal.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on. None creates a new figure.

        kind : {'lines', 'heatmap'}, default='lines'
            One line per feature for the ``n_features`` features that change
            most, or a value x feature heatmap of all features.

        n_features : int, default=6
            Number of lines for ``kind='lines'``.

        name : str, default=None
            Name shown in the title; overrides ``estimator_name``.

        **kwargs : dict
            Passed to ``ax.plot`` (lines) or ``ax.imshow`` (heatmap).

        Returns
        -------
        display : LatentTraversalDisplay
            The object, with its matplotlib handles set.
        """
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}.")
        if (
            isinstance(n_features, bool)
            or not isinstance(n_features, Integral)
            or n_features < 1
        ):
            # A negative slice bound would silently drop the features that
            # change least instead of keeping those that change most.
            raise ValueError(
                f"n_features must be a positive integer, got {n_features!r}."
            )
        values = np.asarray(self.values, dtype=np.float64)
        decoded = np.asarray(self.decoded, dtype=np.float64)
        if decoded.ndim != 2 or values.shape != (decoded.shape[0],):
            raise ValueError(
                "decoded must have one row per value: got values of shape "
                f"{values.shape} and decoded of shape {decoded.shape}."
            )
        n_total = decoded.shape[1]
        names = (
            [f"x{j}" for j in range(n_total)]
            if self.feature_names is None
            else [str(f) for f in self.feature_names]
        )
        if len(names) != n_total:
            raise ValueError(
                f"feature_names has {len(names)} entries, but decoded has "
                f"{n_total} columns."
            )
        name = self.estimator_name if name is None else name
        title = f"Traversal of z{self.dim}" + ("" if name is None else f" ({name})")
        self.lines_ = self.image_ = None

        if kind == "lines":
            from matplotlib.ticker import MaxNLocator

            ax = single_axes(ax, "LatentTraversalDisplay", figsize=(5.5, 4))
            spread = np.ptp(decoded, axis=0)
            self.features_ = np.argsort(-spread, kind="stable")[:n_features]
            self.lines_ = [
                ax.plot(values, decoded[:, j], label=names[j], **kwargs)[0]
                for j in self.features_
            ]
            ax.set_ylabel(self._value_label())
            # A narrow range has long tick labels: few ticks keep them apart.
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            # Beside the Axes, never over the curves: with a few lines that
            # peak anywhere, 'best' still covers some of them.
            ax.legend(
                title="most changing",
                fontsize="small",
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                borderaxespad=0.0,
            )
        else:
            ax = single_axes(
                ax,
                "LatentTraversalDisplay",
                figsize=(max(6.0, 0.22 * n_total + 2), 4),
            )
            self.features_ = np.arange(n_total)
            step = (values[-1] - values[0]) / max(values.size - 1, 1)
            style = {
                "aspect": "auto",
                "origin": "lower",
                "cmap": "viridis",
                "extent": (
                    -0.5,
                    n_total - 0.5,
                    values[0] - step / 2,
                    values[-1] + step / 2,
                ),
            }
            style.update(kwargs)
            self.image_ = ax.imshow(decoded, interpolation="nearest", **style)
            ax.set_xticks(range(n_total))
            ax.set_xticklabels(names, rotation=90, fontsize="small")
            ax.figure.colorbar(self.image_, ax=ax, label=self._value_label())
        label = f"z{self.dim}" + ("" if self.span is None else f"\n{self.span}")
        if kind == "lines":
            ax.set_xlabel(label)
        else:
            ax.set_ylabel(label)
            ax.set_xlabel("feature")
        ax.set_title(title)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    def _value_label(self):
        if self.input_space == "vae":
            return "decoded value (VAE's input space)"
        return "decoded value"

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X=None,
        y=None,
        *,
        dim=0,
        values=None,
        span="data",
        quantiles=(0.01, 0.99),
        n_values=25,
        z0=None,
        kind="lines",
        n_features=6,
        ax=None,
        name=None,
        feature_names=None,
        input_space="pipeline",
        **kwargs,
    ):
        """Sweep one latent dimension of a fitted VAE and plot the decoded features.

        Parameters
        ----------
        estimator : VAETransformer or Pipeline
            A fitted VAETransformer, or a fitted Pipeline ending in one; the
            decoded features are those the VAETransformer sees.

        X : array-like of shape (n_samples, n_features), default=None
            Data whose mean latent code is the starting point when ``z0`` is
            None.

        y : None
            Ignored.

        dim : int, default=0
            The latent dimension that sweeps.

        values : array-like of shape (n_values,), default=None
            Values of ``z[dim]``, increasing. None: ``n_values`` values over
            the range given by ``span``.

        span : {'data', 'prior'}, default='data'
            The range swept when ``values`` is None. 'data': between the
            ``quantiles`` of ``z[dim]`` over the codes of ``X``, the range the
            codes actually take (a dimension whose codes span +-0.2 is swept
            over +-0.2, not extrapolated to +-3). 'prior': from -3 to 3, the
            bulk of the standard normal prior. 'data' needs ``X``; without it
            the prior range is used. The range is stated under the axis label.

        quantiles : tuple of float, default=(0.01, 0.99)
            Lower and upper quantile of the codes for ``span='data'``.

        n_values : int, default=25
            Number of values when ``values`` is None.

        z0 : array-like of shape (n_components,), default=None
            The code whose other dimensions stay fixed. None: the mean code of
            ``X``, or the origin (the prior's mean) without ``X``.

        kind : {'lines', 'heatmap'}, default='lines'
            See :meth:`plot`.

        n_features : int, default=6
            Number of lines for ``kind='lines'``.

        ax : matplotlib Axes, default=None
            Axes to draw on. None creates a new figure.

        name : str, default=None
            Name shown in the title.

        feature_names : array-like of str of shape (n_features,), default=None
            Feature labels. None takes the names of the features of
            ``input_space`` (as :class:`JacobianDisplay` does; a categorical
            column gives one name per level, ``<column>_<level>``).

        input_space : {'pipeline', 'vae'}, default='pipeline'
            For a Pipeline, as everywhere in :mod:`skvae.analysis`: decode
            into the pipeline's input space (its ``inverse_transform``) or
            into the VAE's own input space. Recorded in ``input_space``.

        **kwargs : dict
            Passed to ``ax.plot`` or ``ax.imshow``.

        Returns
        -------
        display : LatentTraversalDisplay
            The display, drawn.
        """
        from skvae.analysis import latent_traversal
        from skvae.analysis._common import analysis_feature_names, check_input_space

        check_input_space(input_space)
        if span not in ("data", "prior"):
            raise ValueError(f"span must be 'data' or 'prior', got {span!r}.")
        low_q, high_q = _check_quantiles(quantiles)
        vae, X_vae, _ = unwrap_vae(estimator, X, caller="LatentTraversalDisplay")
        codes = None if X_vae is None else vae.transform(X_vae)
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            span_text = None
        else:
            if (
                isinstance(n_values, bool)
                or not isinstance(n_values, Integral)
                or n_values < 2
            ):
                raise ValueError(
                    f"n_values must be an integer of at least 2, got {n_values!r}."
                )
            if span == "data" and codes is not None and 0 <= dim < codes.shape[1]:
                low, high = np.quantile(codes[:, dim], [low_q, high_q])
                if not high > low:
                    # All codes equal (e.g. a collapsed dimension): a tiny
                    # range around them, still within what the data show.
                    low, high = low - 1e-3, high + 1e-3
                values = np.linspace(low, high, n_values)
                span_text = (
                    f"{_ordinal(low_q)}-{_ordinal(high_q)} percentile of the codes of X"
                )
            else:
                values = np.linspace(-3.0, 3.0, n_values)
                span_text = "-3 to 3, the prior's bulk"
        if z0 is None:
            z0 = np.zeros(vae.n_components) if codes is None else codes.mean(axis=0)
        decoded = latent_traversal(
            estimator, z0=z0, dim=dim, values=values, input_space=input_space
        )
        if feature_names is None:
            feature_names = analysis_feature_names(estimator, input_space)
        display = cls(
            values=values,
            decoded=decoded,
            dim=dim,
            feature_names=feature_names,
            estimator_name=name,
            span=span_text,
            input_space=input_space if resolve_steps(estimator) else None,
        )
        return display.plot(ax=ax, kind=kind, n_features=n_features, **kwargs)


def _check_quantiles(quantiles):
    try:
        low, high = (float(q) for q in quantiles)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not 0.0 <= low < high <= 1.0:
        raise ValueError(
            f"quantiles must be two numbers 0 <= low < high <= 1, got {quantiles!r}."
        )
    return low, high


def _ordinal(q):
    """0.01 -> '1st', 0.99 -> '99th', 0.025 -> '2.5th', 0 -> '0th'."""
    value = round(100 * q, 6)
    text = f"{value:g}"
    if text.endswith("1") and not text.endswith("11"):
        return text + "st"
    if text.endswith("2") and not text.endswith("12"):
        return text + "nd"
    if text.endswith("3") and not text.endswith("13"):
        return text + "rd"
    return text + "th"
