"""Forward passes of a trained VAEModule for inference, with fewer memory passes.

Knows torch and the layout of :class:`~skvae._modules.VAEModule` (the layer
plan of :func:`skvae._modules.mlp_layers`); nothing of numpy or scikit-learn.
"""

import ctypes
import os
import platform
import sys
import threading
from contextlib import contextmanager

import torch

from ._losses import kl_divergence
from ._modules import is_plain_vae, mlp_layers, prior_where_empty

# Environment variables with which glibc's malloc returns freed memory to the
# operating system eagerly (dask's nanny sets MALLOC_TRIM_THRESHOLD_): then every
# fresh tensor of a chunk is faulted in page by page, and writing into buffers
# allocated once per call is faster than the fused kernels, which cannot.
_EAGER_TRIM_VARIABLES = (
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)


# An inference chunk of fewer floating-point operations than this runs on one
# CPU thread. A chunk of the default network (16,384 rows) is about 0.2 GFLOP:
# more threads gained little on it, and on a machine whose other cores are busy
# they cost 3x to 6x (each wait for a descheduled thread stalls them all), so
# inference uses more cores through more processes (dask, joblib) instead.
INFERENCE_SINGLE_THREAD_MAX_FLOPS = 2e9


def inference_threads(flops_per_chunk, device):
    """CPU threads for an inference chunk: 1 unless it is large, else None.

    None leaves torch's setting, which already follows joblib's and
    threadpoolctl's limits, alone.
    """
    if torch.device(device).type != "cpu":
        return None
    if flops_per_chunk <= INFERENCE_SINGLE_THREAD_MAX_FLOPS:
        return 1
    return None


def allocator_trims_eagerly():
    """Whether this process's malloc was told to hand memory back eagerly."""
    environ = startup_environ()
    return any(name in environ for name in _EAGER_TRIM_VARIABLES)


_STARTUP_ENVIRON = []


def startup_environ():
    """The environment this process started with, which malloc read.

    Not ``os.environ``: ``distributed`` sets ``MALLOC_TRIM_THRESHOLD_`` there
    in a client process (for the workers it spawns), whose own malloc never
    saw it. Read once from ``/proc/self/environ``; ``os.environ`` where that
    cannot be read.
    """
    if not _STARTUP_ENVIRON:
        try:
            with open("/proc/self/environ", "rb") as f:
                items = f.read().split(b"\0")
            environ = {}
            for item in items:
                name, sep, value = item.partition(b"=")
                if sep:
                    environ[os.fsdecode(name)] = os.fsdecode(value)
        except OSError:
            environ = dict(os.environ)
        _STARTUP_ENVIRON.append(environ)
    return _STARTUP_ENVIRON[0]


# mallopt's parameters for the two environment variables that fix malloc's
# thresholds (either one also turns off their dynamic adjustment).
_MALLOPT_PARAMETERS = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_MMAP_THRESHOLD_": -3}
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024
# During an inference call: allocations up to 32 MiB (glibc's maximum) come
# from the heap, and freed memory stays there until the call ends.
_KEPT_THRESHOLDS = {-1: 2**30, -3: 32 * 2**20}
_HEAP_LOCK = threading.Lock()
_HEAP_USERS = 0


