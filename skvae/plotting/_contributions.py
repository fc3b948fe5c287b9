"""Display of which features make a row anomalous: per-feature NLL, in nats."""

import numpy as np

from ._base import axes_array, unwrap_vae

_CALLER = "FeatureContributionDisplay"


class FeatureContributionDisplay:
    """Bars of the features that contribute most to a few rows' anomaly scores.

    One panel per row: the ``n_features`` features with the largest
    contribution, the per-feature negative log-likelihood of the
    reconstruction (:meth:`~skvae.VAEOutlierDetector.feature_contributions`,
    in nats), less a per-feature baseline, typically its median over normal
    rows. A long bar is a feature this row has and normal rows do not: where
    an analyst looks first. It is recommended to use :meth:`from_estimator`
    to create a display.

    Parameters
    ----------
    contributions : array-like of shape (n_rows, n_features)
        Per-feature negative log-likelihood of each row shown, in nats.

    feature_names : array-like of str of shape (n_features,), default=None
        Feature labels. None uses ``x0, x1, ...``.

    baseline : array-like of shape (n_features,), default=None
        Subtracted from each row's contributions before ranking and drawing.
        None draws the raw contributions.

    row_labels : list of str, default=None
        Panel titles. None uses ``row 0, row 1, ...``.

    scores : array-like of shape (n_rows,), default=None
        The rows' ``score_samples``, added to the titles when given.

    Attributes
    ----------
    excess_ : ndarray of shape (n_rows, n_features)
        ``contributions - baseline``: what the bars show.

    order_ : ndarray of shape (n_rows, n_features)
        Feature indices of each row, largest excess first.

    bars_ : list of matplotlib BarContainer
        One horizontal bar chart per row.

    ax_ : ndarray of matplotlib Axes of shape (n_rows,)
        One Axes per row.

    figure_ : matplotlib Figure
        Figure containing the panels.

    See Also
    --------
    skvae.VAEOutlierDetector.feature_contributions : The numbers drawn.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skvae.datasets import make_anomaly_pipeline, make_flows
    >>> from skvae.plotting import FeatureContributionDisplay
    >>> X, y = make_flows(random_state=0, as_frame=True)
    >>> model = make_anomaly_pipeline(max_iter=5, random_state=0)
    >>> model = model.fit(X[y == 0])
    >>> disp = FeatureContributionDisplay.from_estimator(
    ...     model, X, n_rows=2, n_features=5)
    >>> disp.contributions.shape
    (2, 48)
    >>> len(disp.bars_), len(disp.bars_[0])
    (2, 5)
    """

    def __init__(
        self,
        *,
        contributions,
        feature_names=None,
        baseline=None,
        row_labels=None,
        scores=None,
    ):
        self.contributions = contributions
        self.feature_names = feature_names
        self.baseline = baseline
        self.row_labels = row_labels
        self.scores = scores

    def plot(self, ax=None, *, n_features=8, color="C3", **kwargs):
        """Draw one bar chart of the top features per row.

        Parameters
        ----------
        ax : array-like of matplotlib Axes, default=None
            One Axes per row. None creates a new figure with the panels side
            by side.

        n_features : int, default=8
            Number of features shown per row, largest first.

        color : str, default='C3'
            Colour of the bars.

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.barh`.

        Returns
        -------
        display : FeatureContributionDisplay
            The object, with ``bars_``, ``ax_`` and ``figure_`` set.
        """
        contributions = np.atleast_2d(np.asarray(self.contributions, dtype=float))
        n_rows, n_all = contributions.shape
        if not isinstance(n_features, int | np.integer) or n_features < 1:
            raise ValueError(
                f"n_features must be a positive integer, got {n_features!r}."
            )
        n_features = min(int(n_features), n_all)
        names = self.feature_names
        names = [f"x{j}" for j in range(n_all)] if names is None else list(names)
        if len(names) != n_all:
            raise ValueError(
                f"feature_names has {len(names)} names, but contributions has "
                f"{n_all} columns; pass one name per column."
            )
        baseline = np.zeros(n_all) if self.baseline is None else self.baseline
        excess = contributions - np.asarray(baseline, dtype=float)
        order = np.argsort(-excess, axis=1, kind="stable")
        labels = self.row_labels or [f"row {i}" for i in range(n_rows)]
        axes = axes_array(
            ax, n_rows, _CALLER, figsize=(4.2 * n_rows, 0.35 * n_features + 1.4)
        )
        bars = []
        for i, axis in enumerate(axes):
            top = order[i, :n_features]
            # Largest at the top of the panel.
            positions = np.arange(n_features)[::-1]
            bars.append(axis.barh(positions, excess[i, top], color=color, **kwargs))
            axis.set_yticks(positions, [names[j] for j in top])
            axis.axvline(0.0, color="0.3", linewidth=0.8)
            title = labels[i]
            if self.scores is not None:
                title += f"\nlog-likelihood {float(self.scores[i]):.1f} nats"
            axis.set_title(title, fontsize="medium")
            axis.set_xlabel(
                "NLL above baseline (nats)"
                if self.baseline is not None
                else "negative log-likelihood (nats)"
            )
        self.excess_ = excess
        self.order_ = order
        self.bars_ = bars
        self.ax_ = axes
        self.figure_ = axes[0].figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        *,
        rows=None,
        n_rows=3,
        baseline="median",
        ax=None,
        n_features=8,
        **kwargs,
    ):
        """Explain the most anomalous rows of ``X`` (or the ones named).

        Parameters
        ----------
        estimator : VAEOutlierDetector or Pipeline
            A fitted detector, or a fitted Pipeline ending in one; ``X`` goes
            through the steps before it.

        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to choose from, as the estimator takes them. Feature names
            come from the DataFrame or the pipeline's steps.

        rows : array-like of int, default=None
            Positions of the rows of ``X`` to show. None shows the ``n_rows``
            rows with the lowest ``score_samples``.

        n_rows : int, default=3
            Number of rows shown when ``rows`` is None.

        baseline : 'median', array-like or None, default='median'
            What is subtracted from each feature's contribution: 'median' is
            its median over all rows of ``X`` (mostly normal rows, presumably);
            an array of shape (n_reference, n_features) of normal rows, in the
            estimator's input space, uses their median; None draws the raw
            contributions.

        ax : array-like of matplotlib Axes, default=None
            One Axes per row shown. None creates a new figure.

        n_features : int, default=8
            Number of features shown per row.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : FeatureContributionDisplay
            The drawn display; ``rows`` holds the positions shown.
        """
        from skvae._outlier import VAEOutlierDetector

        detector, X_detector, names = unwrap_vae(estimator, X, caller=_CALLER)
        if not isinstance(detector, VAEOutlierDetector):
            raise TypeError(
                f"{_CALLER} needs a VAEOutlierDetector or a Pipeline ending in "
                f"one, got a {type(detector).__name__}; fit a VAEOutlierDetector "
                "instead."
            )
        contributions = np.asarray(detector.feature_contributions(X_detector))
        scores = detector.score_samples(X_detector)
        if rows is None:
            if not isinstance(n_rows, int | np.integer) or n_rows < 1:
                raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}.")
            rows = np.argsort(scores, kind="stable")[: min(int(n_rows), len(scores))]
        else:
            rows = np.asarray(rows)
            if rows.ndim != 1 or rows.size == 0 or rows.dtype.kind not in "iu":
                raise ValueError(
                    "rows must be a non-empty 1-d array of row positions, got "
                    f"{rows!r}."
                )
            if rows.min() < -len(scores) or rows.max() >= len(scores):
                raise ValueError(
                    f"rows holds positions outside [0, {len(scores)}): {rows!r}."
                )
        if isinstance(baseline, str) and baseline == "median":
            reference = np.median(contributions, axis=0)
        elif baseline is None:
            reference = None
        else:
            reference_rows = baseline
            if hasattr(estimator, "steps"):
                _, reference_rows, _ = unwrap_vae(estimator, baseline, caller=_CALLER)
            reference = np.median(
                np.asarray(detector.feature_contributions(reference_rows)), axis=0
            )
        index = getattr(X, "index", None)
        labels = [
            f"row {index[r] if index is not None else r}"
            + (" (flagged)" if scores[r] < detector.offset_ else "")
            for r in rows
        ]
        display = cls(
            contributions=contributions[rows],
            feature_names=names,
            baseline=reference,
            row_labels=labels,
            scores=scores[rows],
        )
        display.rows = rows
        return display.plot(ax=ax, n_features=n_features, **kwargs)
