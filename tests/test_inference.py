import itertools

import numpy as np
import pytest
import torch

import skvae._inference
from skvae import VAETransformer
from skvae._inference import inference_view
from skvae._modules import ACTIVATIONS, VAEModule


def _module(activation, dtype, likelihood_scale=False):
    module = VAEModule(
        9, 3, [7, 5], activation, likelihood_scale, torch.Generator().manual_seed(0)
    )
    return module.to(dtype).eval()


@pytest.mark.parametrize(
    "activation, dtype",
    itertools.product(sorted(ACTIVATIONS), [torch.float32, torch.float64]),
)
def test_inference_view_computes_what_the_module_computes(activation, dtype):
    module = _module(activation, dtype)
    view = inference_view(module)
    assert view is not module
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(50, 9, dtype=dtype, generator=generator)
    z = torch.randn(4, 50, 3, dtype=dtype, generator=generator)  # as in elbo
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}
    with torch.no_grad():
        for got, expected in zip(view.encode(x), module.encode(x), strict=True):
            torch.testing.assert_close(got, expected, **tol)
        torch.testing.assert_close(view.decode(z), module.decode(z), **tol)
        assert view.encode(x[:0])[0].shape == (0, 3)
    assert view.n_components == 3
    assert view.log_scale is module.log_scale


def test_inference_view_without_the_fused_operator(monkeypatch):
    monkeypatch.setattr(skvae._inference, "_FUSED_LINEAR_WORKS", False)
    module = _module("relu", torch.float32)
    x = torch.randn(20, 9, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(
            inference_view(module).encode(x)[0], module.encode(x)[0]
        )


def test_inference_view_leaves_unknown_modules_alone():
    module = _module("relu", torch.float32)
    module.decoder.append(torch.nn.Sigmoid())  # no longer Linear last
    assert inference_view(module) is module
    hooked = _module("relu", torch.float32)
    hooked.encoder[0].register_forward_hook(lambda *args: None)
    assert inference_view(hooked) is hooked


def test_transform_matches_the_module(digits01):
    X = digits01[0].astype(np.float32)
    vae = VAETransformer(max_iter=2, random_state=0, likelihood="bernoulli").fit(X)
    with torch.no_grad():
        x = torch.from_numpy(X)
        mean = vae.module_.encode(x)[0].numpy()
        decoded = torch.sigmoid(vae.module_.decode(torch.from_numpy(mean))).numpy()
    np.testing.assert_allclose(vae.transform(X), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        vae.inverse_transform(mean), decoded, rtol=1e-5, atol=1e-6
    )
