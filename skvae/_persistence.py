"""Saving and loading skvae estimators without running code: JSON and safetensors.

A model file is one safetensors file. Its tensors are the weights (the
module's ``state_dict``) and Adam's moments; the header's ``__metadata__``
holds four strings:

``format``
    ``'skvae'``: the marker that tells a skvae file from any other.
``format_version``
    The layout version, :data:`FORMAT_VERSION`.
``skvae``
    A JSON document: the class name, ``get_params(deep=False)``, the fitted
    attributes, the private state listed in :data:`PRIVATE_STATE` and the
    versions of skvae, torch, scikit-learn and numpy that wrote it.
``sha256``
    The SHA-256 of the document and of every tensor's name, dtype, shape and
    bytes: a file changed or cut short after ``save`` wrote it is refused.

Why one safetensors file rather than a zip of a JSON file and a weights file:
safetensors' reader is built for untrusted files (a bounds-checked JSON header
and raw little-endian bytes; no code, no compression, so no zip bomb, and no
member names, so no path traversal) and it is the one parser ``load`` needs;
the file stays a standard safetensors file that other tools can open to
inspect the weights.

Loading runs no code from the file: every JSON value is decoded by fixed code
into numbers, strings, lists, tuples, dicts, numpy arrays of numbers or
strings, numpy ``RandomState`` states, tensors or the few skvae types named
below, and the estimator's class comes from :data:`ESTIMATORS`, never from an
import path written in the file.

The same module-to-numpy conversion serves ``VAETransformer.__getstate__``
(:func:`plain_state` and :func:`torch_state`), so that pickles hold no torch
objects and ``skops.io`` can persist the estimator.
"""

import dataclasses
import hashlib
import hmac
import importlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._likelihoods import TableLikelihood
from ._modules import ACTIVATIONS, VAEModule
from ._training import TrainingHistory
from ._warnings import find_stack_level

FORMAT = "skvae"
# 2: the module's layout holds its likelihood (families, columns) instead of
# n_features and learn_scale; the table spec of fit is saved.
FORMAT_VERSION = 2

# The estimator classes that save and load accept, by the name written in the
# file, with the module that defines them. Registering another skvae estimator
# is one line here (its private state, if any beyond PRIVATE_STATE, goes there).
ESTIMATORS = {
    "VAETransformer": "skvae._vae",
    "VAEOutlierDetector": "skvae._outlier",
}

# The private attributes that save writes, and why they matter. Every other
# private attribute (caches such as a per-dtype copy of the module, which are
# rebuilt on demand) is left out. Public attributes ending in "_" are the
# fitted attributes and are all written.
PRIVATE_STATE = {
    "_random_state": "the numpy RandomState whose stream partial_fit continues",
    "_history": "the TrainingHistory (curves, best scores, patience) of warm starts",
    "_optimizer_state": (
        "Adam's state_dict (moments, step counts, hyper-parameters) for warm "
        "starts; taken from _optimizer while one exists"
    ),
    "_sklearn_output_config": "the output container chosen with set_output",
    "_table": (
        "the table spec of fit (columns, families, levels, dtypes): how tables "
        "are read in and written out"
    ),
}

# Plain data classes that may appear in a file, by name.
_DATACLASSES = {"TrainingHistory": TrainingHistory}

# Versions compared on load: a difference warns.
_CHECKED_VERSIONS = ("skvae", "torch", "scikit-learn", "numpy")

_NUMERIC_KINDS = "biuf"
_TENSOR_DTYPES = {
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint8,
    torch.bool,
}


class InconsistentVersionWarning(UserWarning):
    """Warning emitted by :func:`load` when a file comes from other versions.

    The model loads, but a different torch, numpy or scikit-learn can change
    outputs in the last bits, and a different skvae may have changed what a
    parameter means. Re-save the model with the current versions (or refit)
    when results must match exactly.

    Attributes
    ----------
    saved : dict
        Versions of skvae, torch, scikit-learn and numpy that wrote the file.
    current : dict
        The versions running now.

    Examples
    --------
    >>> import warnings
    >>> from skvae import InconsistentVersionWarning
    >>> issubclass(InconsistentVersionWarning, UserWarning)
    True
    >>> warning = InconsistentVersionWarning(
    ...     "versions differ", saved={"torch": "2.0.0"}, current={"torch": "2.5.0"})
    >>> warning.saved
    {'torch': '2.0.0'}
    """

    def __init__(self, message, saved=None, current=None):
        super().__init__(message)
        self.saved = dict(saved or {})
        self.current = dict(current or {})


