"""Observation models: the one place where a family of ``p(x | z)`` lives.

A family (:class:`Family` and its subclasses) models a block of columns: it
declares how many decoder outputs and encoder inputs each column takes, the
per-element negative log-likelihood in nats in the data's own units (with a
mask of observed cells), the mean and a sampler, its support check, how its
columns are encoded for the encoder, its learned parameters, and, where one
exists, the closed-form gradient that the hand-written training step uses.
:class:`TableLikelihood` puts the blocks of a table side by side; the
network, the training step, inference and persistence only ever talk to it.
Nothing outside this module branches on a family's name.

The families see the *internal* values of a column (see :mod:`skvae._tables`):
numbers as they are, counts as non-negative integers, bools as 0/1 and
categories as the integer code of their level (0 .. k-1), all as floats.
Pure torch, apart from the support checks and samplers, which take numpy.
"""

import math
import numbers
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Floor of a learned log standard deviation: keeps the density bounded when a
# column is reconstructed (almost) exactly.
MIN_LOG_SCALE = math.log(1e-3)
# Slack of the [0, 1] check of Bernoulli data (float32 resolution near 1).
_SUPPORT_TOL = 1e-7
# Bound of a count model's log mean: exp(30) ~ 1e13 counts, far beyond any
# count a float32 table holds exactly, and finite in float32 arithmetic.
_MAX_LOG_RATE = 30.0


class UnknownFamilyError(ValueError):
    """A likelihood name that no family answers to."""


def family_names():
    """The names :func:`get_family` knows, sorted."""
    return sorted(FAMILIES)


def get_family(name):
    """The :class:`Family` subclass called ``name``; the one error otherwise."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise UnknownFamilyError(
            f"Unknown likelihood {name!r}; expected one of {family_names()}, "
            "'auto' (read from the data's dtypes) or a list of (family, columns) "
            "pairs."
        ) from None


class Family(nn.Module):
    """One observation family over a block of ``n_columns`` columns.

    Subclasses set the class attributes and override what differs. The
    defaults describe a one-output, one-input family whose encoder input is
    the value itself.

    Parameters
    ----------
    n_columns : int
        Columns in the block.
    n_levels : int or None
        Levels of a categorical block (the same for every column: one block
        per categorical column).
    standardize : bool
        Whether real-valued columns are standardised with statistics of the
        training data (:meth:`fit_statistics`) on the way into the encoder and
        out of the decoder. The likelihood stays in the data's own units.
    """

    name = None
    # Whether nll_and_grad has a closed form (the fast training step uses it).
    closed_form = False
    # Whether the family's mean is read as a level (categorical) or a number.
    discrete = False
    integer = False

    def __init__(self, n_columns, n_levels=None, standardize=False):
        super().__init__()
        self.n_columns = int(n_columns)
        self.n_levels = n_levels
        self.standardize = bool(standardize)

    # -- layout
    @property
    def n_outputs(self):
        """Decoder outputs of the block: one per column unless overridden."""
        return self.n_columns

    @property
    def n_inputs(self):
        """Encoder inputs of the block: one per column unless overridden."""
        return self.n_columns

    def config(self):
        """What rebuilds this family (without its statistics and weights)."""
        return {
            "family": self.name,
            "n_columns": self.n_columns,
            "n_levels": self.n_levels,
            "standardize": self.standardize,
        }

    def fit_statistics(self, x):
        """Set the fixed statistics of the encoding from training values ``x``."""

    def extend_range(self, x):
        """Widen the bounds of the means and draws to cover training values ``x``.

        For a later pass of training (``partial_fit``, ``warm_start``): the
        encoding's statistics stay those of the first pass, but a bound set
        from it must not clip values the model is now trained on.
        """

    def encode(self, x):
        """Encoder input of the block's values ``x`` (n, n_columns)."""
        return x

    @property
    def identity_encoding(self):
        """Whether :meth:`encode` returns its input unchanged."""
        return type(self).encode is Family.encode

    def row_nll_(self, decoded, x):
        """``nll(decoded, x).sum(dim=-1)``; may overwrite ``decoded``.

        ``decoded`` of shape ``(..., n, n_outputs)`` and ``x`` of shape
        ``(n, n_columns)`` broadcast. Families override it with an in-place
        form that allocates nothing of the size of ``decoded``.
        """
        target = x.expand(*decoded.shape[:-1], x.shape[-1])
        return self.nll(decoded, target).sum(dim=-1)

    # -- the likelihood
    def nll(self, decoded, x, mask=None):
        """Per-element ``-log p(x | decoded)`` in nats, shape ``x.shape``.

        ``mask`` (bool, the shape of ``x``, True where observed): the
        negative log-likelihood of unobserved cells is zero, whatever their
        value (NaN included).
        """
        raise NotImplementedError

    def nll_and_grad(self, decoded, x, weight, encoded=None):
        """``nll(decoded, x).sum()``, and ``weight`` times its gradient.

        Returns ``(total, grad_decoded, {parameter: gradient})``; overwrites
        nothing the caller still needs. Only for ``closed_form`` families.
        ``encoded``, if given, is ``encode(x)``, which a family may reuse
        instead of computing it again.
        """
        raise NotImplementedError

    def prepare(self, x):
        """What the training step needs of complete values ``x``, once per chunk.

        Returns ``(encoder input, target, row constant)``: the target is what
        :meth:`nll_and_grad_prepared` takes instead of ``x``, and the row
        constant (shape ``(n,)``, or None for none) the part of each row's
        negative log-likelihood that depends on ``x`` alone (a Jacobian, a
        ``log x!``). The step computes these for a whole chunk of batches at
        once rather than batch by batch.
        """
        return self.encode(x), x, None

    def nll_and_grad_prepared(self, decoded, target, weight):
        """:meth:`nll_and_grad` on a :meth:`prepare` target, less the row constant."""
        return self.nll_and_grad(decoded, target, weight)

    def mean(self, decoded):
        """Mean of ``p(x | z)`` per column, in the data's units (n, n_columns)."""
        raise NotImplementedError

    def mean_features(self, decoded):
        """The decoder mean as the analysis functions read it (numbers)."""
        return self.mean(decoded)

    def sample(self, decoded, rng):
        """Draws of ``x ~ p(x | z)``: ``decoded`` a float64 numpy array."""
        raise NotImplementedError

    def check_support(self, x):
        """Row and column (within the block) of the first value out of support.

        ``x`` is a numpy block; returns None when every value is in support.
        """
        return None

    support = "real numbers"
    support_hint = ""
    # A value in the support, which missing cells (NaN) stand in for when
    # the support is checked: a missing cell is never out of support.
    support_fill = 0.0

    # -- helpers of the standardised families
    def _apply_mask(self, nll, mask):
        if mask is None:
            return nll
        return torch.where(mask, nll, torch.zeros((), dtype=nll.dtype))


