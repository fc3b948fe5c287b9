"""Saving and loading skvae estimators without running code: JSON and safetensors.

A model file is one safetensors file. Its tensors are every number the model
holds in an array: the weights, Adam's moments, numeric fitted attributes
(``kl_per_dimension_``, ``support_``, ...), numpy scalars and the random
stream's keys. The header's ``__metadata__`` holds four strings:

``format``
    ``'skvae'``: the marker that tells a skvae file from any other.
``format_version``
    The layout version, :data:`FORMAT_VERSION`.
``skvae``
    The JSON document, below.
``sha256``
    The SHA-256 of the document and of every tensor's name, dtype, shape and
    bytes: a file changed or cut short after ``save`` wrote it is refused.

The document is ``{"class", "versions", "values", "kinds"}``: the class name,
the versions of skvae, torch, scikit-learn and numpy that wrote it, and two
flat mappings keyed by path. A path is a name of ``get_params(deep=False)``,
a fitted attribute (``name_``) or private state from :data:`PRIVATE_STATE`
(``_name``), the spelling saying which, then ``/key`` for each step into a
container. ``values[path]`` is a plain JSON value (nested lists and
string-keyed dicts included); when ``kinds`` has no entry for the path, that
value is the attribute, as JSON gives it back. Otherwise ``kinds[path]`` says
how to rebuild it, and the tensor of the same name, if any, holds its numbers:

===================  ===================  ====================================
kind                 ``values[path]``     rebuilt as
===================  ===================  ====================================
``float``            ``"inf"``, ...       a float JSON cannot hold
``scalar``           (tensor, 0-d)        a numpy scalar of the tensor's dtype
``ndarray``          (tensor)             a numpy array of the tensor's dtype
``tensor``           (tensor)             a torch tensor
``strings``          nested lists         a numpy array of ``str`` objects
``list``, ``tuple``  the length           items at ``path/0``, ``path/1``, ...
``dict``             the keys (str, int)  items at ``path/key``
``TrainingHistory``  the field names      fields at ``path/field``
``RandomState``      pos, has_gauss, ...  numpy's MT19937 (keys: int32 tensor)
``device``           ``"cuda:0"``, ...    a ``torch.device``
``VAEModule``        its layout           weights at ``path/<state_dict key>``
``estimator``        the class name       its entries at ``path/name``
===================  ===================  ====================================

``ndarray:>`` names a byte order other than the machine's (the tensor holds
native bytes), ``strings:3`` a fixed-width ``<U3`` array rather than objects.
A container is split into paths only when something in it is not plain JSON.
The module's layout (widths, activation, each likelihood family's
``config()``) must be plain data, so a new family or a new plain attribute
needs nothing here.

Why one safetensors file rather than a zip of a JSON file and a weights file:
safetensors' reader is built for untrusted files (a bounds-checked JSON header
and raw little-endian bytes; no code, no compression, so no zip bomb, and no
member names, so no path traversal) and it is the one parser ``load`` needs;
the file stays a standard safetensors file that other tools can open.

Loading runs no code from the file: each kind is read by fixed code, the
estimator's class comes from :data:`ESTIMATORS` and a dataclass from
``_DATACLASSES``, never from an import path written in the file, and a file
with an entry, kind or tensor that this reading leaves unused is refused.

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
FORMAT_VERSION = 3
# The formats this skvae no longer reads, and what changed after them.
_OLD_FORMATS = {
    1: "from before per-column likelihoods",
    2: "with a tree of tagged JSON objects for a document",
}

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
# The tensor dtypes that safetensors writes on every supported torch.
_TENSOR_DTYPES = {
    *(torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool),
    *(torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8),
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
    ``warm_start`` and ``partial_fit`` continue exactly as they would have): one
    flat JSON document, and every array of numbers (the weights, Adam's moments,
    numeric attributes) in safetensors. :func:`load` reads it back without
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
    writer = _Writer()
    name = _describe_estimator(estimator, writer, "")
    document = {"class": name, "versions": _versions()}
    return {**document, "values": writer.values, "kinds": writer.kinds}, writer.tensors


def from_document(document, tensors, source="the file"):
    """Rebuild the estimator that :func:`to_document` described."""
    if not isinstance(document, dict):
        raise ValueError(f"{source}: the model document is not a JSON object.")
    saved_versions = document.get("versions")
    if type(saved_versions) is not dict:
        saved_versions = {}
    _warn_on_version_mismatch(saved_versions)
    reader = _Reader(document, tensors, source, saved_versions)
    try:
        estimator = _build_estimator(document.get("class"), reader, "")
    except RecursionError:
        reader.fail("its entries nest without end")
    unused = [*reader.values, *reader.kinds, *reader.tensors]
    if unused or not set(document) <= {"class", "versions", "values", "kinds"}:
        raise ValueError(
            f"{source} holds entries or tensors that its document does not refer "
            f"to ({sorted(unused or document)[:3]}...): it is damaged or not a "
            "skvae model file."
        )
    return estimator


def _describe_estimator(estimator, writer, prefix):
    """Write an estimator's parameters, fitted attributes and private state.

    ``prefix`` is where a nested estimator sits (e.g. ``'vae_/'``). Returns the
    class name.
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
        writer.encode(value, prefix + key, f"{prefix}parameter {key}")
    state = dict(vars(estimator))
    if state.get("_optimizer") is not None:
        state["_optimizer_state"] = state["_optimizer"].state_dict()
    for key, value in state.items():
        fitted = _is_fitted_attribute(key) and key not in params
        if fitted or (key in PRIVATE_STATE and value is not None):
            writer.encode(value, prefix + key, f"attribute {prefix}{key}")
    return name


