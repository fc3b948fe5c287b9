"""The one room that reads rows: blocks of X in, validated tensors out.

Every place that touches the rows of ``X`` takes them from here: the training
batches (in memory: one shuffled permutation per epoch; out of core: shuffled
blocks through a bounded buffer), the validation ELBO, the post-fit
diagnostics, inference and the analysis functions. Knows numpy, torch and the
array-likes that can be sliced by rows without loading them whole (``np.memmap``,
zarr arrays, h5py datasets, dask arrays); dask is imported only when it is
already loaded, so that nothing of it is imported for the others.

One chunk-size rule serves the package: :func:`chunk_rows` (and
:func:`check_chunk_rows`, the same rule behind a caller's ``batch_size``);
one iterator of row ranges: :func:`block_ranges` (and :func:`tensor_blocks`,
its tensors).
"""

import sys
from numbers import Integral

import numpy as np
import torch

# Values held by the largest intermediate tensor of one chunk (4 MiB in
# float32). At the default widths this is 16,384 rows of inference, which ran
# about 1.5x faster than 65,536 (fewer fresh pages, more cache hits) and as
# fast as 4,096 (benchmarks/bench_inference.py).
CHUNK_VALUES = 2**20
# No chunk has more rows than this, however narrow its rows.
MAX_CHUNK_ROWS = 16_384

_TORCH_DTYPES = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
}