def _statistics_tensor(x):
    """Training values ``x`` (numpy) as a float64 tensor for the statistics.

    A copy only where ``x`` is not a writable float64 array: torch warns on a
    read-only array (a DataFrame's column block can be one).
    """
    return torch.from_numpy(np.require(x, dtype=np.float64, requirements="W"))


def _column_nanmean(values):
    """``torch.nanmean(values, dim=0)``, at ``mean``'s speed without a NaN.

    Column reductions of ``nanmean`` are several times slower than ``mean``'s,
    and a training table without holes would pay for them at every fit.
    """
    if bool(torch.isnan(values).any()):
        return torch.nanmean(values, dim=0)
    return values.mean(dim=0)


def _first_bad(bad):
    """(row, column) of the first True of a 2-D boolean array, or None."""
    if not bad.any():
        return None
    row, column = np.argwhere(bad)[0]
    return int(row), int(column)


def _gaussian_nll_and_grad(diff, log_scale, weight):
    """Gaussian NLL of residuals ``diff`` (overwritten), less its constants.

    ``sum(diff**2 / (2 sigma**2)) + n * sum(log sigma)`` with ``log sigma`` the
    clamped ``log_scale`` (None: sigma = 1), ``weight`` times its gradient in
    ``diff``, and that of ``log_scale`` (None without one). Shared by a
    Gaussian-type family and by adjacent such families computed as one.
    """
    if log_scale is None:
        flat = diff.reshape(-1)
        return 0.5 * torch.dot(flat, flat), diff.mul_(weight), None
    # The training step runs this under no_grad (HandBackprop).
    if log_scale.dtype != diff.dtype:
        log_scale = log_scale.to(diff.dtype)
    n_rows = diff.shape[0]
    clamped = torch.clamp(log_scale, min=MIN_LOG_SCALE)
    precision = torch.exp(-2.0 * clamped)
    weighted = torch.square(diff).sum(dim=0) * precision
    total = 0.5 * weighted.sum() + n_rows * clamped.sum()
    grad_log_scale = (n_rows - weighted).mul_(weight)
    # Below its floor the clamped log-scale is constant: no gradient.
    grad_log_scale.masked_fill_(log_scale < MIN_LOG_SCALE, 0.0)
    return total, diff.mul_(precision * weight), grad_log_scale


class _Located(Family):
    """Gaussian families: the decoder gives the mean, possibly standardised."""

    learns_scale = False
    # Whether the density carries the Jacobian of a transform (log x, ...).
    has_jacobian = False

    def __init__(self, n_columns, n_levels=None, standardize=False):
        super().__init__(n_columns, n_levels, standardize)
        if self.standardize:
            self.register_buffer("loc", torch.zeros(n_columns))
            self.register_buffer("spread", torch.ones(n_columns))
        if self.learns_scale:
            self.log_scale = nn.Parameter(torch.zeros(n_columns))

    @property
    def identity_encoding(self):
        return not self.standardize

    def _transform(self, x):
        """Values on the scale the decoder predicts (log for lognormal)."""
        return x

    def row_nll_(self, decoded, x):
        if self.standardize:
            return super().row_nll_(decoded, x)
        n_features = decoded.shape[-1]
        squared = decoded.sub_(x).square_()
        log_sigma = self._log_sigma(decoded.dtype)
        if log_sigma is not None:
            weighted = torch.matmul(squared, torch.exp(-2.0 * log_sigma))
            return weighted.mul_(0.5).add_(
                log_sigma.sum() + n_features * _HALF_LOG_2PI
            )
        return squared.sum(dim=-1).mul_(0.5).add_(n_features * _HALF_LOG_2PI)

    def _log_jacobian(self, x):
        """``log |d transformed / d x|`` per element, or None when zero."""
        return None

    def fit_statistics(self, x):
        if not self.standardize:
            return
        values = self._transform(_statistics_tensor(x))
        loc = _column_nanmean(values)
        spread = torch.sqrt(_column_nanmean(torch.square(values - loc)))
        spread = torch.where(spread > 0, spread, torch.ones_like(spread))
        loc = torch.where(torch.isfinite(loc), loc, torch.zeros_like(loc))
        self.loc.copy_(loc)
        self.spread.copy_(spread)
        if hasattr(self, "low"):
            low, high = self._range(values, loc)
            self.low.copy_(low)
            self.high.copy_(high)

    def _range(self, values, fallback):
        """The transformed values' range widened by two spreads each way."""
        missing = torch.isnan(values)
        low = torch.where(missing, math.inf, values).amin(dim=0)
        high = torch.where(missing, -math.inf, values).amax(dim=0)
        low = torch.where(torch.isfinite(low), low, fallback)
        high = torch.where(torch.isfinite(high), high, fallback)
        spread = self.spread.to(values.dtype)
        return low - 2.0 * spread, high + 2.0 * spread

    def extend_range(self, x):
        if not hasattr(self, "low"):
            return
        values = self._transform(_statistics_tensor(x))
        low, high = self._range(values, self.loc.to(values.dtype))
        self.low.copy_(torch.minimum(self.low, low.to(self.low.dtype)))
        self.high.copy_(torch.maximum(self.high, high.to(self.high.dtype)))

    def encode(self, x):
        if not self.standardize:
            return x
        return (self._transform(x) - self.loc.to(x.dtype)) / self.spread.to(x.dtype)

    def _standard(self, x):
        """``x`` in the units of the decoder's output, and the log-Jacobian."""
        if not self.standardize:
            return x, None
        return self.encode(x), torch.log(self.spread.to(x.dtype))

    def _log_sigma(self, dtype):
        if not self.learns_scale:
            return None
        return torch.clamp(self.log_scale.to(dtype), min=MIN_LOG_SCALE)

    def nll(self, decoded, x, mask=None):
        if mask is not None:
            # A missing cell's value must not reach the gradient as NaN.
            x = torch.where(mask, x, torch.ones((), dtype=x.dtype))
        target, log_spread = self._standard(x)
        squared = torch.square(target - decoded)
        log_sigma = self._log_sigma(decoded.dtype)
        if log_sigma is None:
            out = 0.5 * squared + _HALF_LOG_2PI
        else:
            out = 0.5 * squared * torch.exp(-2.0 * log_sigma) + log_sigma
            out = out + _HALF_LOG_2PI
        if log_spread is not None:
            out = out + log_spread
        jacobian = self._log_jacobian(x)
        if jacobian is not None:
            out = out + jacobian
        return self._apply_mask(out, mask)

    closed_form = True

    def nll_and_grad(self, decoded, x, weight, encoded=None):
        # The hot path of the training step: no call it can do without.
        if not self.standardize:
            diff = decoded - x
        else:
            target = self.encode(x) if encoded is None else encoded
            diff = decoded - target
        n_rows = diff.shape[0]
        constant = diff.numel() * _HALF_LOG_2PI
        if self.standardize:
            constant = constant + n_rows * torch.log(self.spread.to(x.dtype)).sum()
            if self.has_jacobian:
                constant = constant + self._log_jacobian(x).sum()
        log_scale = self.log_scale if self.learns_scale else None
        total, grad, grad_log_scale = _gaussian_nll_and_grad(diff, log_scale, weight)
        if log_scale is None:
            return total + constant, grad, {}
        return total + constant, grad, {self.log_scale: grad_log_scale}

    def prepare(self, x):
        target = self.encode(x)
        per_row = self.n_columns * _HALF_LOG_2PI
        if self.standardize:
            per_row += float(torch.log(self.spread.double()).sum())
        constant = torch.full((x.shape[0],), per_row, dtype=x.dtype, device=x.device)
        if self.has_jacobian:
            constant += self._log_jacobian(x).sum(dim=-1)
        return target, target, constant

    def nll_and_grad_prepared(self, decoded, target, weight):
        log_scale = self.log_scale if self.learns_scale else None
        total, grad, grad_log_scale = _gaussian_nll_and_grad(
            decoded - target, log_scale, weight
        )
        if log_scale is None:
            return total, grad, {}
        return total, grad, {self.log_scale: grad_log_scale}

    def _location(self, decoded):
        if not self.standardize:
            return decoded
        return self.loc.to(decoded.dtype) + self.spread.to(decoded.dtype) * decoded

    def mean(self, decoded):
        return self._location(decoded)

    def _sigma_numpy(self):
        """Standard deviation of the noise on the decoder's scale (numpy)."""
        sigma = np.ones(self.n_columns)
        if self.learns_scale:
            sigma = np.exp(np.maximum(self.log_scale.detach().cpu().double().numpy(),
                                      MIN_LOG_SCALE))
        if self.standardize:
            sigma = sigma * self.spread.cpu().double().numpy()
        return sigma

    def sample(self, decoded, rng):
        location = self._location(torch.as_tensor(decoded)).numpy()
        return location + self._sigma_numpy() * rng.standard_normal(location.shape)


