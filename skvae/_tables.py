"""Tables in and out: a DataFrame's dtypes read into a per-column spec and back.

The spec (a plain dict, so that it pickles and saves as JSON) says, for every
column, its family, what it was (``kind``: 'float', 'int', 'bool' or
'category'), its levels and its dtype. :func:`to_internal` turns a table into
the float matrix the model works on (numbers as they are, bools as 0/1,
categories as the code of their level) and :func:`to_frame` turns such a
matrix back into a DataFrame with the dtypes and categories that went in.
Knows numpy and pandas, nothing of torch beyond building the likelihood.
"""

import numbers

import numpy as np

from ._likelihoods import (
    Categorical,
    TableLikelihood,
    fuses,
    get_family,
)

# The 'auto' rule (documented in VAETransformer's docstring).
_AUTO_FLOAT = "calibrated_gaussian"
_AUTO_POSITIVE_FLOAT = "lognormal"
_AUTO_SYMLOG_FLOAT = "log1p_normal"
_AUTO_COUNT = "negative_binomial"
_AUTO_BOOL = "bernoulli"
_AUTO_CATEGORY = "categorical"


def is_frame(X):
    """Whether ``X`` is a pandas DataFrame (without importing pandas)."""
    return hasattr(X, "columns") and hasattr(X, "iloc") and hasattr(X, "dtypes")


def _kind(dtype):
    """'float', 'int', 'bool' or 'category' for a numpy or pandas dtype."""
    name = str(dtype).lower()
    if name in ("bool", "boolean"):
        return "bool"
    numpy_kind = getattr(dtype, "kind", None)
    if name == "category" or name.startswith("string") or name == "str":
        return "category"
    if numpy_kind in ("i", "u"):
        return "int"
    if numpy_kind == "f":
        return "float"
    if numpy_kind == "b":
        return "bool"
    if name.startswith(("int", "uint")):  # pandas' nullable Int64, UInt8, ...
        return "int"
    if name.startswith("float"):
        return "float"
    return "category"


def needs_table(likelihood, X):
    """Whether ``X`` must go through the table reading for ``likelihood``.

    A single family name on all-numeric data is today's path (the values as
    they are); 'auto', a list of pairs, a categorical family or a table with
    non-numeric columns are read column by column.
    """
    if not isinstance(likelihood, str) or likelihood in ("auto", "categorical"):
        return True
    # An array under one numeric family goes through scikit-learn's
    # validation as it is (its messages for objects that are no numbers).
    return is_frame(X) and any(_kind(dtype) == "category" for dtype in X.dtypes)


def _frame(X):
    """``X`` as a DataFrame; columns named 0, 1, ... for an array."""
    import pandas as pd

    if is_frame(X):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(
            f"Expected a 2-D table of shape (n_samples, n_features), got an "
            f"array of shape {array.shape}."
        )
    return pd.DataFrame(array)


def _column_indices(selector, frame, family):
    """Indices of the columns that ``selector`` picks, ColumnTransformer's way."""
    names = list(frame.columns)
    n = len(names)
    if callable(selector):
        selector = selector(frame)
    if isinstance(selector, str) or isinstance(selector, numbers.Integral):
        selector = [selector]
    if isinstance(selector, slice):
        return list(range(n))[selector]
    values = list(np.asarray(selector, dtype=object).ravel())
    if values and all(isinstance(v, bool | np.bool_) for v in values):
        if len(values) != n:
            raise ValueError(
                f"The boolean mask for {family!r} has {len(values)} entries; the "
                f"table has {n} columns."
            )
        return [i for i, v in enumerate(values) if v]
    out = []
    for value in values:
        if isinstance(value, str):
            if value not in names:
                raise ValueError(
                    f"Column {value!r} given for likelihood {family!r} is not a "
                    f"column of X; its columns are {names}."
                )
            out.append(names.index(value))
        elif isinstance(value, numbers.Integral):
            if not -n <= value < n:
                raise ValueError(
                    f"Column index {value} given for likelihood {family!r} is out "
                    f"of range for a table of {n} columns."
                )
            out.append(int(value) % n)
        else:
            raise ValueError(
                f"Columns for likelihood {family!r} must be names, integer "
                "indices, a boolean mask, a slice or a callable such as "
                f"make_column_selector; got {value!r}."
            )
    return out


