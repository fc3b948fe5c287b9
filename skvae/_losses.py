"""Likelihoods and the evidence lower bound, in PyTorch.

The loss knows nothing of the optimiser or of batching: every function maps
tensors to tensors, per sample, and callers reduce.
"""

import math

import torch

from ._likelihoods import MIN_LOG_SCALE  # noqa: F401  (re-exported)


def kl_divergence_and_grad(mean, logvar, scale):
    """``kl_divergence(mean, logvar).sum()`` and ``scale`` times its gradients.

    Returns
    -------
    total : 0-d tensor
    grad_mean, grad_logvar : tensors of the shape of ``mean``
    """
    var = torch.exp(logvar)
    total = 0.5 * (torch.square(mean) + var - 1.0 - logvar).sum()
    return total, mean * scale, var.sub_(1.0).mul_(0.5 * scale)


def decoder_mean(module, decoded):
    """Mean of ``p(x | z)`` as numbers per analysis feature.

    Probabilities for Bernoulli columns and for each level of a categorical
    column, the mean of every other family, in the data's units.
    """
    return module.likelihood.mean_features(decoded)


def kl_divergence(mean, logvar):
    """``KL(N(mean, exp(logvar)) || N(0, 1))`` per sample and latent dimension."""
    return 0.5 * (torch.square(mean) + torch.exp(logvar) - 1.0 - logvar)


def loss_terms(module, x, eps):
    """Reconstruction NLL per sample (mean over features) and KL per sample.

    Returns
    -------
    recon_mean : tensor of shape (n,)
        Per-feature negative log-likelihood averaged over features: the Keras
        convention that the reconstruction weight multiplies.
    kl : tensor of shape (n,)
        KL divergence summed over latent dimensions.
    """
    decoded, mean, logvar = module(x, eps)
    nll = module.likelihood.nll(decoded, x)
    return nll.mean(dim=-1), kl_divergence(mean, logvar).sum(dim=-1)


def training_loss(recon_mean, kl, recon_weight, kl_weight):
    """The objective minimised: ``recon_weight * recon_mean + kl_weight * kl``.

    Averaged over the batch. With ``recon_weight = n_features`` and
    ``kl_weight = 1`` it is the negative ELBO per sample.
    """
    return (recon_weight * recon_mean + kl_weight * kl).mean()


def elbo(module, x, eps):
    """Per-sample ELBO in nats, estimated with fixed noise draws ``eps``.

    Parameters
    ----------
    eps : tensor of shape (n_draws, n_components)
        The same standard-normal draws are used for every row, so a row's value
        does not depend on which other rows are in ``x``.

    Returns
    -------
    tensor of shape (n,), float64
        ``E_q[log p(x | z)] - KL(q(z | x) || p(z))``, features summed, KL with
        weight one, the expectation averaged over the draws. The sums over
        features, draws and latent dimensions, and the KL term itself, are
        computed in float64 whatever the module's dtype: a float32 sum of
        large but finite terms would overflow (or lose the small terms) long
        before the terms themselves do. Non-finite where even that overflows
        (inputs far outside the training data); callers check.
    """
    mean, logvar = module.encode(x)
    std = torch.exp(0.5 * logvar)
    # (n_draws, n, n_components): every row paired with every draw.
    z = mean.unsqueeze(0) + std.unsqueeze(0) * eps.unsqueeze(1)
    decoded = module.decode(z)
    target = x.unsqueeze(0).expand(*decoded.shape[:-1], x.shape[-1])
    nll = module.likelihood.nll(decoded, target)
    expected_loglik = -nll.sum(dim=-1, dtype=torch.float64).mean(dim=0)
    kl = kl_divergence(mean.double(), logvar.double())
    return expected_loglik - kl.sum(dim=-1)


# Range of the proposal's log-variance in importance_weighted_terms.
IW_LOGVAR_MIN, IW_LOGVAR_MAX = -30.0, 20.0


def importance_weighted_terms(module, x, eps):
    """Log importance weights and per-feature NLL for fixed draws ``eps``.

    For each row and each draw ``z_k = mean + std * eps_k`` of ``q(z | x)``,
    the log weight is ``log p(x | z_k) + log p(z_k) - log q(z_k | x)`` (Burda
    et al. 2016). The network runs in the dtype of ``x``; the likelihood, the
    densities and every sum over features or latent dimensions are computed in
    float64, from the decoder's output cast to float64. The proposal's
    log-variance is clamped to [-30, 20], which keeps the draws finite for
    finite (however distant) rows and leaves the bound a bound.

    Parameters
    ----------
    eps : tensor of shape (n_draws, n_components)
        Standard-normal draws, the same for every row.

    Returns
    -------
    log_weights : float64 tensor of shape (n_draws, n)
    nll : float64 tensor of shape (n_draws, n, n_columns)
        ``-log p(x_j | z_k)`` per draw, row and column, in nats (a
        categorical column's once, not once per level).
    """
    mean, logvar = module.encode(x)
    # Any proposal gives a valid bound, so the log-variance may be clamped: far
    # from the data the encoder's can overflow exp (inf * 0 = NaN in z).
    logvar = torch.clamp(logvar, IW_LOGVAR_MIN, IW_LOGVAR_MAX)
    std = torch.exp(0.5 * logvar)
    z = mean.unsqueeze(0) + std.unsqueeze(0) * eps.to(x.dtype).unsqueeze(1)
    decoded = module.decode(z).to(torch.float64)
    x64 = x.to(torch.float64)
    target = x64.unsqueeze(0).expand(*decoded.shape[:-1], x.shape[-1])
    nll = module.likelihood.nll(decoded, target)
    eps64 = eps.to(device=x.device, dtype=torch.float64)
    # log p(z) - log q(z | x) with z = mean + std * eps: the normalising
    # constants cancel and q's quadratic form is eps^2 exactly.
    log_prior_ratio = (
        0.5 * torch.square(eps64).sum(dim=-1).unsqueeze(1)
        + 0.5 * logvar.to(torch.float64).sum(dim=-1).unsqueeze(0)
        - 0.5 * torch.square(z.to(torch.float64)).sum(dim=-1)
    )
    return log_prior_ratio - nll.sum(dim=-1), nll


def importance_weighted_bound(log_weights):
    """``log mean_k exp(log_weights[k])`` per row: the IWAE bound, in float64.

    Parameters
    ----------
    log_weights : tensor of shape (n_draws, n)
        From :func:`importance_weighted_terms`.

    Returns
    -------
    float64 tensor of shape (n,)
        A lower bound on ``log p(x)`` in expectation over the draws, tighter as
        ``n_draws`` grows; with one draw, an unbiased estimate of the ELBO.
        Computed with log-sum-exp, so it is finite whenever every log weight
        is, however negative.
    """
    log_weights = log_weights.to(torch.float64)
    n_draws = log_weights.shape[0]
    return torch.logsumexp(log_weights, dim=0) - math.log(n_draws)