class Gaussian(_Located):
    """Unit-variance Gaussian: squared error, for standardised data."""

    name = "gaussian"


class CalibratedGaussian(_Located):
    """Gaussian with one learned standard deviation per column (Rybkin et al.)."""

    name = "calibrated_gaussian"
    learns_scale = True


class LogNormal(_Located):
    """``log x`` Gaussian with a learned scale: positive, heavy-tailed values.

    The encoder sees ``log x`` standardised; the density carries the
    Jacobian ``-log x``, so the likelihood is of ``x`` itself, in nats.
    """

    name = "lognormal"
    learns_scale = True
    has_jacobian = True
    support = "positive numbers"
    support_fill = 1.0
    support_hint = (
        "Use likelihood='calibrated_gaussian' for a column with zeros or "
        "negative values."
    )

    def __init__(self, n_columns, n_levels=None, standardize=True):
        # The log scale is standardised whatever the spec says: log-values are
        # never on the scale of a network's initial outputs by chance.
        super().__init__(n_columns, n_levels, True)
        _register_range(self, n_columns)

    def _transform(self, x):
        return torch.log(x)

    def _log_jacobian(self, x):
        return torch.log(x)

    def mean(self, decoded):
        log_location = self._location(decoded)
        sigma = torch.exp(self._log_sigma(decoded.dtype)) * self.spread.to(
            decoded.dtype
        )
        log_mean = log_location + 0.5 * torch.square(sigma)
        return torch.exp(torch.minimum(log_mean, self.high.to(decoded.dtype)))

    def sample(self, decoded, rng):
        log_values = np.clip(
            super().sample(decoded, rng),
            self.low.cpu().double().numpy(),
            self.high.cpu().double().numpy(),
        )
        return np.exp(log_values)

    def check_support(self, x):
        return _first_bad(~(x > 0))


class Log1pNormal(_Located):
    """Gaussian on ``sign(x) log(1 + |x|)`` with a learned scale.

    For heavy-tailed values that hold zeros or negative values (byte counts,
    durations, skewness), where ``'lognormal'`` cannot go: the transform is
    the identity near 0 and a logarithm in the tails. The encoder sees the
    transformed values standardised; the density carries the Jacobian
    ``-log(1 + |x|)``, so the likelihood is of ``x`` itself, in nats. The mean
    is computed by Gauss-Hermite quadrature (20 nodes).
    """

    name = "log1p_normal"
    learns_scale = True
    has_jacobian = True

    def __init__(self, n_columns, n_levels=None, standardize=True):
        super().__init__(n_columns, n_levels, True)
        _register_range(self, n_columns)

    @staticmethod
    def _forward_transform(x):
        return torch.sign(x) * torch.log1p(torch.abs(x))

    @staticmethod
    def _inverse_transform(y):
        return torch.sign(y) * torch.expm1(torch.abs(y))

    def _transform(self, x):
        return self._forward_transform(x)

    def _log_jacobian(self, x):
        return torch.log1p(torch.abs(x))

    def mean(self, decoded):
        location = self._location(decoded)
        sigma = torch.exp(self._log_sigma(decoded.dtype)) * self.spread.to(
            decoded.dtype
        )
        nodes, weights = np.polynomial.hermite_e.hermegauss(20)
        nodes = torch.as_tensor(nodes, dtype=decoded.dtype, device=decoded.device)
        weights = torch.as_tensor(
            weights / weights.sum(), dtype=decoded.dtype, device=decoded.device
        )
        y = location.unsqueeze(-1) + sigma.unsqueeze(-1) * nodes
        y = torch.clamp(
            y,
            self.low.to(y.dtype).unsqueeze(-1),
            self.high.to(y.dtype).unsqueeze(-1),
        )
        return (self._inverse_transform(y) * weights).sum(dim=-1)

    def sample(self, decoded, rng):
        values = np.clip(
            super().sample(decoded, rng),
            self.low.cpu().double().numpy(),
            self.high.cpu().double().numpy(),
        )
        return np.sign(values) * np.expm1(np.abs(values))


