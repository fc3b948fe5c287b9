"""Shared pieces of the benchmarks: data, the baselines, timing and tables.

The baselines are what a user would write instead of ``VAETransformer``:

- ``reference_fit``: a clean hand-written PyTorch loop (the whole data as one
  tensor, ``torch.randperm`` batches, Adam, ``loss.item()`` per step as most
  loops log it), with the architecture, loss, learning rate and batch size of
  ``VAETransformer``'s defaults;
- the same loop fed by a default ``DataLoader(TensorDataset(X), shuffle=True)``;
- ``pyod_fit``: pyod's ``VAE``, configured to train the same model on the same
  objective (see its docstring).

Not collected by pytest (no ``test_`` prefix); imported by the ``bench_*.py``
scripts next to it.
"""

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from skvae._likelihoods import single_family
from skvae._losses import elbo
from skvae._vae import score_noise

RESULTS = Path(__file__).parent / "results"
HIDDEN = (64, 32)
N_COMPONENTS = 2
LEARNING_RATE = 1e-3


# ------------------------------------------------------------------ data


def make_data(n_samples, n_features=48, seed=0):
    """Standardised float32 data near a curved 4-dimensional manifold, plus noise."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_samples, 4))
    mixing = rng.standard_normal((4, n_features))
    bend = rng.standard_normal((4, n_features))
    X = np.tanh(latent) @ mixing + 0.5 * (latent**2) @ bend / n_features**0.5
    X += 0.3 * rng.standard_normal((n_samples, n_features))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.astype(np.float32)


# ------------------------------------------------------------- baselines


class ReferenceVAE(nn.Module):
    """``VAETransformer``'s default network, written the usual way."""

    def __init__(self, n_features, n_components=N_COMPONENTS, hidden=HIDDEN):
        super().__init__()
        sizes = [n_features, *hidden]
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.encoder = nn.Sequential(*layers, nn.Linear(hidden[-1], 2 * n_components))
        sizes = [n_components, *reversed(hidden)]
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.decoder = nn.Sequential(*layers, nn.Linear(hidden[0], n_features))
        self.log_scale = None

    def encode(self, x):
        return self.encoder(x).chunk(2, dim=-1)

    def decode(self, z):
        return self.decoder(z)

    def loss(self, x):
        """Negative ELBO per sample, averaged (Gaussian decoder, constant dropped)."""
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        recon = 0.5 * torch.square(x - self.decode(z)).sum(dim=1)
        kl = 0.5 * (torch.square(mean) + torch.exp(logvar) - 1.0 - logvar).sum(dim=1)
        return (recon + kl).mean()


