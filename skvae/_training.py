"""The training loop: ``fit_loop -> run_single_epoch -> step``.

The step is :class:`HandBackprop` (the backward pass of a ``VAEModule``
written out, with the fused Adam kernel) where the module allows it, else the
autograd :func:`train_step`. Knows tensors, a module (whose likelihood
object computes the loss and, where it has one, its closed-form gradient) and
an optimiser; knows nothing of scikit-learn's estimator API. The estimator
hands it tensors already on the training device and reads the history back.
Why each piece is there, and what it gained: ``benchmarks/README.md``.
"""

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
from torch.optim import optimizer as optim_module

from ._data import chunk_rows
from ._losses import elbo, kl_divergence_and_grad, loss_terms
from ._modules import is_plain_vae, mlp_layers, widest_layer
from ._progress import Progress, epoch_note

# A training step of fewer floating-point operations than this runs on one CPU
# thread: its time is per-operation overhead (about 5 us for each of ~50
# kernels), which more threads only add to, with their wake-ups and barriers,
# and, on a machine that is busy with other work, with waits for a free core.
# The default model (about 10.8k weights) at batch 128 needs about 8 MFLOP.
# See benchmarks/README.md for the measurements behind the value.
SINGLE_THREAD_MAX_FLOPS = 64e6


class DivergenceError(ValueError):
    """The loss or the weights stopped being finite during training."""


@dataclass
class TrainingHistory:
    """What the loop learned about itself, carried across ``warm_start`` fits."""

    loss: list = field(default_factory=list)
    reconstruction: list = field(default_factory=list)
    kl: list = field(default_factory=list)
    validation_scores: list = field(default_factory=list)
    best_loss: float = float("inf")
    best_validation_score: float = -float("inf")
    no_improvement_count: int = 0

    @property
    def n_epochs(self):
        return len(self.loss)


@dataclass
class Objective:
    """The weights of the loss, and the schedule of the KL weight.

    ``n_features`` is the number of the table's columns, over which the
    reconstruction term is averaged (a categorical column counts once).
    """

    recon_weight: float
    beta: float
    kl_warmup: int
    n_features: int
    # Whether the training rows have missing values (NaN): False, True, or
    # None where that is not known before reading them (a streamed X).
    missing: object = False

    def kl_weight(self, epoch):
        """KL weight at 0-based ``epoch``: a linear ramp to beta over kl_warmup."""
        if self.kl_warmup <= 0:
            return self.beta
        return self.beta * min(1.0, (epoch + 1) / self.kl_warmup)

    def in_warmup(self, epoch):
        return epoch + 1 < self.kl_warmup


def train_step(module, optimizer, objective, x, eps, kl_weight):
    """One optimiser step on batch ``x``; returns detached per-sample sums.

    Nothing here reads a value back to the host, so steps queue up without
    synchronising with the device.
    """
    optimizer.zero_grad(set_to_none=True)
    recon_mean, kl = loss_terms(module, x, eps)
    loss = (objective.recon_weight * recon_mean + kl_weight * kl).mean()
    loss.backward()
    optimizer.step()
    return torch.stack([recon_mean.detach().sum(), kl.detach().sum()])


