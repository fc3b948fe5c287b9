"""Display of a latent traversal: decoded features as one latent dimension sweeps."""

from numbers import Integral

import numpy as np

from ._base import single_axes, unwrap_vae

_KINDS = ("lines", "heatmap")


class LatentTraversalDisplay:
    """Decoded features as one latent dimension sweeps, the others held fixed.

    Shows what a latent dimension means: the features whose reconstruction
    changes as ``z[dim]`` moves. Under posterior collapse nothing changes. It
    is recommended to use :meth:`from_estimator` to create a display.

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
    >>> disp.ax_.get_xlabel()
    'z1'
    """

    def __init__(
        self, *, values, decoded, dim, feature_names=None, estimator_name=None
    ):
        self.values = values
        self.decoded = decoded
        self.dim = dim
        self.feature_names = feature_names
        self.estimator_name = estimator_name

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
            ax = single_axes(ax, "LatentTraversalDisplay", figsize=(5.5, 4))
            spread = np.ptp(decoded, axis=0)
            self.features_ = np.argsort(-spread, kind="stable")[:n_features]
            self.lines_ = [
                ax.plot(values, decoded[:, j], label=names[j], **kwargs)[0]
                for j in self.features_
            ]
            ax.set_ylabel("decoded value")
            ax.legend(title="most changing", fontsize="small", loc="best")
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
            ax.figure.colorbar(self.image_, ax=ax, label="decoded value")
        if kind == "lines":
            ax.set_xlabel(f"z{self.dim}")
        else:
            ax.set_ylabel(f"z{self.dim}")
            ax.set_xlabel("feature")
        ax.set_title(title)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X=None,
        y=None,
        *,
        dim=0,
        values=None,
        z0=None,
        kind="lines",
        n_features=6,
        ax=None,
        name=None,
        feature_names=None,
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
            Values of ``z[dim]``, increasing. None: 25 values from -3 to 3, the
            bulk of the standard normal prior.

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
            Feature labels. None takes the VAE's ``feature_names_in_``, or the
            output names of the Pipeline's steps before it, or ``x0, x1, ...``.

        **kwargs : dict
            Passed to ``ax.plot`` or ``ax.imshow``.

        Returns
        -------
        display : LatentTraversalDisplay
            The display, drawn.
        """
        from skvae.analysis import latent_traversal

        vae, X_vae, names = unwrap_vae(estimator, X, caller="LatentTraversalDisplay")
        if values is None:
            values = np.linspace(-3.0, 3.0, 25)
        values = np.asarray(values, dtype=np.float64)
        if z0 is None:
            if X_vae is None:
                z0 = np.zeros(vae.n_components)
            else:
                z0 = vae.transform(X_vae).mean(axis=0)
        decoded = latent_traversal(vae, z0=z0, dim=dim, values=values)
        display = cls(
            values=values,
            decoded=decoded,
            dim=dim,
            feature_names=names if feature_names is None else feature_names,
            estimator_name=name,
        )
        return display.plot(ax=ax, kind=kind, n_features=n_features, **kwargs)
