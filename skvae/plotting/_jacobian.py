"""Display of the sensitivities between features and latent dimensions."""

import numpy as np

from ._base import axes_array, resolve_steps, single_axes, unwrap_vae

_SIDES = ("encoder", "decoder")
_KINDS = ("heatmap", "bars")
_TITLES = {
    "encoder": "Encoder Jacobian: mean dz/dx",
    "decoder": "Decoder sensitivity: mean dx\u0302/dz",
}
# The features are the encoder's inputs, but the decoder's outputs.
_FEATURE_LABELS = {"encoder": "input feature", "decoder": "reconstructed feature"}


class JacobianDisplay:
    """Heatmap (or bars) of how latent dimensions and features depend on each other.

    On the encoder side, entry ``(k, j)`` is the mean over samples of the
    derivative of latent mean ``z_k`` with respect to input feature ``x_j``
    (the forward derivative of JSMA): which inputs push a dimension up or
    down. On the decoder side it is the mean derivative of reconstructed
    feature ``x̂_j`` with respect to ``z_k``, estimated by finite differences
    at the codes of the data: what moving along a dimension changes in the
    output. It is recommended to use :meth:`from_estimator` to create a
    display.

    For a VAE fitted on a table with categorical columns, each such column
    gives one feature per level seen in fit, named ``<column>_<level>``: on
    the decoder side, the probability of the level; on the encoder side, the
    level's indicator in the one-hot input of the encoder (see
    :func:`skvae.analysis.encoder_jacobian`). Numeric columns are in their
    own units.

    Parameters
    ----------
    jacobian : array-like of shape (n_components, n_features)
        Mean sensitivity, one row per latent dimension, one column per
        feature: an input feature on the encoder side, a reconstructed
        (output) feature on the decoder side.

    feature_names : array-like of str of shape (n_features,), default=None
        Column labels. None uses ``x0, x1, ...``.

    side : {'encoder', 'decoder'}, default='encoder'
        Which derivative ``jacobian`` holds; sets the title, the colour-bar
        label and the feature axis label ('input feature' or 'reconstructed
        feature').

    estimator_name : str, default=None
        Name shown in the title.

    input_space : {'pipeline', 'vae'} or None, default=None
        For a display of a Pipeline, in which space the derivatives are
        (see :meth:`from_estimator`); shown in the feature axis label.

    Attributes
    ----------
    image_ : matplotlib AxesImage or None
        The heatmap (``kind='heatmap'``).

    colorbar_ : matplotlib Colorbar or None
        Its colour bar (``kind='heatmap'``).

    bars_ : list of matplotlib BarContainer or None
        One bar chart per latent dimension (``kind='bars'``).

    ax_ : matplotlib Axes or ndarray of Axes
        The heatmap's Axes, or one Axes per latent dimension for bars.

    figure_ : matplotlib Figure
        Figure containing the plot.

    See Also
    --------
    skvae.analysis.encoder_jacobian : The encoder's Jacobian per sample.
    skvae.analysis.decoder_finite_differences : The decoder side.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skvae import VAETransformer
    >>> from skvae.plotting import JacobianDisplay
    >>> data = load_breast_cancer(as_frame=True)
    >>> scaler = MinMaxScaler(clip=True).set_output(transform="pandas")
    >>> X = scaler.fit_transform(data.data)
    >>> vae = VAETransformer(n_components=2, likelihood="bernoulli",
    ...                      max_iter=5, random_state=0).fit(X)
    >>> disp = JacobianDisplay.from_estimator(vae, X)
    >>> disp.jacobian.shape
    (2, 30)
    >>> disp.ax_.get_xticklabels()[0].get_text()
    'mean radius'
    >>> bars = JacobianDisplay.from_estimator(vae, X, side="decoder", kind="bars")
    >>> len(bars.bars_)
    2
    """

    def __init__(
        self,
        *,
        jacobian,
        feature_names=None,
        side="encoder",
        estimator_name=None,
        input_space=None,
    ):
        self.jacobian = jacobian
        self.feature_names = feature_names
        self.side = side
        self.estimator_name = estimator_name
        self.input_space = input_space

    def plot(
        self,
        ax=None,
        *,
        kind="heatmap",
        name=None,
        cmap="RdBu_r",
        sharey=True,
        **kwargs,
    ):
        """Plot the sensitivities.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of Axes, default=None
            One Axes for ``kind='heatmap'``; one per latent dimension for
            ``kind='bars'``. None creates a new figure.

        kind : {'heatmap', 'bars'}, default='heatmap'
            A latent dimension x feature heatmap with a colour scale centred
            at 0, or one bar chart over the features per latent dimension.

        name : str, default=None
            Name shown in the title; overrides ``estimator_name``.

        cmap : str or matplotlib Colormap, default='RdBu_r'
            Diverging colour map of the heatmap.

        sharey : bool, default=True
            For ``kind='bars'``: one symmetric y-scale for every latent
            dimension, so that bar heights compare across panels. False gives
            each panel its own scale and says so in the title.

        **kwargs : dict
            Passed to ``ax.imshow`` (heatmap) or ``ax.bar`` (bars).

        Returns
        -------
        display : JacobianDisplay
            The object, with its matplotlib handles set.
        """
        if self.side not in _SIDES:
            raise ValueError(f"side must be one of {_SIDES}, got {self.side!r}.")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}.")
        jacobian = np.asarray(self.jacobian, dtype=np.float64)
        if jacobian.ndim != 2:
            raise ValueError(
                "jacobian must be 2-D (n_components, n_features), got shape "
                f"{jacobian.shape}."
            )
        n_components, n_features = jacobian.shape
        names = self._names(n_features)
        name = self.estimator_name if name is None else name
        title = _TITLES[self.side] + ("" if name is None else f" ({name})")
        value_label = "dz/dx" if self.side == "encoder" else "dx\u0302/dz"
        self.image_ = self.colorbar_ = self.bars_ = None

        if kind == "heatmap":
            ax = single_axes(
                ax,
                "JacobianDisplay",
                figsize=(max(6.0, 0.22 * n_features + 2), 1.0 + 0.5 * n_components),
            )
            # Symmetric limits, so white is exactly zero.
            limit = float(np.max(np.abs(jacobian))) or 1.0
            style = {"cmap": cmap, "vmin": -limit, "vmax": limit, "aspect": "auto"}
            style.update(kwargs)
            self.image_ = ax.imshow(jacobian, interpolation="nearest", **style)
            ax.set_xticks(range(n_features))
            ax.set_xticklabels(names, rotation=90, fontsize="small")
            ax.set_yticks(range(n_components))
            ax.set_yticklabels([f"z{k}" for k in range(n_components)])
            ax.set_xlabel(self._feature_label())
            ax.set_ylabel("latent dimension")
            ax.set_title(title)
            self.colorbar_ = ax.figure.colorbar(self.image_, ax=ax, label=value_label)
            self.ax_ = ax
            self.figure_ = ax.figure
            return self

        axes = axes_array(
            ax,
            n_components,
            "JacobianDisplay",
            figsize=(max(6.0, 0.22 * n_features + 1), 1.8 * n_components + 1),
            column=True,
        )
        positions = np.arange(n_features)
        self.bars_ = []
        for k, ax_k in enumerate(axes):
            colors = np.where(jacobian[k] >= 0, "C3", "C0")
            self.bars_.append(ax_k.bar(positions, jacobian[k], color=colors, **kwargs))
            ax_k.axhline(0.0, color="black", linewidth=0.6)
            ax_k.set_ylabel(f"z{k}\n{value_label}")
            ax_k.set_xticks(positions)
            ax_k.set_xticklabels(names, rotation=90, fontsize="small")
            ax_k.tick_params(axis="x", labelbottom=k == len(axes) - 1)
        axes[-1].set_xlabel(self._feature_label())
        if sharey:
            limit = 1.08 * float(np.max(np.abs(jacobian))) or 1.0
            for ax_k in axes:
                ax_k.set_ylim(-limit, limit)
            title += ", same scale in every panel"
        else:
            title += ", each panel on its own scale"
        axes[0].set_title(title)
        self.ax_ = axes
        self.figure_ = axes[0].figure
        return self

    def _feature_label(self):
        label = _FEATURE_LABELS[self.side]
        if self.input_space == "vae":
            label += " (the VAE's own input space, after the pipeline's steps)"
        return label

    def _names(self, n_features):
        if self.feature_names is None:
            return [f"x{j}" for j in range(n_features)]
        names = [str(name) for name in self.feature_names]
        if len(names) != n_features:
            raise ValueError(
                f"feature_names has {len(names)} entries, but jacobian has "
                f"{n_features} columns."
            )
        return names

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y=None,
        *,
        side="encoder",
        kind="heatmap",
        step=1e-3,
        ax=None,
        name=None,
        feature_names=None,
        input_space="pipeline",
        **kwargs,
    ):
        """Compute the mean sensitivities of a fitted VAE on ``X`` and plot them.

        Parameters
        ----------
        estimator : VAETransformer or Pipeline
            A fitted VAETransformer, or a fitted Pipeline ending in one. For a
            Pipeline, ``input_space`` says in which space the derivatives are.

        X : array-like of shape (n_samples, n_features)
            Samples at which the derivatives are averaged; on the decoder
            side, at their latent codes.

        y : None
            Ignored.

        side : {'encoder', 'decoder'}, default='encoder'
            The encoder's Jacobian (exact, by automatic differentiation) or the
            decoder's sensitivity (central finite differences).

        kind : {'heatmap', 'bars'}, default='heatmap'
            See :meth:`plot`.

        step : float, default=1e-3
            Finite-difference step in latent units (decoder side only).

        ax : matplotlib Axes or array-like of Axes, default=None
            See :meth:`plot`.

        name : str, default=None
            Name shown in the title.

        feature_names : array-like of str of shape (n_features,), default=None
            Feature labels. None takes the names of the features of
            ``input_space``: the Pipeline's ``feature_names_in_``, or for
            'vae' the VAE's or the output names of the steps before it, or
            ``x0, x1, ...``; a categorical column gives one name per level,
            ``<column>_<level>``.

        input_space : {'pipeline', 'vae'}, default='pipeline'
            For a Pipeline, the rule of every function of
            :mod:`skvae.analysis`: 'pipeline' differentiates with respect to
            the pipeline's features, by the chain rule through its steps
            (scalers and the clip-at-zero step of
            :func:`skvae.datasets.flows_preprocessor`; any other step raises
            a ValueError); 'vae' differentiates in the VAE's own input space,
            after the steps. Recorded in the display's ``input_space``. A
            VAE with categorical columns behind steps needs 'vae'.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : JacobianDisplay
            The display, drawn.

        Notes
        -----
        Memory: the call holds ``X`` as the VAE sees it (and its codes, on
        the decoder side) and accumulates the means one chunk of rows at a
        time (the package's chunk rule, as in
        :func:`~skvae.analysis.encoder_jacobian`): the per-sample
        derivatives are never held all at once.
        """
        from skvae.analysis._common import analysis_feature_names, check_input_space
        from skvae.analysis._decoder import finite_difference_blocks
        from skvae.analysis._jacobian import jacobian_blocks

        if side not in _SIDES:
            raise ValueError(f"side must be one of {_SIDES}, got {side!r}.")
        check_input_space(input_space)
        vae, X_vae, _ = unwrap_vae(estimator, X, caller="JacobianDisplay")
        names = analysis_feature_names(estimator, input_space)
        # Means accumulated chunk by chunk: the per-sample derivatives, of size
        # n_samples x n_components x n_features, are never held at once.
        if side == "encoder":
            _, buffer, blocks = jacobian_blocks(
                estimator, X, None, input_space=input_space
            )
            jacobian = np.zeros(buffer.shape[1:], dtype=np.float64)
            n_samples = 0
            for _, block in blocks:
                jacobian += block.sum(axis=0, dtype=np.float64)
                n_samples += block.shape[0]
        else:
            Z = vae.transform(X_vae)
            n_samples = len(Z)
            jacobian = np.zeros((vae.n_components, len(names)))
            _, _, blocks = finite_difference_blocks(
                estimator,
                Z,
                step=step,
                method="central",
                batch_size=None,
                input_space=input_space,
            )
            for _, block in blocks:
                # (rows, n_features, n_components) -> (n_components, n_features)
                jacobian += block.sum(axis=0, dtype=np.float64).T
        jacobian /= n_samples
        display = cls(
            jacobian=jacobian,
            feature_names=names if feature_names is None else feature_names,
            side=side,
            estimator_name=name,
            input_space=input_space if len(resolve_steps(estimator)) else None,
        )
        return display.plot(ax=ax, kind=kind, **kwargs)
