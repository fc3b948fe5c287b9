import itertools

import numpy as np
import pytest
import torch

import skvae._training
from skvae import VAETransformer
from skvae._likelihoods import (
    Categorical,
    Gaussian,
    NegativeBinomial,
    TableLikelihood,
    family_names,
    single_family,
)
from skvae._losses import loss_terms
from skvae._modules import ACTIVATIONS, VAEModule
from skvae._training import (
    SINGLE_THREAD_MAX_FLOPS,
    HandBackprop,
    Objective,
    make_adam,
    make_train_step,
    optimizer_step,
    torch_threads,
    train_step,
    training_threads,
)


class _NoStep:
    """An optimiser that leaves the gradients for the test to read."""

    def step(self):
        pass

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None


def _mixed(n_features=7):
    """Gaussian, categorical (3 levels) and count columns, interleaved."""
    return TableLikelihood(
        [
            (Gaussian(3, standardize=True), [0, 2, 6]),
            # Two categorical columns in one block, of 3 and 2 levels.
            (Categorical(2, n_levels=[3, 2]), [1, 5]),
            (NegativeBinomial(2), [3, 4]),
        ],
        n_features,
    )


def _likelihood(name, n_features):
    if name == "mixed":
        return _mixed(n_features)
    return single_family(name, n_features)


def _module(likelihood, activation="relu", n_features=7, dtype=torch.float64):
    generator = torch.Generator().manual_seed(0)
    module = VAEModule(
        _likelihood(likelihood, n_features), 3, [5, 4], activation, generator
    ).to(dtype)
    x, _ = _batch(likelihood, n_features, dtype=dtype)
    module.likelihood.fit_statistics(x.numpy())
    with torch.no_grad():
        for name, parameter in module.likelihood.named_parameters():
            if name.endswith("log_scale"):
                # Two features below the floor of the scale: zero gradient.
                parameter.copy_(torch.linspace(-9.0, 1.0, parameter.numel()))
    return module


def _batch(likelihood="gaussian", n_features=7, n_rows=11, dtype=torch.float64):
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(n_rows, n_features, dtype=dtype, generator=generator)
    if likelihood in ("poisson", "negative_binomial"):
        x = torch.floor(x * 6)
    elif likelihood == "lognormal":
        x = x + 0.1
    elif likelihood == "mixed":
        x[:, 1] = torch.floor(x[:, 1] * 3)
        x[:, [3, 4]] = torch.floor(x[:, [3, 4]] * 6)
        x[:, 5] = torch.floor(x[:, 5] * 2)
    eps = torch.randn(n_rows, 3, dtype=dtype, generator=generator)
    return x, eps


FAMILIES = [name for name in family_names() if name != "categorical"] + ["mixed"]


@pytest.mark.parametrize(
    "likelihood, activation", itertools.product(FAMILIES, sorted(ACTIVATIONS))
)
def test_hand_backprop_matches_autograd(likelihood, activation):
    x, eps = _batch(likelihood)
    objective = Objective(2.5, 1.0, 0, x.shape[1])
    module = _module(likelihood, activation)
    assert HandBackprop.supports(module)
    no_step = _NoStep()
    no_step.params = list(module.parameters())

    expected_sums = train_step(module, no_step, objective, x, eps, 0.7)
    expected = [p.grad.clone() for p in module.parameters()]
    sums = HandBackprop(module, no_step, objective)(x, eps, 0.7)

    torch.testing.assert_close(sums, expected_sums, rtol=1e-12, atol=1e-12)
    for parameter, grad in zip(module.parameters(), expected, strict=True):
        torch.testing.assert_close(parameter.grad, grad, rtol=1e-10, atol=1e-12)
    for name, parameter in module.likelihood.named_parameters():
        if name.endswith("log_scale"):
            # The clamped features got no gradient, the others did.
            assert torch.all(parameter.grad[:2] == 0)
            assert torch.all(parameter.grad[2:] != 0)


