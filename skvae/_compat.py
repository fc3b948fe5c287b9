"""The one place that imports scikit-learn internals.

``_fit_context`` and the parameter-constraint classes are private in
scikit-learn but stable since 1.2; if they move, only this module changes.
They are re-exported under names public to the package (``fit_context``),
so that no other module imports a private name.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

fit_context = _fit_context

__all__ = ["Interval", "StrOptions", "fit_context"]
