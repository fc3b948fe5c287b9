"""Tables in and out: skvae._tables and VAETransformer on DataFrames.

The spec reading ('auto' and lists of pairs), the round trip of every dtype
through the internal float matrix, the errors that name column, row and
value, and the public estimator fitted on mixed tables (palmerpenguins and a
small synthetic frame).
"""

import io
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sklearn.compose import make_column_selector
from sklearn.exceptions import ConvergenceWarning

import skvae
from skvae import VAETransformer
from skvae._likelihoods import UnknownFamilyError, family_names
from skvae._tables import build_likelihood, pairs, read_spec, to_frame, to_internal

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # Fits of a few iterations on small tables: collapse is expected, not tested.
    pytest.mark.filterwarnings("ignore::skvae._vae.PosteriorCollapseWarning"),
]


def _auto_frame(n=200, seed=0):
    rng = np.random.RandomState(seed)
    return pd.DataFrame(
        {
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "name": pd.Series(rng.choice(["p", "q", "r"], n), dtype="string"),
            "tag": pd.Series(rng.choice(["u", "v"], n), dtype=object),
            "flag": rng.uniform(size=n) < 0.3,
            "overdispersed": rng.negative_binomial(2, 0.3, n),
            "counts": rng.poisson(3.0, n),
            "year": rng.randint(2007, 2010, n),
            "negative_ints": rng.randint(-20, 20, n),
            "heavy": np.exp(rng.normal(1.0, 1.2, n)),
            "real": rng.normal(0.5, 2.0, n),
        }
    )


AUTO_FAMILIES = {
    "colour": "categorical",
    "name": "categorical",
    "tag": "categorical",
    "flag": "bernoulli",
    "overdispersed": "negative_binomial",
    "counts": "negative_binomial",
    "year": "calibrated_gaussian",
    "negative_ints": "calibrated_gaussian",
    "heavy": "lognormal",
    "real": "calibrated_gaussian",
}


def test_auto_reads_families_from_dtypes():
    df = _auto_frame()
    assert (df["overdispersed"] == 0).any() and (df["counts"] == 0).any()
    assert (df["real"] < 0).any()
    spec = read_spec("auto", df)
    assert dict(zip(spec["columns"], spec["families"], strict=True)) == AUTO_FAMILIES
    assert spec["kinds"] == [
        "category",
        "category",
        "category",
        "bool",
        "int",
        "int",
        "int",
        "int",
        "float",
        "float",
    ]
    assert spec["levels"][:3] == [["blue", "green", "red"], ["p", "q", "r"], ["u", "v"]]
    assert spec["levels"][3:] == [None] * 7
    assert spec["standardize"] and spec["frame"]


def test_auto_spec_survives_pairs():
    # pairs(spec) is a likelihood list that reads back to the same families.
    df = _auto_frame()
    spec = read_spec("auto", df)
    listed = pairs(spec)
    assert sorted(c for _, columns in listed for c in columns) == sorted(df.columns)
    assert read_spec(listed, df)["families"] == spec["families"]


def _small_frame(n=20, seed=0):
    rng = np.random.RandomState(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.poisson(2.0, n),
            "c": pd.Categorical(rng.choice(list("xyz"), n)),
            "d": rng.uniform(size=n) < 0.5,
        }
    )


@pytest.mark.parametrize(
    ("likelihood", "expected"),
    [
        (
            [("calibrated_gaussian", ["a"]), ("poisson", ["b"]), ("auto", ["c", "d"])],
            ["calibrated_gaussian", "poisson", "categorical", "bernoulli"],
        ),
        (
            [("gaussian", [0]), ("negative_binomial", [-3]), ("auto", [2, 3])],
            ["gaussian", "negative_binomial", "categorical", "bernoulli"],
        ),
        (
            [
                ("poisson", [False, True, False, False]),
                ("auto", [True, False, True, True]),
            ],
            ["calibrated_gaussian", "poisson", "categorical", "bernoulli"],
        ),
        (
            [
                ("auto", make_column_selector(dtype_include="category")),
                ("bernoulli", make_column_selector(dtype_include=bool)),
                ("poisson", make_column_selector(dtype_include="int")),
                ("gaussian", make_column_selector(dtype_include="float")),
            ],
            ["gaussian", "poisson", "categorical", "bernoulli"],
        ),
        (
            [("poisson", "b"), ("auto", ["a", "c", "d"])],
            ["calibrated_gaussian", "poisson", "categorical", "bernoulli"],
        ),
    ],
    ids=["names", "indices", "mask", "selector", "scalar"],
)
def test_list_specs(likelihood, expected):
    spec = read_spec(likelihood, _small_frame())
    assert spec["families"] == expected
    assert spec["columns"] == ["a", "b", "c", "d"]
    assert spec["standardize"]


