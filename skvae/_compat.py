"""The one place that imports scikit-learn internals.

``_fit_context``, the parameter-constraint classes, ``_get_output_config``
(the container ``set_output`` asks for) and ``_num_samples`` (the rows of any
array-like) are private in scikit-learn but stable
since 1.2; if they move, only this module changes. They are re-exported under
names public to the package (``fit_context``, ``get_output_config``), so that
no other module imports a private name.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import _num_samples

fit_context = _fit_context
get_output_config = _get_output_config
num_samples = _num_samples

__all__ = ["Interval", "StrOptions", "fit_context", "get_output_config", "num_samples"]
