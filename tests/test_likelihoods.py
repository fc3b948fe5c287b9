"""The observation families of skvae._likelihoods, in float64.

Each family's negative log-likelihood is checked against scipy.stats in the
data's own units, each closed-form gradient against autograd, each sampler's
moments against the family's own mean and the known variance, and each
support check on values just outside the support.
"""

import json

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import expit, log_softmax, softmax

from skvae._likelihoods import (
    Bernoulli,
    CalibratedGaussian,
    Categorical,
    Gaussian,
    Log1pNormal,
    LogNormal,
    NegativeBinomial,
    Poisson,
    TableLikelihood,
    UnknownFamilyError,
    family_names,
    get_family,
    single_family,
)

N_ROWS = 9


def _t(array):
    return torch.as_tensor(np.asarray(array, dtype=np.float64))


def _real_data(rng, n_columns, shift=0.0):
    """Training values with a location and spread far from (0, 1)."""
    scale = np.linspace(0.5, 4.0, n_columns)
    return shift + 3.0 + scale * rng.normal(size=(40, n_columns))


def _case(name, standardize=False, seed=0):
    """A float64 family with learned parameters set away from their start.

    Returns ``(family, decoded, x, reference)`` where ``reference`` is the
    scipy log-density/log-mass of ``x`` under ``decoded``, computed without
    the family's own code (statistics recomputed with numpy).
    """
    rng = np.random.RandomState(seed)
    if name in ("gaussian", "calibrated_gaussian"):
        family_class = Gaussian if name == "gaussian" else CalibratedGaussian
        family = family_class(3, standardize=standardize).double()
        fit = _real_data(rng, 3, shift=-2.0)
        family.fit_statistics(fit)
        sigma = np.ones(3)
        if name == "calibrated_gaussian":
            log_scale = np.array([0.4, -0.7, 1.3])
            with torch.no_grad():
                family.log_scale.copy_(_t(log_scale))
            sigma = np.exp(log_scale)
        decoded = rng.normal(size=(N_ROWS, 3))
        x = _real_data(rng, 3, shift=-2.0)[:N_ROWS]
        if standardize:
            loc, spread = fit.mean(axis=0), fit.std(axis=0)
            reference = stats.norm.logpdf(x, loc + spread * decoded, spread * sigma)
        else:
            reference = stats.norm.logpdf(x, decoded, sigma)
        return family, decoded, x, reference
    if name == "lognormal":
        family = LogNormal(2).double()
        fit = np.exp(rng.normal(1.5, 0.8, size=(50, 2)))
        family.fit_statistics(fit)
        log_scale = np.array([-0.3, 0.5])
        with torch.no_grad():
            family.log_scale.copy_(_t(log_scale))
        loc, spread = np.log(fit).mean(axis=0), np.log(fit).std(axis=0)
        decoded = rng.normal(size=(N_ROWS, 2))
        x = np.exp(rng.normal(1.5, 1.0, size=(N_ROWS, 2)))
        reference = stats.lognorm.logpdf(
            x, s=np.exp(log_scale) * spread, scale=np.exp(loc + spread * decoded)
        )
        return family, decoded, x, reference
    if name == "bernoulli":
        family = Bernoulli(3).double()
        decoded = 2.0 * rng.normal(size=(N_ROWS, 3))
        x = (rng.uniform(size=(N_ROWS, 3)) < 0.5).astype(float)
        reference = stats.bernoulli.logpmf(x, expit(decoded))
        return family, decoded, x, reference
    if name == "categorical":
        family = Categorical(1, n_levels=4).double()
        decoded = 1.5 * rng.normal(size=(N_ROWS, 4))
        codes = rng.randint(0, 4, size=N_ROWS)
        x = codes[:, None].astype(float)
        one_hot = np.eye(4)[codes]
        reference = stats.multinomial.logpmf(one_hot, 1, softmax(decoded, axis=1))
        # The same thing written as a log-softmax: both references agree.
        np.testing.assert_allclose(
            reference, log_softmax(decoded, axis=1)[np.arange(N_ROWS), codes]
        )
        return family, decoded, x, reference[:, None]
    if name in ("poisson", "negative_binomial"):
        family_class = Poisson if name == "poisson" else NegativeBinomial
        family = family_class(3).double()
        fit = rng.negative_binomial(2, 0.2, size=(60, 3)).astype(float)
        fit[:, 2] *= 1000  # a column of large counts
        family.fit_statistics(fit)
        decoded = 0.8 * rng.normal(size=(N_ROWS, 3))
        x = rng.negative_binomial(2, 0.2, size=(N_ROWS, 3)).astype(float)
        x[:, 2] *= 1000
        x[0, 0] = 0.0
        mu = family.mean(_t(decoded)).detach().numpy()
        if name == "poisson":
            reference = stats.poisson.logpmf(x, mu)
        else:
            log_theta = np.array([0.7, -1.1, 2.5])
            with torch.no_grad():
                family.log_theta.copy_(_t(log_theta))
            theta = np.exp(log_theta)
            reference = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
        return family, decoded, x, reference
    raise AssertionError(name)


