"""Synthetic network flows: benign traffic and Slowloris denial of service.

The generator simulates packets (sizes and inter-arrival times) for every flow and
computes each flow's 48 statistics from them, the way a flow extractor does, so the
columns are consistent with one another.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler
from sklearn.utils import check_random_state

__all__ = ["FLOW_FEATURE_NAMES", "flows_preprocessor", "make_flows"]

_STATISTICS = ("mean", "std", "skewness", "kurtosis", "min", "max")
_FLAGS = ("FIN", "SYN", "RST", "PUSH", "ACK", "URG", "CWE", "ECE")

FLOW_FEATURE_NAMES = (
    "duration",
    "protocol",
    "src_port",
    "dst_port",
    "fwd_tot_pkt",
    "fwd_tot_byte",
    "bwd_tot_pkt",
    "bwd_tot_byte",
    *(f"{d}_pkt_size_{s}" for d in ("fwd", "bwd") for s in _STATISTICS),
    *(f"{d}_iat_{s}" for d in ("fwd", "bwd") for s in _STATISTICS),
    *(f"{d}_{f}_cnt" for d in ("fwd", "bwd") for f in _FLAGS),
)
"""Names of the 48 columns of :func:`make_flows`, in the seed's extractor order."""

_TCP = 6
_MSS = 1460  # largest TCP payload on an Ethernet path
_EPHEMERAL_PORTS = (32768, 60999)  # Linux's default ip_local_port_range
_FLAG_INDEX = {flag: i for i, flag in enumerate(_FLAGS)}

# Benign services: (dst_port, share of flows, median duration s, duration log-sd,
# median data packets fwd, bwd, median payload bytes fwd, its log-sd,
# median payload bytes bwd, its log-sd, share of full-size (MSS) segments fwd, bwd).
_SERVICES = np.array(
    [
        (80, 0.22, 1.0, 1.6, 2, 4, 400, 0.5, 700, 0.9, 0.00, 0.50),
        (443, 0.28, 3.0, 1.8, 4, 6, 300, 0.8, 600, 1.0, 0.02, 0.40),
        (3389, 0.08, 40.0, 1.5, 20, 20, 120, 0.7, 400, 1.0, 0.00, 0.10),
        (445, 0.10, 2.0, 1.6, 6, 5, 200, 1.0, 300, 1.2, 0.05, 0.20),
        (22, 0.07, 15.0, 2.0, 20, 20, 60, 0.6, 90, 0.9, 0.02, 0.05),
        (23, 0.04, 20.0, 1.5, 25, 25, 3, 0.8, 60, 1.0, 0.00, 0.00),
        (21, 0.03, 5.0, 1.5, 6, 6, 15, 0.5, 50, 0.8, 0.00, 0.00),
        (25, 0.04, 2.0, 1.2, 8, 6, 400, 1.2, 40, 0.5, 0.20, 0.00),
        (8080, 0.05, 1.5, 1.6, 2, 4, 400, 0.5, 700, 0.9, 0.00, 0.50),
        (53, 0.03, 0.05, 1.0, 1, 1, 40, 0.3, 120, 0.5, 0.00, 0.00),
        (139, 0.03, 2.0, 1.5, 4, 4, 150, 0.8, 150, 0.8, 0.00, 0.00),
        (3306, 0.03, 5.0, 2.0, 10, 10, 150, 1.0, 400, 1.2, 0.00, 0.10),
    ]
)
_MAX_DATA_PACKETS = 100  # per direction; keeps byte counts near the seed's 1e5
_MAX_DURATION = 1000.0  # seconds; the seed's longest flows