def test_hand_backprop_sums_are_the_loss_terms():
    x, eps = _batch()
    module = _module("gaussian")
    sums = HandBackprop(module, _NoStep(), Objective(7.0, 1.0, 0, x.shape[1]))(
        x, eps, 1.0
    )
    recon_mean, kl = loss_terms(module, x, eps)
    torch.testing.assert_close(sums, torch.stack([recon_mean.sum(), kl.sum()]))


class _Subclass(VAEModule):
    def forward(self, x, eps):
        return super().forward(x, eps)


def test_unsupported_modules_fall_back_to_autograd():
    objective = Objective(7.0, 1.0, 0, 7)
    optimizer = _NoStep()
    module = _module("gaussian")
    assert isinstance(make_train_step(module, optimizer, objective), HandBackprop)

    subclass = _Subclass(
        single_family("gaussian", 7), 3, [5], "relu", torch.Generator().manual_seed(0)
    )
    hooked = _module("gaussian")
    hooked.encoder[0].register_forward_hook(lambda *args: None)
    frozen = _module("gaussian")
    frozen.decoder[0].weight.requires_grad_(False)
    with_dropout = _module("gaussian")
    with_dropout.encoder.insert(1, torch.nn.Dropout(0.5))
    for unsupported in (subclass, hooked, frozen, with_dropout):
        assert not HandBackprop.supports(unsupported)
        step = make_train_step(unsupported, optimizer, objective)
        assert step.func is train_step


def _grads_after(step_call, module):
    step_call()
    return [p.grad.clone() for p in module.parameters()]


def test_rows_not_known_complete_go_to_autograd_batch_by_batch():
    # A streamed X (objective.missing None): a batch with a hole trains by
    # autograd, a complete one by the fast step, also inside one prepared
    # chunk, and a direct call takes either kind of batch.
    module = _module("mixed")
    optimizer = _NoStep()
    optimizer.params = list(module.parameters())
    objective = Objective(2.5, 1.0, 0, 7, missing=None)
    step = make_train_step(module, optimizer, objective)
    x, eps = _batch("mixed", n_rows=12)
    holed = x.clone()
    holed[1, 0] = float("nan")
    chunk = torch.cat([holed[:6], x[6:]])
    fast = HandBackprop(module, optimizer, objective)

    def autograd(rows):
        return lambda: train_step(module, optimizer, objective, rows, eps[:6], 0.7)

    expected = [
        _grads_after(autograd(chunk[:6]), module),
        _grads_after(lambda: fast(chunk[6:], eps[6:], 0.7), module),
    ]
    run, tensors = step.prepare(chunk)
    batches = list(zip(*(t.split(6) for t in tensors), strict=True))
    for batch, noise, want in zip(batches, eps.split(6), expected, strict=True):
        got = _grads_after(lambda b=batch, e=noise: run(b, e, 0.7), module)
        for g, w in zip(got, want, strict=True):
            assert torch.equal(g, w)
    # Direct calls, complete and holed.
    assert torch.isfinite(step(x[:6], eps[:6], 0.7)).all()
    assert torch.isfinite(step(holed[:6], eps[:6], 0.7)).all()


class _NoClosedForm(Gaussian):
    """A new family that declares no closed-form gradient."""

    name = "new_family"
    closed_form = False


def test_a_family_without_closed_form_trains_with_autograd():
    likelihood = TableLikelihood(
        [(Gaussian(4), [0, 1, 2, 3]), (_NoClosedForm(3), [4, 5, 6])], 7
    )
    module = VAEModule(likelihood, 3, [5], "relu", torch.Generator().manual_seed(0))
    assert not HandBackprop.supports(module)
    objective = Objective(7.0, 1.0, 0, 7)
    assert make_train_step(module, _NoStep(), objective).func is train_step


def _adam_pair():
    modules = [_module("gaussian", dtype=torch.float32) for _ in range(2)]
    optimizers = [make_adam(m.parameters(), lr=1e-2) for m in modules]
    return modules, optimizers