# ------------------------------------------------------------------ public API


def save(estimator, path):
    """Write a skvae estimator to ``path`` without pickle.

    The file holds the parameters, the fitted attributes, the training
    history, the optimiser's state and the random stream (so that
    ``warm_start`` and ``partial_fit`` continue exactly as they would have), in
    JSON, and the weights in safetensors. :func:`load` reads it back without
    running any code from the file. An unfitted estimator is saved with its
    parameters only. The file is written to a temporary name and renamed, so a
    failed save leaves no half-written file.

    Needs the ``safetensors`` package (``pip install "skvae[persist]"``).

    Parameters
    ----------
    estimator : VAETransformer
        The estimator to save. Pipelines and other scikit-learn objects are
        refused: save the skvae step alone, or use ``skops.io.dump`` for the
        whole pipeline (see the user guide).
    path : str, path-like or binary file object
        Where to write. A file object gets the bytes written to it.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        If ``estimator`` is not a skvae estimator, or one of its parameters or
        attributes cannot be stored as data (e.g. a ``RandomState`` as
        ``random_state``: pass an int seed instead).

    See Also
    --------
    load : Read the file back.

    Notes
    -----
    The weights are always written from CPU copies; a model fitted on a GPU
    loads on CPU and keeps its ``device`` parameter for later fits.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import numpy as np
    >>> import skvae
    >>> X = np.random.RandomState(0).normal(size=(60, 4))
    >>> vae = skvae.VAETransformer(max_iter=3, random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "vae.skvae")
    ...     skvae.save(vae, path)
    ...     restored = skvae.load(path)
    >>> np.array_equal(restored.transform(X), vae.transform(X))
    True
    """
    safetensors_torch = _import_safetensors()
    document, tensors = to_document(estimator)
    text = json.dumps(document, allow_nan=False, separators=(",", ":"))
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "skvae": text,
        "sha256": _digest(text, tensors),
    }
    data = safetensors_torch.save(tensors, metadata=metadata)
    if hasattr(path, "write"):
        path.write(data)
        return
    _write_atomically(Path(path), data)


def load(path):
    """Read an estimator written by :func:`save`, without running code.

    The file is checked before anything is built from it: it must be a
    safetensors file with skvae's format marker, its SHA-256 must match its
    content, and its class must be one of skvae's estimators. The JSON is
    decoded into plain data only, never unpickled, and no module named in the
    file is imported. A file written with other versions of skvae, torch,
    scikit-learn or numpy loads with an :class:`InconsistentVersionWarning`.

    Needs the ``safetensors`` package (``pip install "skvae[persist]"``).

    Parameters
    ----------
    path : str, path-like or binary file object
        The file to read.

    Returns
    -------
    estimator : VAETransformer
        The estimator, on CPU: outputs are bitwise those of the saved model
        with the same versions, and ``warm_start`` or ``partial_fit``
        continue the saved training exactly.

    Raises
    ------
    ValueError
        If the file is not a skvae model file (another safetensors file, a
        pickle, a zip, text), is truncated, was modified after it was written,
        or holds a class this skvae does not know.

    See Also
    --------
    save : Write the file.

    Notes
    -----
    The SHA-256 detects damage and edits made without recomputing it; it is
    not a signature. What makes an untrusted file safe to load is the format
    (data only, decoded by fixed code), not the checksum: a forged file can at
    worst hold a model with wrong weights. Keep model files you rely on where
    others cannot write.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import numpy as np
    >>> import skvae
    >>> X = np.random.RandomState(0).normal(size=(60, 4))
    >>> vae = skvae.VAETransformer(max_iter=3, warm_start=True, random_state=0)
    >>> vae = vae.fit(X)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "vae.skvae")
    ...     skvae.save(vae, path)
    ...     restored = skvae.load(path)
    >>> restored.get_params() == vae.get_params()
    True
    >>> restored = restored.fit(X)  # warm start: continues the saved training
    >>> restored.n_iter_
    6
    """
    safetensors_torch = _import_safetensors()
    if hasattr(path, "read"):
        data, source = bytes(path.read()), "the file object"
    else:
        data, source = Path(path).read_bytes(), repr(os.fspath(path))
    metadata = _read_metadata(data, source)
    try:
        tensors = safetensors_torch.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise ValueError(
            f"{source} is damaged or truncated: its skvae header is intact but "
            f"safetensors cannot read its tensors ({exc}). Save the model again "
            "from a good copy."
        ) from exc
    text = metadata.get("skvae")
    expected = metadata.get("sha256")
    if not isinstance(text, str) or not isinstance(expected, str):
        raise ValueError(
            f"{source} has skvae's format marker but no model document or "
            "checksum: it is damaged or was not written by skvae.save."
        )
    if not hmac.compare_digest(_digest(text, tensors), expected):
        raise ValueError(
            f"{source} failed its integrity check: the SHA-256 of its content "
            "does not match the one skvae.save recorded, so the file was modified "
            "or damaged after it was written. Do not use it; save the model again "
            "from a copy you trust."
        )
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # also over-long integers
        raise ValueError(f"{source}: the model document is not JSON.") from exc
    return from_document(document, tensors, source)