CASES = [
    ("gaussian", False),
    ("gaussian", True),
    ("calibrated_gaussian", False),
    ("calibrated_gaussian", True),
    ("lognormal", True),
    ("bernoulli", False),
    ("categorical", False),
    ("poisson", True),
    ("negative_binomial", True),
]
CASE_IDS = [f"{name}-std{int(std)}" for name, std in CASES]


@pytest.mark.parametrize(("name", "standardize"), CASES, ids=CASE_IDS)
def test_nll_matches_scipy(name, standardize):
    family, decoded, x, reference = _case(name, standardize)
    nll = family.nll(_t(decoded), _t(x))
    assert nll.dtype == torch.float64
    assert nll.shape == x.shape
    np.testing.assert_allclose(nll.detach().numpy(), -reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["gaussian", "calibrated_gaussian"])
def test_standardized_nll_carries_the_log_spread(name):
    # The same standardised residual on data ten times wider is ten times less
    # likely per unit: the NLL differs by log(10) per element.
    rng = np.random.RandomState(3)
    fit = rng.normal(size=(30, 2))
    narrow = get_family(name)(2, standardize=True).double()
    wide = get_family(name)(2, standardize=True).double()
    narrow.fit_statistics(fit)
    wide.fit_statistics(10.0 * fit)
    decoded = _t(rng.normal(size=(5, 2)))
    x = _t(rng.normal(size=(5, 2)))
    difference = wide.nll(decoded, 10.0 * x) - narrow.nll(decoded, x)
    np.testing.assert_allclose(difference.detach().numpy(), np.log(10.0), rtol=1e-12)


def test_negative_binomial_is_stable_at_large_counts():
    family = NegativeBinomial(1).double()
    with torch.no_grad():
        family.log_theta.fill_(np.log(3.0))
    x = np.array([[1e6], [2.5e7], [0.0]])
    decoded = np.log(np.array([[1.1e6], [2.4e7], [5e6]]))
    nll = family.nll(_t(decoded), _t(x)).detach().numpy()
    mu = np.exp(decoded)
    reference = stats.nbinom.logpmf(x, 3.0, 3.0 / (3.0 + mu))
    assert np.isfinite(nll).all()
    # lgamma of 2.5e7 is ~4e8: float64 leaves ~1e-8 nats of either value.
    np.testing.assert_allclose(nll, -reference, rtol=1e-7)


@pytest.mark.parametrize(("name", "standardize"), CASES, ids=CASE_IDS)
def test_mask_zeroes_unobserved_cells_even_when_nan(name, standardize):
    family, decoded, x, _ = _case(name, standardize)
    full = family.nll(_t(decoded), _t(x)).detach().numpy()
    mask = np.ones(x.shape, dtype=bool)
    mask[1, 0] = mask[4, -1] = mask[7, 0] = False
    x_missing = x.copy()
    x_missing[1, 0] = np.nan
    x_missing[4, -1] = np.nan  # mask[7, 0] hides a real value
    nll = family.nll(_t(decoded), _t(x_missing), torch.as_tensor(mask)).detach().numpy()
    assert np.isfinite(nll).all()
    assert (nll[~mask] == 0).all()
    np.testing.assert_allclose(nll[mask], full[mask], rtol=1e-12)


