"""Likelihoods and the evidence lower bound, in PyTorch.

The loss knows nothing of the optimiser or of batching: every function maps
tensors to tensors, per sample, and callers reduce.
"""

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("gaussian", "bernoulli", "calibrated_gaussian")
# The likelihoods that negative_log_likelihood_and_grad has a closed form for,
# with whether each has a learned scale. A likelihood added to LIKELIHOODS and
# negative_log_likelihood only trains with autograd until it is added here.
CLOSED_FORM_GRADIENTS = {
    "gaussian": False,
    "bernoulli": False,
    "calibrated_gaussian": True,
}


def _unknown_likelihood(likelihood):
    return ValueError(
        f"Unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}."
    )


_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Floor of the learned decoder scale: keeps the calibrated Gaussian's density
# bounded when a feature is reconstructed (almost) exactly.
MIN_LOG_SCALE = math.log(1e-3)


def negative_log_likelihood(likelihood, decoded, x, log_scale=None):
    """Per-element negative log-likelihood ``-log p(x | decoded)`` in nats.

    Parameters
    ----------
    likelihood : {'gaussian', 'bernoulli', 'calibrated_gaussian'}
        'gaussian' has unit variance; 'calibrated_gaussian' uses ``log_scale``;
        'bernoulli' reads ``decoded`` as logits and uses the numerically stable
        binary cross-entropy with logits (never sigmoid-then-log).
    decoded : tensor of shape (..., n_features)
    x : tensor of the same shape
    log_scale : tensor of shape (n_features,), optional
    """
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(decoded, x, reduction="none")
    if likelihood not in ("gaussian", "calibrated_gaussian"):
        raise _unknown_likelihood(likelihood)
    squared = torch.square(x - decoded)
    if likelihood == "calibrated_gaussian":
        log_scale = torch.clamp(log_scale, min=MIN_LOG_SCALE)
        return 0.5 * squared * torch.exp(-2.0 * log_scale) + log_scale + _HALF_LOG_2PI
    return 0.5 * squared + _HALF_LOG_2PI


def negative_log_likelihood_and_grad(likelihood, decoded, x, log_scale, scale):
    """The summed negative log-likelihood and the gradients of ``scale`` times it.

    The closed forms that the hand-written backward pass of the training step
    uses instead of autograd; they agree with autograd on
    ``scale * negative_log_likelihood(likelihood, decoded, x, log_scale).sum()``.

    Returns
    -------
    total : 0-d tensor
        ``negative_log_likelihood(...).sum()`` over every element.
    grad_decoded : tensor of the shape of ``decoded``
    grad_log_scale : tensor of shape (n_features,) or None
        None unless ``likelihood='calibrated_gaussian'``.

    Raises
    ------
    ValueError
        For a likelihood not in ``CLOSED_FORM_GRADIENTS``: never a silent
        Gaussian gradient for a likelihood that is not Gaussian.
    """
    if likelihood not in CLOSED_FORM_GRADIENTS:
        raise ValueError(
            f"No closed-form gradient for likelihood {likelihood!r}; there is "
            f"one for {sorted(CLOSED_FORM_GRADIENTS)}. Train it with autograd "
            "(skvae._training.train_step), or add its gradient here and to "
            "CLOSED_FORM_GRADIENTS."
        )
    if likelihood == "bernoulli":
        total = F.binary_cross_entropy_with_logits(decoded, x, reduction="sum")
        return total, torch.sigmoid(decoded).sub_(x).mul_(scale), None
    diff = decoded - x
    n_rows = diff.shape[0]
    constant = diff.numel() * _HALF_LOG_2PI
    if likelihood == "calibrated_gaussian":
        clamped = torch.clamp(log_scale, min=MIN_LOG_SCALE)
        precision = torch.exp(-2.0 * clamped)
        column_squares = torch.square(diff).sum(dim=0)
        weighted = column_squares * precision
        total = 0.5 * weighted.sum() + n_rows * clamped.sum() + constant
        grad_log_scale = (n_rows - weighted).mul_(scale)
        # Below its floor the clamped log_scale is constant: no gradient.
        grad_log_scale.masked_fill_(log_scale < MIN_LOG_SCALE, 0.0)
        return total, diff.mul_(precision * scale), grad_log_scale
    flat = diff.view(-1)
    total = 0.5 * torch.dot(flat, flat) + constant
    return total, diff.mul_(scale), None


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


