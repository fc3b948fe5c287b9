"""Displays of the latent codes: scatter plots and per-dimension distributions."""

import numpy as np
from sklearn.utils.validation import check_array

from ._base import (
    axes_array,
    class_colors,
    class_groups,
    component_label,
    single_axes,
    unwrap_vae,
)


def _check_codes(Z, kl_per_dimension):
    Z = check_array(Z, dtype=np.float64, input_name="Z")
    if kl_per_dimension is not None:
        kl_per_dimension = np.asarray(kl_per_dimension, dtype=np.float64)
        if kl_per_dimension.shape != (Z.shape[1],):
            raise ValueError(
                f"kl_per_dimension has shape {kl_per_dimension.shape}, but Z has "
                f"{Z.shape[1]} latent dimensions."
            )
    return Z, kl_per_dimension


def _encode(estimator, X, caller):
    """Latent codes of ``X`` and the VAE's KL per dimension (Pipelines welcome)."""
    vae, X_vae, _ = unwrap_vae(estimator, X, caller=caller)
    return vae.transform(X_vae), vae.kl_per_dimension_


class LatentSpaceDisplay:
    """Scatter plot of latent codes, coloured by class.

    Draws two latent dimensions against each other (or three, on a 3-D Axes;
    or one, as a strip per class). Under posterior collapse every code sits at
    the origin and the classes overlap; a model that uses its latent space
    spreads them apart. It is recommended to use :meth:`from_estimator` to
    create a display.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Latent codes, e.g. ``vae.transform(X)``.

    y : array-like of shape (n_samples,), default=None
        Class of each sample, used for colours and the legend. None draws all
        samples in one colour.

    kl_per_dimension : array-like of shape (n_components,), default=None
        Mean KL divergence of each latent dimension (a VAETransformer's
        ``kl_per_dimension_``). Shown in the axis labels, and used to pick the
        most informative dimensions when ``dims`` is None.

    estimator_name : str, default=None
        Name shown in the title.

    Attributes
    ----------
    dims_ : tuple of int
        The latent dimensions drawn.

    scatters_ : list of matplotlib PathCollection
        One scatter per class.

    ax_ : matplotlib Axes
        Axes with the scatter plot.

    figure_ : matplotlib Figure
        Figure containing the scatter plot.

    See Also
    --------
    LatentDistributionDisplay : Histograms of the codes per latent dimension.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skvae import VAETransformer
    >>> from skvae.plotting import LatentSpaceDisplay
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = MinMaxScaler(clip=True).fit_transform(X)
    >>> vae = VAETransformer(n_components=3, likelihood="bernoulli",
    ...                      max_iter=5, random_state=0).fit(X)
    >>> disp = LatentSpaceDisplay.from_estimator(vae, X, y, dims=(0, 1))
    >>> disp.Z.shape
    (569, 3)
    >>> disp.ax_.get_xlabel()
    'z0 (KL ... nats)'
    >>> len(disp.scatters_)
    2
    """

    def __init__(self, *, Z, y=None, kl_per_dimension=None, estimator_name=None):
        self.Z = Z
        self.y = y
        self.kl_per_dimension = kl_per_dimension
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, dims=None, name=None, **kwargs):
        """Plot the latent codes.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a 3-D Axes (``projection='3d'``) for three
            ``dims``. None creates a new figure.

        dims : tuple of int, default=None
            One, two or three latent dimensions to draw. None takes the two
            dimensions with the largest ``kl_per_dimension`` (the first two
            without it; the only one for a 1-D latent space).

        name : str, default=None
            Name shown in the title; overrides ``estimator_name``.

        **kwargs : dict
            Passed to ``ax.scatter``.

        Returns
        -------
        display : LatentSpaceDisplay
            The object, with its matplotlib handles set.
        """
        Z, kl = _check_codes(self.Z, self.kl_per_dimension)
        dims = self._resolve_dims(dims, Z.shape[1], kl)
        labels, masks = class_groups(self.y, Z.shape[0])
        colors = class_colors(len(labels))

        projection = "3d" if len(dims) == 3 else None
        ax = single_axes(
            ax, "LatentSpaceDisplay", figsize=(5, 4.5), projection=projection
        )
        if len(dims) == 3 and getattr(ax, "name", None) != "3d":
            raise ValueError(
                "Three dims need a 3-D Axes: create it with "
                "fig.add_subplot(projection='3d'), or pass two dims."
            )

        style = {"s": 10, "alpha": 0.6, "linewidths": 0}
        style.update(kwargs)
        jitter = np.random.default_rng(0).uniform(-0.2, 0.2, Z.shape[0])
        self.scatters_ = []
        for position, (label, mask, color) in enumerate(
            zip(labels, masks, colors, strict=True)
        ):
            if len(dims) == 1:
                coords = (Z[mask, dims[0]], position + jitter[mask])
            else:
                coords = tuple(Z[mask, d] for d in dims)
            legend = None if label is None else str(label)
            self.scatters_.append(
                ax.scatter(*coords, color=color, label=legend, **style)
            )

        ax.set_xlabel(component_label(dims[0], kl))
        if len(dims) == 1:
            ax.set_yticks(range(len(labels)))
            ax.set_yticklabels(["all" if lab is None else str(lab) for lab in labels])
            ax.set_ylabel("class")
        else:
            ax.set_ylabel(component_label(dims[1], kl))
        if len(dims) == 3:
            ax.set_zlabel(component_label(dims[2], kl))
        name = self.estimator_name if name is None else name
        ax.set_title("Latent space" if name is None else f"Latent space: {name}")
        if labels != [None]:
            # Beside the Axes: inside, ten classes' legend covers the codes.
            ax.legend(
                title="class",
                markerscale=2,
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                borderaxespad=0.0,
                fontsize="small" if len(labels) > 4 else None,
            )

        self.dims_ = dims
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @staticmethod
    def _resolve_dims(dims, n_components, kl):
        if dims is None:
            if n_components == 1:
                return (0,)
            if kl is None:
                return (0, 1)
            # Stable sort, so ties (e.g. all collapsed) keep the natural order.
            return tuple(int(d) for d in np.argsort(-kl, kind="stable")[:2])
        dims = tuple(int(d) for d in np.atleast_1d(dims))
        if not 1 <= len(dims) <= 3:
            raise ValueError(f"dims must have 1, 2 or 3 entries, got {dims}.")
        if len(set(dims)) != len(dims):
            raise ValueError(f"dims must be distinct, got {dims}.")
        for d in dims:
            if not 0 <= d < n_components:
                raise ValueError(
                    f"dims={dims} is out of range for {n_components} latent dimensions."
                )
        return dims

    @classmethod
    def from_estimator(
        cls, estimator, X, y=None, *, dims=None, ax=None, name=None, **kwargs
    ):
        """Encode ``X`` with a fitted VAE and plot the codes.

        Parameters
        ----------
        estimator : VAETransformer or Pipeline
            A fitted VAETransformer, or a fitted Pipeline ending in one.

        X : array-like of shape (n_samples, n_features)
            Samples to encode (the Pipeline's input for a Pipeline).

        y : array-like of shape (n_samples,), default=None
            Class of each sample, for colours and the legend.

        dims : tuple of int, default=None
            Latent dimensions to draw; see :meth:`plot`.

        ax : matplotlib Axes, default=None
            Axes to draw on. None creates a new figure.

        name : str, default=None
            Name shown in the title.

        **kwargs : dict
            Passed to ``ax.scatter``.

        Returns
        -------
        display : LatentSpaceDisplay
            The display, drawn.
        """
        Z, kl = _encode(estimator, X, "LatentSpaceDisplay")
        display = cls(Z=Z, y=y, kl_per_dimension=kl, estimator_name=name)
        return display.plot(ax=ax, dims=dims, **kwargs)