# ----------------------------------------------------------- document layout


def to_document(estimator):
    """The JSON-able document and the tensors that describe ``estimator``."""
    encoder = _Encoder({})
    document = _describe_estimator(estimator, encoder, "")
    document["versions"] = _versions()
    return document, encoder.tensors


def from_document(document, tensors, source="the file"):
    """Rebuild the estimator that :func:`to_document` described."""
    if not isinstance(document, dict):
        raise ValueError(f"{source}: the model document is not a JSON object.")
    saved_versions = document.get("versions")
    if type(saved_versions) is not dict:
        saved_versions = {}
    _warn_on_version_mismatch(saved_versions)
    decoder = _Decoder(tensors, source, saved_versions)
    estimator = decoder.estimator(document)
    unused = set(tensors) - decoder.used
    if unused:
        raise ValueError(
            f"{source} holds tensors that its document does not refer to "
            f"({sorted(unused)[:3]}...): it is damaged or not a skvae model file."
        )
    return estimator


def _describe_estimator(estimator, encoder, prefix):
    """Class, parameters, fitted attributes and private state of an estimator.

    ``prefix`` names where a nested estimator sits (e.g. ``'vae_/'``), so that
    its tensors get names of their own.
    """
    classes = _estimator_classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(
            "skvae.save stores skvae estimators ("
            + ", ".join(sorted(classes))
            + f"), got {_describe_type(estimator)}. For a Pipeline or another "
            "scikit-learn object, save the skvae step alone "
            "(skvae.save(pipe[-1], path)) or persist the whole object with "
            "skops.io.dump, which skvae estimators support; pickle and joblib "
            "work too, for files you trust."
        )
    params = estimator.get_params(deep=False)
    encoded_params = {}
    for key, value in params.items():
        if isinstance(value, np.random.RandomState):
            raise TypeError(
                f"{name}({key}=RandomState(...)) cannot be saved: a RandomState "
                "parameter is mutable state shared with whatever else holds it, "
                "and skvae.save stores parameters as plain data. Pass an int seed "
                f"(reproducible) or None, e.g. est.set_params({key}=0) before "
                "saving: that only changes later calls of fit; the fitted model "
                "and the random stream that partial_fit continues are saved "
                "either way."
            )
        encoded_params[key] = encoder.encode(value, f"{prefix}parameter {key}")
    state = vars(estimator)
    attributes = {
        key: encoder.encode(value, prefix + key)
        for key, value in state.items()
        if _is_fitted_attribute(key) and key not in params
    }
    optimizer = state.get("_optimizer")
    optimizer_state = (
        optimizer.state_dict()
        if optimizer is not None
        else state.get("_optimizer_state")
    )
    private = {}
    for key in PRIVATE_STATE:
        value = optimizer_state if key == "_optimizer_state" else state.get(key)
        if value is not None:
            private[key] = encoder.encode(value, prefix + key)
    return {
        "class": name,
        "params": encoded_params,
        "attributes": attributes,
        "private": private,
    }