@pytest.mark.parametrize(("name", "standardize"), CASES, ids=CASE_IDS)
def test_mask_with_nan_cells_gives_finite_gradient(name, standardize):
    # A masked (missing) cell must not poison the gradient of the observed
    # ones: the whole point of the mask is training with missing values.
    family, decoded, x, _ = _case(name, standardize)
    mask = np.ones(x.shape, dtype=bool)
    mask[2, 0] = False
    x_missing = x.copy()
    x_missing[2, 0] = np.nan
    leaf = _t(decoded).requires_grad_(True)
    nll = family.nll(leaf, _t(x_missing), torch.as_tensor(mask))
    (grad,) = torch.autograd.grad(nll.sum(), leaf)
    assert torch.isfinite(grad).all()


def _summed_nll(family, decoded, x):
    with torch.no_grad():
        return float(family.nll(_t(decoded), _t(x)).sum())


def _autograd(family, decoded, x, weight):
    leaf = _t(decoded).requires_grad_(True)
    parameters = list(family.parameters())
    total = weight * family.nll(leaf, _t(x)).sum()
    grads = torch.autograd.grad(total, [leaf, *parameters])
    return grads[0], dict(zip(parameters, grads[1:], strict=True))


def _assert_matches_autograd(got, family, decoded, x, weight):
    """``got = (total, grad, parameter_grads)`` against the NLL and autograd."""
    total, grad, parameter_grads = got
    expected_grad, expected_parameters = _autograd(family, decoded, x, weight)
    np.testing.assert_allclose(
        float(total.detach()), _summed_nll(family, decoded, x), rtol=1e-12
    )
    np.testing.assert_allclose(
        grad.detach().numpy(), expected_grad.detach().numpy(), atol=1e-10
    )
    assert set(parameter_grads) == set(expected_parameters)
    for parameter, expected in expected_parameters.items():
        np.testing.assert_allclose(
            parameter_grads[parameter].detach().numpy(),
            expected.detach().numpy(),
            atol=1e-9,
        )
    return expected_parameters


@pytest.mark.parametrize(("name", "standardize"), CASES, ids=CASE_IDS)
def test_nll_and_grad_matches_autograd(name, standardize):
    family, decoded, x, _ = _case(name, standardize)
    weight = 0.37
    x_copy = _t(x).clone()
    got = family.nll_and_grad(_t(decoded).clone(), x_copy, weight)
    _assert_matches_autograd(got, family, decoded, x, weight)
    # The targets are the caller's: left as they were.
    np.testing.assert_array_equal(x_copy.detach().numpy(), x)


def test_nll_and_grad_below_the_log_scale_floor_matches_autograd():
    family, decoded, x, _ = _case("calibrated_gaussian", True)
    with torch.no_grad():
        family.log_scale[1] = -12.0  # far below the floor: clamped, no gradient
    expected_grad, expected_parameters = _autograd(family, decoded, x, 1.5)
    _, grad, parameter_grads = family.nll_and_grad(_t(decoded), _t(x), 1.5)
    np.testing.assert_allclose(
        grad.detach().numpy(), expected_grad.detach().numpy(), rtol=1e-10
    )
    expected = expected_parameters[family.log_scale].detach().numpy()
    assert expected[1] == 0.0
    np.testing.assert_allclose(
        parameter_grads[family.log_scale].detach().numpy(), expected, atol=1e-9
    )


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
def test_nll_and_grad_of_a_clamped_log_rate_matches_autograd(name):
    family, decoded, x, _ = _case(name, True)
    decoded = decoded.copy()
    decoded[3, 1] = 45.0  # beyond the largest log mean: clamped
    expected_grad, expected_parameters = _autograd(family, decoded, x, 0.8)
    total, grad, parameter_grads = family.nll_and_grad(_t(decoded), _t(x), 0.8)
    assert expected_grad[3, 1] == 0.0
    np.testing.assert_allclose(
        float(total.detach()), _summed_nll(family, decoded, x), rtol=1e-12
    )
    np.testing.assert_allclose(
        grad.detach().numpy(), expected_grad.detach().numpy(), atol=1e-9
    )
    for parameter, expected in expected_parameters.items():
        np.testing.assert_allclose(
            parameter_grads[parameter].detach().numpy(),
            expected.detach().numpy(),
            rtol=1e-9,
        )


