import pickle

import numpy as np
import pytest
from scipy import stats
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline

import skvae
from skvae.datasets import FLOW_FEATURE_NAMES, flows_preprocessor, make_flows
from skvae.datasets._flows import _ragged_stats

# Written out by hand from the issue, not built with loops like the module does.
EXPECTED_NAMES = [
    "duration", "protocol", "src_port", "dst_port",
    "fwd_tot_pkt", "fwd_tot_byte", "bwd_tot_pkt", "bwd_tot_byte",
    "fwd_pkt_size_mean", "fwd_pkt_size_std", "fwd_pkt_size_skewness",
    "fwd_pkt_size_kurtosis", "fwd_pkt_size_min", "fwd_pkt_size_max",
    "bwd_pkt_size_mean", "bwd_pkt_size_std", "bwd_pkt_size_skewness",
    "bwd_pkt_size_kurtosis", "bwd_pkt_size_min", "bwd_pkt_size_max",
    "fwd_iat_mean", "fwd_iat_std", "fwd_iat_skewness",
    "fwd_iat_kurtosis", "fwd_iat_min", "fwd_iat_max",
    "bwd_iat_mean", "bwd_iat_std", "bwd_iat_skewness",
    "bwd_iat_kurtosis", "bwd_iat_min", "bwd_iat_max",
    "fwd_FIN_cnt", "fwd_SYN_cnt", "fwd_RST_cnt", "fwd_PUSH_cnt",
    "fwd_ACK_cnt", "fwd_URG_cnt", "fwd_CWE_cnt", "fwd_ECE_cnt",
    "bwd_FIN_cnt", "bwd_SYN_cnt", "bwd_RST_cnt", "bwd_PUSH_cnt",
    "bwd_ACK_cnt", "bwd_URG_cnt", "bwd_CWE_cnt", "bwd_ECE_cnt",
]  # fmt: skip

FLAGS = ["FIN", "SYN", "RST", "PUSH", "ACK", "URG", "CWE", "ECE"]


def column(X, name):
    return X[:, EXPECTED_NAMES.index(name)]


@pytest.fixture(scope="module")
def flows():
    return make_flows(random_state=0)


@pytest.fixture(scope="module")
def many_flows():
    # more flows and more overlap, so rare cases (1-packet directions,
    # look-alikes, resets) all occur
    return make_flows(n_samples=5000, noise=0.5, random_state=1)


def test_feature_names_match_the_issue():
    assert isinstance(FLOW_FEATURE_NAMES, tuple)
    assert len(EXPECTED_NAMES) == 48
    assert list(FLOW_FEATURE_NAMES) == EXPECTED_NAMES


def test_public_api_is_exported():
    assert set(skvae.datasets.__all__) == {
        "FLOW_FEATURE_NAMES",
        "anomaly_preprocessor",
        "flows_preprocessor",
        "make_anomaly_pipeline",
        "make_flows",
        "signed_log1p",
    }
    assert skvae.datasets.make_flows is make_flows


def test_shape_and_types(flows):
    X, y = flows
    assert X.shape == (755, 48)
    assert X.dtype == np.float64
    assert y.shape == (755,)
    assert y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}


@pytest.mark.parametrize(
    "n_samples, attack_fraction, n_attack",
    [
        (755, 150 / 755, 150),
        (1000, 0.25, 250),
        (7, 0.5, 4),  # 3.5 rounds half up
        (10, 0.04, 1),  # 0.4 rounds to 0, but both classes must be present
        (100, 0.999, 99),  # 99.9 rounds to 100, but one flow stays benign
        (2, 0.5, 1),
        (2, 0.01, 1),
    ],
)
def test_class_counts(n_samples, attack_fraction, n_attack):
    X, y = make_flows(n_samples, attack_fraction=attack_fraction, random_state=0)
    assert X.shape == (n_samples, 48)
    assert np.bincount(y, minlength=2).tolist() == [n_samples - n_attack, n_attack]


def test_rows_are_shuffled(flows):
    _, y = flows
    assert not (np.diff(y) >= 0).all()


def test_same_seed_same_data_other_seed_other_data():
    X1, y1 = make_flows(200, random_state=3)
    X2, y2 = make_flows(200, random_state=3)
    X3, y3 = make_flows(200, random_state=4)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