def _check_params(n_samples, attack_fraction, noise):
    if not isinstance(n_samples, Integral) or isinstance(n_samples, bool):
        raise ValueError(
            f"n_samples must be an integer >= 2, got {n_samples!r} "
            f"of type {type(n_samples).__name__}."
        )
    if n_samples < 2:
        raise ValueError(
            f"n_samples must be an integer >= 2 so both classes are present, "
            f"got {n_samples}."
        )
    if (
        not isinstance(attack_fraction, Real)
        or isinstance(attack_fraction, bool)
        or not 0 < attack_fraction < 1
    ):
        raise ValueError(
            f"attack_fraction must be a float in the open interval (0, 1), "
            f"got {attack_fraction!r}."
        )
    if (
        not isinstance(noise, Real)
        or isinstance(noise, bool)
        or not np.isfinite(noise)
        or noise < 0
    ):
        raise ValueError(f"noise must be a finite float >= 0, got {noise!r}.")


def _ragged_stats(values, counts):
    """Mean, std, skewness, kurtosis, min and max of consecutive segments.

    ``values`` holds the segments one after the other, segment ``i`` having
    ``counts[i]`` elements. The moments follow ``scipy.stats`` defaults (population
    std, biased skewness, Fisher's excess kurtosis). Statistics that are undefined
    are 0: all six for an empty segment, skewness and kurtosis for a constant one
    (which includes every one-element segment).
    """
    counts = np.asarray(counts, dtype=np.int64)
    n_segments = counts.shape[0]
    out = np.zeros((n_segments, 6))
    segment = np.repeat(np.arange(n_segments), counts)
    safe_counts = np.maximum(counts, 1)
    mean = np.bincount(segment, weights=values, minlength=n_segments) / safe_counts
    deviation = values - mean[segment]
    squared = deviation * deviation  # products, as ** on arrays is much slower
    m2, m3, m4 = (
        np.bincount(segment, weights=power, minlength=n_segments) / safe_counts
        for power in (squared, squared * deviation, squared * squared)
    )
    # a variance at rounding-error level is zero, as scipy.stats also decides
    constant = m2 <= (np.finfo(float).eps * np.maximum(np.abs(mean), 1.0)) ** 2
    safe_m2 = np.where(constant, 1.0, m2)
    out[:, 0] = mean
    out[:, 1] = np.sqrt(m2)
    out[:, 2] = np.where(constant, 0.0, m3 / safe_m2**1.5)
    out[:, 3] = np.where(constant, 0.0, m4 / safe_m2**2 - 3.0)
    nonempty = counts > 0
    if nonempty.any():
        starts = (np.cumsum(counts) - counts)[nonempty]
        out[nonempty, 4] = np.minimum.reduceat(values, starts)
        out[nonempty, 5] = np.maximum.reduceat(values, starts)
    return out


def _segment_positions(counts):
    """Index of each element within its segment, for segments laid end to end."""
    ends = np.cumsum(counts)
    return np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - counts, counts)


def _assemble(
    duration,
    dst_port,
    fwd_sizes,
    fwd_counts,
    bwd_sizes,
    bwd_counts,
    fwd_gaps,
    bwd_gaps,
    fwd_flags,
    bwd_flags,
    rng,
):
    """Build the 48 columns from simulated packets.

    ``*_sizes`` are payload bytes per packet and ``*_gaps`` inter-arrival times,
    both laid flow after flow; a direction with ``k`` packets has ``k - 1`` gaps.
    """
    n = duration.shape[0]
    flow = np.arange(n)
    X = np.empty((n, len(FLOW_FEATURE_NAMES)))
    X[:, 0] = duration
    X[:, 1] = _TCP
    X[:, 2] = rng.randint(_EPHEMERAL_PORTS[0], _EPHEMERAL_PORTS[1] + 1, size=n)
    X[:, 3] = dst_port
    X[:, 4] = fwd_counts
    X[:, 5] = np.bincount(np.repeat(flow, fwd_counts), fwd_sizes, minlength=n)
    X[:, 6] = bwd_counts
    X[:, 7] = np.bincount(np.repeat(flow, bwd_counts), bwd_sizes, minlength=n)
    X[:, 8:14] = _ragged_stats(fwd_sizes, fwd_counts)
    X[:, 14:20] = _ragged_stats(bwd_sizes, bwd_counts)
    X[:, 20:26] = _ragged_stats(fwd_gaps, np.maximum(fwd_counts - 1, 0))
    X[:, 26:32] = _ragged_stats(bwd_gaps, np.maximum(bwd_counts - 1, 0))
    X[:, 32:40] = fwd_flags
    X[:, 40:48] = bwd_flags
    return X


