"""skvae.save / skvae.load, pickle and skops.io: round trips and refusals."""

import io
import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import skvae
from skvae import InconsistentVersionWarning, VAETransformer
from skvae import _persistence as persistence
from skvae._likelihoods import family_names, single_family
from skvae._modules import VAEModule

safetensors = pytest.importorskip("safetensors")
safetensors_torch = pytest.importorskip("safetensors.torch")

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore::skvae.PosteriorCollapseWarning",
)


def _vae(**params):
    params = {"hidden_layer_sizes": (16, 8), "max_iter": 4, "random_state": 0} | params
    return VAETransformer(**params)


def _dumps(estimator):
    buffer = io.BytesIO()
    skvae.save(estimator, buffer)
    return buffer.getvalue()


def _loads(data):
    return skvae.load(io.BytesIO(data))


def _weights(estimator):
    return [p.detach().clone() for p in estimator.module_.parameters()]


def assert_same_weights(left, right):
    for a, b in zip(_weights(left), _weights(right), strict=True):
        assert a.dtype == b.dtype
        assert torch.equal(a, b)


def assert_same_outputs(restored, original, X):
    for dtype in (np.float32, np.float64):
        X_dtype = X.astype(dtype)
        Z = original.transform(X_dtype)
        np.testing.assert_array_equal(restored.transform(X_dtype), Z)
        assert restored.transform(X_dtype).dtype == dtype
        np.testing.assert_array_equal(
            restored.inverse_transform(Z), original.inverse_transform(Z)
        )
        np.testing.assert_array_equal(
            restored.score_samples(X_dtype), original.score_samples(X_dtype)
        )
    np.testing.assert_array_equal(
        restored.sample(5, random_state=1), original.sample(5, random_state=1)
    )


def assert_same_fitted_attributes(restored, original):
    assert restored.get_params() == original.get_params()
    for key, value in vars(original).items():
        if not key.endswith("_") or key.startswith("_") or key == "module_":
            continue
        restored_value = getattr(restored, key)
        if isinstance(value, np.ndarray):
            assert restored_value.dtype == value.dtype, key
            np.testing.assert_array_equal(restored_value, value)
        else:
            assert type(restored_value) is type(value), key
            assert restored_value == value, key
    assert restored._history == original._history


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "calibrated_gaussian"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bitwise(digits01, likelihood, dtype):
    X = digits01[0][:150].astype(dtype)
    vae = _vae(likelihood=likelihood).fit(X)
    restored = _loads(_dumps(vae))
    assert type(restored) is VAETransformer
    assert next(restored.module_.parameters()).dtype == torch.float32
    assert not restored.module_.training
    assert_same_weights(restored, vae)
    assert_same_fitted_attributes(restored, vae)
    assert_same_outputs(restored, vae, digits01[0][150:200])


def test_round_trip_after_early_stopping(gaussian_data, tmp_path):
    vae = _vae(early_stopping=True, max_iter=30, n_iter_no_change=2).fit(gaussian_data)
    path = tmp_path / "vae.skvae"
    skvae.save(vae, path)
    restored = skvae.load(str(path))
    assert restored.validation_scores_ == vae.validation_scores_
    assert restored.best_validation_score_ == vae.best_validation_score_
    assert_same_fitted_attributes(restored, vae)
    assert_same_outputs(restored, vae, gaussian_data)


def test_round_trip_keeps_feature_names_and_output_container(gaussian_data):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(gaussian_data, columns=[f"f{i}" for i in range(6)])
    vae = _vae().set_output(transform="pandas").fit(frame)
    restored = _loads(_dumps(vae))
    assert restored.feature_names_in_.dtype == object
    np.testing.assert_array_equal(restored.feature_names_in_, vae.feature_names_in_)
    out = restored.transform(frame)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_frame_equal(out, vae.transform(frame))
    with pytest.raises(ValueError, match="feature names"):
        restored.transform(frame.rename(columns={"f0": "other"}))