def run_single_epoch(
    module, optimizer, objective, rows, batch_size, generator, epoch, step=None
):
    """One shuffled pass over the training rows.

    ``rows`` (a :class:`~skvae._data.InMemoryRows` or
    :class:`~skvae._data.StreamedRows`) hands out shuffled chunks of whole
    batches with their noise; ``step(x, eps, kl_weight)`` is the training step
    (by default the one that :func:`make_train_step` picks). Returns
    ``(loss, reconstruction, kl)`` per sample, as Python floats, where
    reconstruction is the negative log-likelihood summed over features.
    """
    if step is None:
        step = make_train_step(module, optimizer, objective)
    kl_weight = objective.kl_weight(epoch)
    # A step with ``prepare`` does what depends on the values alone once per
    # chunk of batches: ``prepare(x)`` gives the function that runs a batch
    # and the chunk's tensors, which are split into batches by rows.
    prepare = getattr(step, "prepare", None)
    sums = []
    n_samples = 0
    if prepare is not None:
        # What prepare holds is bounded by the package's chunk rule, in whole
        # batches (the batches are the same whatever the pieces).
        width = getattr(step, "values_per_row", module.likelihood.n_columns)
        piece = batch_size * max(1, chunk_rows(width) // batch_size)
    for x, eps in rows.epoch(batch_size, module.n_components, generator):
        n_samples += x.shape[0]
        if prepare is None:
            sums.extend(
                step(xb, eb, kl_weight)
                for xb, eb in zip(
                    x.split(batch_size), eps.split(batch_size), strict=True
                )
            )
            continue
        for start in range(0, x.shape[0], piece):
            run, tensors = prepare(x[start : start + piece])
            batches = zip(
                *(tensor.split(batch_size) for tensor in tensors), strict=True
            )
            noise = eps[start : start + piece].split(batch_size)
            sums.extend(
                run(batch, eb, kl_weight)
                for batch, eb in zip(batches, noise, strict=True)
            )
    recon_mean_sum, kl_sum = (torch.stack(sums).sum(dim=0) / n_samples).tolist()
    loss = objective.recon_weight * recon_mean_sum + kl_weight * kl_sum
    return loss, recon_mean_sum * objective.n_features, kl_sum


def make_train_step(module, optimizer, objective):
    """The fastest correct training step for ``module``.

    A plain :class:`~skvae._modules.VAEModule` whose likelihood has a closed-form
    gradient for every family (see :meth:`HandBackprop.supports`) gets
    :class:`HandBackprop`; anything else (a subclass, hooks, frozen
    parameters, a family without one) gets the autograd :func:`train_step`.
    Both map ``(x, eps, kl_weight)`` to the detached sums
    ``[sum of recon_mean, sum of kl]`` over the batch.
    """
    autograd = partial(train_step, module, optimizer, objective)
    if not HandBackprop.supports(module) or objective.missing is True:
        return autograd
    fast = HandBackprop(module, optimizer, objective)
    if objective.missing is False:
        return fast
    return _CheckedStep(fast, autograd)


class _CheckedStep:
    """The fast step for rows not known to be complete (a streamed X).

    A batch with a hole (NaN) trains by autograd, which takes missing cells;
    a complete one by the fast step. A complete chunk is prepared once; a
    chunk with a hole is decided batch by batch, so that one missing cell
    sends one batch to autograd, not the whole buffer.
    """

    def __init__(self, fast, autograd):
        self.fast = fast
        self.autograd = autograd
        self.values_per_row = fast.values_per_row

    def __call__(self, x, eps, kl_weight):
        if bool(torch.isnan(x).any()):
            return self.autograd(x, eps, kl_weight)
        return self.fast(x, eps, kl_weight)

    def prepare(self, x):
        if bool(torch.isnan(x).any()):
            return self._batch_by_batch, (x,)
        return self.fast.prepare(x)

    def _batch_by_batch(self, batch, eps, kl_weight):
        return self(batch[0], eps, kl_weight)


class HandBackprop:
    """Training step of a :class:`~skvae._modules.VAEModule`, backward by hand.

    Autograd records each operation of the forward pass and replays it
    backwards; for the small MLPs of a VAE at batch 128 that bookkeeping costs
    several times the arithmetic. This step computes the same gradients (to
    rounding: the tests compare them with autograd's for every likelihood and
    activation) with one matrix product per weight and per layer input, the
    activation's own backward kernel and the closed-form gradients of the loss,
    writes them into preallocated ``.grad`` tensors and calls the optimiser.
    The forward pass uses the same kernels as the module's, so it gives the
    same numbers.
    """

    @staticmethod
    def supports(module):
        """Whether this step can differentiate ``module``'s loss.

        A plain ``VAEModule`` (see :func:`is_plain_vae`) whose parameters all
        train and whose likelihood's families all declare a closed-form
        gradient (``Family.closed_form``). Anything else trains with autograd.
        """
        likelihood = getattr(module, "likelihood", None)
        return (
            is_plain_vae(module)
            and getattr(likelihood, "closed_form", False)
            and not getattr(likelihood, "mask_inputs", True)
            and all(p.requires_grad for p in module.parameters())
        )

    def __init__(self, module, optimizer, objective):
        self.encoder = mlp_layers(module.encoder)
        self.decoder = mlp_layers(module.decoder)
        self.likelihood = module.likelihood
        # Values per row that prepare holds (run_single_epoch sizes its
        # pieces by it).
        self.values_per_row = module.likelihood.prepared_width
        self.optimizer_step = optimizer_step(optimizer)
        self.objective = objective
        for parameter in module.parameters():
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)

    def __call__(self, x, eps, kl_weight):
        return self.run(self.likelihood.prepare(x), eps, kl_weight)

    def prepare(self, x):
        """``(self.run, tensors)`` of a chunk ``x``: see :func:`run_single_epoch`."""
        with torch.no_grad():
            return self.run, self.likelihood.prepare(x)

    def run(self, prepared, eps, kl_weight):
        """One step on a batch of :meth:`TableLikelihood.prepare`'s tensors."""
        with torch.no_grad():
            return self._step(prepared, eps, kl_weight)

    def _step(self, prepared, eps, kl_weight):
        objective = self.objective
        inputs = prepared[0]
        n_rows = inputs.shape[0]
        encoded, encoder_saved = _forward(self.encoder, inputs)
        mean, logvar = encoded.chunk(2, dim=-1)
        noise = torch.exp(0.5 * logvar).mul_(eps)
        decoded, decoder_saved = _forward(self.decoder, mean + noise)

        nll, grad, parameter_grads = self.likelihood.nll_and_grad_prepared(
            decoded,
            prepared,
            objective.recon_weight / (n_rows * objective.n_features),
        )
        for parameter, parameter_grad in parameter_grads.items():
            parameter.grad.copy_(parameter_grad)
        grad_z = _backward(self.decoder, decoder_saved, grad, input_grad=True)
        kl, grad_mean, grad_logvar = kl_divergence_and_grad(
            mean, logvar, kl_weight / n_rows
        )
        # z = mean + exp(logvar / 2) * eps: dz/dmean = 1, dz/dlogvar = noise / 2.
        grad_mean += grad_z
        grad_logvar.addcmul_(grad_z, noise, value=0.5)
        grad = torch.cat([grad_mean, grad_logvar], dim=1)
        _backward(self.encoder, encoder_saved, grad, input_grad=False)
        self.optimizer_step()
        return torch.stack([nll / objective.n_features, kl])