def _eager_thresholds():
    """``{mallopt parameter: value the environment set}``, or None.

    None unless this is glibc and the environment fixes malloc's trim or
    mmap threshold (dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``), so
    that the values to restore are known exactly.
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    environ = startup_environ()
    values = {}
    for name, parameter in _MALLOPT_PARAMETERS.items():
        text = environ.get(name)
        if text is None:
            values[parameter] = _GLIBC_DEFAULT_THRESHOLD
            continue
        try:
            values[parameter] = int(text)
        except ValueError:
            return None
    if not any(name in environ for name in _MALLOPT_PARAMETERS):
        return None
    return values


@contextmanager
def heap_kept():
    """Keep freed memory in malloc's heap for one inference call.

    Where the environment tells glibc's malloc to hand memory back eagerly,
    every tensor of a chunk larger than 128 KiB is a fresh ``mmap``, faulted
    in page by page: a transform in a dask worker ran at a third of its speed
    in a plain process (``benchmarks/bench_scale.py``). Inside this block the
    thresholds are raised (``mallopt``), so that each chunk reuses the memory
    of the one before; on the way out they are set back to the values the
    environment gave and the freed memory is handed back (``malloc_trim``),
    as the environment asked. Calls from several threads share one raise.
    Yields whether it changed anything (False off glibc, or where the
    environment does not fix the thresholds).
    """
    global _HEAP_USERS
    values = _eager_thresholds()
    libc = _libc() if values is not None else None
    if libc is None:
        yield False
        return
    with _HEAP_LOCK:
        if _HEAP_USERS == 0:
            for parameter, value in _KEPT_THRESHOLDS.items():
                libc.mallopt(parameter, value)
        _HEAP_USERS += 1
    try:
        yield True
    finally:
        with _HEAP_LOCK:
            _HEAP_USERS -= 1
            if _HEAP_USERS == 0:
                for parameter, value in values.items():
                    libc.mallopt(parameter, value)
                libc.malloc_trim(0)


_LIBC = []


def _libc():
    if not _LIBC:
        try:
            libc = ctypes.CDLL(None)
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            _LIBC.append(libc)
        except (OSError, AttributeError):
            _LIBC.append(None)
    return _LIBC[0]


class Workspace:
    """Tensors of one inference call, allocated at its first chunk and reused.

    Each caller makes its own (a workspace is not shared between threads).
    """

    def __init__(self):
        self._buffers = {}

    def take(self, key, shape, like):
        """A tensor of ``shape`` with the dtype and device of ``like``."""
        n = 1
        for size in shape:
            n *= size
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < n:
            buffer = torch.empty(n, dtype=like.dtype, device=like.device)
            self._buffers[key] = buffer
        return buffer[:n].view(shape)


def encode(module, x, workspace=None):
    """``module.encode(x)``, into ``workspace``'s buffers where it can."""
    if workspace is None or not isinstance(module, _InferenceView):
        return module.encode(x)
    return module.encode(x, workspace)


def decode(module, z, workspace=None):
    """``module.decode(z)``, into ``workspace``'s buffers where it can."""
    if workspace is None or not isinstance(module, _InferenceView):
        return module.decode(z)
    return module.decode(z, workspace)


def elbo_rows(module, x, eps, workspace=None):
    """Per-row ELBO of ``x`` with draws ``eps``, as :func:`skvae._losses.elbo`.

    The same numbers to rounding, with every large intermediate (the
    ``(n_draws * n, n_features)`` decoder outputs) in ``workspace``'s buffers
    and the reconstruction term summed in place: its cost is close to
    ``n_draws`` decoder passes per row.
    """
    mean, logvar = encode(module, x, workspace)
    std = torch.exp(0.5 * logvar)
    n_draws, n_rows = eps.shape[0], x.shape[0]
    shape = (n_draws, n_rows, mean.shape[-1])
    if workspace is None:
        z = torch.empty(shape, dtype=x.dtype, device=x.device)
    else:
        z = workspace.take("z", shape, x)
    torch.addcmul(mean.unsqueeze(0), std.unsqueeze(0), eps.unsqueeze(1), out=z)
    decoded = decode(module, z.view(-1, shape[-1]), workspace)
    decoded = decoded.view(n_draws, n_rows, -1)
    if workspace is None:
        decoded = decoded.clone()  # the module's own output may be shared
    nll = module.likelihood.row_nll_(decoded, x)
    return -nll.mean(dim=0) - kl_divergence(mean, logvar).sum(dim=-1)


def inference_view(module):
    """What ``module`` computes, for no-grad inference on large batches.

    Returns an object with ``encode``, ``decode``, ``likelihood`` and
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
        self.likelihood = module.likelihood
        weight = module.encoder[0].weight
        fused = weight.device.type == "cpu" and weight.dtype == torch.float32
        fused = fused and _fused_linear_works()
        self._encoder = _plan(mlp_layers(module.encoder), fused)
        self._decoder = _plan(mlp_layers(module.decoder), fused)

    def encode(self, x, workspace=None):
        encoded = self.likelihood.encode(x)
        out = _run(self._encoder, encoded, workspace, "encoder")
        mean, logvar = prior_where_empty(x, *out.chunk(2, dim=-1))
        return mean, logvar

    def decode(self, z, workspace=None):
        return _run(self._decoder, z, workspace, "decoder")


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


def _run(plan, h, workspace=None, name=None):
    shape = h.shape[:-1]
    h = h.reshape(-1, h.shape[-1])
    if workspace is not None:
        # Into buffers allocated once per call: no fresh memory per chunk.
        for i, (_, bias, weight_t, activation_) in enumerate(plan):
            out = workspace.take((name, i), (h.shape[0], weight_t.shape[1]), h)
            torch.addmm(bias, h, weight_t, out=out)
            h = out if activation_ is None else activation_(out)
        return h.reshape(*shape, h.shape[-1])
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