# ---------------------------------------------------------------- the table


def _table(seed=0):
    """Mixed blocks over 8 columns whose blocks interleave the column order."""
    rng = np.random.RandomState(seed)
    blocks = [
        (CalibratedGaussian(2, standardize=True), [5, 0]),
        (Categorical(1, n_levels=3), [3]),
        (Poisson(1), [6]),
        (Bernoulli(2), [1, 4]),
        (NegativeBinomial(1), [2]),
        (LogNormal(1), [7]),
    ]
    table = TableLikelihood(blocks, 8).double()
    n = 30
    x = np.empty((n, 8))
    x[:, [5, 0]] = rng.normal([3.0, -4.0], [2.0, 0.5], size=(n, 2))
    x[:, 3] = rng.randint(0, 3, n)
    x[:, 6] = rng.poisson(4.0, n)
    x[:, [1, 4]] = rng.uniform(size=(n, 2)) < 0.4
    x[:, 2] = rng.negative_binomial(3, 0.3, n)
    x[:, 7] = np.exp(rng.normal(2.0, 0.6, n))
    table.fit_statistics(x)
    families = [family for family, _ in blocks]
    with torch.no_grad():
        families[0].log_scale.copy_(_t([0.3, -0.6]))
        families[4].log_theta.fill_(0.9)
        families[5].log_scale.fill_(-0.4)
    decoded = rng.normal(size=(n, table.n_outputs))
    return table, blocks, decoded, x


def _out_slices(blocks):
    start, out = 0, []
    for family, _ in blocks:
        out.append(slice(start, start + family.n_outputs))
        start += family.n_outputs
    return out


def test_table_nll_comes_back_in_column_order():
    table, blocks, decoded, x = _table()
    assert table.n_outputs == 2 + 3 + 1 + 2 + 1 + 1
    nll = table.nll(_t(decoded), _t(x)).detach().numpy()
    assert nll.shape == x.shape
    for (family, columns), out in zip(blocks, _out_slices(blocks), strict=True):
        expected = family.nll(_t(decoded[:, out]), _t(x[:, columns])).detach().numpy()
        np.testing.assert_array_equal(nll[:, columns], expected)
    # Masked the table's way: per table column.
    mask = np.ones(x.shape, dtype=bool)
    mask[0, 6] = mask[2, 3] = False
    masked = table.nll(_t(decoded), _t(x), torch.as_tensor(mask)).detach().numpy()
    assert masked[0, 6] == 0 and masked[2, 3] == 0
    np.testing.assert_array_equal(masked[mask], nll[mask])


def test_table_nll_and_grad_matches_autograd():
    table, _, decoded, x = _table()
    weight = 0.61
    got = table.nll_and_grad(_t(decoded).clone(), _t(x).clone(), weight)
    assert table.closed_form
    expected_parameters = _assert_matches_autograd(got, table, decoded, x, weight)
    assert len(expected_parameters) == 3


def _fused_table(seed=1):
    """Every family, the Gaussian-type ones with a learned scale adjacent."""
    rng = np.random.RandomState(seed)
    blocks = [
        (CalibratedGaussian(2, standardize=True), [5, 0]),
        (LogNormal(1), [7]),
        (Log1pNormal(1), [8]),
        (Categorical(2, n_levels=[3, 2]), [3, 9]),
        (Poisson(1), [6]),
        (Bernoulli(2), [1, 4]),
        (NegativeBinomial(1), [2]),
        (Gaussian(1, standardize=True), [10]),
    ]
    table = TableLikelihood(blocks, 11).double()
    n = 40
    x = np.empty((n, 11))
    x[:, [5, 0, 10]] = rng.normal([3.0, -4.0, 1.0], [2.0, 0.5, 3.0], size=(n, 3))
    x[:, 3] = rng.randint(0, 3, n)
    x[:, 9] = rng.randint(0, 2, n)
    x[:, 6] = rng.poisson(4.0, n)
    x[:, [1, 4]] = rng.uniform(size=(n, 2)) < 0.4
    x[:, 2] = rng.negative_binomial(3, 0.3, n)
    x[:, 7] = np.exp(rng.normal(2.0, 0.6, n))
    x[:, 8] = rng.standard_t(2, n) * 50.0
    table.fit_statistics(x)
    with torch.no_grad():
        blocks[0][0].log_scale.copy_(_t([0.3, -0.6]))
        blocks[1][0].log_scale.fill_(-0.4)
        blocks[2][0].log_scale.fill_(0.2)
        blocks[6][0].log_theta.fill_(0.9)
    decoded = rng.normal(size=(n, table.n_outputs))
    return table, decoded, x