def decoder_mean(likelihood, decoded):
    """Mean of ``p(x | z)``: probabilities for 'bernoulli', else ``decoded``."""
    if likelihood == "bernoulli":
        return torch.sigmoid(decoded)
    return decoded


def kl_divergence(mean, logvar):
    """``KL(N(mean, exp(logvar)) || N(0, 1))`` per sample and latent dimension."""
    return 0.5 * (torch.square(mean) + torch.exp(logvar) - 1.0 - logvar)


def loss_terms(module, likelihood, x, eps):
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
    nll = negative_log_likelihood(likelihood, decoded, x, module.log_scale)
    return nll.mean(dim=-1), kl_divergence(mean, logvar).sum(dim=-1)


def training_loss(recon_mean, kl, recon_weight, kl_weight):
    """The objective minimised: ``recon_weight * recon_mean + kl_weight * kl``.

    Averaged over the batch. With ``recon_weight = n_features`` and
    ``kl_weight = 1`` it is the negative ELBO per sample.
    """
    return (recon_weight * recon_mean + kl_weight * kl).mean()


def elbo(module, likelihood, x, eps):
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
    target = x.unsqueeze(0).expand_as(decoded)
    nll = negative_log_likelihood(likelihood, decoded, target, module.log_scale)
    expected_loglik = -nll.sum(dim=-1, dtype=torch.float64).mean(dim=0)
    kl = kl_divergence(mean.double(), logvar.double())
    return expected_loglik - kl.sum(dim=-1)


def negative_log_likelihood_row_sums_(likelihood, decoded, x, log_scale=None):
    """``negative_log_likelihood(...).sum(dim=-1)``, overwriting ``decoded``.

    For scoring many draws per row: ``decoded`` of shape
    ``(..., n, n_features)`` and ``x`` of shape ``(n, n_features)``
    broadcast; no intermediate of the size of ``decoded`` is allocated (one,
    for 'bernoulli'). The same values as the out-of-place form, to rounding
    (the tests compare them in float64).
    """
    n_features = decoded.shape[-1]
    if likelihood == "bernoulli":
        # softplus(d) - d * x, with softplus(d) = relu(d) + log1p(exp(-|d|)).
        dx = torch.einsum("...nf,nf->...n", decoded, x)
        log_term = torch.abs(decoded).neg_().exp_().log1p_().sum(dim=-1)
        return decoded.relu_().sum(dim=-1).add_(log_term).sub_(dx)
    squared = decoded.sub_(x).square_()
    if likelihood == "calibrated_gaussian":
        log_scale = torch.clamp(log_scale, min=MIN_LOG_SCALE)
        weighted = torch.matmul(squared, torch.exp(-2.0 * log_scale))
        return weighted.mul_(0.5).add_(log_scale.sum() + n_features * _HALF_LOG_2PI)
    return squared.sum(dim=-1).mul_(0.5).add_(n_features * _HALF_LOG_2PI)


# Range of the proposal's log-variance in importance_weighted_terms.
IW_LOGVAR_MIN, IW_LOGVAR_MAX = -30.0, 20.0


def importance_weighted_terms(module, likelihood, x, eps):
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
    nll : float64 tensor of shape (n_draws, n, n_features)
        ``-log p(x_j | z_k)`` per draw, row and feature, in nats.
    """
    mean, logvar = module.encode(x)
    # Any proposal gives a valid bound, so the log-variance may be clamped: far
    # from the data the encoder's can overflow exp (inf * 0 = NaN in z).
    logvar = torch.clamp(logvar, IW_LOGVAR_MIN, IW_LOGVAR_MAX)
    std = torch.exp(0.5 * logvar)
    z = mean.unsqueeze(0) + std.unsqueeze(0) * eps.to(x.dtype).unsqueeze(1)
    decoded = module.decode(z).to(torch.float64)
    log_scale = module.log_scale
    if log_scale is not None:
        log_scale = log_scale.to(torch.float64)
    target = x.to(torch.float64).unsqueeze(0).expand_as(decoded)
    nll = negative_log_likelihood(likelihood, decoded, target, log_scale)
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
