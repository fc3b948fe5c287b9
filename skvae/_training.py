"""The training loop: ``fit_loop -> run_single_epoch -> train_step``.

Knows tensors, a module, an optimiser and a likelihood name; knows nothing of
scikit-learn's estimator API. The estimator hands it tensors already on the
training device and reads the history back.
"""

import copy
import time
from dataclasses import dataclass, field

import torch

from ._losses import elbo, loss_terms


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
    n_steps: int = 0

    @property
    def n_epochs(self):
        return len(self.loss)


@dataclass
class Objective:
    """The weights of the loss, and the schedule of the KL weight."""

    likelihood: str
    recon_weight: float
    beta: float
    kl_warmup: int
    n_features: int

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
    recon_mean, kl = loss_terms(module, objective.likelihood, x, eps)
    loss = (objective.recon_weight * recon_mean + kl_weight * kl).mean()
    loss.backward()
    optimizer.step()
    return torch.stack([recon_mean.detach().sum(), kl.detach().sum()])


def run_single_epoch(module, optimizer, objective, X, batch_size, generator, epoch):
    """One shuffled pass over ``X``.

    Returns ``(loss, reconstruction, kl)`` per sample, as Python floats, where
    reconstruction is the negative log-likelihood summed over features.
    """
    n_samples = X.shape[0]
    n_components = module.n_components
    # One gather and one noise draw per epoch; batches are then contiguous views.
    order = torch.randperm(n_samples, generator=generator, device=X.device)
    X_shuffled = X[order]
    eps = torch.randn(
        n_samples, n_components, generator=generator, device=X.device, dtype=X.dtype
    )
    kl_weight = objective.kl_weight(epoch)
    totals = torch.zeros(2, device=X.device, dtype=X.dtype)
    for start in range(0, n_samples, batch_size):
        stop = start + batch_size
        totals += train_step(
            module,
            optimizer,
            objective,
            X_shuffled[start:stop],
            eps[start:stop],
            kl_weight,
        )
    recon_mean_sum, kl_sum = (totals / n_samples).tolist()
    loss = objective.recon_weight * recon_mean_sum + kl_weight * kl_sum
    return loss, recon_mean_sum * objective.n_features, kl_sum


def validation_score(module, objective, X_val, score_eps):
    """Mean per-sample ELBO of ``X_val``, in nats."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        score = elbo(module, objective.likelihood, X_val, score_eps).mean().item()
    module.train(was_training)
    return score


def fit_loop(
    module,
    optimizer,
    objective,
    X,
    *,
    history,
    max_epochs,
    batch_size,
    generator,
    tol,
    n_iter_no_change,
    X_val=None,
    score_eps=None,
    check_convergence=True,
    verbose=0,
):
    """Train for up to ``max_epochs`` epochs, appending to ``history``.

    With ``X_val`` (early stopping), stops when the validation ELBO has not
    improved by ``tol`` for ``n_iter_no_change`` epochs and restores the best
    weights. Otherwise, with ``check_convergence``, stops when the training loss
    has not improved by ``tol`` for ``n_iter_no_change`` epochs (epochs within
    the KL warm-up do not count: the objective changes under them).

    Returns
    -------
    status : {'converged', 'max_iter', 'interrupted'}
        Why the loop ended: a stopping criterion fired, ``max_epochs`` ran out,
        or the user pressed Ctrl-C (the weights of the last step are kept).
    """
    module.train()
    best_state = None
    status = "max_iter"
    try:
        for _ in range(max_epochs):
            epoch = history.n_epochs
            tic = time.perf_counter()
            loss, recon, kl = run_single_epoch(
                module, optimizer, objective, X, batch_size, generator, epoch
            )
            history.n_steps += -(-X.shape[0] // batch_size)
            if not all(map(_isfinite, (loss, recon, kl))):
                raise ValueError(
                    f"Training diverged at epoch {epoch + 1}: the loss is not finite "
                    f"(reconstruction={recon}, kl={kl}). Lower learning_rate_init, "
                    "or scale the input (e.g. StandardScaler or MinMaxScaler)."
                )
            history.loss.append(loss)
            history.reconstruction.append(recon)
            history.kl.append(kl)
            message = (
                f"Epoch {epoch + 1}: loss = {loss:.6g}, reconstruction = {recon:.6g},"
                f" kl = {kl:.6g}"
            )
            if X_val is not None:
                score = validation_score(module, objective, X_val, score_eps)
                history.validation_scores.append(score)
                message += f", validation elbo = {score:.6g}"
            if verbose:
                elapsed = time.perf_counter() - tic
                print(f"{message} ({elapsed:.3f} s)", flush=True)

            if objective.in_warmup(epoch):
                continue
            if X_val is not None:
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
                what = "Validation score" if X_val is not None else "Training loss"
                if verbose:
                    print(
                        f"{what} did not improve more than tol={tol} for "
                        f"{n_iter_no_change} consecutive epochs. Stopping.",
                        flush=True,
                    )
                status = "converged"
                break
    except KeyboardInterrupt:
        status = "interrupted"
    if best_state is not None:
        module.load_state_dict(best_state)
    return status


def _isfinite(value):
    return value == value and abs(value) != float("inf")
