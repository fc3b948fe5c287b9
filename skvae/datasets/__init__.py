"""Bundled data: synthetic network flows like the seed's, and their preprocessing."""

from ._flows import FLOW_FEATURE_NAMES, flows_preprocessor, make_flows
from ._preprocessing import anomaly_preprocessor, make_anomaly_pipeline, signed_log1p

__all__ = [
    "FLOW_FEATURE_NAMES",
    "anomaly_preprocessor",
    "flows_preprocessor",
    "make_anomaly_pipeline",
    "make_flows",
    "signed_log1p",
]
