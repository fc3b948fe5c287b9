"""skvae: a scikit-learn compatible variational autoencoder built on PyTorch.

The estimator and the helper subpackages are imported lazily, so ``import skvae``
stays fast and does not import torch or matplotlib until a name is used.
"""

import importlib

__version__ = "0.1.0.dev0"

__all__ = [
    "VAETransformer",
    "VAEOutlierDetector",
    "VAEImputer",
    "PosteriorCollapseWarning",
    "TrainingInterruptedWarning",
    "InconsistentVersionWarning",
    "save",
    "load",
    "analysis",
    "datasets",
    "plotting",
    "__version__",
]

_LAZY_ATTRIBUTES = {
    "VAETransformer": "skvae._vae",
    "VAEOutlierDetector": "skvae._outlier",
    "VAEImputer": "skvae._imputer",
    "PosteriorCollapseWarning": "skvae._vae",
    "TrainingInterruptedWarning": "skvae._vae",
    "InconsistentVersionWarning": "skvae._persistence",
    "save": "skvae._persistence",
    "load": "skvae._persistence",
}
_LAZY_SUBMODULES = {"analysis", "datasets", "plotting"}


def __getattr__(name):
    if name in _LAZY_ATTRIBUTES:
        module = importlib.import_module(_LAZY_ATTRIBUTES[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"skvae.{name}")
    raise AttributeError(f"module 'skvae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
