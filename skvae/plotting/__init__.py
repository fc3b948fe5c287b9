"""Matplotlib displays of a VAE's latent space, training curves and sensitivities."""

from ._latent import LatentDistributionDisplay, LatentSpaceDisplay
from ._loss import LossCurveDisplay

__all__ = [
    "LatentDistributionDisplay",
    "LatentSpaceDisplay",
    "LossCurveDisplay",
]