def _build_estimator(name, reader, prefix):
    """The inverse of :func:`_describe_estimator`: the estimator at ``prefix``."""
    source, classes = reader.source, _estimator_classes()
    if type(name) is not str or name not in classes:
        raise ValueError(
            f"{source} holds a {name!r}, which this skvae cannot load: it loads "
            + ", ".join(sorted(classes))
            + ". A file from a newer skvae may need an upgrade."
        )
    estimator = classes[name]()
    known = estimator.get_params(deep=False)
    # The estimator's entries are the paths one name below its prefix, and a
    # name's spelling says what it is: _private, fitted_ or a parameter.
    keys = {
        path[len(prefix) :]
        for path in (*reader.values, *reader.kinds)
        if path.startswith(prefix) and "/" not in path[len(prefix) :]
    }
    params, state = {}, {}
    for key in sorted(keys):
        if key.startswith("_") and key not in PRIVATE_STATE:
            raise ValueError(
                f"{source} holds private state {key!r} that this skvae does not "
                "know; it was written by another skvae version. Upgrade skvae."
            )
        if key.endswith("_") and not key.startswith("_"):
            if not _is_fitted_attribute(key) or hasattr(type(estimator), key):
                raise ValueError(f"{source}: {key!r} is not a fitted attribute name.")
        elif not key.startswith("_") and key not in known:
            raise ValueError(
                f"{source} has parameters that this skvae's {name} does not know "
                f"({key!r}); it was written by skvae "
                f"{reader.versions.get('skvae')!r}, this is "
                f"{_versions()['skvae']!r}. Upgrade skvae to load it."
            )
        (params if key in known else state)[key] = reader.decode(prefix + key)
    estimator.set_params(**params)
    if "module_" in state:
        # As after unpickling: Adam is rebuilt from its state on the next fit.
        state.setdefault("_optimizer_state", None)
        state["_optimizer"] = None
    estimator.__dict__.update(state)
    return estimator


def _is_fitted_attribute(key):
    return (
        key.isidentifier()
        and key.endswith("_")
        and not key.startswith("_")
        and not key.endswith("__")
    )