def reference_fit(
    X, epochs, batch_size=128, seed=0, loader=False, model=None, optimizer=None
):
    """Train ``ReferenceVAE`` with a hand-written loop; returns (model, optimizer).

    With ``loader``, batches come from a default ``DataLoader(TensorDataset)``.
    Passing back ``model`` and ``optimizer`` continues training.
    """
    if model is None:
        torch.manual_seed(seed)
        model = ReferenceVAE(X.shape[1])
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    data = torch.from_numpy(X)
    n_samples = data.shape[0]
    if loader:
        batches = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(data), batch_size=batch_size, shuffle=True
        )
    model.train()
    for _ in range(epochs):
        total = 0.0
        if loader:
            iterator = (x for (x,) in batches)
        else:
            order = torch.randperm(n_samples)
            iterator = (
                data[order[start : start + batch_size]]
                for start in range(0, n_samples, batch_size)
            )
        for x in iterator:
            loss = model.loss(x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
    return model, optimizer


def pyod_available():
    try:
        import pyod.models.vae  # noqa: F401
    except ImportError:
        return False
    return True


def pyod_fit(X, epochs, batch_size=128, seed=0):
    """pyod's VAE on the same network and objective; None without pyod.

    pyod's defaults differ from a VAE in ways that would make it train another
    model: ``capacity=0`` clamps the KL term to zero (a plain autoencoder),
    ``dropout_rate=0.2``, ``weight_decay=1e-5``, its own standardisation,
    ``logvar_clip`` and three hidden layers. Here: the same hidden layers and
    latent size, no dropout or batch norm, no weight decay, no preprocessing
    (the data are standardised already), no log-variance clip,
    ``capacity=inf`` (the KL term is never clamped) and ``beta=2/n_features``:
    pyod's loss is ``mean squared error + beta * KL``, which is
    ``2/n_features`` times the negative ELBO of a unit-variance Gaussian
    decoder, the objective of the other contenders (Adam is invariant to that
    scale but for its epsilon). Its ``fit`` also scores the training data at
    the end, as ``VAETransformer.fit`` computes ``kl_per_dimension_``.
    """
    try:
        from pyod.models.vae import VAE
    except ImportError:
        return None
    detector = VAE(
        encoder_neuron_list=list(HIDDEN),
        decoder_neuron_list=list(reversed(HIDDEN)),
        latent_dim=N_COMPONENTS,
        epoch_num=epochs,
        batch_size=batch_size,
        lr=LEARNING_RATE,
        dropout_rate=0.0,
        batch_norm=False,
        preprocessing=False,
        beta=2.0 / X.shape[1],
        capacity=float("inf"),
        optimizer_params={"weight_decay": 0.0},
        logvar_clip=None,
        device="cpu",
        random_state=seed,
        verbose=0,
    )
    detector.fit(X)
    return detector


def heldout_elbo(model, X):
    """Mean ELBO of ``X`` in nats: what ``VAETransformer.score`` computes.

    ``model`` is anything with ``encode(x) -> (mean, logvar)`` and
    ``decode(z)``: a fitted ``VAETransformer``, a ``ReferenceVAE`` or pyod's
    network. The 16 fixed draws of ``score_samples`` make it deterministic.
    """
    if hasattr(model, "score"):
        return float(model.score(X))
    network = SimpleNamespace(
        encode=model.encode,
        decode=model.decode,
        likelihood=single_family("gaussian", X.shape[1]),
    )
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    eps = score_noise(N_COMPONENTS, torch.float32, x.device)
    with torch.no_grad():
        values = [elbo(network, chunk, eps) for chunk in x.split(4096)]
    if was_training:
        model.train()
    return float(torch.cat(values).mean())


# ------------------------------------------------------------- measuring


def timed(function, *args, **kwargs):
    """``(seconds, result)`` of one call."""
    tic = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - tic, result


def round_robin(contenders, rounds):
    """Time each ``name -> function()`` once per round, interleaved.

    Returns ``{name: [seconds, ...]}`` and the last result of each. Interleaving
    spreads a busy machine's slow spells over all contenders.
    """
    times = {name: [] for name in contenders}
    results = {}
    for _ in range(rounds):
        for name, function in contenders.items():
            seconds, results[name] = timed(function)
            times[name].append(seconds)
    return times, results


def median(values):
    return statistics.median(values)


def ratio_median(numerators, denominators):
    """Median of the per-round ratios: both measured in the same round."""
    return statistics.median(
        a / b for a, b in zip(numerators, denominators, strict=True)
    )


def matmul_peak(size=4096, repeats=3):
    """Best float32 GFLOP/s of a ``size`` x ``size`` torch.mm, at torch's threads."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)
    best = min(timed(torch.mm, a, b)[0] for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def machine():
    """One line: CPU, cores, torch and its threads."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads by default), "
        f"Python {platform.python_version()}"
    )


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return math.nan


# ------------------------------------------------------------------ output


def parse_args(doc, **extra):
    """``--quick`` and the script's own options (``name=(type, default, help)``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke test in seconds"
    )
    for name, (kind, default, help_text) in extra.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=default, help=help_text
        )
    return parser.parse_args()


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name, markdown, data):
    """Write ``results/<name>.md`` and ``results/<name>.json``; print the markdown."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(markdown, flush=True)


def fmt(value, digits=3):
    """A number with ``digits`` significant digits, thousands separated."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"
