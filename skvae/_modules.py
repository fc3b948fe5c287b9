"""Pure PyTorch building blocks of the VAE: no numpy, no scikit-learn here.

Also the one description of a network's layout (:class:`Layer`,
:func:`mlp_layers`, :func:`is_plain_vae`, :func:`widest_layer`), which the
hand-written training step, the inference view and the analysis functions'
chunk sizes read.
"""

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
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
    likelihood : TableLikelihood
        The observation model of the table's columns
        (:mod:`skvae._likelihoods`): it sets the encoder's input width (its
        encoding of the columns: values, one-hot levels, log-counts), the
        decoder's output width (its parameters per column) and holds the
        learned parameters of the families (scales, dispersions). It is the
        ``likelihood`` sub-module.
    n_components : int
        Latent dimension.
    hidden_layer_sizes : sequence of int
        Encoder widths; the decoder uses them in reverse order.
    activation : str
        A key of ``ACTIVATIONS``.
    generator : torch.Generator
        Source of the initial weights.
    """

    def __init__(
        self,
        likelihood,
        n_components,
        hidden_layer_sizes,
        activation,
        generator,
    ):
        super().__init__()
        hidden = list(hidden_layer_sizes)
        self.n_components = n_components
        # One output layer for the mean and the log-variance: one matmul, not two.
        self.encoder = make_mlp(
            [likelihood.n_inputs, *hidden, 2 * n_components], activation, generator
        )
        self.decoder = make_mlp(
            [n_components, *reversed(hidden), likelihood.n_outputs],
            activation,
            generator,
        )
        self.likelihood = likelihood

    def encode(self, x):
        """Mean and log-variance of ``q(z | x)``, each ``(n, n_components)``.

        ``x`` holds the table's internal values (n, n_columns); the
        likelihood encodes them for the encoder.
        """
        mean, logvar = self.encoder(self.likelihood.encode(x)).chunk(2, dim=-1)
        return prior_where_empty(x, mean, logvar)

    @property
    def log_scale(self):
        """The learned log standard deviation per column, or None.

        The parameter of a model whose one family learns a scale
        (``calibrated_gaussian``, ``lognormal``); None otherwise (no learned
        scale, or several families: see ``likelihood``'s parameters).
        """
        return self.likelihood.log_scale

    def decode(self, z):
        """The likelihood's parameters (means, logits, log-rates) for codes ``z``."""
        return self.decoder(z)

    def forward(self, x, eps):
        """One reparameterised pass: ``(decoded, mean, logvar)`` for noise ``eps``."""
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mean, logvar


def prior_where_empty(x, mean, logvar):
    """``(mean, logvar)``, with the prior's ``(0, 0)`` on rows of ``x`` that are
    all missing (NaN): with nothing observed, the posterior is the prior."""
    empty = torch.isnan(x).all(dim=-1, keepdim=True)
    if x.shape[-1] == 0 or not bool(empty.any()):
        return mean, logvar
    zero = torch.zeros((), dtype=mean.dtype, device=mean.device)
    return torch.where(empty, zero, mean), torch.where(empty, zero, logvar)


class Layer(NamedTuple):
    """One ``nn.Linear`` of a VAE's MLP and the activation after it (if any)."""

    weight: torch.Tensor
    bias: torch.Tensor
    weight_t: torch.Tensor  # a view: it follows the optimiser's updates
    forward: Callable | None  # activation(pre) -> out
    backward: Callable | None  # (grad_out, pre, out) -> grad_pre
    forward_: Callable | None  # the activation in place
    fused: tuple | None  # (attr, scalars, algorithm) of oneDNN's linear+activation


def _activation(act):
    """The functions of activation module ``act``; None if not one of ours."""
    kind = type(act)
    if kind not in ACTIVATIONS.values() or getattr(act, "inplace", False):
        return None
    if kind is nn.ReLU:
        return (
            torch.relu,
            lambda grad, pre, out: torch.ops.aten.threshold_backward(grad, out, 0),
            torch.relu_,
            ("relu", [], ""),
        )
    if kind is nn.Tanh:
        return (
            torch.tanh,
            lambda grad, pre, out: torch.ops.aten.tanh_backward(grad, out),
            torch.tanh_,
            ("tanh", [], ""),
        )
    if kind is nn.Sigmoid:
        return (
            torch.sigmoid,
            lambda grad, pre, out: torch.ops.aten.sigmoid_backward(grad, out),
            torch.sigmoid_,
            ("sigmoid", [], ""),
        )
    if kind is nn.ELU:
        return (
            partial(F.elu, alpha=act.alpha),
            lambda grad, pre, out: torch.ops.aten.elu_backward(
                grad, act.alpha, 1.0, 1.0, False, pre
            ),
            partial(F.elu, alpha=act.alpha, inplace=True),
            None,
        )
    if kind is nn.GELU:
        return (
            partial(F.gelu, approximate=act.approximate),
            lambda grad, pre, out: torch.ops.aten.gelu_backward(
                grad, pre, approximate=act.approximate
            ),
            partial(F.gelu, approximate=act.approximate),
            ("gelu", [], act.approximate),
        )
    if kind is nn.SiLU:
        return (
            F.silu,
            lambda grad, pre, out: torch.ops.aten.silu_backward(grad, pre),
            partial(F.silu, inplace=True),
            ("swish", [], ""),
        )
    if kind is nn.LeakyReLU:
        return (
            partial(F.leaky_relu, negative_slope=act.negative_slope),
            lambda grad, pre, out: torch.ops.aten.leaky_relu_backward(
                grad, pre, act.negative_slope, False
            ),
            partial(F.leaky_relu, negative_slope=act.negative_slope, inplace=True),
            ("leaky_relu", [act.negative_slope], ""),
        )
    return None


def mlp_layers(sequential):
    """The :class:`Layer` list of an ``nn.Sequential`` of Linear, activation, ...

    None unless ``sequential`` is exactly what ``make_mlp`` builds: alternating
    ``nn.Linear`` (with bias) and one of skvae's activations, Linear last.
    """
    if type(sequential) is not nn.Sequential:
        return None
    children = list(sequential)
    layers = []
    for i in range(0, len(children), 2):
        linear = children[i]
        if type(linear) is not nn.Linear or linear.bias is None:
            return None
        functions = (None, None, None, None)
        if i + 1 < len(children):
            functions = _activation(children[i + 1])
            if functions is None:
                return None
        layers.append(Layer(linear.weight, linear.bias, linear.weight.t(), *functions))
    if not layers or layers[-1].forward is not None:
        return None
    return layers


def widest_layer(module):
    """Values per row of the widest ``nn.Linear`` in ``module``, inputs and
    outputs included: what one row of its largest activation holds."""
    return max(
        max(part.in_features, part.out_features)
        for part in module.modules()
        if isinstance(part, nn.Linear)
    )


def is_plain_vae(module):
    """Whether ``module`` is a :class:`~skvae._modules.VAEModule` as built.

    Not a subclass that overrides how it computes, with no hooks, and with
    encoder and decoder as :func:`mlp_layers` reads them: then its forward
    pass can be written out layer by layer.
    """
    kind = type(module)
    if not isinstance(module, VAEModule) or any(
        getattr(kind, name) is not getattr(VAEModule, name)
        for name in ("forward", "encode", "decode")
    ):
        return False
    for part in module.modules():
        if part._forward_hooks or part._forward_pre_hooks or part._backward_hooks:
            return False
    return (
        mlp_layers(module.encoder) is not None
        and mlp_layers(module.decoder) is not None
    )