@pytest.mark.parametrize(
    ("likelihood", "error", "match"),
    [
        (
            [("gaussian", ["a"]), ("poisson", [0]), ("auto", ["b", "c", "d"])],
            ValueError,
            r"Column 'a' is given two likelihoods \('gaussian' and 'poisson'\)",
        ),
        (
            [("gaussian", ["a"]), ("auto", ["b", "c"])],
            ValueError,
            r"leaves columns \['d'\] without a family",
        ),
        (
            [("gaussian", ["a", "nope"]), ("auto", ["b", "c", "d"])],
            ValueError,
            r"Column 'nope' given for likelihood 'gaussian' is not a column of X",
        ),
        (
            [("gaussian", [7]), ("auto", ["a", "b", "c", "d"])],
            ValueError,
            r"Column index 7 .* out of range for a table of 4 columns",
        ),
        (
            [("gausian", ["a"]), ("auto", ["b", "c", "d"])],
            UnknownFamilyError,
            r"Unknown likelihood 'gausian'; expected one of \['bernoulli'",
        ),
        (
            [("poisson", [True, False]), ("auto", ["a", "c", "d"])],
            ValueError,
            r"boolean mask for 'poisson' has 2 entries; the table has 4 columns",
        ),
        (
            ["gaussian"],
            ValueError,
            r"list of \(family, columns\) pairs",
        ),
    ],
    ids=["twice", "left-out", "unknown-column", "bad-index", "family", "mask", "item"],
)
def test_list_spec_errors(likelihood, error, match):
    with pytest.raises(error, match=match):
        read_spec(likelihood, _small_frame())


def test_unknown_family_name_lists_the_known_ones():
    with pytest.raises(UnknownFamilyError) as info:
        read_spec("nope", _small_frame())
    for name in family_names():
        assert repr(name) in str(info.value)


# ---------------------------------------------------------------- round trip

N_ROUND = 12
_rng = np.random.RandomState(7)
ROUND_TRIP_COLUMNS = {
    "category-ordered": pd.Categorical(
        list("abc" * 4), categories=["c", "a", "b"], ordered=True
    ),
    "category-unordered": pd.Categorical(list("xyyx" * 3)),
    "category-int-levels": pd.Categorical([1, 5, 9] * 4),
    "category-unused-level": pd.Categorical(list("abab" * 3), categories=list("abz")),
    "string": pd.Series(list("pqr" * 4), dtype="string"),
    "str": pd.Series(list("uvw" * 4), dtype="str"),
    "object": pd.Series(list("uv" * 6), dtype=object),
    "int64-counts": _rng.poisson(3.0, N_ROUND).astype("int64"),
    "int32": _rng.randint(-5, 5, N_ROUND).astype("int32"),
    "uint8": _rng.poisson(3.0, N_ROUND).astype("uint8"),
    "Int64": pd.array(_rng.poisson(3.0, N_ROUND), dtype="Int64"),
    "bool": _rng.uniform(size=N_ROUND) < 0.5,
    "boolean": pd.array(_rng.uniform(size=N_ROUND) < 0.5, dtype="boolean"),
    "float64": _rng.normal(size=N_ROUND),
    "float32": _rng.normal(size=N_ROUND).astype("float32"),
    "lognormal": np.exp(_rng.normal(size=N_ROUND)),
}