def _register_range(family, n_columns):
    """The range of a transformed family's means and draws, set at fit.

    The training range of the transformed values, widened by two standard
    deviations each way: an exponential back-transform extrapolates
    explosively (a held-out imputation came out 225 standard deviations
    from the data, and float32 overflowed to NaN).
    """
    family.register_buffer("low", torch.full((n_columns,), -_MAX_LOG_RATE))
    family.register_buffer("high", torch.full((n_columns,), _MAX_LOG_RATE))


class Bernoulli(Family):
    """Bernoulli with logits: binary cross-entropy, for data in [0, 1]."""

    name = "bernoulli"
    closed_form = True
    support = "values in [0, 1]"
    support_hint = (
        "Scale the data first, e.g. make_pipeline(MinMaxScaler(clip=True), "
        "VAETransformer(...)), or use likelihood='gaussian' for real-valued data."
    )

    def nll(self, decoded, x, mask=None):
        if mask is not None:
            x = torch.where(mask, x, torch.zeros((), dtype=x.dtype))
        out = F.binary_cross_entropy_with_logits(decoded, x, reduction="none")
        return self._apply_mask(out, mask)

    def nll_and_grad(self, decoded, x, weight, encoded=None):
        total = F.binary_cross_entropy_with_logits(decoded, x, reduction="sum")
        return total, torch.sigmoid(decoded).sub_(x).mul_(weight), {}

    def row_nll_(self, decoded, x):
        # softplus(d) - d * x, with softplus(d) = relu(d) + log1p(exp(-|d|)).
        dx = torch.einsum("...nf,nf->...n", decoded, x)
        log_term = torch.abs(decoded).neg_().exp_().log1p_().sum(dim=-1)
        return decoded.relu_().sum(dim=-1).add_(log_term).sub_(dx)

    def mean(self, decoded):
        return torch.sigmoid(decoded)

    def sample(self, decoded, rng):
        probability = 1.0 / (1.0 + np.exp(-decoded))
        return (rng.uniform(size=decoded.shape) < probability).astype(np.float64)

    def check_support(self, x):
        return _first_bad(~((x >= -_SUPPORT_TOL) & (x <= 1.0 + _SUPPORT_TOL)))


class Categorical(Family):
    """Softmax over the levels seen in fit, for one or more columns.

    Column ``j`` has ``n_levels[j]`` logits (decoder outputs) and as many
    one-hot inputs; its internal value is the level's code (0 ..
    ``n_levels[j] - 1``). The mean is the most probable level (what
    ``inverse_transform`` returns); :meth:`mean_features` gives the
    probability of every level. The columns of a block are computed together
    (their logits padded to the widest column): one call per batch, however
    many categorical columns a table has.
    """

    name = "categorical"
    closed_form = True
    discrete = True
    support = "codes of levels seen in fit"
    support_hint = "Pass the column as a category or string column."

    def __init__(self, n_columns=1, n_levels=2, standardize=False):
        if isinstance(n_levels, numbers.Integral):
            n_levels = [int(n_levels)] * int(n_columns)
        n_levels = [int(k) for k in n_levels]
        if len(n_levels) != n_columns or min(n_levels, default=1) < 1:
            raise ValueError(
                f"a categorical block of {n_columns} columns needs one positive "
                f"number of levels per column, got {n_levels}"
            )
        super().__init__(n_columns, n_levels[0] if n_columns == 1 else n_levels,
                         standardize)
        self.levels_per_column = n_levels
        width = max(n_levels, default=1)
        offsets = np.concatenate([[0], np.cumsum(n_levels)[:-1]]).astype(np.int64)
        total = int(sum(n_levels))
        # Position of (column, level) in the padded (columns, width) layout,
        # in the flat outputs; padding points one past the end (-inf there).
        padded = np.full((n_columns, width), total, dtype=np.int64)
        for j, (offset, k) in enumerate(zip(offsets, n_levels, strict=True)):
            padded[j, :k] = offset + np.arange(k)
        valid = (padded < total).ravel()
        self._width = width
        self._total = total
        self._offsets = torch.from_numpy(offsets)
        self._padded = torch.from_numpy(padded.ravel())
        self._valid = torch.from_numpy(np.flatnonzero(valid))
        self._n_levels = torch.tensor(n_levels)

    @property
    def n_outputs(self):
        return self._total

    @property
    def n_inputs(self):
        return self._total

    def config(self):
        config = super().config()
        config["n_levels"] = list(self.levels_per_column)
        return config

    def _pad(self, decoded):
        """Logits ``(..., total)`` as ``(..., n_columns, width)``, -inf padded."""
        shape = decoded.shape[:-1]
        if self._total == self.n_columns * self._width:  # nothing to pad
            return decoded.reshape(*shape, self.n_columns, self._width)
        extended = torch.cat(
            [decoded, decoded.new_full((*shape, 1), -math.inf)], dim=-1
        )
        index = self._padded.to(decoded.device)
        return extended.index_select(-1, index).view(
            *shape, self.n_columns, self._width
        )

    def _unpad(self, padded):
        shape = padded.shape[:-2]
        if self._total == self.n_columns * self._width:
            return padded.reshape(*shape, self._total)
        flat = padded.reshape(*shape, self.n_columns * self._width)
        return flat.index_select(-1, self._valid.to(padded.device))

    def encode(self, x):
        codes = torch.nan_to_num(x, nan=-1.0).long()
        observed = codes >= 0
        positions = codes + self._offsets.to(x.device)
        out = torch.zeros(*x.shape[:-1], self._total + 1, dtype=x.dtype,
                          device=x.device)
        # A missing cell writes into the spare last slot, which is dropped.
        positions = torch.where(observed, positions, self._total)
        out.scatter_(-1, positions, 1.0)
        return out[..., : self._total]

    def _codes(self, x):
        codes = torch.nan_to_num(x, nan=0.0).long()
        return torch.minimum(codes.clamp_(min=0), self._n_levels.to(x.device) - 1)

    def nll(self, decoded, x, mask=None):
        log_probability = torch.log_softmax(self._pad(decoded), dim=-1)
        chosen = torch.gather(log_probability, -1, self._codes(x).unsqueeze(-1))
        return self._apply_mask(-chosen[..., 0], mask)

    def nll_and_grad(self, decoded, x, weight, encoded=None):
        return self.nll_and_grad_prepared(decoded, self.encode(x), weight)

    def prepare(self, x):
        one_hot = self.encode(x)
        return one_hot, one_hot, None

    def nll_and_grad_prepared(self, decoded, one_hot, weight):
        # The target is the one-hot encoder input: -sum(one_hot * log p) and
        # its gradient softmax - one_hot.
        # Over the levels as the first dimension: torch's log_softmax along a
        # short last dimension is several times slower than across rows.
        padded = self._pad(decoded).transpose(0, -1)
        log_probability = self._unpad(torch.log_softmax(padded, dim=0).transpose(0, -1))
        total = -(log_probability * one_hot).sum()
        grad = log_probability.exp_().sub_(one_hot).mul_(weight)
        return total, grad, {}

    def mean(self, decoded):
        return torch.argmax(self._pad(decoded), dim=-1).to(decoded.dtype)

    def mean_features(self, decoded):
        return self._unpad(torch.softmax(self._pad(decoded), dim=-1))

    def sample(self, decoded, rng):
        probability = self.mean_features(torch.as_tensor(decoded)).numpy()
        out = np.empty((decoded.shape[0], self.n_columns))
        start = 0
        u = rng.uniform(size=(decoded.shape[0], self.n_columns))
        for j, k in enumerate(self.levels_per_column):
            cumulative = np.cumsum(probability[:, start : start + k], axis=-1)
            out[:, j] = np.minimum((u[:, j : j + 1] > cumulative).sum(axis=-1), k - 1)
            start += k
        return out

    def check_support(self, x):
        limits = np.asarray(self.levels_per_column)
        return _first_bad(~((x >= 0) & (x < limits) & (np.floor(x) == x)))


