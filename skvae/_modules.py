"""Pure PyTorch building blocks of the VAE: no numpy, no scikit-learn here."""

import math

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def _linear(n_in, n_out, generator):
    """A ``nn.Linear`` initialised from ``generator``, never from the global RNG.

    ``nn.Linear(...)`` would draw its initial weights from torch's global generator;
    ``skip_init`` builds it on the meta device instead, and the weights are then
    drawn here with PyTorch's default scheme (Kaiming-uniform with ``a=sqrt(5)``,
    which reduces to ``U(-1/sqrt(n_in), 1/sqrt(n_in))`` for weights and biases).
    """
    layer = torch.nn.utils.skip_init(nn.Linear, n_in, n_out)
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


def make_mlp(sizes, activation, generator):
    """Linear layers of the given ``sizes`` with ``activation`` between them.

    There is no activation after the last layer: it outputs distribution
    parameters (means, log-variances or logits).
    """
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(_linear(n_in, n_out, generator))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class VAEModule(nn.Module):
    """Gaussian encoder ``q(z | x)`` and a decoder of the likelihood's parameters.

    Parameters
    ----------
    n_features : int
        Input (and output) dimension.
    n_components : int
        Latent dimension.
    hidden_layer_sizes : sequence of int
        Encoder widths; the decoder uses them in reverse order.
    activation : str
        A key of ``ACTIVATIONS``.
    learn_scale : bool
        Whether the decoder has a learned per-feature log standard deviation
        (the calibrated Gaussian decoder of Rybkin et al. 2021).
    generator : torch.Generator
        Source of the initial weights.
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes,
        activation,
        learn_scale,
        generator,
    ):
        super().__init__()
        hidden = list(hidden_layer_sizes)
        self.n_components = n_components
        # One output layer for the mean and the log-variance: one matmul, not two.
        self.encoder = make_mlp(
            [n_features, *hidden, 2 * n_components], activation, generator
        )
        self.decoder = make_mlp(
            [n_components, *reversed(hidden), n_features], activation, generator
        )
        if learn_scale:
            self.log_scale = nn.Parameter(torch.zeros(n_features))
        else:
            self.register_parameter("log_scale", None)

    def encode(self, x):
        """Mean and log-variance of ``q(z | x)``, each ``(n, n_components)``."""
        mean, logvar = self.encoder(x).chunk(2, dim=-1)
        return mean, logvar

    def decode(self, z):
        """The likelihood's location parameter (mean or logits) for codes ``z``."""
        return self.decoder(z)

    def forward(self, x, eps):
        """One reparameterised pass: ``(decoded, mean, logvar)`` for noise ``eps``."""
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mean, logvar