@pytest.mark.parametrize("kind", list(ROUND_TRIP_COLUMNS))
def test_round_trip_of_one_dtype(kind):
    # Each dtype next to a float column, so that every column is a block.
    df = pd.DataFrame(
        {"value": ROUND_TRIP_COLUMNS[kind], "other": np.arange(12.0) + 0.5}
    )
    spec = read_spec("auto", df)
    internal = to_internal(spec, df)
    assert internal.to_numpy().dtype == np.float64
    assert_frame_equal(to_frame(spec, internal.to_numpy()), df)


def test_round_trip_of_a_mixed_table():
    kinds = [
        k for k in ROUND_TRIP_COLUMNS if k not in ("object", "category-unused-level")
    ]
    df = pd.DataFrame({kind: ROUND_TRIP_COLUMNS[kind] for kind in kinds})
    spec = read_spec("auto", df)
    internal = to_internal(spec, df).to_numpy()
    codes = internal[:, kinds.index("category-ordered")]
    # Codes follow the dtype's order of levels, not the alphabet.
    np.testing.assert_array_equal(codes[:3], [1.0, 2.0, 0.0])
    back = to_frame(spec, internal)
    assert_frame_equal(back, df)
    assert back["category-ordered"].cat.ordered
    assert list(back["category-ordered"].cat.categories) == ["c", "a", "b"]


def test_unknown_level_names_column_row_and_value():
    # pandas deprecates pd.Categorical(values, categories=...) with values
    # outside the categories (it will raise its own error): the check must not
    # rely on it, or the message above is lost with pandas 4.
    df = _small_frame()
    spec = read_spec("auto", df)
    other = df.copy()
    other["c"] = other["c"].astype(object)
    other.loc[5, "c"] = "w"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        with pytest.raises(
            ValueError, match=r"Column 'c' .* holds 'w' at row 5, a level"
        ):
            to_internal(spec, other)


def test_string_in_numeric_column_names_column_row_and_value():
    df = _small_frame()
    spec = read_spec("auto", df)
    other = df.copy()
    other["a"] = other["a"].astype(object)
    other.loc[3, "a"] = "oops"
    with pytest.raises(
        ValueError, match=r"Column 'a' .* holds 'oops' at row 3, which is not a number"
    ):
        to_internal(spec, other)


def test_build_likelihood_lays_out_every_column():
    df = _auto_frame(n=60)
    spec = read_spec("auto", df)
    internal = to_internal(spec, df).to_numpy()
    likelihood = build_likelihood(spec, internal)
    assert likelihood.n_columns == df.shape[1]
    levels = {c: len(lv) for c, lv in enumerate(spec["levels"]) if lv is not None}
    assert likelihood.n_outputs == df.shape[1] - len(levels) + sum(levels.values())
    features = likelihood.feature_columns()
    assert sorted({c for c, _ in features}) == list(range(df.shape[1]))
    for column, n_levels in levels.items():
        assert [lv for c, lv in features if c == column] == list(range(n_levels))
    assert likelihood.check_support(internal) is None


# ------------------------------------------------------------ the estimator


def _mixed_frame(n=80, seed=0):
    rng = np.random.RandomState(seed)
    return pd.DataFrame(
        {
            "colour": pd.Categorical(
                rng.choice(["red", "green", "blue"], n),
                categories=["red", "green", "blue"],
                ordered=True,
            ),
            "count": rng.negative_binomial(2, 0.4, n),
            "x": rng.normal(size=n),
            "flag": rng.uniform(size=n) < 0.3,
            "name": pd.Series(rng.choice(["p", "q"], n), dtype="string"),
            "size": np.exp(rng.normal(size=n)),
            "year": rng.randint(2007, 2010, n),
        }
    )


@pytest.fixture(scope="module")
def penguins():
    pytest.importorskip("palmerpenguins")
    from palmerpenguins import load_penguins

    return load_penguins().dropna().reset_index(drop=True)


@pytest.fixture(scope="module")
def penguins_vae(penguins):
    vae = VAETransformer(likelihood="auto", max_iter=20, random_state=0)
    return vae.fit(penguins)