class _Count(Family):
    """Count families: log link, ``log1p`` of the counts standardised in."""

    closed_form = True
    integer = True
    support = "non-negative integers"
    support_hint = (
        "Count families take whole numbers of at least 0; use "
        "likelihood='calibrated_gaussian' for other numbers."
    )

    def __init__(self, n_columns, n_levels=None, standardize=True):
        super().__init__(n_columns, n_levels, standardize)
        self.register_buffer("loc", torch.zeros(n_columns))
        self.register_buffer("spread", torch.ones(n_columns))
        # The decoder predicts log(mean) - log_offset: starts near the data.
        self.register_buffer("log_offset", torch.zeros(n_columns))
        # The mean stays at most the largest training count + 1: an exp link
        # extrapolates explosively far from the data (a held-out row beyond
        # the training range was reconstructed at 7x its count with a cap of
        # 10x; bench_tables' flows reconstruction RMSE 1.27 -> 0.72 sd).
        self.register_buffer("log_cap", torch.full((n_columns,), _MAX_LOG_RATE))

    def fit_statistics(self, x):
        values = _statistics_tensor(x)
        logged = torch.log1p(values)
        loc = _column_nanmean(logged)
        spread = torch.sqrt(_column_nanmean(torch.square(logged - loc)))
        self.loc.copy_(torch.nan_to_num(loc))
        self.spread.copy_(torch.where(spread > 0, spread, torch.ones_like(spread)))
        mean = torch.nan_to_num(_column_nanmean(values), nan=1.0)
        self.log_offset.copy_(torch.log(mean.clamp(min=1e-3)))
        self.log_cap.copy_(self._cap(values))

    @staticmethod
    def _cap(values):
        largest = torch.nan_to_num(
            torch.where(torch.isnan(values), -1.0, values).amax(dim=0), nan=0.0
        ).clamp(min=0.0)
        return torch.clamp(torch.log1p(largest), max=_MAX_LOG_RATE)

    def extend_range(self, x):
        cap = self._cap(_statistics_tensor(x)).to(self.log_cap.dtype)
        self.log_cap.copy_(torch.maximum(self.log_cap, cap))

    def encode(self, x):
        loc, spread = self.loc.to(x.dtype), self.spread.to(x.dtype)
        return (torch.log1p(x) - loc) / spread

    def prepare(self, x):
        return self.encode(x), x, torch.lgamma(x + 1.0).sum(dim=-1)

    def _log_rate(self, decoded):
        eta = decoded + self.log_offset.to(decoded.dtype)
        return torch.minimum(eta, self.log_cap.to(decoded.dtype))

    def _capped(self, decoded):
        """Where the log mean sits at its cap (no gradient there)."""
        return decoded + self.log_offset.to(decoded.dtype) > self.log_cap.to(
            decoded.dtype
        )

    def mean(self, decoded):
        return torch.exp(self._log_rate(decoded))

    def check_support(self, x):
        return _first_bad(~((x >= 0) & (np.floor(x) == x)))


class Poisson(_Count):
    """Poisson counts with a log link."""

    name = "poisson"

    def nll(self, decoded, x, mask=None):
        eta = self._log_rate(decoded)
        x_obs = torch.nan_to_num(x)
        out = torch.exp(eta) - x_obs * eta + torch.lgamma(x_obs + 1.0)
        return self._apply_mask(out, mask)

    def nll_and_grad(self, decoded, x, weight, encoded=None):
        total, grad, params = self.nll_and_grad_prepared(decoded, x, weight)
        return total + torch.lgamma(x + 1.0).sum(), grad, params

    def nll_and_grad_prepared(self, decoded, x, weight):
        eta = self._log_rate(decoded)
        rate = torch.exp(eta)
        total = (rate - x * eta).sum()
        grad = (rate - x).mul_(weight)
        grad.masked_fill_(self._capped(decoded), 0.0)
        return total, grad, {}

    def sample(self, decoded, rng):
        rate = self.mean(torch.as_tensor(decoded)).numpy()
        return rng.poisson(rate).astype(np.float64)


