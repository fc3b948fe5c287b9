"""Matplotlib displays of a VAE's latent space, training curves and sensitivities."""

from ._jacobian import JacobianDisplay
from ._latent import LatentDistributionDisplay, LatentSpaceDisplay
from ._loss import LossCurveDisplay
from ._traversal import LatentTraversalDisplay

__all__ = [
    "JacobianDisplay",
    "LatentDistributionDisplay",
    "LatentSpaceDisplay",
    "LatentTraversalDisplay",
    "LossCurveDisplay",
]