def chunk_rows(values_per_row, max_rows=MAX_CHUNK_ROWS):
    """Rows per chunk when each row's largest intermediate holds ``values_per_row``.

    The package's one chunk-size rule: a chunk's largest tensor holds at most
    ``CHUNK_VALUES`` values, and a chunk has at most ``max_rows`` rows.

    >>> chunk_rows(64)
    16384
    >>> chunk_rows(16 * 64)
    1024
    """
    return int(max(1, min(max_rows, CHUNK_VALUES // max(1, int(values_per_row)))))


def check_chunk_rows(batch_size, values_per_row, name="batch_size"):
    """Rows per chunk of a call: ``batch_size`` as given, or :func:`chunk_rows`.

    ``batch_size=None`` means the package's rule for chunks whose largest
    tensor holds ``values_per_row`` values per row; otherwise it must be a
    positive integer (a ValueError says so).

    >>> check_chunk_rows(None, 64), check_chunk_rows(100, 64)
    (16384, 100)
    """
    if batch_size is None:
        return chunk_rows(values_per_row)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, Integral)
        or batch_size < 1
    ):
        raise ValueError(
            f"{name} must be a positive integer or None, got {batch_size!r}."
        )
    return int(batch_size)


def torch_dtype(dtype):
    """The torch dtype of numpy float32 or float64."""
    return _TORCH_DTYPES[np.dtype(dtype)]


def to_tensor(X, dtype, device):
    """A new tensor holding a copy of ``X``: never a view of the caller's memory."""
    array = np.array(X, dtype=dtype, order="C", copy=True)
    return torch.from_numpy(array).to(device)


# ------------------------------------------------------------ what X is


def is_dask_array(X):
    """Whether ``X`` is a dask array; never imports dask if it is not loaded."""
    if "dask.array" not in sys.modules:
        return False
    import dask.array as da

    return isinstance(X, da.Array)


def is_out_of_core(X):
    """Whether ``X`` is read block by block instead of converted whole.

    True for ``np.memmap``, dask arrays and any other array-like that has
    ``shape``, ``ndim``, a numpy ``dtype`` and row slicing but is not an
    in-memory ndarray (zarr arrays, h5py datasets). pandas objects, sparse
    matrices and lists are not: they go through scikit-learn's validation.
    """
    if isinstance(X, np.memmap):
        return True
    if isinstance(X, np.ndarray):
        return False
    if is_dask_array(X):
        return True
    if hasattr(X, "iloc") or hasattr(X, "tocsr") or hasattr(X, "__array_namespace__"):
        return False
    try:
        return (
            isinstance(X.shape, tuple)
            and isinstance(X.ndim, Integral)
            and isinstance(np.dtype(X.dtype), np.dtype)
            and hasattr(X, "__getitem__")
        )
    except (AttributeError, TypeError):
        return False


def natural_block_rows(X):
    """Rows of ``X``'s own storage chunks (dask, zarr, h5py), or None."""
    if is_dask_array(X):
        return None  # the chunk boundaries are irregular: see block_ranges
    chunks = getattr(X, "chunks", None)
    if isinstance(chunks, tuple) and chunks and isinstance(chunks[0], Integral):
        return int(chunks[0])
    return None


def block_ranges(X, max_rows):
    """``(start, stop)`` row ranges covering ``X``, at most ``max_rows`` each.

    They follow the storage: a dask array's chunk boundaries, whole zarr or
    h5py chunks, so that each read touches each stored chunk once.
    """
    n_rows = X.shape[0]
    max_rows = max(1, int(max_rows))
    if is_dask_array(X):
        sizes = X.chunks[0]
        if any(size != size for size in sizes):
            raise ValueError(
                "The dask array has unknown chunk sizes along its rows; call "
                "X.compute_chunk_sizes() (or X = X.rechunk(...)) first."
            )
        edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
    else:
        step = natural_block_rows(X)
        if step is None or step < 1:
            step = max_rows
        elif step < max_rows:
            step *= max_rows // step
        edges = list(range(0, n_rows, step)) + [n_rows]
    ranges = []
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        for lo in range(start, stop, max_rows):
            ranges.append((lo, min(lo + max_rows, stop)))
    return ranges


def tensor_blocks(X, max_rows, device, dtype=None):
    """Yield ``(rows, x)`` over the rows of the in-memory array ``X``, in order.

    ``rows`` is the ``slice`` of ``X`` a block covers (at most ``max_rows``
    rows, from :func:`block_ranges`), ``x`` a new tensor on ``device`` holding
    a copy of ``X[rows]`` in ``dtype`` (default ``X.dtype``): one block of
    ``X`` is held as a tensor at a time, never a view of the caller's memory.
    For arrays already validated (the analysis functions); out-of-core arrays
    go through :class:`RowSource`, which validates each block.
    """
    dtype = X.dtype if dtype is None else dtype
    for start, stop in block_ranges(X, max_rows):
        yield slice(start, stop), to_tensor(X[start:stop], dtype, device)


# ------------------------------------------------------------ reading blocks


def format_rows(start, stop):
    """``'rows 3,200,000..3,299,999'``: the rows ``start`` to ``stop - 1``."""
    return f"rows {start:,}..{stop - 1:,}"


class RowSource:
    """Validated row blocks of a 2-D array-like.

    Parameters
    ----------
    X : ndarray, np.memmap, dask array, zarr array or h5py dataset
        Already checked for ``ndim`` and the number of columns (see
        :func:`check_out_of_core`).
    dtype : {np.float32, np.float64}
        The dtype blocks are converted to.
    check_block : callable, default=None
        ``check_block(block, start, stop)``, called on each converted block
        after the finite check; raises to refuse it (the Bernoulli support
        check).
    name : str, default='X'
        Name used in error messages.
    """

    def __init__(self, X, dtype, check_block=None, name="X"):
        self.X = X
        self.dtype = np.dtype(dtype)
        self.check_block = check_block
        self.name = name
        self.n_rows, self.n_features = (int(n) for n in X.shape)
        self._dask = is_dask_array(X)

    def read(self, start, stop, out=None):
        """Rows ``start:stop`` as a validated ndarray of ``dtype``.

        ``out`` (an array of ``stop - start`` rows and ``dtype``) receives the
        block instead of a new array; the caller's data is only ever read.
        """
        block = self.X[start:stop]
        if self._dask:
            block = block.compute()
        if out is None:
            out = np.array(block, dtype=self.dtype, order="C", copy=True)
        else:
            np.copyto(out, np.asarray(block), casting="unsafe")
        self.validate(out, start, stop, raw=block)
        return out

    def validate(self, block, start, stop, raw=None):
        if block.shape != (stop - start, self.n_features):
            raise ValueError(
                f"{self.name} returned a block of shape {block.shape} for "
                f"{format_rows(start, stop)}; expected "
                f"{(stop - start, self.n_features)}."
            )
        # A finite sum means every value is finite; only then is it cheap.
        # NaN means missing (the model marginalises it); infinity is refused.
        if not np.isfinite(np.add.reduce(block, axis=None)):
            bad = np.isinf(block)
            if bad.any():
                row = start + int(np.flatnonzero(bad.any(axis=1))[0])
                if raw is not None:
                    refuse_overflow(
                        np.asarray(raw[row - start]), row, self.name, self.dtype
                    )
                column = int(np.flatnonzero(bad[row - start])[0])
                raise ValueError(
                    f"{self.name} contains a non-finite value (infinity) in "
                    f"{format_rows(start, stop)}, first at row {row:,}, column "
                    f"{column}. NaN marks a missing value; infinity is no value: "
                    "replace it (by NaN, or a finite bound) first."
                )
        if self.check_block is not None:
            self.check_block(block, start, stop)

    def blocks(self, max_rows):
        """Yield ``(start, stop, block)`` over every row, in order."""
        for start, stop in block_ranges(self.X, max_rows):
            yield start, stop, self.read(start, stop)


def refuse_overflow(raw_row, row, name, dtype):
    """Raise if the finite ``raw_row`` (row ``row``) overflows ``dtype``."""
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(raw_row).all() if raw_row.dtype.kind == "f" else True
    if not finite:
        return
    largest = float(np.max(np.abs(raw_row.astype(np.float64))))
    raise ValueError(
        f"{name} has a value too large for {np.dtype(dtype)} at row {row:,} "
        f"(largest |value| in that row {largest:.3g}; {np.dtype(dtype)} holds up "
        f"to {float(np.finfo(dtype).max):.3g}), and training runs in "
        f"{np.dtype(dtype)}. Scale X first, e.g. with StandardScaler."
    )


def check_out_of_core(X, n_features=None, name="X"):
    """Check the shape and dtype of an out-of-core array-like, reading nothing.

    Returns ``(n_rows, n_features)``. Raises a ValueError naming the problem:
    not 2-D, wrong number of columns, no rows, or a dtype that is not numeric.
    """
    kind = type(X).__name__
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D array of shape (n_samples, n_features), got a "
            f"{X.ndim}-D {kind} of shape {tuple(X.shape)}. Reshape your data, "
            "e.g. X.reshape(-1, 1) for a single feature."
        )
    dtype = np.dtype(X.dtype)
    if dtype.kind not in "biuf":
        raise ValueError(
            f"{name} has dtype {dtype}, which is not a real number type; convert "
            "it to float32 or float64 first."
        )
    n_rows, n_cols = X.shape
    if n_rows != n_rows:
        raise ValueError(
            f"The {kind} has an unknown number of rows; call X.compute_chunk_sizes() "
            "first."
        )
    if n_rows < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum "
            "of 1 is required."
        )
    if n_cols < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum "
            "of 1 is required."
        )
    if n_features is not None and n_cols != n_features:
        raise ValueError(
            f"{name} has {n_cols} features, but VAETransformer is expecting "
            f"{n_features} features as input."
        )
    return int(n_rows), int(n_cols)


