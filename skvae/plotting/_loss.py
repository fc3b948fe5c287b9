"""Display of the training curves: reconstruction and KL divergence per epoch."""

import numpy as np

from ._base import axes_array, unwrap_vae


class LossCurveDisplay:
    """Reconstruction term and KL divergence per epoch, side by side.

    Posterior collapse shows as a KL curve that falls to zero while the
    reconstruction term stalls. Call :meth:`plot` again with the same ``ax``
    to overlay the curves of another model. It is recommended to use
    :meth:`from_estimator` to create a display.

    Parameters
    ----------
    reconstruction : array-like of shape (n_epochs,)
        Negative log-likelihood per sample at each epoch, summed over features
        (a VAETransformer's ``reconstruction_curve_``).

    kl : array-like of shape (n_epochs,)
        KL divergence per sample at each epoch, summed over latent dimensions
        (``kl_curve_``).

    estimator_name : str, default=None
        Label of the curves in the legend.

    Attributes
    ----------
    lines_ : list of matplotlib Line2D
        The reconstruction line and the KL line.

    ax_ : ndarray of matplotlib Axes of shape (2,)
        The reconstruction Axes and the KL Axes.

    figure_ : matplotlib Figure
        Figure containing the curves.

    See Also
    --------
    LatentDistributionDisplay : What a collapsed latent space looks like.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skvae import VAETransformer
    >>> from skvae.plotting import LossCurveDisplay
    >>> X = MinMaxScaler(clip=True).fit_transform(load_breast_cancer().data)
    >>> vae = VAETransformer(n_components=2, likelihood="bernoulli",
    ...                      max_iter=5, random_state=0).fit(X)
    >>> disp = LossCurveDisplay.from_estimator(vae, name="auto")
    >>> disp.kl.shape
    (5,)
    >>> [ax.get_title() for ax in disp.ax_]
    ['Reconstruction', 'KL divergence']
    """

    def __init__(self, *, reconstruction, kl, estimator_name=None):
        self.reconstruction = reconstruction
        self.kl = kl
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, name=None, **kwargs):
        """Plot the curves.

        Parameters
        ----------
        ax : array-like of two matplotlib Axes, default=None
            Axes for the reconstruction and the KL curve. None creates a new
            figure.

        name : str, default=None
            Label of the curves in the legend; overrides ``estimator_name``.

        **kwargs : dict
            Passed to ``ax.plot``.

        Returns
        -------
        display : LossCurveDisplay
            The object, with its matplotlib handles set.
        """
        reconstruction = np.asarray(self.reconstruction, dtype=np.float64)
        kl = np.asarray(self.kl, dtype=np.float64)
        if reconstruction.ndim != 1 or reconstruction.shape != kl.shape:
            raise ValueError(
                "reconstruction and kl must be 1-D with one value per epoch, got "
                f"shapes {reconstruction.shape} and {kl.shape}."
            )
        ax_recon, ax_kl = axes_array(ax, 2, "LossCurveDisplay", figsize=(9, 3.5))
        name = self.estimator_name if name is None else name
        epochs = np.arange(1, kl.size + 1)
        (recon_line,) = ax_recon.plot(epochs, reconstruction, label=name, **kwargs)
        # Same colour for one model's two curves, so the legends agree.
        kwargs.setdefault("color", recon_line.get_color())
        # KL is never negative: pin the axis at 0, so collapse lies on the floor.
        # Autoscale is re-enabled first, so that overlaid curves still fit.
        ax_kl.autoscale(enable=True, axis="y")
        (kl_line,) = ax_kl.plot(epochs, kl, label=name, **kwargs)
        ax_kl.set_ylim(0.0, ax_kl.get_ylim()[1])

        ax_recon.set_title("Reconstruction")
        ax_recon.set_ylabel("negative log-likelihood\n(nats per sample)")
        ax_kl.set_title("KL divergence")
        ax_kl.set_ylabel("KL(q(z|x) || p(z))\n(nats per sample)")
        for axis in (ax_recon, ax_kl):
            axis.set_xlabel("epoch")
        if any(line.get_label()[:1] not in ("", "_") for line in ax_kl.lines):
            # One legend for both panels (a model's curves share a colour),
            # beside the KL panel: inside, it covers the early KL peak.
            ax_kl.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)

        self.lines_ = [recon_line, kl_line]
        self.ax_ = np.array([ax_recon, ax_kl], dtype=object)
        self.figure_ = ax_recon.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, X=None, y=None, *, ax=None, name=None, **kwargs):
        """Plot the training curves of a fitted VAE.

        Parameters
        ----------
        estimator : VAETransformer or Pipeline
            A fitted VAETransformer, or a fitted Pipeline ending in one.

        X : None
            Ignored; the curves were recorded during ``fit``. Accepted so that
            every display has the same signature.

        y : None
            Ignored.

        ax : array-like of two matplotlib Axes, default=None
            Axes for the reconstruction and the KL curve. None creates a new
            figure.

        name : str, default=None
            Label of the curves in the legend.

        **kwargs : dict
            Passed to ``ax.plot``.

        Returns
        -------
        display : LossCurveDisplay
            The display, drawn.
        """
        vae, _, _ = unwrap_vae(estimator, caller="LossCurveDisplay")
        display = cls(
            reconstruction=np.asarray(vae.reconstruction_curve_),
            kl=np.asarray(vae.kl_curve_),
            estimator_name=name,
        )
        return display.plot(ax=ax, **kwargs)
