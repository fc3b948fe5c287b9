"""Command line of skvae: ``python -m skvae demo`` or the ``skvae`` script.

Only argument parsing and printing live here; the experiment is in
``skvae._demo``.
"""

import argparse
import sys
import time

from skvae import __version__

DESCRIPTION = "skvae: a scikit-learn compatible variational autoencoder on PyTorch."

DEMO_DESCRIPTION = """\
Reproduce the experiment of the blog post "Variational Autoencoders" by Ke He:
a VAE with a Bernoulli (binary cross-entropy) likelihood and 3 latent
dimensions, trained with the reconstruction term averaged over features
(recon_weight=1) collapses onto its prior, and weighting that term by the
number of features (recon_weight=auto) separates the classes.

GridSearchCV fits VAETransformer(n_components, likelihood='bernoulli') for every
recon weight and seed on 75% of the rows and scores the latent codes of the
other 25% with the silhouette. The demo prints, per recon weight, the
silhouette (mean +- sd over seeds), the KL divergence per latent dimension, the
number of active dimensions, the reconstruction error and in how many seeds
the codes are informative (an active dimension, a total KL of at least 0.1
nats, and a held-out reconstruction better than the collapsed model's by more
than that KL), then a verdict that follows from those numbers, and writes
figures (latent space, latent distributions, training curves, encoder
Jacobian, decoder sensitivity, latent traversal) into --out.

The default data are the bundled synthetic network flows (755 rows, 48
features, benign vs Slowloris), preprocessed as the original post did: negatives
to 0, then min-max scaling. On them the demo also fits the flows as they come
(make_flows(raw=True): counts as integers, times and sizes as floats, protocol
and service port as categories) with likelihood='auto' and recon_weight=auto,
unscaled, on the same split and seeds, and reports it as one more row of the
table (--no-raw skips it). Nothing is ever downloaded."""

DEMO_EPILOG = """\
examples:
  skvae demo
  skvae demo --data digits --n-components 5 --seeds 3
  skvae demo --csv flows.csv --label label --recon-weights 1,8,auto --out out/

exit status: 0 on success, 2 on bad input (with a one-line reason)."""


class UsageError(Exception):
    """A command-line error; the message is printed on one line."""

    def __init__(self, message, prog):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(message, self.prog)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _recon_weights(text):
    from skvae._demo import DemoError, parse_recon_weights

    try:
        return parse_recon_weights(text)
    except DemoError as exc:
        # argparse prefixes the option name itself.
        raise argparse.ArgumentTypeError(
            str(exc).removeprefix("--recon-weights: ")
        ) from None


def build_parser():
    """The argument parser of the ``skvae`` command."""
    from skvae._demo import DATASETS

    parser = _Parser(
        prog="skvae",
        description=DESCRIPTION,
        epilog="Run 'skvae demo --help' for the demo's options.",
    )
    parser.add_argument("--version", action="version", version=f"skvae {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="reproduce the original post: posterior collapse vs a weighted "
        "reconstruction term, with figures",
        description=DEMO_DESCRIPTION,
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = demo.add_argument_group("data")
    source = data.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        choices=DATASETS,
        default="flows",
        help="bundled data set (default: flows); digits and breast_cancer are "
        "scikit-learn's, min-max scaled",
    )
    source.add_argument(
        "--csv",
        metavar="PATH",
        help="your own table: a CSV file with a header row and numeric feature "
        "columns, min-max scaled; needs --label",
    )
    data.add_argument(
        "--label", metavar="COLUMN", help="the class column of --csv (required)"
    )
    model = demo.add_argument_group("experiment")
    model.add_argument(
        "--recon-weights",
        type=_recon_weights,
        default=[1.0, "auto"],
        metavar="W,W,...",
        help="comma-separated reconstruction weights, positive numbers or 'auto' "
        "(= number of features) (default: 1,auto)",
    )
    model.add_argument(
        "--no-raw",
        dest="raw",
        action="store_false",
        help="skip the likelihood='auto' fits on the raw flows (only the bundled "
        "flows have a raw table)",
    )
    model.add_argument(
        "--seeds",
        type=_positive_int,
        default=5,
        metavar="N",
        help="random seeds 0..N-1 per recon weight (default: 5)",
    )
    model.add_argument(
        "--max-iter",
        type=_positive_int,
        default=500,
        metavar="N",
        help="epochs per fit: every fit trains exactly N epochs, as the "
        "original post's Keras fit(epochs=N) did (default: 500)",
    )
    model.add_argument(
        "--n-components",
        type=_positive_int,
        default=3,
        metavar="K",
        help="latent dimensions, at most 10 and at most the number of features "
        "(default: 3, as in the original post)",
    )
    output = demo.add_argument_group("output")
    output.add_argument(
        "--out",
        default="skvae-demo",
        metavar="DIR",
        help="folder for the figures, created if needed (default: ./skvae-demo/)",
    )
    output.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no preamble: only the table, the verdict and "
        "where the figures are",
    )
    return parser