def test_fast_adam_step_is_bitwise_adam_step():
    if not make_adam([torch.nn.Parameter(torch.zeros(2))], lr=1.0).defaults["fused"]:
        pytest.skip("this torch has no fused Adam on CPU")
    (slow_module, fast_module), (slow, fast) = _adam_pair()
    fast_step = optimizer_step(fast)
    assert fast_step != fast.step
    generator = torch.Generator().manual_seed(2)
    for _ in range(5):
        grads = [
            torch.randn(p.shape, generator=generator) for p in slow_module.parameters()
        ]
        for module in (slow_module, fast_module):
            for p, g in zip(module.parameters(), grads, strict=True):
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                p.grad.copy_(g)
        slow.step()
        fast_step()
    for a, b in zip(slow_module.parameters(), fast_module.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(slow.state.values(), fast.state.values(), strict=True):
        assert all(torch.equal(a[key], b[key]) for key in a)


def test_optimizer_step_uses_step_when_it_must():
    module = _module("gaussian", dtype=torch.float32)
    plain = torch.optim.Adam(module.parameters(), fused=False)
    assert optimizer_step(plain) == plain.step
    hooked = make_adam(module.parameters(), lr=1e-3)
    hooked.register_step_pre_hook(lambda *args: None)
    assert optimizer_step(hooked) == hooked.step
    sgd = torch.optim.SGD(module.parameters(), lr=1e-3)
    assert optimizer_step(sgd) == sgd.step


def test_make_adam_falls_back_when_fused_is_refused(monkeypatch):
    real_adam = torch.optim.Adam

    def no_fused_adam(params, lr, fused=None):
        if fused:
            raise RuntimeError("`fused=True` requires ... supported devices")
        return real_adam(params, lr=lr)

    fused = make_adam(_module("gaussian", dtype=torch.float32).parameters(), lr=1e-3)
    module = _module("gaussian", dtype=torch.float32)
    monkeypatch.setattr(torch.optim, "Adam", no_fused_adam)
    optimizer = make_adam(module.parameters(), lr=1e-3, state=fused.state_dict())
    # The saved state's choice of implementation does not come along.
    assert not optimizer.param_groups[0]["fused"]


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(KeyError), torch_threads(1):
        raise KeyError
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_training_threads_depends_on_the_work_per_step():
    small = _module("gaussian", dtype=torch.float32)
    assert training_threads(small, 128, torch.device("cpu")) == 1
    n_weights = sum(p.numel() for p in small.parameters())
    big_batch = int(SINGLE_THREAD_MAX_FLOPS // (6 * n_weights)) + 1
    assert training_threads(small, big_batch, torch.device("cpu")) is None
    assert training_threads(small, 128, torch.device("cuda")) is None


def test_fit_trains_on_one_thread_and_restores_the_count(monkeypatch):
    seen = []
    real_epoch = skvae._training.run_single_epoch

    def recording_epoch(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(skvae._training, "run_single_epoch", recording_epoch)
    X = np.random.RandomState(0).normal(size=(50, 4))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        VAETransformer(max_iter=2, random_state=0).fit(X)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1]


def test_hand_and_autograd_steps_train_the_same_model(monkeypatch):
    X = np.random.RandomState(0).normal(size=(300, 5))
    params = dict(max_iter=5, batch_size=32, random_state=0)
    hand = VAETransformer(**params).fit(X)
    monkeypatch.setattr(skvae._training, "make_train_step", _autograd_step)
    autograd = VAETransformer(**params).fit(X)
    np.testing.assert_allclose(hand.loss_curve_, autograd.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(
        hand.transform(X), autograd.transform(X), rtol=1e-3, atol=1e-4
    )


def _autograd_step(module, optimizer, objective):
    def step(x, eps, kl_weight):
        return train_step(module, optimizer, objective, x, eps, kl_weight)

    return step


def test_same_seed_is_bitwise_reproducible_with_partial_fit():
    X = np.random.RandomState(0).normal(size=(200, 6))

    def run():
        vae = VAETransformer(max_iter=3, batch_size=16, random_state=5).fit(X)
        vae.partial_fit(X)
        return vae.transform(X), vae.loss_curve_

    (a, curve_a), (b, curve_b) = run(), run()
    np.testing.assert_array_equal(a, b)
    assert curve_a == curve_b