def assert_identical(restored, value):
    """Same type, dtype, shape, keys (in order) and bits, all the way down."""
    assert type(restored) is type(value), (restored, value)
    if isinstance(value, np.ndarray | np.generic):
        assert restored.dtype == value.dtype and restored.shape == value.shape
        np.testing.assert_array_equal(restored, value)
    elif isinstance(value, torch.Tensor):
        assert restored.dtype == value.dtype and torch.equal(restored, value)
    elif isinstance(value, list | tuple):
        assert len(restored) == len(value)
        for a, b in zip(restored, value, strict=True):
            assert_identical(a, b)
    elif isinstance(value, dict):
        assert list(restored) == list(value)
        for key in value:
            assert type(list(restored)[list(value).index(key)]) is type(key)
            assert_identical(restored[key], value[key])
    elif isinstance(value, float):
        assert repr(restored) == repr(value)
    else:
        assert restored == value


def test_values_that_json_cannot_hold_round_trip_exactly(gaussian_data):
    vae = _vae().fit(gaussian_data)
    assert vae._history.best_loss != float("inf")
    vae._history.best_validation_score = -float("inf")
    extras = {
        "extra_scalar_": np.float32(1.5),
        "extra_flag_": np.bool_(True),
        "extra_int_": np.int64(-3),
        "extra_nan_": float("nan"),
        "extra_array_": np.array([[np.nan, np.inf], [-np.inf, 2.0]]),
        "extra_big_endian_": np.arange(3, dtype=">f8"),
        "extra_uint_": np.arange(4, dtype=np.uint32),
        "extra_empty_": np.zeros((0, 3), dtype=np.float16),
        "extra_strings_": np.array([["a", "bc"], ["d", "e"]], dtype="<U3"),
        "extra_objects_": np.array(["x", "yz"], dtype=object),
        "extra_numpy_strings_": np.array([np.str_("n")], dtype=object),
        "extra_nested_": [(1, "a"), {"k": (2.5, [np.float64(1.0)])}, []],
        "extra_keys_": {0: "zero", 1: (1,), "two": None, "": {}},
        "extra_device_": torch.device("cpu"),
        "extra_tensor_": torch.arange(3, dtype=torch.int16),
    }
    vars(vae).update(extras)
    restored = _loads(_dumps(vae))
    assert restored._history == vae._history
    assert restored._history.best_validation_score == -float("inf")
    for key, value in extras.items():
        assert_identical(getattr(restored, key), value)
    vae.extra_keys_ = {0: "int", "0": "str"}  # one path for both
    with pytest.raises(TypeError, match="two values would be saved under one name"):
        _dumps(vae)


def test_numbers_go_to_safetensors_not_json(gaussian_data, tmp_path):
    vae = _vae().fit(gaussian_data)
    vae.extra_array_ = np.arange(20_000.0)
    path = tmp_path / "vae.skvae"
    skvae.save(vae, path)
    with safetensors.safe_open(path, "pt") as file:
        names = set(file.keys())
        text = file.metadata()["skvae"]
        array = file.get_tensor("extra_array_").numpy()
    np.testing.assert_array_equal(array, vae.extra_array_)
    assert {"kl_per_dimension_", "module_/encoder.0.weight"} <= names
    # 20,000 numbers as JSON would take more than 100 kB.
    assert len(text) < 10_000
    document = json.loads(text)
    assert document["values"]["n_iter_"] == vae.n_iter_ == 4
    assert document["kinds"]["extra_array_"] == "ndarray"


@pytest.mark.parametrize("family", family_names())
def test_every_likelihood_family_round_trips(family):
    # A family's layout is plain data: no family needs a line in persistence.
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    candidates = {
        "category": pd.Categorical(rng.choice(["a", "b", "c"], 80)),
        "count": rng.poisson(3.0, 80),
        "size": np.exp(rng.normal(size=80)),
        "real": rng.normal(size=80),
        "flag": rng.uniform(size=80) < 0.4,
    }
    for name, column in candidates.items():  # the first column it can model
        frame = pd.DataFrame({name: column})
        vae = _vae(likelihood=family, hidden_layer_sizes=(8,), max_iter=3)
        try:
            vae.fit(frame)
        except ValueError:
            continue
        break
    else:
        pytest.fail(f"no candidate column fits {family!r}")
    restored = _loads(_dumps(vae))
    assert restored.likelihoods_ == vae.likelihoods_ == [(family, [name])]
    Z = vae.transform(frame)
    np.testing.assert_array_equal(restored.transform(frame), Z)
    scores = restored.score_samples(frame)
    np.testing.assert_array_equal(scores, vae.score_samples(frame))
    for left, right in [
        (restored.inverse_transform(Z), vae.inverse_transform(Z)),
        (restored.sample(5, random_state=1), vae.sample(5, random_state=1)),
    ]:
        assert type(left) is type(right)
        np.testing.assert_array_equal(np.asarray(left), np.asarray(right))
    vae.partial_fit(frame)
    restored.partial_fit(frame)
    assert_same_weights(restored, vae)


