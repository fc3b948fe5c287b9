"""Synthetic network flows: benign traffic and Slowloris denial of service.

The generator simulates packets (times, directions, payload sizes and TCP flags)
for every flow and computes each flow's 48 statistics from them, the way the
original post's flow extractor does, so the columns are consistent with one
another. Its constants were fitted to the per-class quantiles of the original
post's flows (``benchmarks/bench_flows_fidelity.py`` measures the fit).
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
"""Names of the 48 columns of :func:`make_flows`, in the original extractor's order."""

_TCP = 6
_PROTOCOL_NAMES = {_TCP: "TCP"}  # IANA protocol numbers, as the extractor writes them
_MSS = 1460  # largest TCP payload on an Ethernet path
_TSO_MAX = 65160  # largest segment the capturing host hands its NIC to split

# TCP header flag bits
_FIN, _SYN, _RST, _PSH, _ACK, _URG, _ECE, _CWR = (1 << i for i in range(8))
# The original extractor names its flag columns FIN, SYN, RST, PUSH, ACK, URG, CWE,
# ECE but, judging from the original flows' statistics, reads the flag byte from
# the highest bit down, so those columns count CWR, ECE, URG, ACK, PSH, RST, SYN
# and FIN: every packet but a SYN is counted under "PUSH", the one SYN under "CWE".
# make_flows keeps the names and reproduces the counts.
_COLUMN_BITS = (_CWR, _ECE, _URG, _ACK, _PSH, _RST, _SYN, _FIN)

# Calibrated constants. Everything below was fitted by hand to the per-class
# quantiles of the original post's 603 benign and 150 Slowloris flows
# (shared/seed/flows_statistics.csv, see benchmarks/bench_flows_fidelity.py); the
# generator does not read that table.
_BENIGN_PORTS = np.array([22, 80, 135, 443, 445, 3389, 5357, 8080, 49666, 60573])
_BENIGN_PORT_SHARES = np.array(
    [0.02, 0.40, 0.02, 0.28, 0.02, 0.205, 0.02, 0.01, 0.015, 0.01]
)
_SYN_ONLY = 0.10  # a SYN and nothing else: unanswered, or the meter split the flow
_ECN = 0.18  # connections whose SYN asks for ECN (ECE and CWR set)
_SYN_RETRANSMIT = 0.012
# how connections end: (both FIN, both FIN then a client RST, client FIN then
# RST, client RST, server RST, no end seen)
_ENDINGS = np.array([0.40, 0.137, 0.09, 0.183, 0.134, 0.056])
_SLOWLORIS_FIRST_PORT = 47602  # the attacker's consecutive (even) source ports


class _Packets:
    """Packets of many flows, appended flow after flow and in time order."""

    def __init__(self):
        self.flow, self.time, self.forward, self.size, self.flags = [], [], [], [], []
        self.n_flows = 0
        self.now = 0.0

    def start(self):
        self.n_flows += 1
        self.now = 0.0

    def add(self, wait, forward, size, flags):
        self.now += wait
        self.flow.append(self.n_flows - 1)
        self.time.append(self.now)
        self.forward.append(forward)
        self.size.append(size)
        self.flags.append(flags)


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
    std, biased skewness, Fisher's excess kurtosis). Where they are undefined the
    original extractor writes 0 for the mean, std, skewness, minimum and maximum
    (an empty segment) and 0 for the skewness and -3 for the excess kurtosis (a
    constant segment, which includes every one-element and every empty one): the
    kurtosis it computes as 0 before subtracting 3.
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
    out[:, 3] = np.where(constant, 0.0, m4 / safe_m2**2) - 3.0
    nonempty = counts > 0
    if nonempty.any():
        starts = (np.cumsum(counts) - counts)[nonempty]
        out[nonempty, 4] = np.minimum.reduceat(values, starts)
        out[nonempty, 5] = np.maximum.reduceat(values, starts)
    return out