class NegativeBinomial(_Count):
    """Negative binomial in the (mean, inverse dispersion) form of scvi-tools.

    ``mu = exp(decoded + offset)``, ``theta = exp(log_theta)`` learned per
    column; variance ``mu + mu**2 / theta``. The log-pmf is written with
    ``lgamma`` and ``logaddexp`` (``log(theta + mu)`` from the logs), stable
    at large counts.
    """

    name = "negative_binomial"

    def __init__(self, n_columns, n_levels=None, standardize=True):
        super().__init__(n_columns, n_levels, standardize)
        self.log_theta = nn.Parameter(torch.zeros(n_columns))

    def fit_statistics(self, x):
        super().fit_statistics(x)
        values = _statistics_tensor(x)
        mean = torch.nan_to_num(_column_nanmean(values), nan=1.0)
        var = torch.nan_to_num(
            _column_nanmean(torch.square(values - mean)), nan=1.0
        )
        # Method of moments where the counts are overdispersed, else near-Poisson.
        excess = var - mean
        theta = torch.where(
            excess > 1e-8,
            torch.square(mean) / excess.clamp(min=1e-8),
            torch.full_like(mean, 1e3),
        )
        with torch.no_grad():
            self.log_theta.copy_(torch.log(theta.clamp(1e-3, 1e3)))

    def _terms(self, decoded, x, factorial=True):
        eta = self._log_rate(decoded)
        log_theta = self.log_theta.to(decoded.dtype)
        theta = torch.exp(log_theta)
        log_sum = torch.logaddexp(log_theta, eta)
        loglik = (
            theta * (log_theta - log_sum)
            + x * (eta - log_sum)
            + torch.lgamma(x + theta)
            - torch.lgamma(theta)
        )
        if factorial:
            loglik = loglik - torch.lgamma(x + 1.0)
        return eta, log_theta, theta, log_sum, -loglik

    def nll(self, decoded, x, mask=None):
        out = self._terms(decoded, torch.nan_to_num(x))[-1]
        return self._apply_mask(out, mask)

    def nll_and_grad(self, decoded, x, weight, encoded=None):
        with torch.no_grad():
            return self._nll_and_grad(decoded, x, weight, factorial=True)

    def nll_and_grad_prepared(self, decoded, x, weight):
        with torch.no_grad():
            return self._nll_and_grad(decoded, x, weight, factorial=False)

    def _nll_and_grad(self, decoded, x, weight, factorial):
        # The hot path of the training step: few kernels, in place where the
        # operand is not needed again. With u = log(mu / theta):
        # log(theta / (theta + mu)) = -softplus(u),
        # log(mu / (theta + mu)) = u - softplus(u), mu / (theta + mu) = sigmoid(u),
        # so loglik = x u - (x + theta) softplus(u) + lgamma(x + theta)
        # - lgamma(theta), stable for any u.
        raw = decoded + self.log_offset.to(decoded.dtype)
        log_cap = self.log_cap.to(decoded.dtype)
        log_theta = self.log_theta.to(decoded.dtype)
        theta = torch.exp(log_theta)
        u = torch.minimum(raw, log_cap).sub_(log_theta)
        softplus = F.softplus(u)
        x_theta = x + theta
        loglik = (
            torch.lgamma(x_theta)
            .addcmul_(x, u)
            .addcmul_(x_theta, softplus, value=-1.0)
            .sub_(torch.lgamma(theta))
            .sum()
        )
        if factorial:
            loglik = loglik - torch.lgamma(x + 1.0).sum()
        # d nll / d eta = (theta + x) p - x, with p = sigmoid(u).
        grad = torch.sigmoid(u).mul_(x_theta).sub_(x)
        # d loglik / d log theta = theta (digamma(x + theta) - digamma(theta)
        # - softplus(u)) + (theta + x) p - x, per element before the column
        # sums (which would cancel large terms).
        d_loglik = (
            torch.digamma(x_theta)
            .sub_(torch.digamma(theta))
            .sub_(softplus)
            .mul_(theta)
            .add_(grad)
            .sum(dim=0)
        )
        grad_log_theta = d_loglik.mul_(-weight)
        grad.mul_(weight).masked_fill_(raw > log_cap, 0.0)
        return -loglik, grad, {self.log_theta: grad_log_theta}

    def sample(self, decoded, rng):
        mu = self.mean(torch.as_tensor(decoded)).numpy()
        theta = np.exp(self.log_theta.detach().cpu().double().numpy())
        theta = np.broadcast_to(theta, mu.shape)
        rate = rng.gamma(theta, mu / theta)
        return rng.poisson(rate).astype(np.float64)


FAMILIES = {
    family.name: family
    for family in (
        Gaussian,
        CalibratedGaussian,
        Bernoulli,
        Categorical,
        Poisson,
        NegativeBinomial,
        LogNormal,
        Log1pNormal,
    )
}


