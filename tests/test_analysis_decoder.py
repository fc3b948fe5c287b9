"""Tests of skvae.analysis._decoder: decoder derivatives, traversals, coupling."""

import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError

from skvae import VAETransformer
from skvae.analysis import (
    decoder_finite_differences,
    decoder_jacobian,
    encoder_jacobian,
    latent_coupling,
    latent_traversal,
)


def _fit(X, **params):
    params = {"n_components": 2, "max_iter": 5, "random_state": 0, **params}
    with warnings.catch_warnings():
        # A short fit does not converge and may collapse: not what is tested.
        warnings.simplefilter("ignore")
        return VAETransformer(**params).fit(X)


@pytest.fixture(scope="module")
def training_data():
    return np.random.RandomState(0).uniform(size=(150, 6))


@pytest.fixture(scope="module")
def smooth_vae(training_data):
    """tanh layers and a sigmoid output: derivatives of every order exist."""
    return _fit(training_data, activation="tanh", likelihood="bernoulli")


def _linear_decoder_vae(likelihood):
    """A decoder ``z -> W2 (W1 z + 100) + b2`` with integer weights.

    The large first bias keeps every ReLU on for small codes, so the decoder
    is affine there and its Jacobian is exactly ``W2 @ W1`` (before the
    sigmoid for 'bernoulli'); integer weights make float64 arithmetic exact.
    """
    X = np.random.RandomState(0).uniform(size=(40, 4))
    vae = _fit(X, hidden_layer_sizes=(3,), likelihood=likelihood)
    first, last = vae.module_.decoder[0], vae.module_.decoder[2]
    rng = np.random.RandomState(1)
    W1 = rng.randint(-3, 4, size=(3, 2)).astype(float)
    W2 = rng.randint(-3, 4, size=(4, 3)).astype(float)
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(W1))
        first.bias.fill_(100.0)
        last.weight.copy_(torch.from_numpy(W2 / 64))
        last.bias.fill_(-0.5)
    return vae, (W2 / 64) @ W1


def test_decoder_jacobian_of_hand_made_linear_decoder_is_exact():
    vae, exact = _linear_decoder_vae("gaussian")
    # Dyadic codes and step: z +- h and every sum below are exact in float64.
    Z = np.arange(-6, 6).reshape(6, 2) / 4

    J = decoder_jacobian(vae, Z)
    D = decoder_finite_differences(vae, Z, step=2.0**-8)

    assert J.shape == (6, 4, 2)
    assert_array_equal(J, np.broadcast_to(exact, (6, 4, 2)))
    assert_array_equal(D, J)


def test_decoder_jacobian_of_hand_made_bernoulli_decoder():
    """The decoder mean is sigmoid(logits): J = s (1 - s) (W2 @ W1)."""
    vae, exact = _linear_decoder_vae("bernoulli")
    Z = np.random.RandomState(2).normal(size=(5, 2))
    p = vae.inverse_transform(Z)

    J = decoder_jacobian(vae, Z)

    assert_allclose(J, (p * (1 - p))[:, :, np.newaxis] * exact, rtol=1e-12)


@pytest.mark.parametrize(
    "method, steps, expected_order",
    [
        ("forward", np.logspace(-2, -5, 7), 1.0),
        ("central", np.logspace(-1, -3, 7), 2.0),
    ],
)
def test_finite_differences_converge_at_their_order(
    smooth_vae, method, steps, expected_order
):
    Z = 1.5 * np.random.RandomState(3).normal(size=(20, 2))
    exact = decoder_jacobian(smooth_vae, Z)

    errors = [
        np.max(
            np.abs(
                decoder_finite_differences(smooth_vae, Z, step=h, method=method) - exact
            )
        )
        for h in steps
    ]

    # Truncation error ~ C h**order: a straight line of that slope in log-log.
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert slope == pytest.approx(expected_order, abs=0.1)
    assert errors[-1] < 1e-5


def test_finite_differences_use_the_stated_formulas(smooth_vae):
    Z = np.random.RandomState(4).normal(size=(3, 2))
    h = 1e-2
    f = smooth_vae.inverse_transform
    e = np.eye(2)

    forward = decoder_finite_differences(smooth_vae, Z, step=h, method="forward")
    central = decoder_finite_differences(smooth_vae, Z, step=h, method="central")

    for i in range(2):
        assert_allclose(forward[:, :, i], (f(Z + h * e[i]) - f(Z)) / h, rtol=1e-9)
        assert_allclose(
            central[:, :, i], (f(Z + h * e[i]) - f(Z - h * e[i])) / (2 * h), rtol=1e-9
        )


@pytest.mark.parametrize("method", ["forward", "central"])
def test_finite_differences_do_not_depend_on_batch_size(smooth_vae, method):
    Z = np.random.RandomState(5).normal(size=(11, 2))

    # Other chunk shapes may sum in another order: round-off / step apart.
    assert_allclose(
        decoder_finite_differences(smooth_vae, Z, method=method, batch_size=3),
        decoder_finite_differences(smooth_vae, Z, method=method),
        rtol=1e-10,
        atol=1e-12,
    )
    assert_allclose(
        decoder_jacobian(smooth_vae, Z, batch_size=4),
        decoder_jacobian(smooth_vae, Z),
        rtol=1e-12,
    )