def _spread(counts, spans, sigma, rng):
    """Bursty inter-arrival times: ``counts[i]`` gaps summing to ``spans[i]``."""
    flow = np.repeat(np.arange(counts.shape[0]), counts)
    raw = rng.lognormal(0.0, sigma, size=flow.shape[0])
    totals = np.bincount(flow, raw, minlength=counts.shape[0])
    return raw * (spans / np.where(totals > 0, totals, 1.0))[flow]


def _payloads(counts, median, sigma, full_share, rng):
    """Payload sizes of data packets and whether each carries PUSH.

    ``median``, ``sigma`` and ``full_share`` hold one value per flow.
    """
    flow = np.repeat(np.arange(counts.shape[0]), counts)
    sizes = np.rint(rng.lognormal(np.log(median[flow]), sigma[flow]))
    full = rng.uniform(size=flow.shape[0]) < full_share[flow]
    sizes = np.where(full, _MSS, np.clip(sizes, 1, _MSS))
    # bulk transfers set PUSH only at the end of an application write
    push = (sizes < _MSS) | (rng.uniform(size=flow.shape[0]) < 0.2)
    return sizes, np.bincount(flow, push, minlength=counts.shape[0])


def _with_bare_packets(data_sizes, data_counts, bare_counts):
    """Lay each flow's data payloads followed by its bare (0-byte) packets."""
    counts = data_counts + bare_counts
    sizes = np.zeros(counts.sum())
    is_data = _segment_positions(counts) < np.repeat(data_counts, counts)
    sizes[is_data] = data_sizes
    return sizes, counts


def _flag_counts(n, **counts):
    """The ``(n, 8)`` flag-count columns of one direction, in ``_FLAGS`` order;
    flags not named are 0."""
    flags = np.zeros((n, len(_FLAGS)))
    for flag, count in counts.items():
        flags[:, _FLAG_INDEX[flag]] = count
    return flags


def _ecn(n, rng):
    """ECN negotiation on the handshake: fwd SYN has ECE and CWR, SYN-ACK has ECE."""
    return (rng.uniform(size=n) < 0.03).astype(float)


