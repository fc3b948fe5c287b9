import pytest
import torch

from skvae._likelihoods import single_family
from skvae._modules import ACTIVATIONS, VAEModule, make_mlp, widest_layer


def _module(seed=0, learn_scale=False, hidden=(8, 4)):
    name = "calibrated_gaussian" if learn_scale else "gaussian"
    return VAEModule(
        single_family(name, 5), 2, hidden, "relu", torch.Generator().manual_seed(seed)
    )


def test_shapes_and_mirrored_decoder():
    module = _module()
    linear = [m for m in module.encoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(5, 8), (8, 4), (4, 4)]
    linear = [m for m in module.decoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(2, 4), (4, 8), (8, 5)]
    mean, logvar = module.encode(torch.zeros(3, 5))
    assert mean.shape == logvar.shape == (3, 2)
    decoded, mean, logvar = module(torch.zeros(3, 5), torch.zeros(3, 2))
    assert decoded.shape == (3, 5)


def test_widest_layer_counts_inputs_and_outputs():
    assert widest_layer(_module()) == 8
    assert widest_layer(_module(hidden=(3,))) == 5  # the input and output
    assert widest_layer(_module(hidden=(2, 40, 2))) == 40


def test_forward_with_zero_noise_decodes_the_mean():
    module = _module()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    decoded, mean, _ = module(x, torch.zeros(4, 2))
    torch.testing.assert_close(decoded, module.decode(mean))


def test_initialisation_uses_only_the_given_generator():
    state = torch.get_rng_state()
    a, b, c = _module(0), _module(0), _module(1)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


def test_default_init_bounds():
    layer = make_mlp([100, 3], "relu", torch.Generator().manual_seed(0))[0]
    assert layer.weight.abs().max() <= 0.1
    # Not degenerate: the draws fill most of the interval.
    assert layer.weight.abs().max() > 0.09


def test_learned_scale_parameter():
    assert not list(_module(learn_scale=False).likelihood.parameters())
    module = _module(learn_scale=True)
    (log_scale,) = module.likelihood.parameters()
    assert log_scale.shape == (5,)
    assert any(p is log_scale for p in module.parameters())


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds(activation):
    mlp = make_mlp([3, 4, 2], activation, torch.Generator().manual_seed(0))
    assert isinstance(mlp[1], ACTIVATIONS[activation])
    assert mlp(torch.zeros(1, 3)).shape == (1, 2)