def test_unfitted_estimator_round_trips_its_parameters():
    vae = VAETransformer(
        n_components=3, hidden_layer_sizes=(7, 5), beta=0.5, device=torch.device("cpu")
    )
    restored = _loads(_dumps(vae))
    assert restored.get_params() == vae.get_params()
    assert restored.hidden_layer_sizes == (7, 5)
    assert restored.device == torch.device("cpu")
    restored = _loads(_dumps(vae.set_params(hidden_layer_sizes=[7, 5])))
    assert restored.hidden_layer_sizes == [7, 5]
    with pytest.raises(NotFittedError):
        restored.transform(np.zeros((2, 4)))


def test_unknown_private_attributes_are_left_out(gaussian_data):
    vae = _vae().fit(gaussian_data)
    saved = _dumps(vae)
    # The float64 copy of the network that a float64 transform caches, and a
    # private attribute save does not know, are left out: the file is the same.
    vae.transform(gaussian_data.astype(np.float64))
    vae._scratch = {"float64": np.ones(3)}
    again = _dumps(vae)
    assert len(again) == len(saved)
    restored = _loads(again)
    assert vars(restored).keys() == vars(_loads(saved)).keys()
    assert not hasattr(restored, "_scratch")
    assert_same_outputs(restored, vae, gaussian_data)


class _Detector(VAETransformer):
    """A subclass with a parameter and a fitted attribute of its own."""

    def __init__(
        self, n_components=2, *, hidden_layer_sizes=(8,), max_iter=3, contamination=0.1
    ):
        super().__init__(
            n_components,
            hidden_layer_sizes=hidden_layer_sizes,
            max_iter=max_iter,
            random_state=0,
        )
        self.contamination = contamination

    def fit(self, X, y=None):
        super().fit(X)
        self.offset_ = np.quantile(self.score_samples(X), self.contamination)
        return self


class _Wrapper(BaseEstimator):
    """A wrapper holding a VAETransformer as parameter and as fitted model."""

    def __init__(self, vae=None, threshold=0.5):
        self.vae = vae
        self.threshold = threshold

    def fit(self, X, y=None):
        self.vae_ = clone(self.vae).fit(X)
        return self


@pytest.mark.parametrize("kind", ["subclass", "wrapper"])
def test_another_estimator_registers_in_one_line(gaussian_data, monkeypatch, kind):
    with pytest.raises(TypeError, match="skvae estimators"):
        _dumps(_Detector())
    if kind == "subclass":
        monkeypatch.setitem(persistence.ESTIMATORS, "_Detector", __name__)
        model = _Detector(hidden_layer_sizes=(5,), contamination=0.2)
        model.fit(gaussian_data)
        restored = _loads(_dumps(model))
        assert type(restored) is _Detector
        assert restored.get_params() == model.get_params()
        assert restored.contamination == 0.2 and restored.hidden_layer_sizes == (5,)
        assert restored.offset_ == model.offset_
        assert_same_outputs(restored, model, gaussian_data)
    else:
        monkeypatch.setitem(persistence.ESTIMATORS, "_Wrapper", __name__)
        model = _Wrapper(vae=_vae(warm_start=True), threshold=0.3).fit(gaussian_data)
        restored = _loads(_dumps(model))
        assert type(restored.vae) is VAETransformer
        assert restored.vae.get_params() == model.vae.get_params()
        assert not hasattr(restored.vae, "module_")
        assert_same_fitted_attributes(restored.vae_, model.vae_)
        assert_same_outputs(restored.vae_, model.vae_, gaussian_data)
        restored.vae_.fit(gaussian_data)
        model.vae_.fit(gaussian_data)
        assert_same_weights(restored.vae_, model.vae_)


# ------------------------------------------------------ continuing training