class LatentDistributionDisplay:
    """Histograms of the latent codes, one panel per latent dimension.

    Each panel shows the distribution of the codes of each class: overlaid
    for a few classes, or stacked one above the other (a ridge plot, one row
    per class, named on the y-axis) beyond ``MAX_OVERLAID`` classes, where
    overlaid histograms cannot be told apart. Under
    posterior collapse every dimension shows the same narrow spike at 0 for
    every class; an informative dimension shows the classes apart. It is
    recommended to use :meth:`from_estimator` to create a display.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Latent codes, e.g. ``vae.transform(X)``.

    y : array-like of shape (n_samples,), default=None
        Class of each sample. None draws one histogram per dimension.

    kl_per_dimension : array-like of shape (n_components,), default=None
        Mean KL divergence of each latent dimension, shown in the titles.

    estimator_name : str, default=None
        Name shown in the first panel's y-axis label.

    Attributes
    ----------
    layout_ : {'overlay', 'ridge'}
        How the classes were drawn.

    bin_edges_ : list of ndarray
        Bin edges of each dimension's histograms, shared by the classes.

    heights_ : list of list of ndarray
        ``heights_[d][c]``: the histogram of class ``c`` in dimension ``d``,
        one value per bin (densities, unless ``density=False`` is passed).

    patches_ : list of list
        ``patches_[d][c]``: the patches of class ``c`` in dimension ``d``.

    ax_ : ndarray of matplotlib Axes of shape (n_components,)
        One Axes per latent dimension.

    figure_ : matplotlib Figure
        Figure containing the histograms.

    See Also
    --------
    LatentSpaceDisplay : Scatter plot of the codes.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skvae import VAETransformer
    >>> from skvae.plotting import LatentDistributionDisplay
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = MinMaxScaler(clip=True).fit_transform(X)
    >>> vae = VAETransformer(n_components=3, likelihood="bernoulli",
    ...                      max_iter=5, random_state=0).fit(X)
    >>> disp = LatentDistributionDisplay.from_estimator(vae, X, y)
    >>> disp.ax_.shape
    (3,)
    >>> disp.ax_[0].get_title()
    'z0 (KL ... nats)'
    """

    def __init__(self, *, Z, y=None, kl_per_dimension=None, estimator_name=None):
        self.Z = Z
        self.y = y
        self.kl_per_dimension = kl_per_dimension
        self.estimator_name = estimator_name

    MAX_OVERLAID = 4

    def plot(self, ax=None, *, name=None, bins=30, layout="auto", **kwargs):
        """Plot the histograms.

        Parameters
        ----------
        ax : array-like of matplotlib Axes, default=None
            One Axes per latent dimension. None creates a figure with a row of
            them.

        name : str, default=None
            Name shown in the first panel's y-axis label; overrides
            ``estimator_name``.

        bins : int or array-like of float, default=30
            Number of bins per dimension, shared by the classes, or the bin
            edges, shared by every dimension too (to compare panels).

        layout : {'auto', 'overlay', 'ridge'}, default='auto'
            'overlay': the classes' histograms on top of each other, with a
            legend beside the last panel. 'ridge': one row per class, each
            histogram scaled to its own height, the classes named on the
            y-axis. 'auto': 'overlay' up to ``MAX_OVERLAID`` (4) classes,
            'ridge' beyond.

        **kwargs : dict
            Passed to ``ax.hist`` (overlay) or ``ax.stairs`` (ridge).

        Returns
        -------
        display : LatentDistributionDisplay
            The object, with its matplotlib handles set.
        """
        if layout not in ("auto", "overlay", "ridge"):
            raise ValueError(
                f"layout must be 'auto', 'overlay' or 'ridge', got {layout!r}."
            )
        Z, kl = _check_codes(self.Z, self.kl_per_dimension)
        n_components = Z.shape[1]
        axes = axes_array(
            ax,
            n_components,
            "LatentDistributionDisplay",
            figsize=(3.2 * n_components, 3),
        )
        labels, masks = class_groups(self.y, Z.shape[0])
        colors = class_colors(len(labels))
        if layout == "auto":
            layout = "ridge" if len(labels) > self.MAX_OVERLAID else "overlay"
        self.layout_ = layout
        name = self.estimator_name if name is None else name
        if layout == "ridge":
            return self._plot_ridge(
                axes, Z, kl, labels, masks, colors, bins, name, kwargs
            )
        style = {"histtype": "stepfilled", "alpha": 0.45, "density": True}
        style.update(kwargs)

        self.bin_edges_, self.heights_, self.patches_ = [], [], []
        for d, ax_d in enumerate(axes):
            edges = np.histogram_bin_edges(Z[:, d], bins=bins)
            heights, patches = [], []
            for label, mask, color in zip(labels, masks, colors, strict=True):
                legend = None if label is None else str(label)
                height, _, patch = ax_d.hist(
                    Z[mask, d], bins=edges, color=color, label=legend, **style
                )
                heights.append(np.asarray(height))
                patches.append(patch)
            self.bin_edges_.append(edges)
            self.heights_.append(heights)
            self.patches_.append(patches)
            ax_d.set_title(component_label(d, kl))
            ax_d.set_xlabel("latent code")

        axes[0].set_ylabel("density" if name is None else f"{name}\ndensity")
        if labels != [None]:
            axes[-1].legend(
                title="class",
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                borderaxespad=0.0,
            )
        self.ax_ = axes
        self.figure_ = axes[0].figure
        return self

    def _plot_ridge(self, axes, Z, kl, labels, masks, colors, bins, name, kwargs):
        """One row per class, each density scaled to 0.9 of a row."""
        self.bin_edges_, self.heights_, self.patches_ = [], [], []
        style = {"fill": True, "alpha": 0.6, "linewidth": 0.8}
        style.update(kwargs)
        for d, ax_d in enumerate(axes):
            edges = np.histogram_bin_edges(Z[:, d], bins=bins)
            heights, patches = [], []
            for row, (mask, color) in enumerate(zip(masks, colors, strict=True)):
                height, _ = np.histogram(Z[mask, d], bins=edges, density=True)
                peak = float(height.max()) if height.size else 0.0
                scaled = 0.9 * height / peak if peak > 0 else height
                patch = ax_d.stairs(
                    row + scaled, edges, baseline=row, color=color, **style
                )
                heights.append(height)
                patches.append(patch)
            self.bin_edges_.append(edges)
            self.heights_.append(heights)
            self.patches_.append(patches)
            ax_d.set_ylim(-0.1, len(labels) + 0.1)
            ax_d.set_yticks(np.arange(len(labels)) + 0.3)
            ax_d.set_yticklabels(
                ["all" if lab is None else str(lab) for lab in labels] if d == 0 else []
            )
            ax_d.set_title(component_label(d, kl))
            ax_d.set_xlabel("latent code")
        axes[0].set_ylabel(
            "class (each row scaled to its peak)"
            if name is None
            else f"{name}\nclass (each row scaled to its peak)"
        )
        self.ax_ = axes
        self.figure_ = axes[0].figure
        return self

    @classmethod
    def from_estimator(cls, estimator, X, y=None, *, ax=None, name=None, **kwargs):
        """Encode ``X`` with a fitted VAE and plot each dimension's histograms.

        Parameters
        ----------
        estimator : VAETransformer or Pipeline
            A fitted VAETransformer, or a fitted Pipeline ending in one.

        X : array-like of shape (n_samples, n_features)
            Samples to encode.

        y : array-like of shape (n_samples,), default=None
            Class of each sample.

        ax : array-like of matplotlib Axes, default=None
            One Axes per latent dimension. None creates a new figure.

        name : str, default=None
            Name shown in the first panel's y-axis label.

        **kwargs : dict
            Passed to :meth:`plot` (``bins``) and on to ``ax.hist``.

        Returns
        -------
        display : LatentDistributionDisplay
            The display, drawn.
        """
        Z, kl = _encode(estimator, X, "LatentDistributionDisplay")
        display = cls(Z=Z, y=y, kl_per_dimension=kl, estimator_name=name)
        return display.plot(ax=ax, **kwargs)
