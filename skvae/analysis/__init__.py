"""Look inside a fitted VAE: Jacobians, latent traversals, clustering scores."""

from ._clustering import latent_clustering_scores, latent_silhouette_scorer
from ._decoder import (
    decoder_finite_differences,
    decoder_jacobian,
    latent_coupling,
    latent_traversal,
)
from ._jacobian import encoder_jacobian, latent_feature_importance

__all__ = [
    "decoder_finite_differences",
    "decoder_jacobian",
    "encoder_jacobian",
    "latent_clustering_scores",
    "latent_coupling",
    "latent_feature_importance",
    "latent_silhouette_scorer",
    "latent_traversal",
]