@pytest.mark.parametrize("early_stopping", [False, True])
def test_warm_start_after_load_continues_exactly(gaussian_data, early_stopping):
    vae = _vae(warm_start=True, early_stopping=early_stopping, max_iter=3)
    vae.fit(gaussian_data)
    restored = _loads(_dumps(vae))
    vae.fit(gaussian_data)
    restored.fit(gaussian_data)
    assert restored.n_iter_ == vae.n_iter_ == 6
    assert_same_weights(restored, vae)
    assert_same_fitted_attributes(restored, vae)
    # Adam's moments and step counts continued too, not only the weights.
    expected = vae._optimizer.state_dict()["state"]
    for key, state in restored._optimizer.state_dict()["state"].items():
        for name, tensor in state.items():
            assert torch.equal(tensor, expected[key][name]), (key, name)


def test_partial_fit_after_load_continues_exactly(gaussian_data):
    vae = _vae()
    vae.partial_fit(gaussian_data[:60])
    vae.partial_fit(gaussian_data[60:])
    restored = _loads(_dumps(vae))
    vae.partial_fit(gaussian_data[:60])
    restored.partial_fit(gaussian_data[:60])
    assert restored.n_iter_ == 3
    assert_same_weights(restored, vae)
    assert_same_fitted_attributes(restored, vae)


def test_save_after_unpickling_keeps_the_optimizer_state(gaussian_data):
    # An unpickled model holds Adam's state as a state_dict until its next fit.
    vae = _vae(warm_start=True).fit(gaussian_data)
    unpickled = pickle.loads(pickle.dumps(vae))
    assert unpickled._optimizer is None
    restored = _loads(_dumps(unpickled))
    vae.fit(gaussian_data)
    restored.fit(gaussian_data)
    assert_same_weights(restored, vae)


# ------------------------------------------------------------------ refusals


@pytest.fixture
def saved(gaussian_data):
    return _dumps(_vae().fit(gaussian_data))


def _header_end(data):
    return 8 + int.from_bytes(data[:8], "little")


def test_flipped_weight_byte_is_refused(saved):
    data = bytearray(saved)
    data[-3] ^= 0x01
    with pytest.raises(ValueError, match="integrity check.*modified or damaged"):
        _loads(bytes(data))


def test_edited_document_is_refused(saved):
    end = _header_end(saved)
    header = saved[:end]
    # Same length, so the safetensors layout stays valid: only the hash can tell.
    edited = header.replace(b'\\"max_iter\\":4', b'\\"max_iter\\":9')
    assert edited != header and len(edited) == len(header)
    with pytest.raises(ValueError, match="integrity check"):
        _loads(edited + saved[end:])


@pytest.mark.parametrize("keep", [0, 5, 100, "header", -1])
def test_truncated_file_is_refused(saved, keep):
    if keep == "header":
        keep = _header_end(saved)
    data = saved[:keep]
    with pytest.raises(ValueError, match="truncated"):
        _loads(data)


def test_any_flipped_bit_or_cut_is_refused(gaussian_data):
    # A sample of single-bit flips and truncations across the whole file
    # (header length, safetensors header, document, hash, weights). A sweep of
    # one flip at every byte of this file (15,996 of them) was all refused too.
    vae = VAETransformer(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    data = _dumps(vae.fit(gaussian_data[:, :3]))
    rng = np.random.RandomState(0)
    positions = [*range(8), *rng.choice(len(data), 300, replace=False)]
    for position in positions:
        corrupted = bytearray(data)
        corrupted[position] ^= 1 << int(rng.randint(8))
        with pytest.raises(ValueError):
            _loads(bytes(corrupted))
    for length in range(0, len(data), 97):
        with pytest.raises(ValueError):
            _loads(data[:length])


def test_files_from_other_libraries_are_refused(gaussian_data, tmp_path):
    vae = _vae().fit(gaussian_data)
    weights = safetensors_torch.save(
        {k: v.contiguous() for k, v in vae.module_.state_dict().items()}
    )
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("skvae.json", json.dumps({"class": "VAETransformer"}))
        archive.writestr("weights.safetensors", weights)
    torch_file = io.BytesIO()
    torch.save(vae.module_.state_dict(), torch_file)
    others = {
        "safetensors": (weights, "no 'format': 'skvae' marker"),
        "zip": (zipped.getvalue(), "not a skvae model file"),
        "pickle": (pickle.dumps(vae), "not a skvae model file"),
        "torch.save": (torch_file.getvalue(), "not a skvae model file"),
        "text": (b"n_components=2\nmax_iter=4\n" * 3, "not a skvae model file"),
        "empty": (b"", "empty or truncated"),
        "json header": (b"\x04\x00\x00\x00\x00\x00\x00\x00nope", "not JSON"),
    }
    for name, (data, message) in others.items():
        with pytest.raises(ValueError, match=message):
            _loads(data)
        path = tmp_path / f"{name}.bin"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message):
            skvae.load(path)