@pytest.fixture(scope="module")
def mixed_vae():
    vae = VAETransformer(likelihood="auto", max_iter=20, random_state=0)
    return vae.fit(_mixed_frame())


def _check_like(out, df, n_rows):
    """``out`` is a table of ``df``'s columns, dtypes and seen levels."""
    assert isinstance(out, pd.DataFrame)
    assert out.shape == (n_rows, df.shape[1])
    assert list(out.columns) == list(df.columns)
    pd.testing.assert_series_equal(out.dtypes, df.dtypes)
    for column in df.columns:
        if df[column].dtype == bool or pd.api.types.is_numeric_dtype(df[column]):
            continue
        assert set(out[column]) <= set(df[column]), column
        if isinstance(df[column].dtype, pd.CategoricalDtype):
            assert out[column].dtype == df[column].dtype


def _check_estimator(vae, df, families):
    assert vae.n_features_in_ == df.shape[1]
    listed = [c for _, columns in vae.likelihoods_ for c in columns]
    assert sorted(listed) == sorted(df.columns)
    assert len(listed) == len(set(listed))
    read = {c: family for family, columns in vae.likelihoods_ for c in columns}
    assert read == families
    Z = vae.transform(df)
    assert Z.shape == (df.shape[0], vae.n_components)
    assert np.isfinite(Z).all()
    _check_like(vae.inverse_transform(Z), df, df.shape[0])
    drawn = vae.sample(50, random_state=0)
    _check_like(drawn, df, 50)
    assert_frame_equal(vae.sample(50, random_state=0), drawn)
    assert not vae.sample(50, random_state=1).equals(drawn)
    scores = vae.score_samples(df)
    assert scores.shape == (df.shape[0],)
    assert np.isfinite(scores).all()
    return drawn


def test_auto_on_penguins(penguins_vae, penguins):
    _check_estimator(
        penguins_vae,
        penguins,
        {
            "species": "categorical",
            "island": "categorical",
            "sex": "categorical",
            "bill_length_mm": "calibrated_gaussian",
            "bill_depth_mm": "calibrated_gaussian",
            "flipper_length_mm": "lognormal",
            "body_mass_g": "lognormal",
            "year": "calibrated_gaussian",
        },
    )
    assert (penguins_vae.sample(50, random_state=0)["body_mass_g"] > 0).all()


def test_auto_on_a_mixed_frame(mixed_vae):
    df = _mixed_frame()
    drawn = _check_estimator(
        mixed_vae,
        df,
        {
            "colour": "categorical",
            "count": "negative_binomial",
            "x": "calibrated_gaussian",
            "flag": "bernoulli",
            "name": "categorical",
            "size": "lognormal",
            "year": "calibrated_gaussian",
        },
    )
    mean = mixed_vae.inverse_transform(mixed_vae.transform(df))
    for out in (mean, drawn):
        assert (out["count"] >= 0).all()
        assert (out["size"] > 0).all()
    # Draws of the count column are integers that vary, not one rounded mean.
    assert drawn["count"].nunique() > 2


def test_declared_count_column_refuses_a_fraction():
    df = _mixed_frame()
    df["count"] = df["count"].astype(float)
    df.loc[7, "count"] = 2.5
    with pytest.raises(
        ValueError, match=r"needs non-negative integers in column 'count', but row 7"
    ):
        VAETransformer(
            likelihood=[("poisson", ["count"]), ("auto", [0, 2, 3, 4, 5, 6])],
            max_iter=2,
        ).fit(df)


def _same_outputs(restored, vae, df):
    Z = vae.transform(df)
    np.testing.assert_array_equal(restored.transform(df), Z)
    assert_frame_equal(restored.inverse_transform(Z), vae.inverse_transform(Z))
    np.testing.assert_array_equal(restored.score_samples(df), vae.score_samples(df))
    assert_frame_equal(
        restored.sample(20, random_state=3), vae.sample(20, random_state=3)
    )
    assert restored.likelihoods_ == vae.likelihoods_