@pytest.mark.parametrize("batch", [40, 16])
def test_prepared_step_matches_autograd_batch_by_batch(batch):
    # The training step prepares a chunk once and splits it into batches;
    # each batch's loss and gradients must be those of the table's NLL.
    table, decoded, x = _fused_table()
    weight = 0.43
    prepared = table.prepare(_t(x))
    np.testing.assert_allclose(
        prepared[0].numpy(), table.encode(_t(x)).numpy(), rtol=1e-12
    )
    parts = [tensor.split(batch) for tensor in prepared]
    for i, start in enumerate(range(0, x.shape[0], batch)):
        rows = slice(start, start + batch)
        with torch.no_grad():  # as in the training step
            got = table.nll_and_grad_prepared(
                _t(decoded[rows]).clone(), tuple(part[i] for part in parts), weight
            )
        _assert_matches_autograd(got, table, decoded[rows], x[rows], weight)


def test_table_mean_and_features():
    table, _, decoded, x = _table()
    mean = table.mean(_t(decoded)).detach().numpy()
    assert mean.shape == x.shape
    # The categorical column (outputs 2:5) is read as its most probable level.
    np.testing.assert_array_equal(mean[:, 3], decoded[:, 2:5].argmax(axis=1))
    np.testing.assert_allclose(mean[:, [1, 4]], expit(decoded[:, 6:8]), rtol=1e-12)
    features = table.mean_features(_t(decoded)).detach().numpy()
    assert features.shape == (x.shape[0], 7 + 3)
    np.testing.assert_allclose(
        features[:, 2:5], softmax(decoded[:, 2:5], axis=1), rtol=1e-12
    )
    assert table.feature_columns() == [
        (5, None),
        (0, None),
        (3, 0),
        (3, 1),
        (3, 2),
        (6, None),
        (1, None),
        (4, None),
        (2, None),
        (7, None),
    ]


def test_table_config_round_trip():
    table, _, decoded, x = _table()
    config = json.loads(json.dumps(table.config()))
    rebuilt = TableLikelihood.from_config(config).double()
    before = rebuilt.nll(_t(decoded), _t(x))
    rebuilt.load_state_dict(table.state_dict())
    after = rebuilt.nll(_t(decoded), _t(x))
    expected = table.nll(_t(decoded), _t(x))
    assert not torch.equal(before, expected)  # the state dict carries something
    torch.testing.assert_close(after, expected, rtol=0, atol=0)
    assert rebuilt.feature_columns() == table.feature_columns()


def test_table_sample_and_support_in_column_order():
    table, _, decoded, x = _table()
    draws = table.sample(decoded, np.random.RandomState(0))
    assert draws.shape == x.shape
    assert set(np.unique(draws[:, 3])) <= {0.0, 1.0, 2.0}
    assert set(np.unique(draws[:, [1, 4]])) <= {0.0, 1.0}
    assert (draws[:, [2, 6]] >= 0).all()
    np.testing.assert_array_equal(draws[:, [2, 6]], np.rint(draws[:, [2, 6]]))
    assert (draws[:, 7] > 0).all()
    assert table.check_support(x) is None
    bad = x.copy()
    bad[4, 1] = 1.5  # bernoulli
    bad[2, 6] = -1.0  # poisson: the earlier row wins
    row, column, family = table.check_support(bad)
    assert (row, column, family.name) == (2, 6, "poisson")


def test_table_refuses_a_column_left_out():
    with pytest.raises(ValueError, match="exactly one block"):
        TableLikelihood([(Gaussian(2), [0, 2])], 3)


# ------------------------------------------------------------ sample moments

N_DRAWS = 20000