def _forge(document, tensors):
    """A file as save writes it, hash included, for a hand-made document."""
    text = json.dumps(document)
    metadata = {
        "format": "skvae",
        "format_version": str(persistence.FORMAT_VERSION),
        "skvae": text,
        "sha256": persistence._digest(text, tensors),
    }
    return safetensors_torch.save(tensors, metadata=metadata)


def test_valid_hash_does_not_make_a_hostile_document_load(gaussian_data):
    # The hash is not what keeps loading safe: a forged file with a correct
    # hash can still only describe data, which load decodes by fixed code.
    document, tensors = persistence.to_document(_vae().fit(gaussian_data))
    weights = {"a_": torch.zeros(1)}
    cases = [  # (class, values, kinds, tensors), the error
        (("Pipeline", {}, {}, {}), "cannot load"),
        (("os.system", {}, {}, {}), "cannot load"),
        ((None, {"x_": "os.system"}, {"x_": "function"}, {}), "unknown kind"),
        ((None, {"x_": 2}, {"x_": "tuple:x"}, {}), "unknown kind"),
        ((None, {"x_": 2}, {"x_": "tuple"}, {}), "entry 'x_/0' is missing"),
        ((None, {"x_": "1e9"}, {"x_": "float"}, {}), "bad float"),
        ((None, {"__class__": 1}, {}, {}), "private state '__class__'"),
        ((None, {"fit__": None}, {}, {}), "not a fitted attribute"),
        ((None, {"_optimizer": None}, {}, {}), "private state '_optimizer'"),
        ((None, {"transform": None}, {}, {}), "does not know"),
        ((None, {"no_such_parameter": 1}, {}, {}), "does not know"),
        ((None, {}, {"a_": "ndarray:V8"}, weights), "bad byte order"),
        ((None, {"a_": ["a"]}, {"a_": "strings:2**40"}, {}), "bad string width"),
        ((None, {"a_": [[1]]}, {"a_": "strings"}, {}), "holds other values"),
        ((None, {}, {"a_": "tensor"}, {}), "tensor 'a_' is missing"),
        ((None, {"a_": 1, "a_/0": 2}, {}, {}), "does not refer to"),
        ((None, {}, {"a_/0": "tensor"}, weights), "does not refer to"),
        ((None, {"x_": [0, "0"], "x_/0": 1}, {"x_": "dict"}, {}), "x_/0' is missing"),
    ]
    for (name, values, kinds, extra), message in cases:
        forged = {
            **document,
            "class": name or document["class"],
            "values": {**document["values"], **values},
            "kinds": {**document["kinds"], **kinds},
        }
        with pytest.raises(ValueError, match=message):
            _loads(_forge(forged, {**tensors, **extra}))
    # A module whose weights do not fit its recorded layout; a layout too big
    # to allocate is refused before anything is built.
    for hidden, message in [([8], "needs 176 weights"), ([2**40], "needs 2")]:
        config = {**document["values"]["module_"], "hidden_layer_sizes": hidden}
        forged = {**document, "values": {**document["values"], "module_": config}}
        with pytest.raises(ValueError, match=f"do not fit its layout.*{message}"):
            _loads(_forge(forged, tensors))
    # An extra tensor that the document does not name.
    with pytest.raises(ValueError, match="does not refer to"):
        _loads(_forge(document, {**tensors, "extra": torch.zeros(2)}))
    with pytest.raises(ValueError, match="does not refer to"):
        _loads(_forge({**document, "pickle": "..."}, tensors))


@pytest.mark.parametrize(
    "version, message",
    [
        ("99", "format 99, newer than the 3 this skvae reads: upgrade skvae"),
        ("2", "format 2, with a tree of tagged JSON.*reads format 3.*or refit"),
        ("1", "format 1, from before per-column likelihoods.*reads format 3"),
    ],
)
def test_other_file_formats_are_refused(version, message):
    document, tensors = persistence.to_document(VAETransformer())
    text = json.dumps(document)
    data = safetensors_torch.save(
        tensors,
        metadata={
            "format": "skvae",
            "format_version": version,
            "skvae": text,
            "sha256": persistence._digest(text, tensors),
        },
    )
    with pytest.raises(ValueError, match=message):
        _loads(data)