def _benign_flows(n, rng):
    """Request/response sessions of a mix of TCP services."""
    if n == 0:
        return np.empty((0, len(FLOW_FEATURE_NAMES)))
    service = _SERVICES[rng.choice(len(_SERVICES), size=n, p=_SERVICES[:, 1])]
    (
        port,
        _,
        duration_median,
        duration_sigma,
        fwd_data_median,
        bwd_data_median,
        fwd_size_median,
        fwd_size_sigma,
        bwd_size_median,
        bwd_size_sigma,
        fwd_full_share,
        bwd_full_share,
    ) = service.T
    rtt = rng.lognormal(np.log(0.02), 0.6, size=n)
    # a closed port answers the SYN with RST and nothing else happens
    rejected = rng.uniform(size=n) < 0.04
    ending = rng.choice(3, size=n, p=[0.85, 0.10, 0.05])  # FIN, RST, idle timeout
    client_resets = rng.uniform(size=n) < 0.5
    fin = (ending == 0) & ~rejected
    fwd_rst = (ending == 1) & client_resets & ~rejected
    bwd_rst = ((ending == 1) & ~client_resets) | rejected

    duration = rng.lognormal(np.log(duration_median), duration_sigma)
    duration = np.minimum(duration, _MAX_DURATION * rng.uniform(0.5, 1.0, size=n))
    duration = np.maximum(duration, 2 * rtt)
    # longer sessions exchange somewhat more data
    busier = (duration / duration_median) ** 0.3
    fwd_data = np.rint(rng.lognormal(np.log(fwd_data_median * busier), 1.2))
    bwd_data = np.rint(rng.lognormal(np.log(bwd_data_median * busier), 1.5))
    fwd_data = np.where(rejected, 0, np.clip(fwd_data, 1, _MAX_DATA_PACKETS))
    bwd_data = np.where(rejected, 0, np.clip(bwd_data, 0, _MAX_DATA_PACKETS))
    fwd_data = fwd_data.astype(np.int64)
    bwd_data = bwd_data.astype(np.int64)
    established = (~rejected).astype(np.int64)
    # bare packets: handshake, delayed ACKs (one per two segments), FIN or RST
    fwd_bare = 1 + established + np.ceil(bwd_data / 2).astype(np.int64) + fin + fwd_rst
    bwd_bare = 1 + np.ceil(fwd_data / 2).astype(np.int64) + fin + (bwd_rst & ~rejected)

    fwd_payload, fwd_push = _payloads(
        fwd_data, fwd_size_median, fwd_size_sigma, fwd_full_share, rng
    )
    bwd_payload, bwd_push = _payloads(
        bwd_data, bwd_size_median, bwd_size_sigma, bwd_full_share, rng
    )
    fwd_sizes, fwd_counts = _with_bare_packets(fwd_payload, fwd_data, fwd_bare)
    bwd_sizes, bwd_counts = _with_bare_packets(bwd_payload, bwd_data, bwd_bare)

    # the client's first and last packets bound the flow; the server's SYN-ACK
    # comes half a round trip in and its last packet a little before the end
    duration = np.where(rejected, rtt, duration)
    fwd_gaps = _spread(fwd_counts - 1, duration, 1.5, rng)
    bwd_span = (duration - rtt / 2) * rng.uniform(0.85, 1.0, size=n)
    bwd_gaps = _spread(bwd_counts - 1, bwd_span, 1.5, rng)

    ecn = _ecn(n, rng) * established
    fwd_flags = _flag_counts(
        n,
        FIN=fin,
        SYN=1,
        RST=fwd_rst,
        PUSH=fwd_push,
        ACK=fwd_counts - 1,  # all but the SYN
        CWE=ecn,
        ECE=ecn,
    )
    bwd_flags = _flag_counts(
        n,
        FIN=fin,
        SYN=established,
        RST=bwd_rst,
        PUSH=bwd_push,
        ACK=bwd_counts,
        ECE=ecn,
    )
    return _assemble(
        duration,
        port,
        fwd_sizes,
        fwd_counts,
        bwd_sizes,
        bwd_counts,
        fwd_gaps,
        bwd_gaps,
        fwd_flags,
        bwd_flags,
        rng,
    )