def test_decoder_derivatives_dtype_follows_codes(smooth_vae):
    Z = np.random.RandomState(6).normal(size=(4, 2))

    J32 = decoder_jacobian(smooth_vae, Z.astype(np.float32))
    D32 = decoder_finite_differences(smooth_vae, Z.astype(np.float32), step=1e-2)

    assert J32.dtype == D32.dtype == np.float32
    assert decoder_jacobian(smooth_vae, Z).dtype == np.float64
    assert_allclose(J32, decoder_jacobian(smooth_vae, Z), rtol=1e-4, atol=1e-6)
    assert_allclose(D32, J32, atol=1e-3)


def test_decoder_functions_reject_bad_input(smooth_vae):
    Z = np.zeros((3, 2))
    for bad_method in ("backward", None, 2):
        with pytest.raises(ValueError, match="method must be 'forward' or 'central'"):
            decoder_finite_differences(smooth_vae, Z, method=bad_method)
    for bad_step in (0, -1e-3, np.nan, np.inf, "1e-3", True):
        with pytest.raises(ValueError, match="step must be a positive finite"):
            decoder_finite_differences(smooth_vae, Z, step=bad_step)
    for function in (decoder_finite_differences, decoder_jacobian, latent_coupling):
        with pytest.raises(ValueError, match="Z has 3 columns.*n_components=2"):
            function(smooth_vae, np.zeros((3, 3)))
        with pytest.raises(NotFittedError):
            function(VAETransformer(), Z)


def test_latent_traversal_sweeps_one_dimension(smooth_vae):
    z0 = np.array([0.5, -1.0])
    values = np.array([-2.0, 0.0, 2.0, 3.5])
    z0_before, values_before = z0.copy(), values.copy()

    X = latent_traversal(smooth_vae, z0, dim=1, values=values)

    expected_codes = np.array([[0.5, -2.0], [0.5, 0.0], [0.5, 2.0], [0.5, 3.5]])
    assert_array_equal(X, smooth_vae.inverse_transform(expected_codes))
    assert_array_equal(z0, z0_before)
    assert_array_equal(values, values_before)


def test_latent_traversal_defaults(smooth_vae):
    X = latent_traversal(smooth_vae)

    codes = np.zeros((7, 2))
    codes[:, 0] = np.linspace(-3, 3, 7)
    assert X.dtype == np.float64
    assert_array_equal(X, smooth_vae.inverse_transform(codes))


def test_latent_traversal_rejects_bad_input(smooth_vae):
    with pytest.raises(ValueError, match=r"dim must be an integer in \[0, 2\)"):
        latent_traversal(smooth_vae, dim=2)
    with pytest.raises(ValueError, match=r"dim must be an integer in \[0, 2\)"):
        latent_traversal(smooth_vae, dim=-1)
    with pytest.raises(ValueError, match=r"z0 must have shape \(2,\)"):
        latent_traversal(smooth_vae, z0=np.zeros(3))
    with pytest.raises(ValueError, match="values must be 1-D"):
        latent_traversal(smooth_vae, values=np.zeros((2, 2)))


def test_latent_coupling_is_the_mean_product_of_the_two_jacobians(smooth_vae):
    Z = np.random.RandomState(7).normal(size=(9, 2))
    decoded = smooth_vae.inverse_transform(Z)
    products = encoder_jacobian(smooth_vae, decoded) @ decoder_jacobian(smooth_vae, Z)

    C = latent_coupling(smooth_vae, Z, batch_size=4)

    assert C.shape == (2, 2)
    assert_allclose(C, products.mean(axis=0), rtol=1e-10, atol=1e-14)


def test_latent_coupling_of_a_hand_made_autoencoder_is_its_matrix_product():
    """Affine encoder and decoder (every ReLU on): C = E @ D, exactly."""
    X = np.random.RandomState(0).uniform(size=(40, 4))
    vae = _fit(X, hidden_layer_sizes=(3,))
    module = vae.module_
    rng = np.random.RandomState(2)
    layers = [
        module.decoder[0],
        module.decoder[2],
        module.encoder[0],
        module.encoder[2],
    ]
    # Integer weights, and a power of two for the decoder's output layer: the
    # float64 arithmetic is exact. First layers get a bias of 100 so that
    # their ReLUs stay on; the decoder's outputs are then within +-3.
    weights = [rng.randint(-2, 3, size=layer.weight.shape) / 1.0 for layer in layers]
    weights[1] /= 256
    with torch.no_grad():
        for layer, W, bias in zip(layers, weights, [100, 0, 100, 0], strict=True):
            layer.weight.copy_(torch.from_numpy(W))
            layer.bias.fill_(bias)
    D = weights[1] @ weights[0]
    E = (weights[3] @ weights[2])[:2]
    Z = np.array([[0.0, 0.0], [0.25, -0.5], [1.0, 2.0]])
    assert np.all(np.abs(vae.inverse_transform(Z)) <= 3)

    C = latent_coupling(vae, Z)

    assert_array_equal(C, E @ D)
    assert not np.allclose(C, np.diag(np.diag(C)))