def test_save_load_and_pickle_keep_the_table(mixed_vae, tmp_path):
    pytest.importorskip("safetensors")
    df = _mixed_frame()
    path = tmp_path / "mixed.skvae"
    skvae.save(mixed_vae, path)
    _same_outputs(skvae.load(path), mixed_vae, df)
    buffer = io.BytesIO()
    skvae.save(mixed_vae, buffer)
    _same_outputs(skvae.load(io.BytesIO(buffer.getvalue())), mixed_vae, df)
    _same_outputs(pickle.loads(pickle.dumps(mixed_vae)), mixed_vae, df)


def test_save_load_on_penguins(penguins_vae, penguins, tmp_path):
    pytest.importorskip("safetensors")
    path = tmp_path / "penguins.skvae"
    skvae.save(penguins_vae, path)
    _same_outputs(skvae.load(path), penguins_vae, penguins)


def test_unseen_level_at_transform_raises(mixed_vae):
    df = _mixed_frame()
    other = df.copy()
    other["name"] = other["name"].astype(object)
    other.loc[4, "name"] = "zzz"
    with pytest.raises(ValueError, match=r"Column 'name' .* holds 'zzz' at row 4"):
        mixed_vae.transform(other)
    with pytest.raises(ValueError, match=r"Column 'name' .* holds 'zzz' at row 4"):
        mixed_vae.score_samples(other)


def _fitted_with(likelihood, df):
    return VAETransformer(likelihood=likelihood, max_iter=5, random_state=0).fit(df)


@pytest.mark.parametrize(
    ("family", "column", "value", "match"),
    [
        ("poisson", "count", -1.0, "needs non-negative integers"),
        ("bernoulli", "flag", 1.5, r"needs values in \[0, 1\]"),
    ],
)
def test_bad_value_at_fit_names_column_and_row(family, column, value, match):
    df = _mixed_frame()
    df[column] = df[column].astype(float)
    rest = [c for c in df.columns if c != column]
    likelihood = [(family, [column]), ("auto", rest)]
    vae = _fitted_with(likelihood, df)
    Z = vae.transform(df)
    listed = vae.likelihoods_
    assert (family, [column]) in listed
    bad = df.copy()
    bad.loc[11, column] = value
    pattern = rf"likelihood='{family}' {match} in column '{column}', but row 11 "
    with pytest.raises(ValueError, match=pattern):
        vae.fit(bad)
    # A failed fit leaves the fitted estimator as it was.
    np.testing.assert_array_equal(vae.transform(df), Z)
    assert vae.likelihoods_ == listed
    with pytest.raises(ValueError, match=pattern):
        _fitted_with(likelihood, bad)


def test_fitting_a_frame_warns_of_nothing_but_convergence():
    # A DataFrame's column block can be a read-only array; the statistics of
    # a transformed family must not hand it to torch as is (which warns that
    # the array is not writable).
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=50),
            "n": rng.poisson(3.0, 50),
            "flag": rng.rand(50) > 0.5,
        }
    )
    spec = [("log1p_normal", ["flag", "a"]), ("negative_binomial", ["n"])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        VAETransformer(likelihood=spec, max_iter=2, random_state=0).fit(frame)


@pytest.mark.parametrize("likelihood", ["poisson", "lognormal"])
def test_later_passes_widen_the_bounds_of_the_means(likelihood):
    # The bounds of a count's mean and of a transformed family's range come
    # from the first pass; partial_fit on larger values must not stay clipped
    # to them.
    rng = np.random.RandomState(0)
    small = rng.poisson(2.0, size=(400, 2)).astype(float) + 1.0
    large = rng.poisson(30.0, size=(400, 2)).astype(float) + 1.0
    if likelihood == "lognormal":  # beyond two spreads of log(small)
        large *= 10.0
    vae = VAETransformer(
        likelihood=likelihood, n_components=1, batch_size=32, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.partial_fit(small)
        for _ in range(40):
            vae.partial_fit(large)
    rebuilt = vae.inverse_transform(vae.transform(large))
    assert rebuilt.mean() > 0.5 * large.mean(), (rebuilt.mean(), large.mean())
    drawn = vae.sample(400, random_state=0)
    assert drawn.mean() > 0.5 * large.mean(), (drawn.mean(), large.mean())
