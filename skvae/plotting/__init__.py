"""Matplotlib displays of a VAE's latent space, curves, sensitivities and alerts."""

from ._contributions import FeatureContributionDisplay
from ._jacobian import JacobianDisplay
from ._latent import LatentDistributionDisplay, LatentSpaceDisplay
from ._loss import LossCurveDisplay
from ._traversal import LatentTraversalDisplay

__all__ = [
    "FeatureContributionDisplay",
    "JacobianDisplay",
    "LatentDistributionDisplay",
    "LatentSpaceDisplay",
    "LatentTraversalDisplay",
    "LossCurveDisplay",
]