def test_version_mismatch_warns(gaussian_data, monkeypatch):
    vae = _vae().fit(gaussian_data)
    current = persistence._versions()
    monkeypatch.setattr(persistence, "_versions", lambda: {**current, "torch": "1.0.0"})
    data = _dumps(vae)
    monkeypatch.undo()
    with pytest.warns(InconsistentVersionWarning, match="torch '1.0.0'") as record:
        restored = _loads(data)
    assert record[0].filename == __file__  # the caller's line, not skvae's
    assert record[0].message.saved["torch"] == "1.0.0"
    assert record[0].message.current["torch"] == torch.__version__
    assert_same_outputs(restored, vae, gaussian_data)


def test_same_versions_do_not_warn(saved, recwarn):
    _loads(saved)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_loading_never_unpickles(saved, monkeypatch, gaussian_data):
    def refuse(*args, **kwargs):
        raise AssertionError("load must not unpickle")

    for target in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, target, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(np, "load", refuse)
    restored = _loads(saved)
    assert restored.transform(gaussian_data).shape == (120, 2)


def test_pipelines_and_other_objects_are_refused(gaussian_data):
    pipe = make_pipeline(StandardScaler(), _vae()).fit(gaussian_data)
    for obj in (pipe, StandardScaler(), object()):
        with pytest.raises(TypeError, match=r"skvae.save\(pipe\[-1\].*skops.io.dump"):
            _dumps(obj)

    class MyVAE(VAETransformer):
        pass

    with pytest.raises(TypeError, match="skvae estimators"):
        _dumps(MyVAE())


def test_unsaveable_values_are_refused_with_the_fix(gaussian_data):
    vae = _vae(random_state=np.random.RandomState(0)).fit(gaussian_data)
    with pytest.raises(TypeError, match=r"random_state=RandomState.*int seed"):
        _dumps(vae)
    vae.set_params(random_state=0)
    _dumps(vae)  # the fitted state is saved once the parameter is an int
    with pytest.raises(TypeError, match="parameter beta.*plain data"):
        _dumps(_vae(beta=object()))
    vae.weird_ = {1.5: "float keys"}
    with pytest.raises(TypeError, match="attribute weird_"):
        _dumps(vae)


class Wider(VAEModule):
    """A module subclass: rebuilding it would mean running its code."""


def test_custom_module_is_refused(gaussian_data):
    vae = _vae().fit(gaussian_data)
    vae.module_ = Wider(
        single_family("gaussian", 6), 2, [16, 8], "relu", torch.Generator()
    )
    with pytest.raises(TypeError, match="module_ is a .*Wider.*pickle"):
        _dumps(vae)
    # Pickle keeps such a module as the object itself.
    restored = pickle.loads(pickle.dumps(vae))
    assert type(restored.module_) is Wider
    assert_same_outputs(restored, vae, gaussian_data)
    # Edited in place: an activation that VAEModule would not build.
    vae = _vae().fit(gaussian_data)
    vae.module_.encoder[1] = torch.nn.LeakyReLU(0.3)
    with pytest.raises(TypeError, match="module_"):
        _dumps(vae)


def test_missing_safetensors_names_the_extra(monkeypatch, saved):
    import sys

    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    for call in (lambda: _dumps(VAETransformer()), lambda: _loads(saved)):
        with pytest.raises(ImportError, match=r"skvae\[persist\]"):
            call()


def test_failed_save_leaves_no_file(tmp_path, gaussian_data):
    path = tmp_path / "vae.skvae"
    vae = _vae(random_state=np.random.RandomState(0)).fit(gaussian_data)
    with pytest.raises(TypeError):
        skvae.save(vae, path)
    assert list(tmp_path.iterdir()) == []
    skvae.save(vae.set_params(random_state=0), path)
    assert [p.name for p in tmp_path.iterdir()] == ["vae.skvae"]


# -------------------------------------------------------------- pickle, skops


def test_pickle_is_bitwise_and_holds_no_torch_object(gaussian_data):
    vae = _vae(warm_start=True).fit(gaussian_data)
    data = pickle.dumps(vae)
    assert b"torch" not in data
    restored = pickle.loads(data)
    assert_same_weights(restored, vae)
    assert_same_fitted_attributes(restored, vae)
    assert_same_outputs(restored, vae, gaussian_data)
    vae.fit(gaussian_data)
    restored.fit(gaussian_data)
    assert_same_weights(restored, vae)