def _extract(packets, src_port, dst_port):
    """The 48 columns of each flow, computed from its packets as the extractor does.

    A packet's inter-arrival time is the time since the flow's previous packet in
    either direction (0 for the first, always forward); ``fwd_iat_*`` and
    ``bwd_iat_*`` describe those of each direction's packets. Sizes are payload
    bytes. The duration runs from the first packet to the last.
    """
    n = packets.n_flows
    if n == 0:
        return np.empty((0, len(FLOW_FEATURE_NAMES)))
    flow = np.asarray(packets.flow, dtype=np.int64)
    time = np.asarray(packets.time, dtype=float)
    forward = np.asarray(packets.forward, dtype=bool)
    size = np.asarray(packets.size, dtype=float)
    flags = np.asarray(packets.flags, dtype=np.int64)
    first = np.r_[True, flow[1:] != flow[:-1]]
    iat = np.where(first, 0.0, time - np.r_[0.0, time[:-1]])
    X = np.empty((n, len(FLOW_FEATURE_NAMES)))
    X[:, 0] = np.maximum.reduceat(time, np.flatnonzero(first))
    X[:, 1] = _TCP
    X[:, 2] = src_port
    X[:, 3] = dst_port
    for k, mask in enumerate((forward, ~forward)):
        counts = np.bincount(flow[mask], minlength=n)
        X[:, 4 + 2 * k] = counts
        X[:, 5 + 2 * k] = np.bincount(flow[mask], size[mask], minlength=n)
        X[:, 8 + 6 * k : 14 + 6 * k] = _ragged_stats(size[mask], counts)
        X[:, 20 + 6 * k : 26 + 6 * k] = _ragged_stats(iat[mask], counts)
        for j, bit in enumerate(_COLUMN_BITS):
            X[:, 32 + 8 * k + j] = np.bincount(
                flow[mask], (flags[mask] & bit) > 0, minlength=n
            )
    return X


def _lognormal(rng, median, sigma):
    return median * np.exp(sigma * rng.standard_normal())