# ------------------------------------------------------------ training batches


class InMemoryRows:
    """Training rows held in one tensor, shuffled by one permutation per epoch.

    Each epoch draws ``randperm`` over the rows and then standard-normal noise
    for every row, exactly as a whole-array gather would, but gathers the rows
    chunk by chunk into one reused buffer: the same batches, bitwise, without
    a second copy of the data.

    Parameters
    ----------
    X : tensor of shape (n_total, n_features)
    rows : 1-D int64 tensor or None
        The rows of ``X`` to train on (the training part of an early-stopping
        split), in increasing order; None for all.
    """

    def __init__(self, X, rows=None):
        self.X = X
        if rows is not None and X.shape[0] < 2**31:
            rows = rows.to(torch.int32)  # half the memory of the epoch's order
        self.rows = rows
        self.n_rows = X.shape[0] if rows is None else rows.shape[0]
        self.device = X.device
        self.dtype = X.dtype

    def epoch(self, batch_size, n_components, generator):
        """Yield ``(x, eps)`` chunks of whole batches, in shuffled order."""
        n = self.n_rows
        order = torch.randperm(n, generator=generator, device=self.device)
        eps = torch.randn(
            n, n_components, generator=generator, device=self.device, dtype=self.dtype
        )
        if self.rows is not None:
            order = self.rows[order]
        step = batch_size * max(1, chunk_rows(self.X.shape[1]) // batch_size)
        buffer = torch.empty(
            (min(step, n), self.X.shape[1]), dtype=self.dtype, device=self.device
        )
        for start in range(0, n, step):
            index = order[start : start + step]
            x = buffer[: index.shape[0]]
            torch.index_select(self.X, 0, index, out=x)
            yield x, eps[start : start + step]

    def chunks(self, max_rows):
        """Yield the training rows in order, ``max_rows`` at a time."""
        for start in range(0, self.n_rows, max_rows):
            if self.rows is None:
                yield self.X[start : start + max_rows]
            else:
                yield self.X[self.rows[start : start + max_rows]]


class StreamedRows:
    """Training rows read block by block through a bounded shuffle buffer.

    Each epoch visits the blocks in a new random order, fills a buffer of at
    least ``buffer_size`` rows with whole blocks, shuffles the rows inside the
    buffer and hands them out in batches; the rows of an unfinished batch wait
    for the next buffer. Unlike a full permutation, a batch only mixes rows of
    the blocks in the same buffer: rows that are near each other in ``X`` tend
    to meet in a batch more often. With ``buffer_size`` of many blocks (the
    default is 8 blocks of ``buffer_size / 8`` rows) the difference in the
    trained model is within the noise of the seed (tests/test_data.py).

    Parameters
    ----------
    source : RowSource
    ranges : list of (start, stop)
        The blocks, each at most ``buffer_size`` rows.
    buffer_size : int
        Rows that a buffer holds before it is shuffled.
    device : torch.device
    """

    def __init__(self, source, ranges, buffer_size, device):
        self.source = source
        self.ranges = list(ranges)
        self.buffer_size = int(buffer_size)
        self.device = torch.device(device)
        self.dtype = torch.float32
        self.n_rows = sum(stop - start for start, stop in self.ranges)

    def epoch(self, batch_size, n_components, generator):
        n_features = self.source.n_features
        longest = max(stop - start for start, stop in self.ranges)
        capacity = self.buffer_size + longest + batch_size
        fill = np.empty((capacity, n_features), dtype=np.float32)
        fill_t = torch.from_numpy(fill)
        shuffled = torch.empty((capacity, n_features), dtype=torch.float32)
        order = torch.randperm(len(self.ranges), generator=generator).tolist()
        n_held = 0
        for i, index in enumerate(order):
            start, stop = self.ranges[index]
            self.source.read(start, stop, out=fill[n_held : n_held + stop - start])
            n_held += stop - start
            last = i == len(order) - 1
            if n_held < self.buffer_size and not last:
                continue
            perm = torch.randperm(n_held, generator=generator)
            torch.index_select(fill_t[:n_held], 0, perm, out=shuffled[:n_held])
            n_out = n_held if last else n_held - n_held % batch_size
            if n_out > 0:
                x = shuffled[:n_out]
                eps = torch.randn(n_out, n_components, generator=generator)
                if self.device.type != "cpu":
                    x, eps = x.to(self.device), eps.to(self.device)
                yield x, eps
            n_left = n_held - n_out
            fill[:n_left] = shuffled[n_out:n_held].numpy()
            n_held = n_left

    def sample(self, max_total):
        """Evenly spaced blocks holding at most ``max_total`` rows (at least one).

        A bounded, deterministic sample across the whole of ``X``, for the
        diagnostics after fit: reading it costs one buffer, not a pass.
        """
        sizes = np.array([stop - start for start, stop in self.ranges])
        n_blocks = len(self.ranges)
        k = int(max(1, min(n_blocks, max_total // max(1, int(sizes.max())))))
        picked = np.unique(np.linspace(0, n_blocks - 1, k).round().astype(int))
        return StreamedRows(
            self.source, [self.ranges[i] for i in picked], self.buffer_size, self.device
        )

    def chunks(self, max_rows):
        """Yield the training rows in storage order, ``max_rows`` at a time."""
        for start, stop in self.ranges:
            for lo in range(start, stop, max_rows):
                hi = min(lo + max_rows, stop)
                block = self.source.read(lo, hi)
                yield torch.from_numpy(block).to(self.device)