def _periodic_flows(
    n,
    rng,
    *,
    dst_port,
    lifetime,
    gap_median,
    gap_sigma,
    payload,
    reply_probability,
    reply_median,
    fin_probability,
):
    """Connections where the client sends one small payload every few seconds.

    After the handshake the client sends a payload at once and then one every
    ``gap_median`` seconds or so until ``lifetime`` runs out. The server ACKs each
    payload, replying with data with probability ``reply_probability``. With
    ``fin_probability`` the last payloads of both sides carry FIN; otherwise the
    connection is simply abandoned.
    """
    if n == 0:
        return np.empty((0, len(FLOW_FEATURE_NAMES)))
    min_gap = 1.0
    rtt = rng.lognormal(np.log(0.02), 0.6, size=n)
    max_payloads = int(np.ceil(lifetime.max() / min_gap)) + 1
    gaps = gap_median * np.exp(rng.normal(0.0, gap_sigma, size=(n, max_payloads)))
    gaps = np.maximum(gaps, min_gap)
    gaps[:, 0] = rtt  # the first payload follows the handshake
    sent = np.cumsum(gaps, axis=1)
    sending = sent < lifetime[:, None]
    sending[:, 0] = True
    n_payloads = sending.sum(axis=1)

    fwd_sizes, fwd_counts = _with_bare_packets(
        payload(n_payloads.sum()), n_payloads, np.ones(n, dtype=np.int64)
    )
    # fwd packets: SYN at 0, then the payloads, so the gaps are the first ones drawn
    fwd_gaps = gaps[sending]

    replies = rng.uniform(size=gaps.shape) < reply_probability
    reply_sizes = np.rint(rng.lognormal(np.log(reply_median), 0.8, size=gaps.shape))
    reply_sizes = np.where(replies, np.clip(reply_sizes, 1, _MSS), 0.0)
    reply_sizes = reply_sizes[sending]
    # bwd packets: SYN-ACK, then an ACK (or reply) to each payload after a
    # half round trip plus a delayed-ACK wait
    answered = sent + rtt[:, None] / 2 + rng.uniform(0.0, 0.04, size=gaps.shape)
    bwd_times = np.concatenate([rtt[:, None] / 2, answered], axis=1)
    bwd_gaps = np.diff(bwd_times, axis=1)[sending]
    bwd_sizes, bwd_counts = _with_bare_packets(
        np.zeros(0), np.zeros(n, dtype=np.int64), n_payloads + 1
    )
    # put the replies in place of the ACKs; SYN-ACKs stay at 0 bytes
    flow = np.repeat(np.arange(n), bwd_counts)
    not_syn = _segment_positions(bwd_counts) > 0
    bwd_sizes[not_syn] = reply_sizes
    bwd_push = np.bincount(flow[not_syn], reply_sizes > 0, minlength=n)
    duration = answered[np.arange(n), n_payloads - 1]

    fin = rng.uniform(size=n) < fin_probability
    ecn = _ecn(n, rng)
    fwd_flags = _flag_counts(
        n, FIN=fin, SYN=1, PUSH=n_payloads, ACK=fwd_counts - 1, CWE=ecn, ECE=ecn
    )
    bwd_flags = _flag_counts(n, FIN=fin, SYN=1, PUSH=bwd_push, ACK=bwd_counts, ECE=ecn)
    return _assemble(
        duration,
        dst_port,
        fwd_sizes,
        fwd_counts,
        bwd_sizes,
        bwd_counts,
        fwd_gaps,
        bwd_gaps,
        fwd_flags,
        bwd_flags,
        rng,
    )


def _slowloris_flows(n, noise, rng):
    """Slowloris: partial HTTP headers trickled to port 80, never answered."""
    lifetime = np.clip(rng.normal(120.0, 2.0 + 20.0 * noise, size=n), 30.0, 240.0)

    def header_line(size):
        # "X-a: <random number>\r\n"-style header lines of about 22 bytes
        sizes = np.rint(rng.normal(22.0, 1.5 + 15.0 * noise, size=size))
        return np.clip(sizes, 5, 200)

    return _periodic_flows(
        n,
        rng,
        dst_port=80,
        lifetime=lifetime,
        gap_median=10.0,
        gap_sigma=0.05 + 0.5 * noise,
        payload=header_line,
        reply_probability=0.0,
        reply_median=1.0,
        fin_probability=0.0,
    )


def _slow_benign_flows(n, noise, rng):
    """Benign look-alikes of Slowloris: long polling and keep-alive HTTP.

    The more ``noise``, the more they resemble Slowloris: fewer replies, fewer
    FINs, smaller requests, more of them to port 80.
    """
    resemblance = 1.0 - np.exp(-noise)
    lifetime = rng.uniform(30.0, 180.0, size=n)
    dst_port = np.where(rng.uniform(size=n) < 0.3 * (1.0 - resemblance), 8080, 80)
    request_median = 40.0 - 18.0 * resemblance

    def request(size):
        sizes = np.rint(rng.lognormal(np.log(request_median), 0.5, size=size))
        return np.clip(sizes, 1, _MSS)

    return _periodic_flows(
        n,
        rng,
        dst_port=dst_port,
        lifetime=lifetime,
        gap_median=rng.uniform(5.0, 15.0, size=(n, 1)),
        gap_sigma=0.3,
        payload=request,
        reply_probability=np.exp(-2.0 * noise),
        reply_median=200.0,
        fin_probability=0.5 * (1.0 - resemblance),
    )


