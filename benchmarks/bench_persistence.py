"""Benchmark saving and loading a fitted VAETransformer, four ways.

- ``pickle``: ``pickle.dumps`` / ``pickle.loads`` of the estimator, whose
  state holds the weights and Adam's moments as numpy arrays;
- ``pickle, torch state``: the state as pickles held it before (the module and
  Adam's tensors as torch objects), pickled as a dict: the old cost;
- ``skvae.save / load``: the safetensors file with its JSON document and
  SHA-256 (to and from memory); the size of that JSON document (in the
  safetensors header) is reported too;
- ``skops.io``: ``dumps`` / ``loads(trusted=[...])``.

Two models: the default network (48 features, 64-32 hidden units) and a wide
one (1,000 features, 1024-1024 hidden units, about 4.2 million weights). Times
are medians over rounds that interleave the four ways (a busy machine's slow
spells hit all of them); sizes are those of the bytes written. Run::

    python benchmarks/bench_persistence.py          # about 1 min
    python benchmarks/bench_persistence.py --quick  # default model only, seconds

The table is printed and written to ``benchmarks/results/persistence.md``.
"""

import io
import json
import pickle
import warnings

import numpy as np
from _common import (
    machine,
    markdown_table,
    median,
    parse_args,
    round_robin,
    write_results,
)

import skvae
from skvae import VAETransformer

TRUSTED = ["skvae._vae.VAETransformer"]


def torch_state(vae):
    """What ``VAETransformer.__getstate__`` returned before the numpy state."""
    state = dict(vars(vae))
    state["_optimizer_state"] = state.pop("_optimizer").state_dict()
    return state


def skvae_dumps(vae):
    buffer = io.BytesIO()
    skvae.save(vae, buffer)
    return buffer.getvalue()


def document_bytes(data):
    """Length of the JSON document in a skvae file's safetensors header."""
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    return len(header["__metadata__"]["skvae"].encode("utf-8"))


def ways():
    ways = {
        "pickle": (pickle.dumps, pickle.loads),
        "pickle, torch state": (
            lambda vae: pickle.dumps(torch_state(vae)),
            pickle.loads,
        ),
        "skvae.save / load": (skvae_dumps, lambda data: skvae.load(io.BytesIO(data))),
    }
    try:
        import skops.io as sio
    except ImportError:
        return ways
    ways["skops.io"] = (sio.dumps, lambda data: sio.loads(data, trusted=TRUSTED))
    return ways


def main():
    args = parse_args(__doc__, rounds=(int, 7, "interleaved rounds per model"))
    models = [(48, (64, 32))] + ([] if args.quick else [(1000, (1024, 1024))])
    rounds = 3 if args.quick else args.rounds
    rows, data = [], {"machine": machine(), "rounds": rounds, "models": []}
    documents = []
    for n_features, hidden in models:
        X = np.random.default_rng(0).standard_normal((2000, n_features))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vae = VAETransformer(hidden_layer_sizes=hidden, max_iter=2, random_state=0)
            vae.fit(X.astype(np.float32))
        n_weights = sum(p.numel() for p in vae.module_.parameters())
        contenders = ways()
        dumped = {name: dump(vae) for name, (dump, _) in contenders.items()}
        dump_times, _ = round_robin(
            {
                name: (lambda d=dump, v=vae: d(v))
                for name, (dump, _) in contenders.items()
            },
            rounds,
        )
        load_times, _ = round_robin(
            {
                name: (lambda f=load, b=dumped[name]: f(b))
                for name, (_, load) in contenders.items()
            },
            rounds,
        )
        model = f"{n_features} features, {'-'.join(map(str, hidden))} hidden"
        document = document_bytes(dumped["skvae.save / load"])
        documents.append(f"{document / 1e3:.1f} kB ({model})")
        entry = {"model": model, "n_weights": n_weights, "ways": {}}
        entry["skvae_document_bytes"] = document
        for name in contenders:
            entry["ways"][name] = {
                "dump_s": dump_times[name],
                "load_s": load_times[name],
                "bytes": len(dumped[name]),
            }
            rows.append(
                [
                    f"{model} ({n_weights:,} weights)",
                    name,
                    f"{1e3 * median(dump_times[name]):.1f}",
                    f"{1e3 * median(load_times[name]):.1f}",
                    f"{len(dumped[name]) / 1e6:.3f}",
                ]
            )
        data["models"].append(entry)
    table = markdown_table(
        ["model", "way", "dump (ms)", "load (ms)", "size (MB)"], rows
    )
    markdown = (
        "# Saving and loading a fitted VAETransformer\n\n"
        f"Median of {rounds} interleaved rounds; {machine()}. A shared machine: "
        "compare rows of one model, not runs.\n\n" + table + "\n\nThe JSON "
        "document inside skvae.save's file: " + "; ".join(documents) + "."
    )
    write_results("persistence", markdown, data)


if __name__ == "__main__":
    main()
