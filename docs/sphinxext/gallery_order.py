"""The order of the gallery: the original experiment first, then what users do next.

sphinx-gallery takes the sort key as an importable name (a class defined in
conf.py would make the configuration unpicklable, a warning); conf.py puts this
folder on ``sys.path``.
"""

GALLERY_ORDER = [
    "plot_seed_experiment.py",
    "plot_grid_search_recon_weight.py",
    "plot_latent_interpretation.py",
    "plot_pipeline_classifier.py",
    "plot_anomaly_scores.py",
    "plot_anomaly_flows.py",
    "plot_multiple_imputation.py",
]


class GalleryOrder:
    """Sort key of sphinx-gallery: the position in ``GALLERY_ORDER``.

    An example not listed goes last, by file name.
    """

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        if filename in GALLERY_ORDER:
            return (GALLERY_ORDER.index(filename), filename)
        return (len(GALLERY_ORDER), filename)

    def __repr__(self):
        return f"<{type(self).__name__}>"