def make_flows(
    n_samples=755,
    *,
    attack_fraction=150 / 755,
    noise=0.1,
    random_state=None,
    as_frame=False,
):
    """Generate synthetic network flows: benign traffic and Slowloris attacks.

    A stand-in for the seed's capture, which cannot be redistributed: TCP flows
    described by the 48 statistics of its flow extractor (see
    :data:`FLOW_FEATURE_NAMES`), labelled benign (0) or Slowloris denial of service
    (1). Packets are simulated for every flow and the statistics are computed from
    them, so the columns agree with one another (``fwd_tot_byte`` is
    ``fwd_tot_pkt * fwd_pkt_size_mean``, every minimum is at most the mean, flag
    counts never exceed packet counts). The Notes describe what is simulated.

    Parameters
    ----------
    n_samples : int, default=755
        Number of flows, at least 2. The default is the size of the seed's data.

    attack_fraction : float, default=150/755
        Share of Slowloris flows, in the open interval (0, 1). The number of attack
        flows is ``n_samples * attack_fraction`` rounded half up, then moved into
        ``[1, n_samples - 1]`` so that both classes are always present. The default
        gives the seed's 150 attacks among 755 flows.

    noise : float, default=0.1
        How much the classes overlap, at least 0. It scales the jitter of the
        Slowloris timing, header sizes and connection lifetime. It also sets the
        share of benign flows that look like slow HTTP (long polling and
        keep-alive connections sending a small request every few seconds) to
        ``min(noise, 1) / 2``, and how much those resemble Slowloris: each request
        gets a reply with probability ``exp(-2 * noise)`` (Slowloris never gets
        one), and with growing ``noise`` they send smaller requests and end with a
        FIN less often. At 0 the classes are cleanly apart; at 1 and above a
        linear model misclassifies a few percent of the flows.

    random_state : int, RandomState instance or None, default=None
        Seed or generator for the simulation and the shuffling of the rows. Pass an
        int for reproducible output. As everywhere in scikit-learn, None draws from
        NumPy's global ``RandomState``; an int or a ``RandomState`` leaves the
        global generator untouched.

    as_frame : bool, default=False
        If True, return ``X`` as a pandas DataFrame with the feature names as
        columns and ``y`` as a Series named ``"label"``. Needs pandas.

    Returns
    -------
    X : ndarray of shape (n_samples, 48) or DataFrame
        The flows, float64, columns in the order of :data:`FLOW_FEATURE_NAMES`.
        Never NaN or infinite.

    y : ndarray of shape (n_samples,) or Series
        0 for benign, 1 for Slowloris, int64. Rows are shuffled.

    See Also
    --------
    flows_preprocessor : Clip negatives to 0 and min-max scale, as the seed did.

    Notes
    -----
    All flows are TCP (protocol 6) from an ephemeral source port in
    [32768, 60999]. Sizes are payload bytes, so handshake, bare ACK, FIN and RST
    packets count as 0 bytes. ``iat`` columns describe the gaps between
    consecutive packets of one direction, in seconds; ``duration`` is in seconds.
    ``CWE`` is the seed's spelling of the CWR (congestion window reduced) flag.

    Benign flows come from a mix of services (destination ports 80, 443, 3389,
    445, 22, 23, 21, 25, 8080, 53, 139 and 3306) with log-normal, heavy-tailed
    durations (median a few seconds, capped near 1000 s) and data volumes (up to
    about :math:`10^5` bytes per direction). A few are rejected connections (SYN
    answered by RST); most end with a FIN from both sides, some with a RST, some
    not at all.

    Slowloris flows open a connection to port 80, send a header line of about 22
    bytes right after the handshake and another every 10 s or so for about
    120 s, and never finish: about 13 forward packets, a forward inter-arrival
    mean near 9 s, no FIN or RST, and backward packets that are all bare ACKs
    (0 bytes of payload).

    Statistics that are undefined are written as 0: the inter-arrival statistics
    of a direction with a single packet, and the skewness and kurtosis of a
    constant sample (a single packet, or the all-zero backward sizes of a
    Slowloris flow). Otherwise standard deviation is the population one and
    skewness and (Fisher's, excess) kurtosis are the biased estimators, as in
    :func:`scipy.stats.skew` and :func:`scipy.stats.kurtosis` with their defaults.
    Skewness and kurtosis can be negative; :func:`flows_preprocessor` clips them
    to 0 as the seed did.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.datasets import make_flows
    >>> X, y = make_flows(random_state=0)
    >>> X.shape
    (755, 48)
    >>> np.bincount(y)
    array([605, 150])
    >>> X_attack = X[y == 1]
    >>> bool((X_attack[:, 3] == 80).all())
    True
    >>> X_frame, y_series = make_flows(n_samples=10, random_state=0, as_frame=True)
    >>> list(X_frame.columns[:4])
    ['duration', 'protocol', 'src_port', 'dst_port']
    >>> y_series.value_counts().sort_index().tolist()
    [8, 2]
    """
    _check_params(n_samples, attack_fraction, noise)
    rng = check_random_state(random_state)
    n_attack = int(np.floor(n_samples * attack_fraction + 0.5))
    n_attack = min(max(n_attack, 1), n_samples - 1)
    n_benign = n_samples - n_attack
    n_slow_benign = int(rng.binomial(n_benign, min(noise, 1.0) / 2))

    X = np.concatenate(
        [
            _benign_flows(n_benign - n_slow_benign, rng),
            _slow_benign_flows(n_slow_benign, noise, rng),
            _slowloris_flows(n_attack, noise, rng),
        ]
    )
    y = np.repeat(np.array([0, 1], dtype=np.int64), [n_benign, n_attack])
    order = rng.permutation(n_samples)
    X, y = X[order], y[order]

    if as_frame:
        import pandas as pd

        X = pd.DataFrame(X, columns=list(FLOW_FEATURE_NAMES))
        y = pd.Series(y, name="label")
    return X, y