def _build_estimator(document, decoder):
    """The inverse of :func:`_describe_estimator`."""
    source = decoder.source
    if type(document) is not dict:
        decoder.fail("an estimator entry is not a mapping")
    name = document.get("class")
    classes = _estimator_classes()
    if name not in classes:
        raise ValueError(
            f"{source} holds a {name!r}, which this skvae cannot load: it loads "
            + ", ".join(sorted(classes))
            + ". A file from a newer skvae may need an upgrade."
        )
    estimator = classes[name]()
    params = {
        key: decoder.decode(value)
        for key, value in _mapping(document, "params", source).items()
    }
    try:
        estimator.set_params(**params)
    except ValueError as exc:
        raise ValueError(
            f"{source} has parameters that this skvae's {name} does not know "
            f"({exc}); it was written by skvae "
            f"{decoder.versions.get('skvae')!r}, this is {_versions()['skvae']!r}. "
            "Upgrade skvae to load it."
        ) from exc
    state = {}
    for key, value in _mapping(document, "attributes", source).items():
        if (
            not _is_fitted_attribute(key)
            or key in params
            or hasattr(type(estimator), key)
        ):
            raise ValueError(f"{source}: {key!r} is not a fitted attribute name.")
        state[key] = decoder.decode(value)
    for key, value in _mapping(document, "private", source).items():
        if key not in PRIVATE_STATE:
            raise ValueError(
                f"{source} holds private state {key!r} that this skvae does not "
                "know; it was written by another skvae version. Upgrade skvae."
            )
        state[key] = decoder.decode(value)
    if "module_" in state:
        # As after unpickling: Adam is rebuilt from its state on the next fit.
        state.setdefault("_optimizer_state", None)
        state["_optimizer"] = None
    estimator.__dict__.update(state)
    return estimator


def _mapping(document, key, source):
    value = document.get(key, {})
    if type(value) is not dict:
        raise ValueError(f"{source}: the model document's {key!r} is not a mapping.")
    return value


def _is_fitted_attribute(key):
    return (
        key.isidentifier()
        and key.endswith("_")
        and not key.startswith("_")
        and not key.endswith("__")
    )


# ------------------------------------------------------- encoding, decoding