def test_random_state_instance_is_used_and_advanced():
    rng = np.random.RandomState(5)
    X1, _ = make_flows(50, random_state=rng)
    X2, _ = make_flows(50, random_state=rng)
    X3, _ = make_flows(50, random_state=np.random.RandomState(5))
    assert not np.array_equal(X1, X2)
    np.testing.assert_array_equal(X1, X3)


def test_global_numpy_generator_is_untouched():
    np.random.seed(123)
    expected = np.random.random_sample(3)
    np.random.seed(123)
    make_flows(100, random_state=0)
    np.testing.assert_array_equal(np.random.random_sample(3), expected)


def test_slowloris_flows_look_like_the_seed(flows):
    X, y = flows
    A = X[y == 1]
    assert (column(A, "protocol") == 6).all()
    assert (column(A, "dst_port") == 80).all()
    duration = column(A, "duration")
    assert ((duration >= 90) & (duration <= 150)).all()
    assert 110 <= np.median(duration) <= 125
    fwd_packets = column(A, "fwd_tot_pkt")
    assert ((fwd_packets >= 11) & (fwd_packets <= 16)).all()
    assert 12.5 <= fwd_packets.mean() <= 14.5
    assert 8 <= np.median(column(A, "fwd_iat_mean")) <= 10
    # header lines of about 22 bytes; the SYN counts as a 0-byte packet
    assert 18 <= np.median(column(A, "fwd_pkt_size_mean")) <= 23
    assert 18 <= np.median(column(A, "fwd_pkt_size_max")) <= 35
    # the server only acknowledges
    assert (column(A, "bwd_tot_byte") == 0).all()
    assert (column(A, "bwd_pkt_size_max") == 0).all()
    assert (column(A, "bwd_PUSH_cnt") == 0).all()
    # the connection never finishes
    for flag in ("FIN", "RST"):
        assert (column(A, f"fwd_{flag}_cnt") == 0).all()
        assert (column(A, f"bwd_{flag}_cnt") == 0).all()


def test_benign_flows_are_a_heavy_tailed_mix_of_services(flows):
    X, y = flows
    B = X[y == 0]
    assert (column(B, "protocol") == 6).all()
    ports = set(column(B, "dst_port").astype(int))
    assert {80, 443, 3389, 445, 22, 23} <= ports
    assert len(ports) >= 8
    duration = column(B, "duration")
    assert 1 <= np.median(duration) <= 10
    assert duration.max() > 50 * np.median(duration)
    assert duration.max() <= 1000
    total_bytes = column(B, "fwd_tot_byte") + column(B, "bwd_tot_byte")
    assert 1e4 <= total_bytes.max() <= 3e5
    assert total_bytes.max() > 10 * np.median(total_bytes)
    # most sessions close with FIN, some do not
    assert 0.6 <= column(B, "fwd_FIN_cnt").mean() < 1


def test_source_ports_are_ephemeral(flows):
    X, _ = flows
    src = column(X, "src_port")
    assert ((src >= 32768) & (src <= 60999)).all()
    np.testing.assert_array_equal(src, np.round(src))
    assert len(np.unique(src)) > 700  # drawn independently per flow


def test_no_nan_or_inf_even_in_corner_cases():
    for n_samples, noise in [(2, 0.0), (50, 0.0), (500, 1.0), (500, 5.0)]:
        X, _ = make_flows(n_samples, noise=noise, random_state=0)
        assert np.isfinite(X).all()


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_statistics_are_consistent(many_flows, direction):
    X, _ = many_flows
    packets = column(X, f"{direction}_tot_pkt")
    assert (packets >= 1).all()
    np.testing.assert_array_equal(packets, np.round(packets))
    np.testing.assert_allclose(
        column(X, f"{direction}_tot_byte"),
        packets * column(X, f"{direction}_pkt_size_mean"),
        rtol=1e-9,
        atol=1e-6,
    )
    for quantity in ("pkt_size", "iat"):
        low, mean, high, std = (
            column(X, f"{direction}_{quantity}_{s}")
            for s in ("min", "mean", "max", "std")
        )
        assert (low >= 0).all()
        assert (low <= mean + 1e-9).all()
        assert (mean <= high + 1e-9).all()
        assert (std >= 0).all()
        # a population std never exceeds half the range
        assert (std <= (high - low) / 2 + 1e-9).all()
        # excess kurtosis of any sample is at least skewness**2 - 2
        skew = column(X, f"{direction}_{quantity}_skewness")
        kurt = column(X, f"{direction}_{quantity}_kurtosis")
        assert (kurt >= skew**2 - 2 - 1e-6).all()
    payload_sizes = column(X, f"{direction}_pkt_size_max")
    assert (payload_sizes <= 1460).all()
    # the gaps of one direction fit in the flow
    span = column(X, f"{direction}_iat_mean") * (packets - 1)
    assert (span <= column(X, "duration") * (1 + 1e-9)).all()
    assert (column(X, f"{direction}_iat_max") <= column(X, "duration") + 1e-9).all()