def _benign_flow(p, rng):
    """One benign TCP connection: handshake, request/response exchanges, maybe a
    stretch of idle keep-alive probes, and an ending."""
    p.start()
    ecn = (_ECE | _CWR) if rng.uniform() < _ECN else 0
    p.add(0.0, True, 0, _SYN | ecn)
    if rng.uniform() < _SYN_ONLY:
        return
    if rng.uniform() < _SYN_RETRANSMIT:
        p.add(rng.choice([1.0, 3.0]), True, 0, _SYN | ecn)
    server = _lognormal(rng, 0.01, 2.0)  # this server's typical answer time
    p.add(server * _lognormal(rng, 1.0, 0.5), False, 0, _SYN | _ACK)
    p.add(_lognormal(rng, 1e-4, 1.0), True, 0, _ACK)

    u = rng.uniform()
    exchanges = 0 if u < 0.07 else 1 if u < 0.49 else 2 + rng.poisson(3.5)
    think = _lognormal(rng, 0.3, 1.5)  # this client's typical pause
    for i in range(exchanges):
        wait = _lognormal(rng, 2e-4, 1.5) if i == 0 else think * _lognormal(rng, 1, 1)
        request = min(max(round(_lognormal(rng, 200.0, 1.3)), 1), _TSO_MAX)
        p.add(wait, True, request, _PSH | _ACK)
        latency = server * _lognormal(rng, 1.0, 1.0)
        if latency > 0.04:  # the server's delayed ACK fires before its answer
            p.add(0.04, False, 0, _ACK)
            latency -= 0.04
        pushes = 0 if rng.uniform() < 0.08 else 1 if rng.uniform() < 0.6 else 2
        unacked = 0
        for push in range(pushes):
            response = max(round(_lognormal(rng, 200.0, 1.9)), 1)
            segments = min(-(-response // _MSS), 300)
            for s in range(segments):
                last = s == segments - 1
                payload = response - _MSS * (segments - 1) if last else _MSS
                gap = latency if (push == 0 and s == 0) else _burst_gap(rng)
                p.add(gap, False, payload, _ACK | (_PSH if last else 0))
                unacked += 1
                if unacked == 2:  # the client ACKs every second segment
                    p.add(_lognormal(rng, 5e-5, 1.0), True, 0, _ACK)
                    unacked = 0
        if unacked:  # and the odd one after its delayed-ACK timer
            p.add(rng.uniform(0.0, 0.04), True, 0, _ACK)

    if rng.uniform() < 0.45:  # kept open, probed every few seconds, then closed
        lifetime = _lifetime(rng)
        period = rng.uniform(8.0, 12.0) if rng.uniform() < 0.5 else rng.uniform(15, 60)
        while p.now + period < lifetime:
            p.add(period * _lognormal(rng, 1.0, 0.05), True, 0, _ACK)
            p.add(server * _lognormal(rng, 1.0, 0.5), False, 0, _ACK)
        idle = max(lifetime - p.now, 0.0)
    else:
        idle = _lognormal(rng, 0.05, 2.0)
    _end(p, rng, idle, server)


def _burst_gap(rng):
    # back-to-back segments; the capture often stamps two with the same time
    return 0.0 if rng.uniform() < 0.1 else _lognormal(rng, 3e-5, 1.2)


def _lifetime(rng):
    u = rng.uniform()
    if u < 0.55:
        return rng.uniform(3.0, 60.0)
    if u < 0.9:
        return rng.uniform(60.0, 157.0)
    return min(157.0 + _lognormal(rng, 100.0, 1.0), 950.0)


def _end(p, rng, idle, server):
    ending = rng.choice(len(_ENDINGS), p=_ENDINGS)
    answer = server * _lognormal(rng, 1.0, 0.5)
    if ending in (0, 1):  # both sides FIN
        p.add(idle, True, 0, _FIN | _ACK)
        p.add(answer, False, 0, _FIN | _ACK)
        p.add(_lognormal(rng, 1e-4, 1.0), True, 0, _ACK)
        if ending == 1:
            p.add(_lognormal(rng, 1e-3, 1.0), True, 0, _RST | _ACK)
    elif ending == 2:  # client FIN, no answer, then RST
        p.add(idle, True, 0, _FIN | _ACK)
        p.add(answer, False, 0, _ACK)
        p.add(_lognormal(rng, 1e-3, 1.0), True, 0, _RST | _ACK)
    elif ending == 3:
        p.add(idle, True, 0, _RST | _ACK)
    elif ending == 4:
        p.add(idle, False, 0, _RST | _ACK)


def _benign_flows(n, rng):
    """Benign traffic of a client machine to a mix of services."""
    p = _Packets()
    for _ in range(n):
        _benign_flow(p, rng)
    dst_port = _BENIGN_PORTS[
        rng.choice(len(_BENIGN_PORTS), size=n, p=_BENIGN_PORT_SHARES)
    ]
    src_port = _benign_source_ports(n, rng)
    return _extract(p, src_port, dst_port)


def _benign_source_ports(n, rng):
    # mostly one Windows client's ephemeral ports, allocated in sequence over the
    # capture, and a few from other hosts and ranges
    u = rng.uniform(size=n)
    ports = np.where(
        u < 0.70,
        rng.randint(49400, 50700, size=n),
        np.where(
            u < 0.90,
            rng.randint(50700, 65535, size=n),
            rng.randint(1024, 49400, size=n),
        ),
    )
    return ports


def _slowloris_flows(n, noise, rng):
    """Slowloris: one attacker keeps many connections open to port 80 by sending
    a partial HTTP request and then one header line every 15 s, never finished.

    All connections are served by one loop, so they share its timing: after the
    request the loop sends two header lines at once and then eight, each 15 s
    plus the time the loop takes; two in five of the connections send the
    second line 3.6 s late. ``noise`` adds jitter to each connection's timing.
    """
    p = _Packets()
    loop = 15.0 + np.clip(rng.normal(0.0134, 0.001, size=8), 0.0, None)
    loop[rng.randint(8)] = 15.0205  # the loop's slowest turn
    # seconds on every 15 s wait, and header lines more or fewer than 8: both
    # negligible at the default noise, where the original flows were measured
    jitter = 0.0002 + 0.5 * noise**4
    spread = min(int(round(2 * noise**2)), 7)
    late = rng.uniform(size=n) < 0.38
    for i in range(n):
        p.start()
        p.add(0.0, True, 0, _SYN)
        p.add(_ack_latency(rng, slow=True), False, 0, _SYN | _ACK)
        p.add(_lognormal(rng, 5e-5, 0.3), True, 0, _ACK)
        # two short lines, then "X-a: <1 to 5000>\r\n" (9 to 12 bytes) lines
        numbers = rng.randint(1, 5001, size=8 + rng.randint(-spread, spread + 1))
        lines = [rng.randint(18, 20), rng.randint(5, 7)]
        lines += list(8 + np.floor(np.log10(numbers) + 1))
        p.add(_lognormal(rng, 1e-4, 0.3), True, 168, _PSH | _ACK)
        for k, line in enumerate(lines):
            latency = _ack_latency(rng)
            p.add(latency, False, 0, _ACK)
            if k < 2:
                wait = 3.64 if (k == 1 and late[i]) else rng.uniform(0.0, 0.02)
            else:
                turn = loop[(k - 2) % len(loop)]
                wait = turn + jitter * rng.standard_normal() - latency
            p.add(max(wait, 1e-6), True, int(line), _PSH | _ACK)
        p.add(_ack_latency(rng), False, 0, _ACK)
    # slowloris' default 150 sockets, reopened on the same ports
    src_port = _SLOWLORIS_FIRST_PORT + 2 * (np.arange(n) % 150)
    return _extract(p, rng.permutation(src_port), 80)


def _ack_latency(rng, slow=False):
    # the victim's quick ACKs, now and then one held up a few milliseconds
    if slow and rng.uniform() < 0.35:
        return rng.uniform(0.0035, 0.0045)
    if rng.uniform() < 0.25:
        return _lognormal(rng, 7e-4, 0.3)
    return _lognormal(rng, 5e-5, 0.4)


def _slow_benign_flows(n, noise, rng):
    """Benign look-alikes of Slowloris: long polling and keep-alive HTTP.

    A request, then a small one every few seconds, each answered. The more
    ``noise``, the more they resemble Slowloris: fewer replies, fewer FINs,
    smaller requests, more of them to port 80, a steadier period near 15 s, a
    lifetime near 2 minutes, a server that acknowledges at once.
    """
    resemblance = 1.0 - np.exp(-noise)
    p = _Packets()
    for _ in range(n):
        p.start()
        server = _lognormal(rng, 0.002 * (1 - resemblance) + 3e-4 * resemblance, 1.0)
        p.add(0.0, True, 0, _SYN)
        p.add(server, False, 0, _SYN | _ACK)
        p.add(_lognormal(rng, 1e-4, 1.0), True, 0, _ACK)
        lifetime = 120.0 + (1.0 - 0.8 * resemblance) * rng.uniform(-90.0, 60.0)
        gap = 15.0 + (1.0 - 0.8 * resemblance) * rng.uniform(-10.0, 0.0)
        wait = _lognormal(rng, 1e-4, 1.0)
        first = True
        while True:
            median = 168.0 if first else 40.0 - 25.0 * resemblance
            size = max(round(_lognormal(rng, median, 0.5)), 1)
            p.add(wait, True, min(size, _MSS), _PSH | _ACK)
            if rng.uniform() < np.exp(-2.0 * noise):
                reply = max(round(_lognormal(rng, 200.0, 0.8)), 1)
                p.add(server, False, min(reply, _MSS), _PSH | _ACK)
            else:
                p.add(server * _lognormal(rng, 1.0, 0.5), False, 0, _ACK)
            wait = gap * _lognormal(rng, 1.0, 0.3 * (1.0 - 0.8 * resemblance))
            first = False
            if p.now + wait > lifetime:
                break
        if rng.uniform() < 0.5 * (1.0 - resemblance):
            _end(p, rng, _lognormal(rng, 0.05, 1.0), server)
    dst_port = np.where(rng.uniform(size=n) < 0.3 * (1.0 - resemblance), 8080, 80)
    return _extract(p, _benign_source_ports(n, rng), dst_port)


def make_flows(
    n_samples=755,
    *,
    attack_fraction=150 / 755,
    noise=0.1,
    random_state=None,
    as_frame="auto",
    raw=False,
):
    """Generate synthetic network flows: benign traffic and Slowloris attacks.

    A stand-in for the data of the blog post "Variational Autoencoders" by Ke He
    (the original post), which cannot be redistributed: TCP flows described by the
    48 statistics of its flow extractor (see :data:`FLOW_FEATURE_NAMES`),
    labelled benign (0) or Slowloris denial of service (1). Packets are simulated
    for every flow and the statistics are computed from them, so the columns agree
    with one another (``fwd_tot_byte`` is ``fwd_tot_pkt * fwd_pkt_size_mean``,
    every minimum is at most the mean, the inter-arrival times of both directions
    add up to the duration, flag counts never exceed packet counts). The
    simulation was calibrated to the per-class quantiles of the original post's
    603 benign and 150 Slowloris flows; ``benchmarks/bench_flows_fidelity.py``
    measures how close it comes. The Notes describe what is simulated.

    Parameters
    ----------
    n_samples : int, default=755
        Number of flows, at least 2. The default is the size of the original
        post's data.

    attack_fraction : float, default=150/755
        Share of Slowloris flows, in the open interval (0, 1). The number of attack
        flows is ``n_samples * attack_fraction`` rounded half up, then moved into
        ``[1, n_samples - 1]`` so that both classes are always present. The default
        gives the original post's 150 attacks among 755 flows.

    noise : float, default=0.1
        How much the classes overlap, at least 0. It sets the share of benign
        flows that look like slow HTTP (long polling and keep-alive connections
        sending a small request every few seconds) to ``min(noise, 1) / 2``, and
        how much those resemble Slowloris: each request gets a reply with
        probability ``exp(-2 * noise)`` (Slowloris never gets one), and with
        growing ``noise`` they send smaller requests at a steadier period near
        15 s for about 2 minutes and end with a FIN less often. From about 0.5 on
        it also jitters the Slowloris timing (by ``0.5 * noise**4`` seconds) and
        the number of its header lines. At 0 and at the default the classes are
        cleanly apart; at 1 and above a linear model misclassifies a few percent
        of the flows.

    random_state : int, RandomState instance or None, default=None
        Seed or generator for the simulation and the shuffling of the rows. Pass an
        int for reproducible output. As everywhere in scikit-learn, None draws from
        NumPy's global ``RandomState``; an int or a ``RandomState`` leaves the
        global generator untouched.

    as_frame : bool or 'auto', default='auto'
        If True, return ``X`` as a pandas DataFrame with the feature names as
        columns and ``y`` as a Series named ``"label"``. Needs pandas. 'auto'
        (as in :func:`sklearn.datasets.fetch_openml`) returns a DataFrame when
        ``raw=True`` and arrays otherwise.

    raw : bool, default=False
        If True, return the table as a flow extractor writes it, each column
        with its own dtype, for ``likelihood='auto'`` to read: counts as
        ``int64``, times and sizes as ``float64``, the protocol and the
        destination port (the service) as pandas categories. Only a DataFrame
        holds that, so ``raw=True`` returns one (``as_frame=False`` is an
        error). The values are those of the default float table for the same
        arguments, row for row. See "The raw table" in the Notes.

    Returns
    -------
    X : ndarray of shape (n_samples, 48) or DataFrame
        The flows, columns in the order of :data:`FLOW_FEATURE_NAMES`: float64,
        or with ``raw=True`` the dtypes described in the Notes. Never NaN or
        infinite.

    y : ndarray of shape (n_samples,) or Series
        0 for benign, 1 for Slowloris, int64. Rows are shuffled.

    See Also
    --------
    flows_preprocessor : Clip negatives to 0 and min-max scale, as the original
        post did.

    Notes
    -----
    The columns follow the conventions of the original extractor, as far as the
    original flows' statistics reveal them:

    - sizes are payload bytes, so handshake, bare ACK, FIN and RST packets count
      as 0 bytes; outgoing (``fwd``) packets can exceed the 1460-byte MSS, as a
      capture on the client sees them before segmentation offload splits them;
    - a packet's inter-arrival time is the time since the flow's previous packet
      in either direction, 0 for the first (always forward) one; ``fwd_iat_*``
      and ``bwd_iat_*`` describe those of each direction's packets, so
      ``fwd_iat_min`` is 0 for every flow and ``bwd_iat_*`` measures how fast the
      server answers; ``duration`` (seconds) is their sum;
    - a statistic of no packets is 0; the skewness of a constant sample (one
      packet, or all-zero sizes) is 0 and its excess kurtosis -3. Otherwise
      standard deviation is the population one and skewness and (Fisher's,
      excess) kurtosis are the biased estimators, as in
      :func:`scipy.stats.skew` and :func:`scipy.stats.kurtosis` with their
      defaults. :func:`flows_preprocessor` clips the negative ones to 0;
    - the flag columns keep the extractor's names but count the flag bits from
      the highest down: ``*_FIN_cnt`` counts CWR, ``*_SYN_cnt`` ECE,
      ``*_RST_cnt`` URG, ``*_PUSH_cnt`` ACK, ``*_ACK_cnt`` PSH, ``*_URG_cnt``
      RST, ``*_CWE_cnt`` SYN and ``*_ECE_cnt`` FIN. (In the original flows the
      column named PUSH counts every packet but the SYN, all 12 payload-free
      answers of a Slowloris server included; only this reading makes the
      counts agree with TCP.)

    All flows are TCP (protocol 6). Benign flows come from one client machine
    (most source ports in a narrow band of Windows' ephemeral range) to a mix of
    services (mostly ports 80, 443 and 3389). A tenth are a lone SYN; the others
    open a connection (some asking for ECN), exchange a few requests and
    responses (heavy-tailed sizes, responses cut into 1460-byte segments, the
    client acknowledging every second one), and either close soon or stay open
    with keep-alive probes every 8 to 60 s for up to about 1000 s; they end with
    FINs, a RST from either side, or not at all.

    Slowloris flows come from one attacker whose loop serves all connections,
    so they share its timing: to port 80, from consecutive even source ports
    (slowloris' default of 150 sockets, reused beyond 150 attack flows), a
    168-byte partial request, two short header lines at once and then a
    9-to-12-byte ``X-a: <number>`` line every 15 s (two in five of the connections
    send their second line 3.6 s late), never finished, every segment
    acknowledged by the server within a millisecond or so: 13 forward packets,
    about 120 s.

    **The raw table.** With ``raw=True`` each column has the dtype of what it
    is, which is what ``likelihood='auto'`` of :class:`~skvae.VAETransformer`
    and :class:`~skvae.VAEOutlierDetector` reads:

    - ``int64``, non-negative counts (18 columns): ``fwd_tot_pkt`` and
      ``bwd_tot_pkt`` (packets) and the 16 ``*_cnt`` flag counts;
    - ``category``, identifiers with no order or distance: ``protocol``, the
      IANA name of the protocol, one level ``'TCP'`` since every simulated flow
      is TCP (a constant column, which the model learns exactly), and
      ``dst_port``, the service the flow went to, with the ten simulated
      service ports as its categories (integers, in increasing order, whether
      or not a sample holds them all);
    - ``int64``, ``src_port``: also an identifier, but the client's ephemeral
      port, new for almost every flow, so a category would have a level per
      flow (and unseen levels at every ``transform``); it stays the number the
      extractor writes, which ``'auto'`` models as one. Drop it, or give it a
      family of your choice, where that matters;
    - ``float64``, times and sizes: ``duration`` and the inter-arrival times
      (seconds), ``fwd_tot_byte``, ``bwd_tot_byte`` and the packet sizes
      (payload bytes: whole numbers in the totals, minima and maxima, but
      sizes, heavy-tailed, not counts of events), and the moments (means,
      standard deviations, skewness and excess kurtosis, negative for some).

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

    The raw table, as a flow extractor writes it:

    >>> X_raw, y_raw = make_flows(n_samples=10, random_state=0, raw=True)
    >>> X_raw.dtypes.astype(str).value_counts().to_dict()
    {'float64': 27, 'int64': 19, 'category': 2}
    >>> X_raw["protocol"].cat.categories.tolist()
    ['TCP']
    >>> X_raw["dst_port"].cat.categories.tolist()
    [22, 80, 135, 443, 445, 3389, 5357, 8080, 49666, 60573]
    >>> bool((X_raw["fwd_tot_pkt"] == X_frame["fwd_tot_pkt"]).all())
    True
    """
    _check_params(n_samples, attack_fraction, noise)
    as_frame = _check_frame_params(as_frame, raw)
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

        X = _raw_frame(X) if raw else pd.DataFrame(X, columns=list(FLOW_FEATURE_NAMES))
        y = pd.Series(y, name="label")
    return X, y


# The columns of make_flows(raw=True) that hold counts, as int64.
_COUNT_COLUMNS = tuple(
    name for name in FLOW_FEATURE_NAMES if name.endswith(("_tot_pkt", "_cnt"))
)

# The service ports that the simulation draws from; the categories of dst_port.
_SERVICE_PORTS = tuple(int(port) for port in np.sort(_BENIGN_PORTS))


def _check_frame_params(as_frame, raw):
    """Validate ``as_frame`` and ``raw``; return whether to build a DataFrame."""
    if not isinstance(raw, bool | np.bool_):
        raise ValueError(f"raw must be True or False, got {raw!r}.")
    if isinstance(as_frame, str) and as_frame == "auto":
        return bool(raw)
    if not isinstance(as_frame, bool | np.bool_):
        raise ValueError(f"as_frame must be True, False or 'auto', got {as_frame!r}.")
    if raw and not as_frame:
        raise ValueError(
            "raw=True returns a DataFrame (its columns have different dtypes), "
            "so it cannot go with as_frame=False; pass as_frame=True or leave "
            "as_frame='auto'."
        )
    return bool(as_frame)


def _raw_frame(X):
    """The float64 flows ``X`` as a DataFrame with each column's own dtype.

    Derived from ``X`` itself, so the values are those of the float table: the
    counts are whole numbers there already (sums of 0/1 per packet).
    """
    import pandas as pd

    frame = pd.DataFrame(X, columns=list(FLOW_FEATURE_NAMES))
    counts = list(_COUNT_COLUMNS)
    frame[counts] = frame[counts].astype(np.int64)
    frame["src_port"] = frame["src_port"].astype(np.int64)
    frame["protocol"] = pd.Categorical(
        frame["protocol"].astype(np.int64).map(_PROTOCOL_NAMES),
        categories=sorted(_PROTOCOL_NAMES.values()),
    )
    frame["dst_port"] = pd.Categorical(
        frame["dst_port"].astype(np.int64), categories=list(_SERVICE_PORTS)
    )
    return frame


def clip_negative(X):
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
        FunctionTransformer(clip_negative, feature_names_out="one-to-one"),
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
