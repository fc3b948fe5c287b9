import numpy as np
import pytest
import torch
from scipy import stats

from skvae._losses import (
    CLOSED_FORM_GRADIENTS,
    LIKELIHOODS,
    MIN_LOG_SCALE,
    decoder_mean,
    elbo,
    kl_divergence,
    kl_divergence_and_grad,
    negative_log_likelihood,
    negative_log_likelihood_and_grad,
    training_loss,
)
from skvae._modules import VAEModule

rng = np.random.RandomState(0)


def test_bernoulli_nll_matches_the_formula_and_is_stable():
    logits = torch.tensor(rng.normal(scale=3, size=(4, 6)))
    x = torch.tensor(rng.uniform(size=(4, 6)))
    p = 1 / (1 + np.exp(-logits.numpy()))
    expected = -(x.numpy() * np.log(p) + (1 - x.numpy()) * np.log(1 - p))
    nll = negative_log_likelihood("bernoulli", logits, x)
    np.testing.assert_allclose(nll.numpy(), expected, rtol=1e-10)
    # Saturated logits: sigmoid-then-log would give inf here.
    extreme = negative_log_likelihood(
        "bernoulli", torch.tensor([200.0, -200.0]), torch.tensor([0.0, 1.0])
    )
    np.testing.assert_allclose(extreme.numpy(), [200.0, 200.0])


def test_gaussian_nll_matches_scipy():
    mean = rng.normal(size=(3, 5))
    x = rng.normal(size=(3, 5))
    nll = negative_log_likelihood("gaussian", torch.tensor(mean), torch.tensor(x))
    np.testing.assert_allclose(nll.numpy(), -stats.norm.logpdf(x, loc=mean))


def test_calibrated_gaussian_nll_matches_scipy():
    mean = rng.normal(size=(3, 5))
    x = rng.normal(size=(3, 5))
    log_scale = np.log(rng.uniform(0.1, 2.0, size=5))
    nll = negative_log_likelihood(
        "calibrated_gaussian",
        torch.tensor(mean),
        torch.tensor(x),
        torch.tensor(log_scale),
    )
    expected = -stats.norm.logpdf(x, loc=mean, scale=np.exp(log_scale))
    np.testing.assert_allclose(nll.numpy(), expected)


def test_decoder_mean():
    logits = torch.tensor([-2.0, 0.0, 3.0])
    torch.testing.assert_close(decoder_mean("bernoulli", logits), torch.sigmoid(logits))
    assert decoder_mean("gaussian", logits) is logits


def test_kl_matches_torch_distributions():
    mean = torch.tensor(rng.normal(size=(4, 3)))
    logvar = torch.tensor(rng.normal(size=(4, 3)))
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(()), torch.ones(()))
    expected = torch.distributions.kl_divergence(q, p)
    torch.testing.assert_close(kl_divergence(mean, logvar), expected)
    assert torch.all(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)


def test_training_loss_weights():
    recon = torch.tensor([1.0, 3.0])
    kl = torch.tensor([0.5, 1.5])
    assert training_loss(recon, kl, 48.0, 1.0).item() == pytest.approx(96.0 + 1.0)
    assert training_loss(recon, kl, 1.0, 0.0).item() == pytest.approx(2.0)


def _double_module():
    module = VAEModule(4, 2, (6,), "tanh", False, torch.Generator().manual_seed(0))
    return module.double()


def test_elbo_rows_are_independent_and_match_a_loop():
    module = _double_module()
    x = torch.tensor(rng.uniform(size=(5, 4)))
    eps = torch.tensor(rng.normal(size=(7, 2)))
    batch = elbo(module, "bernoulli", x, eps)
    for i in range(5):
        single = elbo(module, "bernoulli", x[i : i + 1], eps)
        torch.testing.assert_close(single, batch[i : i + 1])
    # An independent computation for row 0, one draw at a time.
    mean, logvar = module.encode(x[:1])
    logliks = []
    for e in eps:
        z = mean + torch.exp(0.5 * logvar) * e
        p = torch.sigmoid(module.decode(z))
        logliks.append(
            torch.distributions.Bernoulli(probs=p, validate_args=False)
            .log_prob(x[:1])
            .sum()
            .item()
        )
    kl = kl_divergence(mean, logvar).sum().item()
    assert batch[0].item() == pytest.approx(np.mean(logliks) - kl, rel=1e-9)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_closed_form_nll_gradients_match_autograd(likelihood):
    decoded = torch.tensor(rng.normal(scale=2, size=(6, 5)), requires_grad=True)
    x = torch.tensor(rng.uniform(size=(6, 5)))
    log_scale = None
    if likelihood == "calibrated_gaussian":
        # The first feature sits below the floor: clamped, so no gradient.
        values = [MIN_LOG_SCALE - 1.0, -1.0, 0.0, 0.3, 1.2]
        log_scale = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    scale = 0.37
    nll = negative_log_likelihood(likelihood, decoded, x, log_scale).sum()
    (scale * nll).backward()
    if likelihood not in CLOSED_FORM_GRADIENTS:
        # Registered without a closed form: refused, so training uses autograd.
        with pytest.raises(ValueError, match="No closed-form gradient"):
            negative_log_likelihood_and_grad(likelihood, decoded, x, log_scale, 1)
        return

    total, grad, grad_log_scale = negative_log_likelihood_and_grad(
        likelihood,
        decoded.detach(),
        x,
        None if log_scale is None else log_scale.detach(),
        scale,
    )
    torch.testing.assert_close(total, nll.detach())
    torch.testing.assert_close(grad, decoded.grad)
    if log_scale is None:
        assert grad_log_scale is None
    else:
        torch.testing.assert_close(grad_log_scale, log_scale.grad)
        assert grad_log_scale[0] == 0.0


def test_closed_form_kl_gradients_match_autograd():
    mean = torch.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    logvar = torch.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    kl = kl_divergence(mean, logvar).sum()
    (0.25 * kl).backward()
    total, grad_mean, grad_logvar = kl_divergence_and_grad(
        mean.detach(), logvar.detach(), 0.25
    )
    torch.testing.assert_close(total, kl.detach())
    torch.testing.assert_close(grad_mean, mean.grad)
    torch.testing.assert_close(grad_logvar, logvar.grad)


def test_unknown_likelihood_is_an_error_not_a_gaussian():
    decoded, x = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="No closed-form gradient.*'poisson'"):
        negative_log_likelihood_and_grad("poisson", decoded, x, None, 1.0)
    with pytest.raises(ValueError, match="Unknown likelihood 'poisson'"):
        negative_log_likelihood("poisson", decoded, x)
