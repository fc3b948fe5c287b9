"""Training throughput of VAETransformer against the loops a user would write.

At the default settings (48 features, the 48-64-32-2 network, batch 128, Adam
at 1e-3) and at batch 1024, on 100,000 training rows, every contender trains
``--epochs`` epochs per round, round-robin over ``--rounds`` rounds in this one
process:

- ``VAETransformer.fit`` as shipped (its time includes input validation and
  the pass over the data that computes ``kl_per_dimension_``);
- the hand-written reference loop of ``_common.reference_fit`` at torch's
  default thread count, and the same at one thread;
- the same loop fed by a default ``DataLoader(TensorDataset)``;
- pyod's ``VAE`` configured to train the same model (``_common.pyod_fit``),
  when pyod is installed.

At batch 128 the round-robin also holds the steps of the optimisation one by
one (the ablation): each row adds one change to the one above, the first being
the training loop as it was before them (autograd, ``Adam.step`` without
``fused``, torch's thread count).

Ratios are medians of per-round ratios; absolute samples/s on a shared machine
are noisy and only comparable within one run. The held-out ELBO after the
same number of epochs checks that every contender learns the same thing. Run::

    python benchmarks/bench_training.py            # about 1-2 min
    python benchmarks/bench_training.py --quick    # 20,000 rows, seconds

Tables: ``benchmarks/results/training.md`` (and ``.json``).
"""

import contextlib
import warnings
from unittest import mock

import torch
from _common import (
    fmt,
    heldout_elbo,
    load_average,
    machine,
    make_data,
    markdown_table,
    median,
    parse_args,
    pyod_available,
    pyod_fit,
    ratio_median,
    reference_fit,
    round_robin,
    write_results,
)

import skvae._training as training
import skvae._vae as vae_module
from skvae import VAETransformer


def fit_skvae(X, epochs, batch_size, patches=()):
    with contextlib.ExitStack() as stack, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for patch in patches:
            stack.enter_context(patch)
        return VAETransformer(
            batch_size=batch_size, max_iter=epochs, random_state=0
        ).fit(X)


def _autograd_step(module, optimizer, objective):
    return lambda x, eps, w: training.train_step(
        module, optimizer, objective, x, eps, w
    )


def _plain_adam(parameters, lr, state=None):
    optimizer = torch.optim.Adam(list(parameters), lr=lr)
    if state is not None:
        optimizer.load_state_dict(state)
    return optimizer


# Each variant adds one change to the one before; the last is what ships.
ABLATION = {
    "before: autograd, Adam.step, torch's threads": [
        mock.patch.object(training, "make_train_step", _autograd_step),
        mock.patch.object(vae_module, "make_adam", _plain_adam),
        mock.patch.object(training, "training_threads", lambda *a: None),
    ],
    "+ Adam(fused=True)": [
        mock.patch.object(training, "make_train_step", _autograd_step),
        mock.patch.object(training, "training_threads", lambda *a: None),
    ],
    "+ one thread for small steps": [
        mock.patch.object(training, "make_train_step", _autograd_step),
    ],
    "+ hand-written backward (HandBackprop)": [
        mock.patch.object(training, "optimizer_step", lambda opt: opt.step),
    ],
    "+ fused Adam kernel called directly (shipped)": [],
    "shipped, but at torch's threads": [
        mock.patch.object(training, "training_threads", lambda *a: None),
    ],
}


def main():
    args = parse_args(
        __doc__,
        n_samples=(int, 100_000, "training rows"),
        epochs=(int, 1, "epochs per contender per round"),
        rounds=(int, 4, "rounds of the round-robin"),
    )
    if args.quick:
        args.n_samples, args.rounds = 10_000, 1
    X_all = make_data(args.n_samples + 10_000)
    X, X_test = X_all[: args.n_samples], X_all[args.n_samples :]
    E = args.epochs
    has_pyod = pyod_available()

    def contenders_for(X, batch_size):
        contenders = {}
        if batch_size == 128:
            for name, patches in ABLATION.items():
                contenders[name] = _bound(fit_skvae, X, E, batch_size, patches)
        else:
            contenders["VAETransformer (shipped)"] = _bound(fit_skvae, X, E, batch_size)
        contenders["reference loop"] = _bound(_reference, X, E, batch_size)
        contenders["reference loop, 1 thread"] = lambda: _in(
            training.torch_threads(1), _reference, X, E, batch_size
        )
        contenders["DataLoader(TensorDataset) loop"] = lambda: _reference(
            X, E, batch_size, loader=True
        )
        if has_pyod:
            contenders["pyod VAE"] = lambda: pyod_fit(X, E, batch_size).model
        return contenders

    sections = []
    data = {"machine": machine(), "n_samples": args.n_samples, "epochs": E}
    for batch_size in (128, 1024):
        # Warm-up on a little data: the first optimiser of a process imports
        # torch._dynamo (about a second), which no contender should pay.
        round_robin(contenders_for(X[:2048], batch_size), 1)
        contenders = contenders_for(X, batch_size)
        load = load_average()
        times, models = round_robin(contenders, args.rounds)
        shipped = [n for n in contenders if "shipped" in n and "but" not in n][0]
        rows = []
        for name in contenders:
            rows.append(
                [
                    name,
                    fmt(args.n_samples * E / median(times[name])),
                    fmt(ratio_median(times["reference loop"], times[name]), 2),
                    fmt(
                        ratio_median(times["reference loop, 1 thread"], times[name]), 2
                    ),
                    fmt(ratio_median(times[name], times[shipped]), 2),
                    fmt(heldout_elbo(models[name], X_test), 4),
                ]
            )
        data[f"batch_{batch_size}"] = {
            "load_average_before": load,
            "seconds": times,
            "elbo": {name: heldout_elbo(models[name], X_test) for name in contenders},
        }
        header = [
            "contender",
            "samples/s (median)",
            "speed vs reference loop",
            "speed vs reference, 1 thread",
            "time vs shipped",
            f"held-out ELBO after {E} epoch(s)",
        ]
        sections.append(
            f"## Batch {batch_size}, {args.n_samples:,} x {X.shape[1]}, "
            f"{args.rounds} rounds of {E} epoch(s) each (load average "
            f"{load:.1f} before)\n\n" + markdown_table(header, rows)
        )
    if not has_pyod:
        sections.append("pyod is not installed: its row is left out.")
    markdown = (
        f"# Training throughput\n\nMachine: {data['machine']}.\n\n"
        + "\n\n".join(sections)
    )
    write_results("training", markdown, data)


def _reference(X, epochs, batch_size, loader=False):
    return reference_fit(X, epochs, batch_size, loader=loader)[0]


def _in(context, function, *args):
    with context:
        return function(*args)


def _bound(function, *args):
    return lambda: function(*args)


if __name__ == "__main__":
    main()