def _assert_moments(draws, mean, variance, n_se=5.0):
    """Sample mean and variance within ``n_se`` standard errors of the truth."""
    n = draws.shape[0]
    se_mean = np.sqrt(variance / n)
    assert (np.abs(draws.mean(axis=0) - mean) < n_se * se_mean).all(), (
        draws.mean(axis=0),
        mean,
    )
    centered = np.square(draws - draws.mean(axis=0))
    se_variance = centered.std(axis=0) / np.sqrt(n)
    assert (np.abs(draws.var(axis=0) - variance) < n_se * se_variance).all(), (
        draws.var(axis=0),
        variance,
    )


def _rows(values):
    return np.tile(np.asarray(values, dtype=np.float64), (N_DRAWS, 1))


@pytest.mark.parametrize("name", ["gaussian", "calibrated_gaussian"])
@pytest.mark.parametrize("standardize", [False, True])
def test_gaussian_sample_moments(name, standardize):
    family, _, _, _ = _case(name, standardize)
    rng = np.random.RandomState(1)
    fit = _real_data(np.random.RandomState(0), 3, shift=-2.0)
    decoded = _rows([0.5, -1.0, 2.0])
    sigma = np.ones(3)
    if name == "calibrated_gaussian":
        sigma = np.exp(family.log_scale.detach().numpy())
    if standardize:
        sigma = sigma * fit.std(axis=0)
    draws = family.sample(decoded, rng)
    mean = family.mean(_t(decoded[:1])).detach().numpy()[0]
    _assert_moments(draws, mean, sigma**2)


def test_lognormal_sample_moments():
    family, _, _, _ = _case("lognormal")
    fit = np.exp(np.random.RandomState(0).normal(1.5, 0.8, size=(50, 2)))
    loc, spread = np.log(fit).mean(axis=0), np.log(fit).std(axis=0)
    decoded = _rows([0.3, -0.8])
    m = loc + spread * decoded[0]
    s = np.exp(family.log_scale.detach().numpy()) * spread
    mean = family.mean(_t(decoded[:1])).detach().numpy()[0]
    np.testing.assert_allclose(mean, np.exp(m + s**2 / 2), rtol=1e-12)
    variance = (np.exp(s**2) - 1) * np.exp(2 * m + s**2)
    # The family's own draws: without the cap on the range (tested below).
    with torch.no_grad():
        family.low.fill_(-np.inf)
        family.high.fill_(np.inf)
    draws = family.sample(decoded, np.random.RandomState(1))
    assert (draws > 0).all()
    _assert_moments(draws, mean, variance)


def test_bernoulli_sample_moments():
    family = Bernoulli(3).double()
    decoded = _rows([-2.0, 0.0, 1.3])
    p = family.mean(_t(decoded[:1])).detach().numpy()[0]
    np.testing.assert_allclose(p, expit(decoded[0]), rtol=1e-12)
    draws = family.sample(decoded, np.random.RandomState(2))
    assert set(np.unique(draws)) == {0.0, 1.0}
    _assert_moments(draws, p, p * (1 - p))


@pytest.mark.parametrize("levels", [[3, 3], [2, 4, 1]])
def test_categorical_block_of_columns_matches_scipy_and_autograd(levels):
    # Columns of one block: with equal level counts the logits are reshaped,
    # with unequal ones padded; either way each column is its own softmax.
    rng = np.random.RandomState(5)
    family = Categorical(len(levels), n_levels=levels).double()
    n = 7
    x = np.column_stack([rng.randint(0, k, n) for k in levels]).astype(float)
    decoded = rng.normal(size=(n, sum(levels)))
    expected = np.empty_like(x)
    start = 0
    for j, k in enumerate(levels):
        log_p = log_softmax(decoded[:, start : start + k], axis=1)
        expected[:, j] = -log_p[np.arange(n), x[:, j].astype(int)]
        start += k
    nll = family.nll(_t(decoded), _t(x)).detach().numpy()
    np.testing.assert_allclose(nll, expected, rtol=1e-12, atol=1e-14)
    expected_grad, _ = _autograd(family, decoded, x, 0.3)
    _, one_hot, _ = family.prepare(_t(x))
    total, grad, _ = family.nll_and_grad_prepared(_t(decoded), one_hot, 0.3)
    np.testing.assert_allclose(float(total), expected.sum(), rtol=1e-12)
    np.testing.assert_allclose(
        grad.numpy(), expected_grad.detach().numpy(), atol=1e-12
    )