def _auto_family(kind, values):
    """The family that 'auto' picks for a column of ``kind`` and ``values``."""
    if kind == "category":
        return _AUTO_CATEGORY
    if kind == "bool":
        return _AUTO_BOOL
    numbers_ = values[np.isfinite(values)]
    if kind == "int":
        if numbers_.size and numbers_.min() >= 0 and _count_is_likelier(numbers_):
            return _AUTO_COUNT
        return _AUTO_FLOAT
    if numbers_.size < 2:
        return _AUTO_FLOAT
    # The likeliest of three Gaussians, each maximised on the column: on x, on
    # log x (positive columns) and on sign(x) log(1 + |x|), each with the
    # Jacobian of its transform, so that the three are densities of x.
    candidates = {_AUTO_FLOAT: -np.log(numbers_.std() + 1e-300)}
    symlog = np.sign(numbers_) * np.log1p(np.abs(numbers_))
    candidates[_AUTO_SYMLOG_FLOAT] = -np.log(symlog.std() + 1e-300) - np.mean(
        np.log1p(np.abs(numbers_))
    )
    if numbers_.min() > 0:
        logged = np.log(numbers_)
        candidates[_AUTO_POSITIVE_FLOAT] = (
            -np.log(logged.std() + 1e-300) - logged.mean()
        )
    return max(candidates, key=candidates.get)


def _count_is_likelier(values):
    """Whether a count model fits non-negative integers better than a Gaussian.

    The maximised mean log-likelihood of a negative binomial (moments; a
    Poisson where the counts are not overdispersed) against that of a
    Gaussian density on the integers. A column such as a year (large values,
    small spread) is no count: a Gaussian fits it by far.
    """
    from scipy.special import gammaln, xlogy

    # The log-pmfs and the log-density written out (scipy.stats' methods
    # cost more in argument checks than in arithmetic, once per column).
    mean, var = values.mean(), values.var()
    log_factorial = gammaln(values + 1.0).mean()
    if var > mean:
        theta = mean**2 / (var - mean)
        count = (
            gammaln(values + theta).mean()
            - gammaln(theta)
            - log_factorial
            + theta * np.log(theta / (theta + mean))
            + mean * np.log(mean / (theta + mean))
        )
    else:
        rate = max(mean, 1e-12)
        count = xlogy(values, rate).mean() - rate - log_factorial
    sd = max(np.sqrt(var), 1e-12)
    gaussian = -0.5 * var / sd**2 - np.log(sd) - 0.5 * np.log(2.0 * np.pi)
    return count >= gaussian


def _numeric(frame, i, family):
    """Column ``i`` as float64; strings in it get an error that names them."""
    import pandas as pd

    column = frame.iloc[:, i]
    if _kind(column.dtype) == "bool":
        return column.astype("float64").to_numpy()
    if _kind(column.dtype) in ("int", "float"):
        return column.to_numpy(dtype="float64", na_value=np.nan)
    converted = pd.to_numeric(column, errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )
    bad = np.flatnonzero(np.isnan(converted) & ~column.isna().to_numpy())
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"Column {frame.columns[i]!r} (likelihood {family!r}) holds "
            f"{column.iloc[row]!r} at row {row}, which is not a number. Declare "
            "the column categorical, e.g. likelihood=[('categorical', "
            f"[{frame.columns[i]!r}]), ...] or likelihood='auto' with a "
            "category dtype, or convert it to numbers first."
        )
    return converted


def _levels(column):
    """The levels of ``column`` seen in it, in the dtype's or sorted order."""
    import pandas as pd

    observed = column.dropna()
    if isinstance(column.dtype, pd.CategoricalDtype):
        seen = set(observed.unique())
        return [level for level in column.cat.categories if level in seen]
    unique = list(pd.unique(observed))
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=lambda v: (type(v).__name__, str(v)))