def optimizer_step(optimizer):
    """A callable that does ``optimizer.step()``, faster where it safely can.

    For a fused :class:`torch.optim.Adam` (see :func:`make_adam`) with no hooks
    and the plainest options, the step is the fused kernel on lists built once:
    ``Adam.step`` spends about twice the kernel's time regrouping its tensors
    in Python at every call. The first call goes through ``optimizer.step()``,
    which creates the state that the kernel then updates in place, so
    ``optimizer.state_dict()`` stays the truth. The tests check that both ways
    give bitwise-identical parameters.
    """
    if not _plain_fused_adam(optimizer):
        return optimizer.step
    kernel = None

    def step():
        nonlocal kernel
        if kernel is None:
            optimizer.step()
            kernel = _fused_adam_kernel(optimizer)
        else:
            kernel()

    return step


def _plain_fused_adam(optimizer):
    if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    return (
        group.get("fused") is True
        and hasattr(torch, "_fused_adam_")
        and not any(
            group.get(flag)
            for flag in (
                "amsgrad",
                "maximize",
                "capturable",
                "differentiable",
                "decoupled_weight_decay",
            )
        )
        and not any(isinstance(group[key], torch.Tensor) for key in ("lr", "betas"))
        and getattr(optimizer, "grad_scale", None) is None
        and getattr(optimizer, "found_inf", None) is None
        and not optimizer._optimizer_step_pre_hooks
        and not optimizer._optimizer_step_post_hooks
        and not getattr(optim_module, "_global_optimizer_pre_hooks", None)
        and not getattr(optim_module, "_global_optimizer_post_hooks", None)
    )