def _clip_negative(X):
    """Return a copy of ``X`` with negative values replaced by 0."""
    return np.maximum(X, 0)


def flows_preprocessor():
    """Build the seed's preprocessing: negatives to 0, then min-max scaling.

    The seed's extractor can write negative values (skewness, excess kurtosis); the
    seed set them to 0 and scaled every column to [0, 1], which is also what a
    Bernoulli-likelihood VAE needs. This returns that as an unfitted pipeline, to
    put in front of an estimator. The scaler clips, so rows outside the training
    range still land in [0, 1]. The input is never modified in place.

    Returns
    -------
    preprocessor : Pipeline
        ``make_pipeline(FunctionTransformer(<negatives to 0>),
        MinMaxScaler(clip=True))``. It passes feature names through, so it works
        with DataFrames and ``set_output(transform="pandas")``.

    See Also
    --------
    make_flows : The data it was written for.

    Examples
    --------
    >>> from skvae.datasets import flows_preprocessor, make_flows
    >>> X, y = make_flows(random_state=0)
    >>> X_scaled = flows_preprocessor().fit_transform(X)
    >>> X_scaled.shape
    (755, 48)
    >>> float(X_scaled.min()), float(X_scaled.max())
    (0.0, 1.0)
    >>> bool((X < 0).any())  # the input keeps its negative skewness values
    True

    In a pipeline, before a classifier or a VAE:

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> model = make_pipeline(flows_preprocessor(), LogisticRegression())
    >>> model.fit(X, y).score(X, y)
    0.9...
    """
    return make_pipeline(
        FunctionTransformer(_clip_negative, feature_names_out="one-to-one"),
        MinMaxScaler(clip=True),
    )


def _discrete_feature(name):
    """Whether the extractor writes whole numbers in column ``name``."""
    return name in ("protocol", "src_port", "dst_port") or name.endswith(
        ("_tot_pkt", "_tot_byte", "_cnt", "_pkt_size_min", "_pkt_size_max")
    )