def test_categorical_sample_frequencies():
    family = Categorical(1, n_levels=4).double()
    logits = np.array([0.5, -1.0, 1.5, 0.0])
    decoded = _rows(logits)
    draws = family.sample(decoded, np.random.RandomState(3))
    assert draws.shape == (N_DRAWS, 1)
    probability = softmax(logits)
    frequency = np.array([(draws[:, 0] == k).mean() for k in range(4)])
    assert frequency.sum() == 1.0
    se = np.sqrt(probability * (1 - probability) / N_DRAWS)
    assert (np.abs(frequency - probability) < 5 * se).all(), (frequency, probability)
    assert family.mean(_t(decoded[:1])).item() == 2.0


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
def test_count_sample_moments(name):
    family = get_family(name)(3).double()
    family.fit_statistics(np.array([[1.0, 5.0, 40.0], [3.0, 9.0, 80.0]]))
    log_theta = np.array([1.2, -0.5, 0.3])
    if name == "negative_binomial":
        with torch.no_grad():
            family.log_theta.copy_(_t(log_theta))
    decoded = _rows([0.4, -0.9, 0.1])
    mu = family.mean(_t(decoded[:1])).detach().numpy()[0]
    variance = mu if name == "poisson" else mu + mu**2 / np.exp(log_theta)
    draws = family.sample(decoded, np.random.RandomState(4))
    assert (draws >= 0).all()
    np.testing.assert_array_equal(draws, np.rint(draws))
    _assert_moments(draws, mu, variance)


# -------------------------------------------------------------- support check

SUPPORT_CASES = [
    ("poisson", None, [[0.0, 3.0], [2.0, -1.0], [-4.0, 1.0]], (1, 1)),
    ("poisson", None, [[0.0, 3.0], [2.5, 1.0]], (1, 0)),
    ("negative_binomial", None, [[0.0, 7.0], [1.0, 0.5]], (1, 1)),
    ("negative_binomial", None, [[-2.0, 7.0], [1.0, 2.0]], (0, 0)),
    ("bernoulli", None, [[0.0, 1.0], [0.3, 1.5]], (1, 1)),
    ("bernoulli", None, [[0.0, -0.5], [0.3, 1.0]], (0, 1)),
    ("lognormal", None, [[0.1, 2.0], [0.0, 3.0]], (1, 0)),
    ("lognormal", None, [[0.1, -2.0], [1.0, 3.0]], (0, 1)),
    ("categorical", 3, [[0.0], [2.0], [3.0]], (2, 0)),
    ("categorical", 3, [[0.0], [-1.0], [1.0]], (1, 0)),
    ("categorical", 3, [[0.0], [1.5], [1.0]], (1, 0)),
]


@pytest.mark.parametrize(("name", "n_levels", "block", "expected"), SUPPORT_CASES)
def test_check_support_finds_the_first_bad_value(name, n_levels, block, expected):
    block = np.array(block)
    if n_levels is None:
        family = get_family(name)(block.shape[1])
    else:
        family = get_family(name)(1, n_levels=n_levels)
    assert family.check_support(block) == expected


@pytest.mark.parametrize(
    ("name", "n_levels", "block"),
    [
        ("poisson", None, [[0.0, 3.0], [250.0, 1.0]]),
        ("negative_binomial", None, [[0.0, 3.0], [1e6, 1.0]]),
        ("bernoulli", None, [[0.0, 1.0], [0.25, 0.5]]),
        ("lognormal", None, [[1e-8, 2.0], [5.0, 3e4]]),
        ("categorical", 3, [[0.0], [2.0], [1.0]]),
        ("gaussian", None, [[-1e9, 3.0], [0.0, 1.5]]),
        ("calibrated_gaussian", None, [[-1e9, 3.0], [0.0, 1.5]]),
    ],
)
def test_check_support_accepts_data_in_support(name, n_levels, block):
    block = np.array(block)
    if n_levels is None:
        family = get_family(name)(block.shape[1])
    else:
        family = get_family(name)(1, n_levels=n_levels)
    assert family.check_support(block) is None