def _fused_adam_kernel(optimizer):
    group = optimizer.param_groups[0]
    params = list(group["params"])
    state = [optimizer.state[p] for p in params]
    grads = [p.grad for p in params]
    exp_avgs = [s["exp_avg"] for s in state]
    exp_avg_sqs = [s["exp_avg_sq"] for s in state]
    # The step counters become views of one tensor: one increment, not one per
    # parameter. They stay separate 0-d tensors in the optimiser's state.
    counters = torch.stack([s["step"] for s in state])
    for i, s in enumerate(state):
        s["step"] = counters[i]
    steps = [s["step"] for s in state]
    beta1, beta2 = group["betas"]
    options = dict(
        amsgrad=False,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=False,
    )

    def kernel():
        counters.add_(1)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, **options)

    return kernel


def _forward(layers, h):
    """Output of the MLP, and each layer's ``(input, pre_activation)``."""
    saved = []
    for layer in layers:
        pre = torch.addmm(layer.bias, h, layer.weight_t)
        saved.append((h, pre))
        h = pre if layer.forward is None else layer.forward(pre)
    return h, saved


def _backward(layers, saved, grad, input_grad):
    """Write the weight gradients into ``.grad``; return the input's gradient."""
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        h, pre = saved[i]
        if layer.backward is not None:
            grad = layer.backward(grad, pre, saved[i + 1][0])
        torch.mm(grad.t(), h, out=layer.weight.grad)
        torch.sum(grad, dim=0, out=layer.bias.grad)
        if i > 0 or input_grad:
            grad = torch.mm(grad, layer.weight)
    return grad if input_grad else None


def validation_score(module, objective, rows, score_eps):
    """Mean per-sample ELBO of the validation ``rows``, in nats.

    ``rows`` (a :class:`~skvae._data.InMemoryRows` or
    :class:`~skvae._data.StreamedRows`) hands them out in chunks of the
    package's rule (:func:`skvae._data.chunk_rows`) for the ELBO's largest
    tensor, every row of a chunk times every draw: never every validation row
    times every draw at once. The sum is accumulated in float64.
    """
    chunk = chunk_rows(score_eps.shape[0] * widest_layer(module))
    was_training = module.training
    module.eval()
    total, n_rows = 0.0, 0
    with torch.no_grad():
        for x in rows.chunks(chunk):
            scores = elbo(module, x, score_eps)
            total += scores.sum(dtype=torch.float64).item()
            n_rows += x.shape[0]
    module.train(was_training)
    return total / n_rows


