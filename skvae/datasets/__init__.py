"""Bundled data: synthetic network flows like the seed's, and their preprocessing."""

from ._flows import FLOW_FEATURE_NAMES, flows_preprocessor, make_flows

__all__ = ["FLOW_FEATURE_NAMES", "flows_preprocessor", "make_flows"]