# ------------------------------------------------------------------- names


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown likelihood 'nope'") as info:
        get_family("nope")
    assert isinstance(info.value, UnknownFamilyError)
    for name in family_names():
        assert repr(name) in str(info.value)
    assert set(family_names()) == {
        "gaussian",
        "calibrated_gaussian",
        "bernoulli",
        "categorical",
        "poisson",
        "negative_binomial",
        "log1p_normal",
        "lognormal",
    }


def test_single_family_refuses_categorical():
    with pytest.raises(ValueError, match="needs the levels of each column"):
        single_family("categorical", 3)


def test_single_family_covers_every_column():
    table = single_family("poisson", 3).double()
    assert table.n_outputs == 3
    assert table.feature_columns() == [(0, None), (1, None), (2, None)]
    x = _t([[0.0, 1.0, 4.0]])
    decoded = _t([[0.1, -0.2, 0.3]])
    expected = stats.poisson.logpmf(
        x.detach().numpy(), np.exp(decoded.detach().numpy())
    )
    np.testing.assert_allclose(
        table.nll(decoded, x).detach().numpy(), -expected, rtol=1e-12
    )


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
def test_count_means_stay_within_the_training_range(name):
    family = get_family(name)(2).double()
    counts = np.array([[0.0, 3.0], [20.0, 1.0], [4.0, 0.0]])
    family.fit_statistics(counts)
    far = torch.full((1, 2), 50.0, dtype=torch.float64)  # e**50 uncapped
    np.testing.assert_allclose(
        family.mean(far).detach().numpy(), [[21.0, 4.0]], rtol=1e-12
    )
    decoded = far.clone().requires_grad_(True)
    family.nll(
        decoded, torch.tensor([[5.0, 1.0]], dtype=torch.float64)
    ).sum().backward()
    _, grad, _ = family.nll_and_grad(
        far.clone(), torch.tensor([[5.0, 1.0]]).double(), 1.0
    )
    np.testing.assert_array_equal(decoded.grad.numpy(), 0.0)
    np.testing.assert_array_equal(grad.numpy(), 0.0)


def test_log1p_normal_is_a_density_of_x_with_its_mean_and_draws():
    from skvae._likelihoods import Log1pNormal

    rng = np.random.RandomState(0)
    x = np.r_[0.0, -3.0, 0.5, 1e4, -250.0, 12.0].reshape(2, 3)
    family = Log1pNormal(3).double()
    family.fit_statistics(x)
    with torch.no_grad():
        family.log_scale.copy_(torch.tensor([-0.5, 0.2, 0.0], dtype=torch.float64))
    decoded = torch.tensor(rng.normal(size=(2, 3)))
    y = np.sign(x) * np.log1p(np.abs(x))
    loc, spread = family.loc.numpy(), family.spread.numpy()
    sigma = np.exp(family.log_scale.detach().numpy()) * spread
    expected = -stats.norm.logpdf(y, loc + spread * decoded.numpy(), sigma) + np.log1p(
        np.abs(x)
    )
    got = family.nll(decoded, torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # The quadrature mean against the mean of many draws.
    draws = np.stack([family.sample(decoded.numpy(), rng) for _ in range(20000)])
    mean = family.mean(decoded).detach().numpy()
    error = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * error + 1e-9)


@pytest.mark.parametrize("name", ["lognormal", "log1p_normal"])
def test_transformed_means_and_draws_stay_near_the_training_range(name):
    family = get_family(name)(1).float()
    fit = np.exp(np.random.RandomState(0).normal(1.0, 0.5, size=(200, 1)))
    family.fit_statistics(fit)
    far = torch.full((3, 1), 1e3)  # a location 1000 spreads out
    mean = family.mean(far).detach().numpy()
    assert np.all(np.isfinite(mean))
    transformed = np.log(fit) if name == "lognormal" else np.log1p(fit)
    ceiling = transformed.max() + 2 * transformed.std()
    bound = np.exp(ceiling) if name == "lognormal" else np.expm1(ceiling)
    assert np.all(mean <= bound * (1 + 1e-5))
    draws = family.sample(far.double().numpy(), np.random.RandomState(0))
    assert np.all(np.isfinite(draws)) and np.all(draws <= bound * (1 + 1e-5))
