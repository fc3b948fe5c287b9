"""A linear Gaussian VAE with a known marginal likelihood, for exact checks."""

import math

import numpy as np
import torch
from torch import nn

from skvae._likelihoods import single_family
from skvae._modules import prior_where_empty


class LinearGaussianVAE(nn.Module):
    """x = W z + b + sigma * noise, W with orthogonal columns, and an encoder.

    With ``shift=0`` and ``widen=0`` the encoder gives the exact posterior,
    covariance ``(I + W'W / sigma^2)^-1`` (diagonal here). ``shift`` and
    ``widen`` move and widen it into a proposal that is not the posterior
    (wider than it, so that importance sampling has finite variance). A
    missing cell is filled with its mean b_j before encoding, as if the row
    were complete: the proposal of a MIWAE encoder, wrong for rows with holes,
    which the importance weights correct. A row with nothing observed gets the
    prior, as in skvae's modules.
    """

    def __init__(self, weight, bias, log_sigma, shift=0.0, widen=0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(weight))
        self.bias = nn.Parameter(torch.as_tensor(bias))
        n_features, self.n_components = weight.shape
        self.likelihood = single_family("calibrated_gaussian", n_features).double()
        with torch.no_grad():
            self.likelihood.log_scale.fill_(float(log_sigma))
        sigma2 = math.exp(2 * log_sigma)
        gram = weight.T @ weight
        self.post_var = torch.as_tensor(1.0 / (1.0 + np.diag(gram) / sigma2))
        self.post_map = torch.as_tensor(weight.T / sigma2)
        self.shift, self.widen = shift, widen

    def encode(self, x):
        filled = torch.where(torch.isnan(x), self.bias, x)
        var = self.post_var.to(x.dtype)
        mean = (filled - self.bias) @ self.post_map.to(x.dtype).T * var
        logvar = (torch.log(var) + self.widen).expand_as(mean)
        return prior_where_empty(x, mean + self.shift, logvar)

    def decode(self, z):
        return z @ self.weight.T + self.bias