def _is_plain(value):
    """Whether JSON gives ``value`` back as it is (same types, same bits)."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_is_plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _is_plain(v) for k, v in value.items())
    return value is None or kind in (bool, int, str)


# ------------------------------------------------------- writing, reading


class _Writer:
    """Values into the flat ``values``, ``kinds`` and ``tensors`` mappings."""

    def __init__(self):
        self.values, self.kinds, self.tensors = {}, {}, {}

    def put(self, path, kind=None, value=None, tensor=None):
        if path in self.values or path in self.kinds or path in self.tensors:
            raise TypeError(f"{path}: two values would be saved under one name.")
        if kind is not None:
            self.kinds[path] = kind
        if tensor is not None:
            self.tensors[path] = tensor
        if value is not None or (kind is None and tensor is None):
            self.values[path] = value

    def encode(self, value, path, label):
        kind = type(value)
        if _is_plain(value):
            self.put(path, value=value)
        elif kind is float:
            self.put(path, "float", repr(value))
        elif isinstance(value, np.generic) and value.dtype.kind in _NUMERIC_KINDS:
            self.array(np.array(value), path, label, "scalar")
        elif kind is np.ndarray:
            self.array(value, path, label)
        elif kind in (list, tuple):
            self.items(path, kind.__name__, len(value), enumerate(value), label)
        elif kind is dict and all(type(key) in (str, int) for key in value):
            self.items(path, "dict", list(value), value.items(), label)
        elif kind in _DATACLASSES.values():
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            self.items(path, kind.__name__, list(fields), fields.items(), label)
        elif kind is np.random.RandomState:
            _, keys, pos, has_gauss, cached = value.get_state()
            # The 624 uint32 keys as int32 bits: torch before 2.3 has no uint32.
            keys = torch.from_numpy(keys.view(np.int32).copy())
            self.put(path, "RandomState", [pos, has_gauss, float(cached)], keys)
        elif kind is torch.device:
            self.put(path, "device", str(value))
        elif kind in _estimator_classes().values():
            # A skvae estimator inside another (a wrapper's fitted sub-model).
            self.put(path, "estimator", _describe_estimator(value, self, f"{path}/"))
        elif isinstance(value, torch.Tensor) and value.dtype in _TENSOR_DTYPES:
            # A fresh contiguous CPU copy: views (Adam's step counters share one
            # storage) and device tensors are written as plain arrays.
            tensor = value.detach().to("cpu", copy=True).contiguous()
            self.put(path, "tensor", tensor=tensor)
        elif isinstance(value, nn.Module):
            self.module(value, path)
        else:
            raise TypeError(
                f"{label} = {_short_repr(value)} ({_describe_type(value)}) cannot "
                "be saved: skvae.save stores plain data only (numbers, strings, "
                "None, lists, tuples, dicts, numpy arrays), so that loading runs no "
                "code. Set it to such a value, or use pickle or joblib for a file "
                "you trust."
            )

    def items(self, path, kind, keys, items, label):
        self.put(path, kind, keys)
        for key, item in items:
            self.encode(item, f"{path}/{key}", f"{label}[{key!r}]")

    def array(self, array, path, label, kind="ndarray"):
        native = array.dtype.newbyteorder("=")
        if array.dtype.kind in _NUMERIC_KINDS:
            try:  # np.array copies: no two tensors share memory
                tensor = torch.from_numpy(np.array(array, dtype=native, order="C"))
            except TypeError:  # a dtype torch has no tensor of (e.g. float128)
                pass
            else:
                detail = "" if native == array.dtype else ":" + array.dtype.byteorder
                return self.put(path, kind + detail, tensor=tensor)
        # JSON nests the strings: a zero length before the last axis would lose
        # the axes after it.
        elif array.dtype.kind in "OU" and 0 not in array.shape[:-1]:
            if all(isinstance(v, str) for v in array.ravel().tolist()):
                width = array.dtype.itemsize // 4  # of a fixed-width str dtype
                detail = f":{width}" if array.dtype.kind == "U" else ""
                return self.put(path, "strings" + detail, array.tolist())
        raise TypeError(
            f"{label}: numpy arrays of dtype {array.dtype} cannot be saved (only "
            "numbers, booleans and strings)."
        )

    def module(self, module, path):
        state = module_to_state(module)
        if state is None:
            raise TypeError(
                f"{path} is a {_describe_type(module)} that skvae.save cannot "
                "rebuild without running code (not a VAEModule as skvae builds "
                "it). Use pickle or joblib for models with custom modules, and "
                "load such files only from sources you trust."
            )
        if not _is_plain(state["config"]):
            # Each likelihood family's config() is plain data (names, numbers,
            # lists), so that a new family needs no line here.
            raise TypeError(f"{path}: the module's layout is not plain data.")
        self.put(path, "VAEModule", state["config"])
        # module_to_state's arrays are fresh CPU copies already.
        for key, array in state["state_dict"].items():
            self.put(f"{path}/{key}", tensor=torch.from_numpy(array))


class _Reader:
    """The inverse of :class:`_Writer`; refuses anything it did not write.

    Each entry is taken out of ``values``, ``kinds`` and ``tensors`` as it is
    read: what is left at the end was not written by :class:`_Writer`.
    """

    def __init__(self, document, tensors, source, versions):
        self.source, self.versions, self.tensors = source, versions, dict(tensors)
        self.values, self.kinds = document.get("values"), document.get("kinds")
        if type(self.values) is not dict or type(self.kinds) is not dict:
            self.fail("its values or kinds are not mappings")
        self.values, self.kinds = dict(self.values), dict(self.kinds)

    def fail(self, what):
        raise ValueError(f"{self.source} is damaged or not a skvae model file: {what}.")

    def value(self, path):
        if path not in self.values:
            self.fail(f"entry {path!r} is missing")
        return self.values.pop(path)

    def tensor(self, path):
        if path not in self.tensors:
            self.fail(f"tensor {path!r} is missing")
        return self.tensors.pop(path)

    def decode(self, path):
        kind = self.kinds.pop(path, None)
        if kind is None:
            return self.value(path)
        name, _, detail = kind.partition(":") if type(kind) is str else ("", 0, 0)
        typed = kind == name or name in ("scalar", "ndarray", "strings")
        method = self._READERS.get(name) if typed else None
        if method is None:
            self.fail(f"unknown kind {_short_repr(kind)} at {path!r}")
        try:
            return method(self, path, name, detail)
        except (KeyError, TypeError, IndexError, AttributeError, RuntimeError) as exc:
            self.fail(f"malformed {kind!r} entry {path!r} ({exc})")

    def _float(self, path, name, detail):
        text = self.value(path)
        if text not in ("inf", "-inf", "nan"):
            self.fail(f"bad float {text!r}")
        return float(text)

    def _array(self, path, name, detail):
        array = self.tensor(path).numpy()
        if detail not in ("", "<", ">"):
            self.fail(f"bad byte order {detail!r}")
        array = array.astype(array.dtype.newbyteorder(detail)) if detail else array
        if name == "scalar":
            return array[()] if array.ndim == 0 else self.fail("a scalar has a shape")
        return array

    def _strings(self, path, name, detail):
        if detail and not (detail.isdecimal() and len(detail) <= 5):
            self.fail(f"bad string width {detail!r}")
        dtype = f"U{detail}" if detail else object
        try:
            array = np.array(self.value(path), dtype=object)
        except ValueError:
            self.fail("a string array is ragged")
        if not all(type(v) is str for v in array.ravel().tolist()):
            self.fail("a string array holds other values")
        return array.astype(dtype)

    def _container(self, path, name, detail):
        keys = self.value(path)
        if name in ("list", "tuple"):
            if type(keys) is not int or keys < 0:
                self.fail(f"bad length at {path!r}")
            items = [self.decode(f"{path}/{i}") for i in range(keys)]
            return tuple(items) if name == "tuple" else items
        if type(keys) is not list or not all(type(k) in (str, int) for k in keys):
            self.fail(f"bad keys at {path!r}")
        items = {key: self.decode(f"{path}/{key}") for key in keys}
        return items if name == "dict" else _DATACLASSES[name](**items)

    def _random_state(self, path, name, detail):
        state, keys = self.value(path), self.tensor(path)
        if type(state) is not list or len(state) != 3 or keys.shape != (624,):
            self.fail("bad RandomState state")
        random_state = np.random.RandomState()
        try:
            keys = keys.numpy().view(np.uint32)
            random_state.set_state(("MT19937", keys, *state[:2], float(state[2])))
        except ValueError as exc:
            self.fail(f"bad RandomState state ({exc})")
        return random_state

    def _module(self, path, name, detail):
        config, prefix = self.value(path), f"{path}/"
        weights = [key for key in self.tensors if key.startswith(prefix)]
        weights = {key[len(prefix) :]: self.tensor(key) for key in weights}
        try:
            return module_from_state({"config": config, "state_dict": weights})
        except (ValueError, RuntimeError) as exc:
            self.fail(f"the module's weights do not fit its layout ({exc})")

    _READERS = {
        "float": _float,
        "scalar": _array,
        "ndarray": _array,
        "strings": _strings,
        "RandomState": _random_state,
        "device": lambda self, path, *_: torch.device(str(self.value(path))),
        "tensor": lambda self, path, *_: self.tensor(path),
        "VAEModule": _module,
        "estimator": lambda self, path, *_: _build_estimator(
            self.value(path), self, f"{path}/"
        ),
    }
    _READERS.update(dict.fromkeys(["list", "tuple", "dict", *_DATACLASSES], _container))


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
    keys = {"likelihood", "n_components", "hidden_layer_sizes", "activation", "dtype"}
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if (
        type(config) is not dict
        or set(config) != keys
        or type(config["hidden_layer_sizes"]) is not list
        or not all(
            type(n) is int and n > 0
            for n in [config["n_components"], *config["hidden_layer_sizes"]]
        )
        or config["activation"] not in ACTIVATIONS
        or config["dtype"] not in dtypes
    ):
        raise ValueError(f"module layout {config!r} is not a VAEModule's")
    return dtypes[config["dtype"]]


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
        state["_optimizer_state"] = _map(
            state["_optimizer_state"],
            torch.Tensor,
            lambda t: t.detach().to("cpu").numpy().copy(),
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
        state["_optimizer_state"] = _map(
            state["_optimizer_state"], np.ndarray, lambda a: torch.from_numpy(a.copy())
        )
    if isinstance(state.get("_history"), dict):
        state["_history"] = TrainingHistory(**state["_history"])
    return state


def _map(obj, kind, fn):
    """``obj`` with ``fn`` applied to every ``kind`` in its dicts, lists, tuples."""
    if isinstance(obj, kind):
        return fn(obj)
    if isinstance(obj, dict):
        return {key: _map(value, kind, fn) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_map(value, kind, fn) for value in obj)
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
            f"{source} was written in skvae file format {version}, "
            f"{_OLD_FORMATS.get(int(version), 'an older layout')}; this skvae "
            f"reads format {FORMAT_VERSION}. Load it with the skvae that wrote it "
            "and save a pickle or skops file, or refit and save again."
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