def test_single_packet_directions_follow_the_zero_convention(many_flows):
    X, _ = many_flows
    single = column(X, "fwd_tot_pkt") == 1
    assert single.sum() > 0  # rejected connections: a SYN answered by RST
    for s in ("mean", "std", "skewness", "kurtosis", "min", "max"):
        assert (column(X, f"fwd_iat_{s}")[single] == 0).all()
    for s in ("std", "skewness", "kurtosis"):
        assert (column(X, f"fwd_pkt_size_{s}")[single] == 0).all()
    assert (column(X, "bwd_RST_cnt")[single] == 1).all()


def test_negative_values_only_where_the_extractor_has_them(many_flows):
    X, _ = many_flows
    negative_columns = {EXPECTED_NAMES[j] for j in np.flatnonzero((X < 0).any(0))}
    assert negative_columns
    assert all(name.endswith(("skewness", "kurtosis")) for name in negative_columns)


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_flag_counts_are_consistent(many_flows, direction):
    X, y = many_flows
    packets = column(X, f"{direction}_tot_pkt")
    for flag in FLAGS:
        counts = column(X, f"{direction}_{flag}_cnt")
        assert (counts >= 0).all()
        assert (counts <= packets).all()
        np.testing.assert_array_equal(counts, np.round(counts))
    for flag in ("SYN", "FIN", "RST", "URG", "CWE", "ECE"):
        assert column(X, f"{direction}_{flag}_cnt").max() <= 1
    # PUSH only on packets that carry payload, never on the handshake
    no_payload = column(X, f"{direction}_tot_byte") == 0
    assert (column(X, f"{direction}_PUSH_cnt")[no_payload] == 0).all()
    assert (column(X, f"{direction}_PUSH_cnt") <= packets - 1).all()
    assert (column(X, f"{direction}_PUSH_cnt") > 0).any()
    if direction == "fwd":
        assert (column(X, "fwd_SYN_cnt") == 1).all()
        np.testing.assert_array_equal(column(X, "fwd_ACK_cnt"), packets - 1)
    # both sides close together
    np.testing.assert_array_equal(column(X, "fwd_FIN_cnt"), column(X, "bwd_FIN_cnt"))


def test_ragged_stats_match_scipy():
    rng = np.random.RandomState(0)
    counts = np.array([5, 0, 1, 2, 7, 3, 0, 40, 4])
    values = rng.lognormal(0, 1, size=counts.sum())
    values[counts[:5].sum() : counts[:6].sum()] = 22.0  # a constant segment
    result = _ragged_stats(values, counts)
    segments = np.split(values, np.cumsum(counts)[:-1])
    for i, segment in enumerate(segments):
        if len(segment) == 0:
            np.testing.assert_array_equal(result[i], 0)
            continue
        constant = np.ptp(segment) == 0
        expected = [
            segment.mean(),
            segment.std(),
            0.0 if constant else stats.skew(segment),
            0.0 if constant else stats.kurtosis(segment),
            segment.min(),
            segment.max(),
        ]
        np.testing.assert_allclose(result[i], expected, rtol=1e-9, atol=1e-12)


