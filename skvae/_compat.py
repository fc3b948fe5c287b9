"""The one place that imports scikit-learn internals.

``_fit_context`` and the parameter-constraint classes are private in
scikit-learn but stable since 1.2; if they move, only this module changes.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["Interval", "StrOptions", "_fit_context"]
