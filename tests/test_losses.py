import numpy as np
import pytest
import torch

from skvae._likelihoods import MIN_LOG_SCALE, single_family
from skvae._losses import (
    decoder_mean,
    elbo,
    kl_divergence,
    kl_divergence_and_grad,
    training_loss,
)
from skvae._modules import VAEModule

rng = np.random.RandomState(0)

# The families of a table of one kind of numbers (categorical needs levels:
# tests/test_likelihoods.py covers it).
NUMERIC_FAMILIES = [
    "gaussian",
    "calibrated_gaussian",
    "bernoulli",
    "poisson",
    "negative_binomial",
    "lognormal",
    "log1p_normal",
]


def test_bernoulli_nll_is_stable_at_saturated_logits():
    likelihood = single_family("bernoulli", 2).double()
    # Saturated logits: sigmoid-then-log would give inf here.
    extreme = likelihood.nll(
        torch.tensor([[200.0, -200.0]], dtype=torch.float64),
        torch.tensor([[0.0, 1.0]], dtype=torch.float64),
    )
    np.testing.assert_allclose(extreme.numpy(), [[200.0, 200.0]])


def test_decoder_mean_is_the_likelihoods_mean():
    module = VAEModule(
        single_family("bernoulli", 3), 2, (4,), "tanh", torch.Generator()
    )
    logits = torch.tensor([[-2.0, 0.0, 3.0]])
    torch.testing.assert_close(decoder_mean(module, logits), torch.sigmoid(logits))
    module = VAEModule(single_family("gaussian", 3), 2, (4,), "tanh", torch.Generator())
    torch.testing.assert_close(decoder_mean(module, logits), logits)


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


def _double_module(name="bernoulli"):
    module = VAEModule(
        single_family(name, 4), 2, (6,), "tanh", torch.Generator().manual_seed(0)
    )
    return module.double()


def test_elbo_rows_are_independent_and_match_a_loop():
    module = _double_module()
    x = torch.tensor(rng.uniform(size=(5, 4)))
    eps = torch.tensor(rng.normal(size=(7, 2)))
    batch = elbo(module, x, eps)
    for i in range(5):
        single = elbo(module, x[i : i + 1], eps)
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


@pytest.mark.parametrize("name", NUMERIC_FAMILIES)
def test_closed_form_nll_gradients_match_autograd(name):
    likelihood = single_family(name, 5).double()
    x = torch.tensor(rng.uniform(size=(6, 5)))
    if name in ("poisson", "negative_binomial"):
        x = torch.tensor(rng.poisson(3.0, size=(6, 5)).astype(float))
    elif name == "lognormal":
        x = torch.tensor(rng.lognormal(size=(6, 5)))
    likelihood.fit_statistics(x.numpy())
    params = dict(likelihood.named_parameters())
    with torch.no_grad():
        for parameter in params.values():
            # The first feature sits below the floor of a learned log-scale:
            # clamped, so no gradient there.
            parameter.copy_(
                torch.tensor([MIN_LOG_SCALE - 1.0, -1.0, 0.0, 0.3, 1.2])
            )
    decoded = torch.tensor(rng.normal(scale=2, size=(6, 5)), requires_grad=True)
    scale = 0.37
    nll = likelihood.nll(decoded, x).sum()
    wanted = torch.autograd.grad(scale * nll, [decoded, *params.values()])
    assert likelihood.closed_form
    total, grad, parameter_grads = likelihood.nll_and_grad(
        decoded.detach().clone(), x, scale
    )
    torch.testing.assert_close(total, nll.detach())
    torch.testing.assert_close(grad, wanted[0])
    assert set(parameter_grads) == set(params.values())
    for parameter, expected in zip(params.values(), wanted[1:], strict=True):
        torch.testing.assert_close(parameter_grads[parameter], expected)
        if name in ("calibrated_gaussian", "lognormal", "log1p_normal"):
            assert parameter_grads[parameter][0] == 0.0


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


def test_unknown_likelihood_is_one_clear_error():
    with pytest.raises(ValueError, match="Unknown likelihood 'poison'; expected one"):
        single_family("poison", 3)