def _plain(value):
    """A level as a plain Python value (JSON- and pickle-friendly)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_spec(likelihood, X):
    import pandas as pd

    """The table spec of ``X`` under the ``likelihood`` parameter (at fit).

    Returns a dict: ``columns`` (names), ``families``, ``kinds``, ``levels``
    (lists, None for non-categorical columns), ``dtypes`` (strings),
    ``ordered`` (for category dtypes), ``standardize`` (real-valued columns
    standardised: for 'auto' and lists, not for a single name) and ``frame``
    (whether ``X`` was a DataFrame: then tables come back out).
    """
    frame = _frame(X)
    n = frame.shape[1]
    kinds = [_kind(dtype) for dtype in frame.dtypes]
    families = [None] * n
    if isinstance(likelihood, str):
        if likelihood != "auto":
            get_family(likelihood)
        families = [likelihood] * n
    else:
        pairs = list(likelihood)
        for pair in pairs:
            if not (isinstance(pair, tuple | list) and len(pair) == 2):
                raise ValueError(
                    "likelihood must be a family name, 'auto' or a list of "
                    f"(family, columns) pairs; got the item {pair!r}."
                )
            name, selector = pair
            if name != "auto":
                get_family(name)
            for i in _column_indices(selector, frame, name):
                if families[i] is not None:
                    raise ValueError(
                        f"Column {frame.columns[i]!r} is given two likelihoods "
                        f"({families[i]!r} and {name!r}); give each column one."
                    )
                families[i] = name
        missing = [frame.columns[i] for i in range(n) if families[i] is None]
        if missing:
            raise ValueError(
                f"The likelihood list leaves columns {missing} without a family. "
                "Give every column one, e.g. add ('auto', [...]) for the rest."
            )
    levels = [None] * n
    ordered = [False] * n
    categories = [None] * n
    for i in range(n):
        column = frame.iloc[:, i]
        if families[i] == "auto":
            values = (
                _numeric(frame, i, "auto") if kinds[i] != "category" else None
            )
            families[i] = _auto_family(kinds[i], values)
        if get_family(families[i]) is Categorical:
            levels[i] = [_plain(v) for v in _levels(column)]
            if not levels[i]:
                raise ValueError(
                    f"Column {frame.columns[i]!r} (likelihood 'categorical') has "
                    "no observed level."
                )
            ordered[i] = bool(getattr(column.dtype, "ordered", False))
            if isinstance(column.dtype, pd.CategoricalDtype):
                # The dtype's own categories, unused ones included, come back
                # out; the model's levels are those seen.
                categories[i] = [_plain(v) for v in column.cat.categories]
    return {
        "columns": [_plain(c) for c in frame.columns],
        "families": families,
        "kinds": kinds,
        "levels": levels,
        "ordered": ordered,
        "categories": categories,
        "dtypes": [str(dtype) for dtype in frame.dtypes],
        "standardize": not isinstance(likelihood, str) or likelihood == "auto",
        "frame": is_frame(X),
    }


def _codes(column, levels):
    """The code of each value of ``column`` among ``levels``; -1 where none."""
    import pandas as pd

    lookup = {level: code for code, level in enumerate(levels)}
    if isinstance(column.dtype, pd.CategoricalDtype):
        # Vectorised: the column's own category codes, mapped once per category.
        table = np.asarray(
            [lookup.get(_plain(c), -1) for c in column.cat.categories] + [-1],
            dtype=np.int64,
        )
        return table[column.cat.codes.to_numpy()]  # code -1 (NaN) -> the last
    return np.asarray(
        [lookup.get(value, -1) for value in column.astype(object)], dtype=np.int64
    )


def to_internal(spec, X):
    """The float64 matrix of ``X`` under ``spec``; a DataFrame in, one out.

    Categories become the code of their level; a level not seen in fit raises
    (as ``OneHotEncoder(handle_unknown='error')``), naming the column, the row
    and the value. Missing values stay NaN.
    """
    import pandas as pd

    frame = _frame(X)
    if frame.shape[1] != len(spec["families"]):
        # validate_data gives the usual message for a wrong width.
        return X
    out = np.empty(frame.shape, dtype=np.float64)
    for i, family in enumerate(spec["families"]):
        levels = spec["levels"][i]
        if levels is None:
            out[:, i] = _numeric(frame, i, family)
            continue
        column = frame.iloc[:, i]
        codes = _codes(column, levels)
        unknown = np.flatnonzero((codes < 0) & ~column.isna().to_numpy())
        if unknown.size:
            row = int(unknown[0])
            raise ValueError(
                f"Column {frame.columns[i]!r} (likelihood 'categorical') holds "
                f"{column.iloc[row]!r} at row {row}, a level not seen in fit "
                f"(levels: {levels}). Unknown levels are an error, as in "
                "OneHotEncoder(handle_unknown='error'): refit on data that has "
                "the level, or map it to a known one."
            )
        values = codes.astype(np.float64)
        values[codes < 0] = np.nan
        out[:, i] = values
    if is_frame(X):
        return pd.DataFrame(out, columns=X.columns, index=X.index)
    return out


def build_likelihood(spec, X_internal, mask_inputs=False):
    """The :class:`TableLikelihood` of ``spec``, statistics from ``X_internal``.

    The columns of one family share a block (categorical columns too, each
    with its own number of levels), so that a batch costs one call per
    family, not per column.
    """
    groups = {}
    blocks = []
    for i, name in enumerate(spec["families"]):
        groups.setdefault(name, []).append(i)
    for name, columns in groups.items():
        family = get_family(name)
        if family is Categorical:
            levels = [len(spec["levels"][i]) for i in columns]
            blocks.append((family(len(columns), n_levels=levels), columns))
        else:
            blocks.append(
                (family(len(columns), standardize=spec["standardize"]), columns)
            )
    # Gaussian-type blocks with a learned scale side by side, so that the
    # training step computes them as one (see skvae._likelihoods.fuses).
    blocks.sort(key=lambda block: (not fuses(block[0]), block[1][0]))
    likelihood = TableLikelihood(
        blocks, len(spec["families"]), mask_inputs=mask_inputs
    )
    likelihood.fit_statistics(np.asarray(X_internal, dtype=np.float64))
    return likelihood


def pairs(spec):
    """The spec as ``[(family, [columns])]``: what ``likelihood=`` accepts."""
    out = {}
    for column, family in zip(spec["columns"], spec["families"], strict=True):
        out.setdefault(family, []).append(column)
    return list(out.items())


def to_frame(spec, values, index=None):
    """A DataFrame of internal ``values`` with the columns and dtypes of fit.

    Categories come back as their levels (with the category dtype, ordered
    as in fit), integer columns as integers, bools as bool.
    """
    import pandas as pd

    data = {}
    for i, column in enumerate(spec["columns"]):
        values_i = np.asarray(values[:, i], dtype=np.float64)
        kind, dtype, levels = spec["kinds"][i], spec["dtypes"][i], spec["levels"][i]
        if levels is not None:
            codes = np.clip(np.rint(np.nan_to_num(values_i)), 0, len(levels) - 1)
            chosen = np.asarray(levels, dtype=object)[codes.astype(int)]
            categories = spec.get("categories", [None] * len(spec["columns"]))[i]
            if dtype == "category":
                data[column] = pd.Categorical(
                    chosen,
                    categories=levels if categories is None else categories,
                    ordered=spec["ordered"][i],
                )
            elif dtype == "object":
                data[column] = pd.Series(chosen, dtype=object)
            else:
                data[column] = pd.Series(chosen, dtype=object).astype(dtype).array
        elif kind == "bool":
            data[column] = pd.Series(np.rint(values_i) > 0).astype(dtype).array
        elif kind == "int":
            data[column] = pd.Series(np.rint(values_i)).astype(dtype).array
        else:
            data[column] = pd.Series(values_i).astype(dtype).array
    return pd.DataFrame(data, index=index)