class TableLikelihood(nn.Module):
    """The families of a table's column blocks, side by side.

    Parameters
    ----------
    blocks : list of (Family, column indices)
        Every column of the table in exactly one block.
    n_columns : int
        Columns of the table.
    mask_inputs : bool, default=False
        Whether the encoder also sees which cells are observed (one 0/1
        input per column after the families' inputs): set for a model
        trained on data with missing values.

    Decoder outputs and encoder inputs are laid out block after block; the
    negative log-likelihood, the mean and the samples come back in the
    table's own column order.

    Missing values are NaN. The negative log-likelihood of a missing cell is
    zero (the likelihood is that of the observed cells); the encoder sees a
    missing cell as its column's training mean (no level at all, for a
    categorical column: an all-zero one-hot), so that a standardised input is
    0, the fill of MIWAE (Mattei and Frellsen, 2019), plus, with
    ``mask_inputs``, the mask of observed cells.
    """

    def __init__(self, blocks, n_columns, mask_inputs=False):
        super().__init__()
        self.mask_inputs = bool(mask_inputs)
        self.families = nn.ModuleList(family for family, _ in blocks)
        # A plain tuple too: indexing a ModuleList costs a call per batch.
        self._family_tuple = tuple(self.families)
        self.columns = [list(map(int, columns)) for _, columns in blocks]
        self.n_columns = int(n_columns)
        self.n_outputs = sum(f.n_outputs for f in self.families)
        self.n_inputs = sum(f.n_inputs for f in self.families)
        if self.mask_inputs:
            self.n_inputs += self.n_columns
        # What a missing cell is filled with on the way into the encoder.
        self.register_buffer("fill", torch.zeros(self.n_columns))
        covered = sorted(c for columns in self.columns for c in columns)
        if covered != list(range(self.n_columns)):
            raise ValueError("every column must be in exactly one block")
        # One family over every column in order: its functions apply to the
        # whole decoded tensor and the encoder sees the values as they are.
        self._single = len(self.families) == 1 and self.columns[0] == list(
            range(self.n_columns)
        )
        self._order = torch.tensor([c for cols in self.columns for c in cols])
        self._inverse = torch.argsort(self._order)
        # The columns in block order: one gather per batch, then each block
        # is a slice (a view) of it.
        self._in_order = bool(torch.equal(self._order, torch.arange(self.n_columns)))
        self._column_slices = []
        start = 0
        for columns in self.columns:
            self._column_slices.append(slice(start, start + len(columns)))
            start += len(columns)
        self._out_slices = []
        start = 0
        for family in self.families:
            self._out_slices.append(slice(start, start + family.n_outputs))
            start += family.n_outputs
        self._units = _step_units(self._family_tuple, self._out_slices)

    # -- description
    def config(self):
        return {
            "n_columns": self.n_columns,
            "mask_inputs": self.mask_inputs,
            "blocks": [
                {**family.config(), "columns": list(columns)}
                for family, columns in zip(self.families, self.columns, strict=True)
            ],
        }

    @classmethod
    def from_config(cls, config):
        blocks = []
        for block in config["blocks"]:
            family = get_family(block["family"])
            blocks.append(
                (
                    family(
                        len(block["columns"]),
                        n_levels=block["n_levels"],
                        standardize=block["standardize"],
                    ),
                    block["columns"],
                )
            )
        return cls(blocks, config["n_columns"], config.get("mask_inputs", False))

    @property
    def log_scale(self):
        """The one family's learned log standard deviation, or None."""
        if not self._single:
            return None
        return getattr(self.families[0], "log_scale", None)

    @property
    def closed_form(self):
        """Whether every family has a closed-form gradient."""
        return all(family.closed_form for family in self.families)

    @property
    def is_identity_encoding(self):
        """Whether the encoder sees the table's values as they are."""
        return self._single and self.families[0].identity_encoding

    def fit_statistics(self, x):
        """Set every family's encoding statistics from training values ``x``.

        Missing cells (NaN) are left out; the fill of a missing cell is its
        column's mean (NaN for a categorical column: no level).
        """
        x = np.asarray(x)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an empty column
            if not x.shape[0]:
                fill = np.zeros(x.shape[1])
            elif np.isnan(x).any():
                fill = np.nanmean(x, axis=0, dtype=np.float64)
            else:  # no copy of a complete table
                fill = x.mean(axis=0, dtype=np.float64)
        fill = np.where(np.isfinite(fill), fill, 0.0)
        for family, columns in zip(self.families, self.columns, strict=True):
            if family.identity_encoding and not family.discrete:
                continue  # nothing to learn from the values
            block = x if self._single else x[:, columns]
            family.fit_statistics(np.asarray(block, dtype=np.float64))
            if family.discrete:
                fill[columns] = np.nan
        with torch.no_grad():
            self.fill.copy_(torch.from_numpy(fill))

    def extend_ranges(self, x):
        """Widen every family's bounds to cover the training values ``x``.

        For a later pass of training; see :meth:`Family.extend_range`.
        """
        x = np.asarray(x)
        for family, columns in zip(self.families, self.columns, strict=True):
            if type(family).extend_range is Family.extend_range:
                continue
            block = x if self._single else x[:, columns]
            family.extend_range(np.asarray(block, dtype=np.float64))

    def _block_order(self, x):
        """``x``'s columns in block order (one gather, or ``x`` itself)."""
        if self._in_order:
            return x
        return x.index_select(-1, self._order.to(x.device))

    def _blocks(self, x):
        if self._single:
            yield self.families[0], x
            return
        ordered = self._block_order(x)
        for family, columns in zip(self.families, self._column_slices, strict=True):
            yield family, ordered[..., columns]

    # -- encoder side
    def _encode_complete(self, x):
        """Encoder input of ``x`` without missing cells."""
        if self._single:
            return self._family_tuple[0].encode(x)
        return torch.cat([family.encode(values) for family, values in self._blocks(x)],
                         dim=-1)

    def encode(self, x):
        """Encoder input (n, n_inputs) of the internal values ``x``.

        Missing cells (NaN) are filled (see the class); with
        ``mask_inputs``, the mask of observed cells follows.
        """
        missing = torch.isnan(x)
        if not self.mask_inputs and not bool(missing.any()):
            return self._encode_complete(x)
        filled = torch.where(missing, self.fill.to(x.dtype), x)
        encoded = self._encode_complete(filled)
        if self.mask_inputs:
            encoded = torch.cat([encoded, (~missing).to(x.dtype)], dim=-1)
        return encoded


    # -- the likelihood
    def _gather(self, parts):
        """Blocks' per-column results back into the table's column order."""
        if self._single:
            return parts[0]
        out = torch.cat(parts, dim=-1)
        if self._in_order:
            return out
        return out.index_select(-1, self._inverse.to(out.device))

    def nll(self, decoded, x, mask=None):
        """Per-element NLL, (..., n, n_columns), in the table's column order.

        ``mask`` (True where observed) defaults to the cells of ``x`` that are
        not NaN; a missing cell's NLL is zero.
        """
        if mask is None:
            missing = torch.isnan(x)
            if bool(missing.any()):
                mask = ~missing
        if self._single:
            return self.families[0].nll(decoded, x, mask)
        ordered = self._block_order(x)
        ordered_mask = None if mask is None else self._block_order(mask)
        parts = []
        for family, out, columns in zip(
            self.families, self._out_slices, self._column_slices, strict=True
        ):
            block_mask = None if mask is None else ordered_mask[..., columns]
            parts.append(
                family.nll(decoded[..., out], ordered[..., columns], block_mask)
            )
        return self._gather(parts)

    def row_nll_(self, decoded, x):
        """Per-row NLL of ``decoded`` (..., n, n_outputs) against ``x`` (n, c).

        May overwrite ``decoded``; for a single family, its in-place form.
        """
        if self._single and not bool(torch.isnan(x).any()):
            return self.families[0].row_nll_(decoded, x)
        target = x.expand(*decoded.shape[:-1], x.shape[-1])
        return self.nll(decoded, target).sum(dim=-1)

    def prepare(self, x):
        """What the training step needs of a complete chunk ``x``: rows first.

        A tuple whose first tensor is the encoder input; the rest is what
        :meth:`nll_and_grad_prepared` takes back, batch by batch (each tensor
        split by rows). The work that depends on the values alone (the
        gather into block order, the encodings, standardised targets,
        Jacobians, ``log x!``) is done here, once per chunk of batches, not at
        every step. Holds about twice the chunk: the encoder input, the
        targets (a copy of the encoder input's columns for the blocks whose
        target it is) and one number per row.
        """
        if self._single:
            # As the fast step always had it: the family's own nll_and_grad,
            # given the encoding (x itself for an identity encoding).
            return self._family_tuple[0].encode(x), x
        ordered = self._block_order(x)
        encoded = []
        targets = []
        constant = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for family, columns in zip(self._family_tuple, self._column_slices,
                                   strict=True):
            inputs, target, row_constant = family.prepare(ordered[:, columns])
            encoded.append(inputs)
            targets.append(target)
            if row_constant is not None:
                constant += row_constant
        inputs = torch.cat(encoded, dim=-1)
        unit_targets = []
        for unit in self._units:
            if isinstance(unit, _LocatedRun) or (
                targets[unit.index] is encoded[unit.index]
            ):
                # A target that is the block's encoder input (standardised
                # values, one-hot levels), copied once per chunk: the steps'
                # kernels are several times slower on a strided column slice.
                unit_targets.append(inputs[:, unit.inputs].contiguous())
            else:
                unit_targets.append(targets[unit.index])
        return (inputs, constant, *unit_targets)

    @property
    def prepared_width(self):
        """Values per row that :meth:`prepare` holds (for chunk sizes)."""
        if self._single:
            return max(self.n_inputs, self.n_columns)
        # The gather into block order, the encoder input, the targets (at
        # most a copy of it) and the row constant.
        return self.n_columns + 2 * self.n_inputs + 1

    def nll_and_grad_prepared(self, decoded, prepared, weight):
        """:meth:`nll_and_grad` of a batch of :meth:`prepare`'s tensors."""
        if self._single:
            inputs, x = prepared
            return self._family_tuple[0].nll_and_grad(decoded, x, weight, inputs)
        constant, targets = prepared[1], prepared[2:]
        total = constant.sum()
        grads = []
        parameter_grads = {}
        for unit, target in zip(self._units, targets, strict=True):
            # A contiguous copy of the block: elementwise kernels on a strided
            # column slice run several times slower than the copy costs.
            part, grad, params = unit.nll_and_grad_prepared(
                decoded[:, unit.out].contiguous(), target, weight
            )
            total = total + part
            grads.append(grad)
            parameter_grads.update(params)
        return total, torch.cat(grads, dim=-1), parameter_grads

    def nll_and_grad(self, decoded, x, weight):
        """Summed NLL, ``weight`` times its gradient, and parameter gradients.

        Of complete internal values ``x``, block by block; the training step
        uses :meth:`prepare` and :meth:`nll_and_grad_prepared` instead.
        """
        if self._single:
            return self._family_tuple[0].nll_and_grad(decoded, x, weight)
        total = 0.0
        grads = []
        parameter_grads = {}
        for (family, values), out in zip(self._blocks(x), self._out_slices,
                                         strict=True):
            part, grad, params = family.nll_and_grad(decoded[:, out], values, weight)
            total = total + part
            grads.append(grad)
            parameter_grads.update(params)
        return total, torch.cat(grads, dim=-1), parameter_grads

    def mean(self, decoded):
        """Mean (the level, for categories) per column, internal units."""
        if self._single:
            return self.families[0].mean(decoded)
        parts = [
            family.mean(decoded[..., out])
            for family, out in zip(self.families, self._out_slices, strict=True)
        ]
        return self._gather(parts)

    def mean_features(self, decoded):
        """The mean as numbers, one per analysis feature (levels' probabilities)."""
        if self._single:
            return self.families[0].mean_features(decoded)
        return torch.cat(
            [
                family.mean_features(decoded[..., out])
                for family, out in zip(self.families, self._out_slices, strict=True)
            ],
            dim=-1,
        )

    def feature_columns(self):
        """For each analysis feature, ``(column, level or None)``."""
        if self._single and not self.families[0].discrete:
            return [(c, None) for c in range(self.n_columns)]
        out = []
        for family, columns in zip(self.families, self.columns, strict=True):
            if family.discrete:
                for column, k in zip(columns, family.levels_per_column, strict=True):
                    out.extend((column, level) for level in range(k))
            else:
                out.extend((c, None) for c in columns)
        return out

    def sample(self, decoded, rng):
        """Draws from ``p(x | z)`` in the table's column order (numpy float64)."""
        decoded = np.asarray(decoded, dtype=np.float64)
        out = np.empty((decoded.shape[0], self.n_columns))
        for family, out_slice, columns in zip(
            self.families, self._out_slices, self.columns, strict=True
        ):
            out[:, columns] = family.sample(decoded[:, out_slice], rng)
        return out

    def check_support(self, x):
        """``(row, column, family)`` of the first value out of its support."""
        x = np.asarray(x)
        first = None
        for family, columns in zip(self.families, self.columns, strict=True):
            block = x if self._single else x[:, columns]
            missing = np.isnan(block)
            if missing.any():
                block = np.where(missing, family.support_fill, block)
            bad = family.check_support(block)
            if bad is not None and (first is None or bad[0] < first[0]):
                first = (bad[0], columns[bad[1]], family)
        return first

    def integer_columns(self):
        return [c for f, cols in zip(self.families, self.columns, strict=True)
                if f.integer for c in cols]