class _Encoder:
    """Plain data to JSON values, with tagged objects for everything else.

    Tensors go to ``tensors``, named by their path in the document.
    """

    def __init__(self, tensors):
        self.tensors = tensors

    def encode(self, value, path):
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            if math.isfinite(value):
                return value
            return {"__type__": "float", "value": repr(value)}
        if isinstance(value, np.generic) and value.dtype.kind in _NUMERIC_KINDS:
            return {
                "__type__": "scalar",
                "dtype": value.dtype.str,
                "value": self.encode(value.item(), path),
            }
        if kind is list:
            return [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind is tuple:
            items = [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return {"__type__": "tuple", "items": items}
        if kind is dict and all(type(key) in (str, int) for key in value):
            items = [
                [key, self.encode(v, f"{path}[{key!r}]")] for key, v in value.items()
            ]
            return {"__type__": "dict", "items": items}
        if kind is np.ndarray:
            return _encode_array(value, path)
        if kind is np.random.RandomState:
            name, keys, pos, has_gauss, cached = value.get_state()
            return {
                "__type__": "RandomState",
                "state": [
                    name,
                    keys.tolist(),
                    int(pos),
                    int(has_gauss),
                    self.encode(float(cached), path),
                ],
            }
        if kind is torch.device:
            return {"__type__": "torch.device", "value": str(value)}
        if kind in _DATACLASSES.values():
            return {
                "__type__": kind.__name__,
                "fields": {
                    field.name: self.encode(
                        getattr(value, field.name), f"{path}.{field.name}"
                    )
                    for field in dataclasses.fields(value)
                },
            }
        if kind in _estimator_classes().values():
            # A skvae estimator inside another (a wrapper's fitted sub-model).
            document = _describe_estimator(value, self, f"{path}/")
            return {"__type__": "estimator", "document": document}
        if isinstance(value, torch.Tensor):
            return self._tensor(value, path)
        if isinstance(value, nn.Module):
            state = module_to_state(value)
            if state is None:
                raise TypeError(
                    f"{path} is a {_describe_type(value)} that skvae.save cannot "
                    "rebuild without running code (not a VAEModule as skvae builds "
                    "it). Use pickle or joblib for models with custom modules, and "
                    "load such files only from sources you trust."
                )
            # module_to_state's arrays are fresh CPU copies already.
            weights = {
                key: self._tensor(torch.from_numpy(array), f"{path}/{key}", copy=False)
                for key, array in state["state_dict"].items()
            }
            return {
                "__type__": "VAEModule",
                "config": self.encode(state["config"], path),
                "state_dict": {"__type__": "dict", "items": list(weights.items())},
            }
        where = path if "parameter " in path else f"attribute {path}"
        raise TypeError(
            f"{where} = {_short_repr(value)} ({_describe_type(value)}) cannot be "
            "saved: skvae.save stores plain data only (numbers, strings, None, "
            "lists, tuples, dicts, numpy arrays), so that loading runs no code. "
            "Set it to such a value, or use pickle or joblib for a file you trust."
        )

    def _tensor(self, tensor, path, copy=True):
        if tensor.dtype not in _TENSOR_DTYPES:
            raise TypeError(f"{path}: tensors of dtype {tensor.dtype} are not saved.")
        # A fresh contiguous CPU copy: views (Adam's step counters share one
        # storage) and device tensors are written as plain arrays.
        if copy:
            tensor = tensor.detach().to("cpu", copy=True)
        if path in self.tensors:
            raise TypeError(f"{path}: two tensors would be saved under one name.")
        self.tensors[path] = tensor.contiguous()
        return {"__type__": "tensor", "key": path}


def _encode_array(array, path):
    kind = array.dtype.kind
    if kind in _NUMERIC_KINDS:
        flat = array.ravel().tolist()
        if kind == "f":
            flat = [v if math.isfinite(v) else repr(v) for v in flat]
        dtype = array.dtype.str
    elif kind in "OU" and all(isinstance(v, str) for v in array.ravel().tolist()):
        flat = array.ravel().tolist()
        dtype = "object" if kind == "O" else array.dtype.str
    else:
        raise TypeError(
            f"attribute {path}: numpy arrays of dtype {array.dtype} cannot be "
            "saved (only numbers, booleans and strings)."
        )
    shape = list(array.shape)
    return {"__type__": "ndarray", "dtype": dtype, "shape": shape, "data": flat}


class _Decoder:
    """The inverse of :class:`_Encoder`; refuses anything it did not write."""

    def __init__(self, tensors, source, versions):
        self.tensors = tensors
        self.source = source
        self.versions = versions
        self.used = set()

    def estimator(self, document):
        return _build_estimator(document, self)

    def fail(self, what):
        raise ValueError(f"{self.source} is damaged or not a skvae model file: {what}.")

    def decode(self, value):
        if value is None or type(value) in (bool, int, float, str):
            return value
        if type(value) is list:
            return [self.decode(v) for v in value]
        if type(value) is not dict:
            self.fail(f"unexpected JSON value {_short_repr(value)}")
        tag = value.get("__type__")
        try:
            method = self._DECODERS[tag]
        except (KeyError, TypeError):
            self.fail(f"unknown entry {_short_repr(value)}")
        try:
            return method(self, value)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            self.fail(f"malformed {tag!r} entry ({exc})")

    def _float(self, value):
        text = value["value"]
        if text not in ("inf", "-inf", "nan"):
            self.fail(f"bad float {text!r}")
        return float(text)

    def _scalar(self, value):
        dtype = self._dtype(value["dtype"], _NUMERIC_KINDS)
        return dtype.type(self.decode(value["value"]))

    def _tuple(self, value):
        return tuple(self.decode(v) for v in value["items"])

    def _dict(self, value):
        out = {}
        for key, item in value["items"]:
            if type(key) not in (str, int):
                self.fail(f"bad dict key {key!r}")
            out[key] = self.decode(item)
        return out

    def _ndarray(self, value):
        if value["dtype"] == "object":
            dtype = np.dtype(object)
        else:
            dtype = self._dtype(value["dtype"], _NUMERIC_KINDS + "U")
        shape = tuple(int(n) for n in value["shape"])
        data = value["data"]
        if type(data) is not list or len(data) != math.prod(shape):
            self.fail("array data does not match its shape")
        if dtype.kind == "f":
            data = [float(v) if type(v) is str else v for v in data]
        if dtype.kind in "OU":
            if not all(type(v) is str for v in data):
                self.fail("a string array holds other values")
            array = np.empty(len(data), dtype=dtype)
            array[:] = data
            return array.reshape(shape)
        if not all(type(v) in (bool, int, float) for v in data):
            self.fail("a numeric array holds other values")
        return np.array(data, dtype=dtype).reshape(shape)

    def _dtype(self, text, kinds):
        if type(text) is not str or len(text) > 8:
            self.fail(f"bad dtype {text!r}")
        try:
            dtype = np.dtype(text)
        except TypeError:
            self.fail(f"bad dtype {text!r}")
        if dtype.kind not in kinds or dtype.fields is not None or dtype.shape:
            self.fail(f"dtype {text!r} is not allowed")
        return dtype

    def _random_state(self, value):
        name, keys, pos, has_gauss, cached = value["state"]
        if name != "MT19937" or len(keys) != 624:
            self.fail("bad RandomState state")
        random_state = np.random.RandomState()
        random_state.set_state(
            (
                name,
                np.array(keys, dtype=np.uint32),
                int(pos),
                int(has_gauss),
                float(self.decode(cached)),
            )
        )
        return random_state

    def _device(self, value):
        return torch.device(str(value["value"]))

    def _tensor(self, value):
        key = value["key"]
        if key not in self.tensors or key in self.used:
            self.fail(f"tensor {key!r} is missing")
        self.used.add(key)
        return self.tensors[key]

    def _module(self, value):
        config = self.decode(value["config"])
        state_dict = self.decode(value["state_dict"])
        try:
            return module_from_state({"config": config, "state_dict": state_dict})
        except (ValueError, RuntimeError) as exc:
            self.fail(f"the module's weights do not fit its layout ({exc})")

    def _dataclass(self, value):
        kind = _DATACLASSES[value["__type__"]]
        names = {field.name for field in dataclasses.fields(kind)}
        fields = value["fields"]
        if not set(fields) <= names:
            self.fail(f"unknown {kind.__name__} fields {sorted(set(fields) - names)}")
        return kind(**{key: self.decode(v) for key, v in fields.items()})

    _DECODERS = {
        "float": _float,
        "scalar": _scalar,
        "tuple": _tuple,
        "dict": _dict,
        "ndarray": _ndarray,
        "RandomState": _random_state,
        "torch.device": _device,
        "tensor": _tensor,
        "VAEModule": _module,
        "estimator": lambda self, value: self.estimator(value["document"]),
    }
    _DECODERS.update(dict.fromkeys(_DATACLASSES, _dataclass))


# ---------------------------------------------- modules as plain numpy state


def module_to_state(module):
    """``{'config', 'state_dict'}`` of a VAEModule in numpy arrays, or None.

    None unless ``module`` is exactly what :class:`VAEModule` builds from the
    recorded arguments (same layers, activations and parameter shapes, every
    parameter of one floating dtype): a subclass or an edited module cannot be
    rebuilt from data alone. The arrays are CPU copies.
    """
    if type(module) is not VAEModule:
        return None
    linears = [layer for layer in module.encoder if type(layer) is nn.Linear]
    activations = {type(layer) for layer in module.encoder} - {nn.Linear}
    names = {kind: name for name, kind in ACTIVATIONS.items()}
    if len(linears) < 2 or len(activations) != 1:
        return None
    activation = names.get(activations.pop())
    dtypes = {p.dtype for p in module.parameters()}
    if activation is None or len(dtypes) != 1:
        return None
    config = {
        "likelihood": module.likelihood.config(),
        "n_components": int(module.n_components),
        "hidden_layer_sizes": [layer.out_features for layer in linears[:-1]],
        "activation": activation,
        "dtype": str(dtypes.pop()).removeprefix("torch."),
    }
    state_dict = {
        key: tensor.detach().to("cpu", copy=True).numpy()
        for key, tensor in module.state_dict().items()
    }
    rebuilt = _build_module(config)
    if repr(rebuilt) != repr(module) or any(
        rebuilt.state_dict()[key].shape != tensor.shape
        for key, tensor in module.state_dict().items()
    ):
        return None
    return {"config": config, "state_dict": state_dict}


def module_from_state(state):
    """The VAEModule that :func:`module_to_state` described, in eval mode."""
    weights = {
        key: value if isinstance(value, torch.Tensor) else torch.from_numpy(value)
        for key, value in state["state_dict"].items()
    }
    # Before building: a layout that needs more weights than the state holds
    # (hidden_layer_sizes=[2**40] in a forged file) is refused, not allocated.
    needed = _n_weights(state["config"])
    held = sum(tensor.numel() for tensor in weights.values())
    if needed != held:
        raise ValueError(
            f"the layout needs {needed} weights but the state holds {held}"
        )
    module = _build_module(state["config"])
    dtype = next(module.parameters()).dtype
    for key, tensor in weights.items():
        if tensor.dtype != dtype:
            raise ValueError(f"weight {key!r} has dtype {tensor.dtype}, not {dtype}")
    module.load_state_dict(weights, strict=True)
    return module.eval()


def _check_config(config):
    """The torch dtype of a valid VAEModule layout; ValueError otherwise."""
    expected = {
        "likelihood",
        "n_components",
        "hidden_layer_sizes",
        "activation",
        "dtype",
    }
    if (
        type(config) is not dict
        or set(config) != expected
        or type(config["hidden_layer_sizes"]) is not list
    ):
        raise ValueError(f"module layout {config!r} is not a VAEModule's")
    sizes = [config["n_components"], *config["hidden_layer_sizes"]]
    dtype = {"float32": torch.float32, "float64": torch.float64}.get(config["dtype"])
    if (
        not all(type(n) is int and n > 0 for n in sizes)
        or config["activation"] not in ACTIVATIONS
        or dtype is None
    ):
        raise ValueError(f"module layout {config!r} is not a VAEModule's")
    return dtype


def _likelihood(config):
    """The likelihood of a module layout, from its plain description."""
    try:
        return TableLikelihood.from_config(config["likelihood"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"module layout {config!r} has a bad likelihood") from exc


def _n_weights(config):
    """Number of weights of the VAEModule of ``config`` (which is checked)."""
    _check_config(config)
    likelihood = _likelihood(config)
    hidden = config["hidden_layer_sizes"]
    n_components = config["n_components"]
    encoder = [likelihood.n_inputs, *hidden, 2 * n_components]
    decoder = [n_components, *reversed(hidden), likelihood.n_outputs]
    return sum(
        n_in * n_out + n_out
        for sizes in (encoder, decoder)
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ) + sum(tensor.numel() for tensor in likelihood.state_dict().values())


def _build_module(config):
    dtype = _check_config(config)
    module = VAEModule(
        _likelihood(config),
        config["n_components"],
        config["hidden_layer_sizes"],
        config["activation"],
        # Only the layout matters: the weights are loaded over these.
        generator=torch.Generator().manual_seed(0),
    )
    return module.to(dtype)


def plain_state(state):
    """``__getstate__`` helper: the module and Adam's state as numpy arrays.

    The pickled (or ``skops.io``-dumped) state then holds no torch object: it
    loads on any device, and skops can persist it. A module that
    :func:`module_to_state` cannot describe is kept as a module (moved to CPU).
    """
    state = dict(state)
    module = state.get("module_")
    if isinstance(module, nn.Module):
        described = module_to_state(module)
        on_device = any(p.device.type != "cpu" for p in module.parameters())
        if described is None and on_device:
            import copy

            described = copy.deepcopy(module).to("cpu")
        if described is not None:
            state["module_"] = described
    if state.get("_optimizer_state") is not None:
        state["_optimizer_state"] = _map_tensors(
            state["_optimizer_state"], lambda t: t.detach().to("cpu").numpy().copy()
        )
    if isinstance(state.get("_history"), TrainingHistory):
        state["_history"] = dataclasses.asdict(state["_history"])
    return state


def torch_state(state):
    """``__setstate__`` helper: the inverse of :func:`plain_state`."""
    state = dict(state)
    if isinstance(state.get("module_"), dict):
        state["module_"] = module_from_state(state["module_"])
    if state.get("_optimizer_state") is not None:
        state["_optimizer_state"] = _map_arrays(state["_optimizer_state"])
    if isinstance(state.get("_history"), dict):
        state["_history"] = TrainingHistory(**state["_history"])
    return state


def _map_tensors(obj, fn):
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {key: _map_tensors(value, fn) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_map_tensors(value, fn) for value in obj)
    return obj


def _map_arrays(obj):
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {key: _map_arrays(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_map_arrays(value) for value in obj)
    return obj


# ------------------------------------------------------------------ helpers


def _import_safetensors():
    try:
        import safetensors.torch
    except ImportError as exc:
        raise ImportError(
            "skvae.save and skvae.load need the safetensors package: "
            'pip install "skvae[persist]" (or pip install safetensors).'
        ) from exc
    return safetensors.torch


def _estimator_classes():
    return {
        name: getattr(importlib.import_module(module), name)
        for name, module in ESTIMATORS.items()
    }


def _read_metadata(data, source):
    """The ``__metadata__`` of a skvae file, after checking that it is one."""
    not_ours = f"{source} is not a skvae model file (one written by skvae.save)"
    if len(data) < 8:
        raise ValueError(
            f"{not_ours}: it has {len(data)} bytes, fewer than any safetensors "
            "header; it is empty or truncated."
        )
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError(
            f"{not_ours}, or it is truncated: its first 8 bytes announce a "
            f"{size}-byte safetensors header but the file has {len(data)} bytes. "
            "Pickle, joblib, zip and text files all end here."
        )
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is one
        raise ValueError(f"{not_ours}: its header is not JSON.") from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(
            f"{not_ours}: it has no 'format': 'skvae' marker. A plain safetensors "
            "file of weights is read with safetensors.torch.load_file, not "
            "skvae.load."
        )
    version = metadata.get("format_version")
    if not (isinstance(version, str) and version.isdigit()):
        raise ValueError(f"{source} has a bad skvae format version {version!r}.")
    if int(version) > FORMAT_VERSION:
        raise ValueError(
            f"{source} was written in skvae file format {version}, newer than "
            f"the {FORMAT_VERSION} this skvae reads: upgrade skvae to load it."
        )
    if int(version) < FORMAT_VERSION:
        raise ValueError(
            f"{source} was written in skvae file format {version}, from before "
            "per-column likelihoods; this skvae reads format "
            f"{FORMAT_VERSION}. Load it with the skvae that wrote it and save a "
            "pickle or skops file, or refit and save again."
        )
    return metadata


def _digest(text, tensors):
    """SHA-256 of the document and of each tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    digest.update(b"skvae-model\0")
    digest.update(text.encode("utf-8"))
    for key in sorted(tensors):
        tensor = tensors[key].contiguous()
        header = json.dumps([key, str(tensor.dtype), list(tensor.shape)])
        digest.update(b"\0" + header.encode("utf-8") + b"\0")
        digest.update(tensor.view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _write_atomically(path, data):
    folder = path.parent
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _versions():
    import sklearn

    import skvae

    return {
        "skvae": skvae.__version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
    }


def _warn_on_version_mismatch(saved):
    current = _versions()
    differ = [key for key in _CHECKED_VERSIONS if saved.get(key) != current.get(key)]
    if not differ:
        return
    what = ", ".join(
        f"{key} {saved.get(key)!r} (now {current[key]!r})" for key in differ
    )
    message = (
        f"This model was saved with {what}. It loads, but outputs may differ in "
        "the last bits, and a different skvae may have changed what a parameter "
        "means. Re-save it with the current versions (or refit) when results "
        "must match exactly."
    )
    saved = {key: saved.get(key) for key in _CHECKED_VERSIONS}
    warnings.warn(
        InconsistentVersionWarning(message, saved=saved, current=current),
        stacklevel=find_stack_level(),
    )


def _describe_type(value):
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _short_repr(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