def _quantile_ks(sample, knots, frac_zero=None, frac_negative=None, discrete=False):
    """Kolmogorov-Smirnov distance of ``sample`` to a CDF known by its quantiles.

    ``knots`` are ``(value, probability)`` pairs, such as ``(min, 0)``,
    ``(p05, 0.05)``, ..., ``(max, 1)``; the reference CDF is piecewise linear
    between them and jumps where several knots share a value (a point mass). When
    ``frac_zero`` and ``frac_negative`` are given, the CDF is also pinned at 0:
    ``F(0-) = frac_negative`` and ``F(0) = frac_negative + frac_zero``, and knots
    that disagree (the interpolated quantiles of a sample with an atom at 0) are
    moved onto those bounds.

    For a ``discrete`` (integer-valued) feature, interpolating between quantiles
    such as ports 80 and 443 would invent mass at the ports in between, so the
    reference is instead every CDF that the knots allow: ``F(x) >= p`` for
    ``x >= q_p`` and ``F(x) <= p`` for ``x < q_p`` (and the pins at 0). The
    distance is then that to the nearest such CDF, compared at whole numbers: 0
    for any sample whose quantiles agree with the knots, and a lower bound on
    the distance to the real distribution. Used by the fidelity benchmark and
    tests, not by :func:`make_flows`.
    """
    sample = np.sort(np.asarray(sample, dtype=float))
    xs, ps = (np.asarray(v, dtype=float) for v in zip(*sorted(knots), strict=True))
    ps = np.maximum.accumulate(np.clip(ps, 0.0, 1.0))
    if frac_zero is not None:
        below, upto = frac_negative, frac_negative + frac_zero
        ps = np.where(xs < 0, np.minimum(ps, below), ps)
        ps = np.where(xs == 0, np.clip(ps, below, upto), ps)
        ps = np.where(xs > 0, np.maximum(ps, upto), ps)
        xs = np.concatenate([xs, [0.0, 0.0]])
        ps = np.concatenate([ps, [below, upto]])
        order = np.lexsort((ps, xs))
        xs, ps = xs[order], ps[order]

    def reference(x, side):
        # side="right": F(x); side="left": F(x-), the limit from below
        i = np.searchsorted(xs, x, side=side)
        lo, hi = np.clip(i - 1, 0, len(xs) - 1), np.clip(i, 0, len(xs) - 1)
        width = xs[hi] - xs[lo]
        t = np.where(width > 0, (x - xs[lo]) / np.where(width > 0, width, 1.0), 1.0)
        inside = ps[lo] + np.clip(t, 0.0, 1.0) * (ps[hi] - ps[lo])
        return np.where(i == 0, 0.0, np.where(i == len(xs), 1.0, inside))

    n = sample.shape[0]
    if discrete:
        low = np.floor(min(sample[0], xs[0]))
        high = np.ceil(max(sample[-1], xs[-1]))
        points = np.arange(low, high + 1)
        if points.shape[0] > 2_000_000:  # fall back on the values seen
            points = np.unique(np.concatenate([np.rint(sample), np.rint(xs)]))
        right = np.searchsorted(sample, points, side="right") / n
        # lowest and highest F(x) the knots allow: the largest p with q_p <= x
        # and the smallest p with q_p > x
        i = np.searchsorted(xs, points, side="right")
        lower = np.where(i > 0, ps[np.maximum(i - 1, 0)], 0.0)
        upper = np.where(i < len(xs), ps[np.minimum(i, len(xs) - 1)], 1.0)
        gap = np.maximum(lower - right, right - upper)
        return float(max(np.max(gap), 0.0))
    points = np.unique(np.concatenate([sample, xs]))
    right = np.searchsorted(sample, points, side="right") / n
    left = np.searchsorted(sample, points, side="left") / n
    return float(
        max(
            np.max(np.abs(right - reference(points, "right"))),
            np.max(np.abs(left - reference(points, "left"))),
        )
    )