def test_pickles_of_the_torch_state_still_load(gaussian_data):
    # Before the numpy state, a pickle held the module and Adam's tensors.
    vae = _vae(warm_start=True).fit(gaussian_data)
    state = {
        **vars(vae),
        "_optimizer_state": vae._optimizer.state_dict(),
        "_sklearn_version": __import__("sklearn").__version__,
    }
    del state["_optimizer"]
    old = pickle.loads(pickle.dumps(state))
    assert isinstance(old["module_"], VAEModule)
    restored = VAETransformer.__new__(VAETransformer)
    restored.__setstate__(old)
    assert_same_outputs(restored, vae, gaussian_data)
    vae.fit(gaussian_data)
    restored.fit(gaussian_data)
    assert_same_weights(restored, vae)


def test_skops_round_trip_with_trusted_types(gaussian_data):
    sio = pytest.importorskip("skops.io")
    vae = _vae(warm_start=True).fit(gaussian_data)
    data = sio.dumps(vae)
    assert sio.get_untrusted_types(data=data) == ["skvae._vae.VAETransformer"]
    with pytest.raises(Exception, match="Untrusted types"):
        sio.loads(data)
    restored = sio.loads(data, trusted=["skvae._vae.VAETransformer"])
    assert_same_weights(restored, vae)
    assert_same_fitted_attributes(restored, vae)
    assert_same_outputs(restored, vae, gaussian_data)
    vae.fit(gaussian_data)
    restored.fit(gaussian_data)
    assert_same_weights(restored, vae)


def test_inference_leaves_no_torch_object_in_the_pickled_state(gaussian_data):
    # Caches that inference may keep (e.g. a float64 copy of the module) are
    # not state: pickle and skops must not carry them.
    sio = pytest.importorskip("skops.io")
    vae = _vae().fit(gaussian_data)
    for dtype in (np.float32, np.float64):
        vae.inverse_transform(vae.transform(gaussian_data.astype(dtype)))
        vae.score_samples(gaussian_data.astype(dtype))
    assert b"torch" not in pickle.dumps(vae)
    restored = sio.loads(sio.dumps(vae), trusted=["skvae._vae.VAETransformer"])
    assert_same_outputs(restored, vae, gaussian_data)


def test_skops_round_trip_of_a_pipeline(digits01):
    sio = pytest.importorskip("skops.io")
    X = digits01[0][:200]
    pipe = make_pipeline(MinMaxScaler(), _vae(likelihood="bernoulli")).fit(X)
    data = sio.dumps(pipe)
    assert sio.get_untrusted_types(data=data) == ["skvae._vae.VAETransformer"]
    restored = sio.loads(data, trusted=["skvae._vae.VAETransformer"])
    np.testing.assert_array_equal(restored.transform(X), pipe.transform(X))


def test_user_guide_snippets_run(tmp_path, monkeypatch):
    pytest.importorskip("skops.io")
    guide = Path(__file__).resolve().parents[1] / "docs/user_guide/persistence.rst"
    blocks = re.findall(
        r"^\.\. code-block:: python\n\n((?:   .*\n|\n)+)", guide.read_text(), re.M
    )
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        code = "\n".join(line[3:] for line in block.splitlines())
        exec(compile(code, str(guide), "exec"), namespace)
    assert (tmp_path / "vae.skvae").is_file() and (tmp_path / "pipe.skops").is_file()
    assert namespace["restored"].n_iter_ > 20  # continued after the 20 saved epochs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_saves_and_loads_on_cpu(gaussian_data):
    vae = _vae(device="cuda", warm_start=True).fit(gaussian_data)
    restored = _loads(_dumps(vae))
    assert next(restored.module_.parameters()).device.type == "cpu"
    assert restored.device == "cuda"
    unpickled = pickle.loads(pickle.dumps(vae))
    assert_same_weights(restored, unpickled)
    assert_same_outputs(restored, unpickled, gaussian_data)
    np.testing.assert_allclose(
        restored.transform(gaussian_data), vae.transform(gaussian_data), rtol=1e-5
    )
    # A warm start after loading trains on the device again, from the saved
    # weights and Adam state.
    vae.fit(gaussian_data)
    restored.fit(gaussian_data)
    assert next(restored.module_.parameters()).device.type == "cuda"
    for a, b in zip(_weights(restored), _weights(vae), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
