import itertools

import numpy as np
import pytest
import torch

import skvae._inference
import skvae._vae
from skvae import VAETransformer
from skvae._inference import Workspace, elbo_rows, inference_view
from skvae._likelihoods import single_family
from skvae._losses import elbo
from skvae._modules import ACTIVATIONS, VAEModule


def _module(activation, dtype, likelihood="gaussian"):
    module = VAEModule(
        single_family(likelihood, 9),
        3,
        [7, 5],
        activation,
        torch.Generator().manual_seed(0),
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
    assert view.likelihood is module.likelihood


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


@pytest.mark.parametrize(
    "likelihood",
    ["gaussian", "bernoulli", "calibrated_gaussian", "poisson", "lognormal"],
)
@pytest.mark.parametrize("buffered", [False, True])
def test_elbo_rows_is_the_elbo(likelihood, buffered):
    module = _module("relu", torch.float64, likelihood)
    with torch.no_grad():
        for parameter in module.likelihood.parameters():
            parameter.copy_(torch.linspace(-2, 1, 9, dtype=torch.float64))
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(40, 9, dtype=torch.float64, generator=generator)
    if likelihood in ("gaussian", "calibrated_gaussian"):
        x = 3 * x - 1
    elif likelihood == "poisson":
        x = torch.floor(5 * x)
    elif likelihood == "lognormal":
        x = x + 0.5
    module.likelihood.fit_statistics(x.numpy())
    eps = torch.randn(16, 3, dtype=torch.float64, generator=generator)
    workspace = Workspace() if buffered else None
    with torch.no_grad():
        expected = elbo(module, x, eps)
        view = inference_view(module)
        got = elbo_rows(view, x, eps, workspace)
        again = elbo_rows(view, x[:7], eps, workspace)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(again, expected[:7], rtol=1e-12, atol=1e-10)


def test_workspace_allocates_once_per_call(monkeypatch):
    X = np.random.RandomState(0).rand(40_000, 9)  # three chunks of 16,384
    vae = VAETransformer(max_iter=1, random_state=0).fit(X[:500])
    expected = vae.transform(X), vae.score_samples(X[:3000])
    allocations = []
    real_empty = torch.empty

    def counting_empty(*args, **kwargs):
        allocations.append(args)
        return real_empty(*args, **kwargs)

    monkeypatch.setattr(skvae._vae, "_use_workspace", lambda: True)
    monkeypatch.setattr(skvae._inference.torch, "empty", counting_empty)
    Z = vae.transform(X)
    # One buffer per encoder layer (3), for a call of three chunks.
    assert len(allocations) == 3
    np.testing.assert_allclose(Z, expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        vae.score_samples(X[:3000]), expected[1], rtol=1e-5, atol=1e-4
    )


def test_inference_threads_and_restores_the_count(monkeypatch):
    assert skvae._inference.inference_threads(1e8, "cpu") == 1
    assert skvae._inference.inference_threads(1e12, "cpu") is None
    X = np.random.RandomState(0).rand(3000, 9)
    vae = VAETransformer(max_iter=1, random_state=0).fit(X)
    seen = []
    real_step = skvae._vae.torch_threads

    def recording(n):
        seen.append(n)
        return real_step(n)

    monkeypatch.setattr(skvae._vae, "torch_threads", recording)
    before = torch.get_num_threads()
    vae.transform(X), vae.inverse_transform(X[:, :2]), vae.score_samples(X)
    assert seen == [1, 1, 1]
    assert torch.get_num_threads() == before


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, parameter, value):
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_heap_kept_raises_and_restores_the_environments_thresholds(monkeypatch):
    from skvae._inference import heap_kept

    libc = _FakeLibc()
    monkeypatch.setattr(skvae._inference, "_libc", lambda: libc)
    monkeypatch.setattr(skvae._inference.sys, "platform", "linux")
    monkeypatch.setattr(skvae._inference.platform, "libc_ver", lambda: ("glibc", ""))
    environ = {}
    monkeypatch.setattr(skvae._inference, "startup_environ", lambda: environ)
    with heap_kept() as kept:  # the environment leaves malloc alone
        assert kept is False
    assert libc.calls == []
    environ["MALLOC_TRIM_THRESHOLD_"] = "65536"
    with heap_kept() as kept, heap_kept() as nested:
        assert kept and nested
        # Raised once, for both: trim (-1) and mmap (-3) thresholds.
        assert libc.calls == [("mallopt", -1, 2**30), ("mallopt", -3, 32 * 2**20)]
    # Back to what the environment set (mmap: glibc's default) and trimmed.
    assert libc.calls[2:] == [
        ("mallopt", -1, 65536),
        ("mallopt", -3, 128 * 1024),
        ("malloc_trim", 0),
    ]


def test_transform_is_the_same_where_malloc_trims_eagerly(monkeypatch):
    X = np.random.RandomState(0).rand(40_000, 9)
    vae = VAETransformer(max_iter=1, random_state=0).fit(X[:500])
    expected = vae.transform(X), vae.score_samples(X[:3000])
    # A stand-in for glibc: this process's malloc did not read the variable.
    libc = _FakeLibc()
    monkeypatch.setattr(skvae._inference, "_libc", lambda: libc)
    monkeypatch.setattr(skvae._inference.sys, "platform", "linux")
    monkeypatch.setattr(skvae._inference.platform, "libc_ver", lambda: ("glibc", ""))
    environ = {"MALLOC_TRIM_THRESHOLD_": "65536"}
    monkeypatch.setattr(skvae._inference, "startup_environ", lambda: environ)
    np.testing.assert_array_equal(vae.transform(X), expected[0])
    np.testing.assert_array_equal(vae.score_samples(X[:3000]), expected[1])
    assert libc.calls[-1] == ("malloc_trim", 0)


def test_the_allocator_setting_is_read_from_the_startup_environment():
    # distributed puts MALLOC_TRIM_THRESHOLD_ in a client's os.environ for its
    # workers; the client's own malloc never read it. In fresh processes: one
    # started with the variable, one that only sets it in os.environ.
    import os
    import subprocess
    import sys

    check = (
        "import os, sys\n"
        "if len(sys.argv) > 1: os.environ['MALLOC_TRIM_THRESHOLD_'] = '65536'\n"
        "import skvae._inference as inf\n"
        "print(inf.allocator_trims_eagerly())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def run(extra_env, *args):
        out = subprocess.run(
            [sys.executable, "-c", check, *args],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    assert run({"MALLOC_TRIM_THRESHOLD_": "65536"}) == "True"
    assert run({}, "set-later") == "False"
    assert run({}) == "False"