def test_as_frame_matches_the_arrays():
    pd = pytest.importorskip("pandas")
    X, y = make_flows(60, random_state=2)
    X_frame, y_series = make_flows(60, random_state=2, as_frame=True)
    assert isinstance(X_frame, pd.DataFrame)
    assert isinstance(y_series, pd.Series)
    assert list(X_frame.columns) == EXPECTED_NAMES
    assert y_series.name == "label"
    assert (X_frame.dtypes == np.float64).all()
    np.testing.assert_array_equal(X_frame.to_numpy(), X)
    np.testing.assert_array_equal(y_series.to_numpy(), y)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 1}, "n_samples must be an integer >= 2"),
        ({"n_samples": 0}, "n_samples must be an integer >= 2"),
        ({"n_samples": 10.0}, "n_samples must be an integer >= 2"),
        ({"n_samples": "10"}, "n_samples must be an integer >= 2"),
        ({"n_samples": True}, "n_samples must be an integer >= 2"),
        ({"attack_fraction": 0}, r"attack_fraction must be a float in .*\(0, 1\)"),
        ({"attack_fraction": 1}, r"attack_fraction must be a float in .*\(0, 1\)"),
        ({"attack_fraction": 1.5}, "attack_fraction must be"),
        ({"attack_fraction": float("nan")}, "attack_fraction must be"),
        ({"attack_fraction": "0.2"}, "attack_fraction must be"),
        ({"noise": -0.1}, "noise must be a finite float >= 0"),
        ({"noise": float("inf")}, "noise must be a finite float >= 0"),
        ({"noise": float("nan")}, "noise must be a finite float >= 0"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_flows(**kwargs)


def test_numpy_scalars_are_accepted():
    X, y = make_flows(
        np.int64(20), attack_fraction=np.float32(0.5), noise=np.float64(0)
    )
    assert X.shape == (20, 48)
    assert np.bincount(y).tolist() == [10, 10]


def test_preprocessor_clips_negatives_then_min_max_scales(flows):
    X, _ = flows
    X_before = X.copy()
    preprocessor = flows_preprocessor()
    assert isinstance(preprocessor, Pipeline)
    X_scaled = preprocessor.fit_transform(X)
    np.testing.assert_array_equal(X, X_before)  # the caller's array is untouched
    assert X_scaled.shape == X.shape
    assert X_scaled.min() == 0.0
    assert X_scaled.max() == 1.0
    clipped = np.maximum(X, 0)
    low, high = clipped.min(0), clipped.max(0)
    spread = np.where(high > low, high - low, 1.0)
    np.testing.assert_allclose(X_scaled, (clipped - low) / spread, atol=1e-12)
    # a negative skewness and a skewness of exactly 0 become the same value
    skew = EXPECTED_NAMES.index("fwd_pkt_size_skewness")
    assert (X[:, skew] < 0).any()
    assert (X_scaled[X[:, skew] <= 0, skew] == 0).all()


def test_preprocessor_keeps_unseen_data_in_unit_interval(flows):
    X, _ = flows
    preprocessor = flows_preprocessor().fit(X[:100])
    X_new = preprocessor.transform(X[100:] * 3)
    assert X_new.min() >= 0.0
    assert X_new.max() <= 1.0


def test_preprocessor_passes_feature_names_through():
    pytest.importorskip("pandas")
    X_frame, _ = make_flows(40, random_state=0, as_frame=True)
    frame_before = X_frame.copy()
    preprocessor = flows_preprocessor().set_output(transform="pandas")
    out = preprocessor.fit_transform(X_frame)
    assert list(out.columns) == EXPECTED_NAMES
    assert list(preprocessor.get_feature_names_out()) == EXPECTED_NAMES
    assert X_frame.equals(frame_before)


def held_out_accuracy(noise):
    X, y = make_flows(2000, noise=noise, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    model = make_pipeline(flows_preprocessor(), LogisticRegression(max_iter=1000))
    return model.fit(X_train, y_train).score(X_test, y_test)


def test_classes_are_learnable_at_default_noise():
    assert held_out_accuracy(0.1) > 0.95


def test_noise_makes_the_classes_overlap():
    clean, noisy = held_out_accuracy(0.0), held_out_accuracy(2.0)
    assert clean > 0.99
    assert noisy < clean - 0.02
    assert noisy > 0.8  # overlapping, not destroyed


def test_noise_adds_benign_flows_that_look_like_slowloris():
    # a benign flow sending small requests for over a minute to port 80 or 8080
    def look_alikes(noise):
        X, y = make_flows(2000, noise=noise, random_state=0)
        B = X[y == 0]
        return (
            np.isin(column(B, "dst_port"), [80, 8080])
            & (column(B, "fwd_iat_mean") > 3)
            & (column(B, "fwd_pkt_size_max") < 200)
        ).sum()

    assert look_alikes(0.0) < 10
    assert look_alikes(1.0) > 300


def test_preprocessor_survives_pickling_and_cloning(flows):
    X, _ = flows
    fitted = flows_preprocessor().fit(X)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(clone(fitted).fit_transform(X), fitted.transform(X))