def fit_loop(
    module,
    optimizer,
    objective,
    rows,
    *,
    history,
    max_epochs,
    batch_size,
    generator,
    tol,
    n_iter_no_change,
    val_rows=None,
    score_eps=None,
    check_convergence=True,
    verbose=0,
):
    """Train for up to ``max_epochs`` epochs, appending to ``history``.

    ``rows`` hands out the shuffled training batches (see
    :func:`run_single_epoch`). With ``val_rows`` (early stopping: the
    held-out rows, as ``rows``; see :func:`validation_score`), stops when the
    validation ELBO has not improved by ``tol`` for ``n_iter_no_change``
    epochs and restores the best weights. Otherwise, with
    ``check_convergence``, stops when the training loss has not improved by
    ``tol`` for ``n_iter_no_change`` epochs (epochs within the KL warm-up do
    not count: the objective changes under them).

    Small steps run on one CPU thread (see :func:`training_threads`); torch's
    thread count is restored after each epoch.

    Returns
    -------
    status : {'converged', 'max_iter', 'interrupted'}
        Why the loop ended: a stopping criterion fired, ``max_epochs`` ran out,
        or the user pressed Ctrl-C (the weights of the last step are kept).
    """
    module.train()
    best_state = None
    status = "max_iter"
    step = make_train_step(module, optimizer, objective)
    threads = training_threads(module, batch_size, rows.device)
    progress = Progress(
        max_epochs, unit="epoch", enabled=bool(verbose), start=history.n_epochs
    )
    try:
        for _ in range(max_epochs):
            epoch = history.n_epochs
            with torch_threads(threads):
                loss, recon, kl = run_single_epoch(
                    module,
                    optimizer,
                    objective,
                    rows,
                    batch_size,
                    generator,
                    epoch,
                    step=step,
                )
            if not all(map(_isfinite, (loss, recon, kl))):
                raise DivergenceError(
                    f"Training diverged at epoch {epoch + 1}: the loss is not finite "
                    f"(reconstruction={recon}, kl={kl}). Lower learning_rate_init, "
                    "or scale the input (e.g. StandardScaler or MinMaxScaler)."
                )
            history.loss.append(loss)
            history.reconstruction.append(recon)
            history.kl.append(kl)
            score = None
            if val_rows is not None:
                score = validation_score(module, objective, val_rows, score_eps)
                history.validation_scores.append(score)
            progress.update(epoch_note(loss, recon, kl, score))

            if objective.in_warmup(epoch):
                continue
            if val_rows is not None:
                if score > history.best_validation_score + tol:
                    history.no_improvement_count = 0
                else:
                    history.no_improvement_count += 1
                if score > history.best_validation_score:
                    history.best_validation_score = score
                    best_state = copy.deepcopy(module.state_dict())
            elif check_convergence:
                if loss > history.best_loss - tol:
                    history.no_improvement_count += 1
                else:
                    history.no_improvement_count = 0
                history.best_loss = min(history.best_loss, loss)
            if check_convergence and history.no_improvement_count > n_iter_no_change:
                status = "converged"
                break
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        progress.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    return status


def training_threads(module, batch_size, device):
    """Number of CPU threads for training steps: 1 if they are small, else None.

    None leaves torch's setting alone. A step costs about 6 floating-point
    operations per weight and sample (2 forward, 4 backward).
    """
    if torch.device(device).type != "cpu":
        return None
    n_weights = sum(p.numel() for p in module.parameters())
    if 6 * n_weights * batch_size <= SINGLE_THREAD_MAX_FLOPS:
        return 1
    return None


@contextmanager
def torch_threads(n_threads):
    """Run the block with ``torch.set_num_threads(n_threads)``, then restore it.

    ``None`` changes nothing. The setting is process-wide: other Python threads
    that run torch code at the same time see it too.
    """
    previous = torch.get_num_threads()
    if n_threads is None or n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_adam(parameters, lr, state=None):
    """Adam with the fused (single-kernel) step where torch has one for the device.

    CPU support for ``fused=True`` came with torch 2.4; older versions refuse it
    at construction and get the default implementation. ``state`` (a
    ``state_dict``) is loaded, but the implementation chosen here is kept:
    a state saved by a fused optimiser must load where fused is unavailable.
    """
    parameters = list(parameters)
    try:
        optimizer = torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.Adam(parameters, lr=lr)
    if state is not None:
        chosen = [(g["fused"], g["foreach"]) for g in optimizer.param_groups]
        optimizer.load_state_dict(state)
        for group, (fused, foreach) in zip(optimizer.param_groups, chosen, strict=True):
            group["fused"], group["foreach"] = fused, foreach
    return optimizer


def _isfinite(value):
    return value == value and abs(value) != float("inf")
