"""Forward passes of a trained VAEModule for inference, with fewer memory passes.

Knows torch and the layout of :class:`~skvae._modules.VAEModule` (the layer
plan of :func:`skvae._modules.mlp_layers`); nothing of numpy or scikit-learn.
"""

import torch

from ._modules import is_plain_vae, mlp_layers


def inference_view(module):
    """What ``module`` computes, for no-grad inference on large batches.

    Returns an object with ``encode``, ``decode``, ``log_scale`` and
    ``n_components`` like the module's, or ``module`` itself where it cannot
    (a subclass, hooks). Use it under ``torch.no_grad()`` only.

    Each hidden layer's activation runs in place on the fresh output of its
    matrix product instead of writing a second buffer; on CPU in float32,
    where torch's oneDNN provides it, matrix product, bias and activation are
    one fused call. The results agree with the module's to rounding.
    """
    if not is_plain_vae(module):
        return module
    return _InferenceView(module)


class _InferenceView:
    def __init__(self, module):
        self.n_components = module.n_components
        self.log_scale = module.log_scale
        weight = module.encoder[0].weight
        fused = weight.device.type == "cpu" and weight.dtype == torch.float32
        fused = fused and _fused_linear_works()
        self._encoder = _plan(mlp_layers(module.encoder), fused)
        self._decoder = _plan(mlp_layers(module.decoder), fused)

    def encode(self, x):
        mean, logvar = _run(self._encoder, x).chunk(2, dim=-1)
        return mean, logvar

    def decode(self, z):
        return _run(self._decoder, z)


def _plan(layers, fused):
    """``[(fused_call or None, bias, weight_t, activation_in_place or None)]``."""
    plan = []
    for layer in layers:
        fused_call = None
        if fused and (layer.fused is not None or layer.forward is None):
            attr, scalars, algorithm = layer.fused or ("none", [], "")
            weight, bias = layer.weight, layer.bias

            def fused_call(
                h, weight=weight, bias=bias, spec=(attr, scalars, algorithm)
            ):
                return torch.ops.mkldnn._linear_pointwise(h, weight, bias, *spec)

        plan.append((fused_call, layer.bias, layer.weight_t, layer.forward_))
    return plan


def _run(plan, h):
    shape = h.shape[:-1]
    h = h.reshape(-1, h.shape[-1])
    use_fused = h.shape[0] > 0
    for fused_call, bias, weight_t, activation_ in plan:
        if fused_call is not None and use_fused:
            h = fused_call(h)
        else:
            h = torch.addmm(bias, h, weight_t)
            if activation_ is not None:
                h = activation_(h)
    return h.reshape(*shape, h.shape[-1])


_FUSED_LINEAR_WORKS = None


def _fused_linear_works():
    """Whether oneDNN's fused linear+activation exists here and computes right.

    A private torch operator (what ``torch.compile`` emits for CPU linear
    layers), so it is checked once per process against ``addmm`` + ``relu``
    and left alone if missing or different.
    """
    global _FUSED_LINEAR_WORKS
    if _FUSED_LINEAR_WORKS is None:
        try:
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(64, 24, generator=generator)
            weight = torch.randn(16, 24, generator=generator)
            bias = torch.randn(16, generator=generator)
            with torch.no_grad():
                fused = torch.ops.mkldnn._linear_pointwise(
                    x, weight, bias, "relu", [], ""
                )
            expected = torch.relu(torch.addmm(bias, x, weight.t()))
            _FUSED_LINEAR_WORKS = bool(
                torch.backends.mkldnn.is_available()
                and fused.shape == expected.shape
                and torch.allclose(fused, expected, rtol=1e-4, atol=1e-5)
            )
        except (AttributeError, RuntimeError, NotImplementedError):
            _FUSED_LINEAR_WORKS = False
    return _FUSED_LINEAR_WORKS