def main(argv=None):
    """Run the ``skvae`` command line; return the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments, without the program name. None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 2 on bad input (after one line on stderr), 130 when
        interrupted.

    Examples
    --------
    >>> from skvae.__main__ import main
    >>> main(["demo", "--seeds", "0"])  # the reason goes to stderr
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _print_error(exc.prog, exc)
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _run_demo(args)
    except KeyboardInterrupt:
        print("skvae demo: interrupted", file=sys.stderr)
        return 130


def _print_error(prog, message):
    print(f"{prog}: error: {message} (see '{prog} --help')", file=sys.stderr)


def _run_demo(args):
    from skvae import _demo

    start = time.monotonic()
    try:
        if args.label is not None and args.csv is None:
            raise _demo.DemoError("--label goes with --csv PATH")
        data = _demo.load_dataset(args.data, csv=args.csv, label=args.label)
        _demo.check_experiment(data, args.n_components)
        out = _demo.prepare_out_dir(args.out)
    except _demo.DemoError as exc:
        print(f"skvae demo: error: {exc}", file=sys.stderr)
        return 2

    say = (lambda *a, **k: None) if args.quiet else print
    say(f"Data: {data.describe()}.")
    n_fits = len(args.recon_weights) * args.seeds
    say(
        f"Fitting VAETransformer(n_components={args.n_components}, "
        f"likelihood='bernoulli', max_iter={args.max_iter}, "
        f"n_iter_no_change={args.max_iter}) with GridSearchCV: "
        f"recon_weight in {_weights(args.recon_weights)} x {args.seeds} seeds = "
        f"{n_fits} fits, then one refit per recon_weight on all rows for the "
        "figures.",
        flush=True,
    )
    raw = args.raw and data.raw is not None
    if raw:
        say(
            f"Then VAETransformer(n_components={args.n_components}, "
            "likelihood='auto', recon_weight='auto') on the raw table "
            "(make_flows(raw=True), unscaled): "
            f"{args.seeds} fits.",
            flush=True,
        )
    from skvae._training import torch_threads  # torch only once it runs

    with torch_threads(1):
        try:
            results = _demo.run_experiment(
                data,
                recon_weights=args.recon_weights,
                n_seeds=args.seeds,
                max_iter=args.max_iter,
                n_components=args.n_components,
                progress=not args.quiet,
            )
            raw_results = []
            if raw:
                raw_results.append(
                    _demo.run_raw_experiment(
                        data,
                        n_seeds=args.seeds,
                        max_iter=args.max_iter,
                        n_components=args.n_components,
                        progress=not args.quiet,
                    )
                )
        except ValueError as exc:
            if "diverged" not in str(exc):
                raise
            # The data or the weights, not a bug: one line, as for bad input.
            message = " ".join(str(exc).split())
            print(f"skvae demo: error: {message}", file=sys.stderr)
            return 2
        say()
        print(_demo.format_table(results + raw_results, args.max_iter))
        print()
        print(_demo.verdict(results))
        for raw_result in raw_results:
            print(_demo.describe_raw(raw_result, results))
        print()
        try:
            import matplotlib  # noqa: F401
        except ModuleNotFoundError:
            print(
                "Figures skipped: matplotlib is not installed "
                "(pip install 'skvae[plot]')."
            )
            paths = []
        else:
            say("Drawing the figures...", flush=True)
            paths = _demo.write_figures(results, data, out)
    if paths:
        print(f"Figures written to {out.resolve()}{_sep()}:")
        for path in paths:
            print(f"  {path.name}")
    say(f"Done in {time.monotonic() - start:.0f} s.")
    return 0


def _weights(weights):
    from skvae._demo import format_weight

    return "[" + ", ".join(format_weight(w) for w in weights) + "]"


def _sep():
    import os

    return os.sep


if __name__ == "__main__":
    sys.exit(main())