def fuses(family):
    """Whether the training step computes ``family`` with its Gaussian neighbours.

    Gaussian-type families with a learned scale (``calibrated_gaussian``,
    ``lognormal``, ``log1p_normal``) differ only in how their targets are
    prepared: adjacent blocks of them are one computation per step. Blocks
    laid out side by side (see :func:`skvae._tables.build_likelihood`) save
    their per-step overhead.
    """
    return (
        isinstance(family, _Located)
        and family.learns_scale
        and type(family).nll_and_grad_prepared is _Located.nll_and_grad_prepared
    )


class _LocatedRun:
    """Adjacent blocks that :func:`fuses`, computed as one in the training step."""

    def __init__(self, families, out, inputs):
        self.families = families
        self.out = out
        self.inputs = inputs
        self.sizes = [family.n_columns for family in families]

    def nll_and_grad_prepared(self, decoded, target, weight):
        scales = [family.log_scale for family in self.families]
        log_scale = scales[0] if len(scales) == 1 else torch.cat(scales)
        total, grad, grad_log_scale = _gaussian_nll_and_grad(
            decoded - target, log_scale, weight
        )
        return total, grad, dict(
            zip(scales, grad_log_scale.split(self.sizes), strict=True)
        )


class _Block:
    """One block of the training step: its family's own prepared gradient."""

    def __init__(self, family, out, index, inputs):
        self.out = out
        self.index = index
        self.inputs = inputs
        self.nll_and_grad_prepared = family.nll_and_grad_prepared


def _step_units(families, out_slices):
    """The training step's units: runs of fused blocks, and the other blocks."""
    units = []
    start_input = 0
    run = []
    for index, (family, out) in enumerate(zip(families, out_slices, strict=True)):
        if fuses(family) and family.n_inputs == family.n_outputs:
            run.append((family, out, start_input))
        else:
            if run:
                units.append(_run(run))
                run = []
            inputs = slice(start_input, start_input + family.n_inputs)
            units.append(_Block(family, out, index, inputs))
        start_input += family.n_inputs
    if run:
        units.append(_run(run))
    return units


def _run(run):
    families = [family for family, _, _ in run]
    out = slice(run[0][1].start, run[-1][1].stop)
    first_input = run[0][2]
    inputs = slice(first_input, first_input + sum(f.n_inputs for f in families))
    return _LocatedRun(families, out, inputs)


def single_family(name, n_columns, standardize=False, mask_inputs=False):
    """The :class:`TableLikelihood` of one family over ``n_columns`` columns."""
    family = get_family(name)
    if family is Categorical:
        raise ValueError(
            "likelihood='categorical' needs the levels of each column: pass a "
            "DataFrame with category (or string) columns, or use 'auto'."
        )
    return TableLikelihood(
        [(family(n_columns, standardize=standardize), range(n_columns))],
        n_columns,
        mask_inputs=mask_inputs,
    )
