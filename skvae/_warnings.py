"""Where a warning points: the user's line, whatever the depth of the call.

A fixed ``stacklevel`` counts the frames between ``warnings.warn`` and the
user, and goes stale when a subclass (the outlier detector) or a wrapper adds
one. :func:`find_stack_level` counts them at run time instead, as pandas'
``pandas.util._exceptions.find_stack_level`` does.
"""

import inspect
import os

import sklearn

# Frames in these folders are not the user's: skvae's own, and scikit-learn's
# wrappers around its methods (``_fit_context``, ``Pipeline``, meta-estimators),
# so that a warning raised under ``pipeline.fit`` points at that call.
_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (__file__, sklearn.__file__)
)


def find_stack_level():
    """``stacklevel`` for ``warnings.warn`` that points at the first outside frame.

    Call it in the argument list of ``warnings.warn``: level 1 is the function
    calling ``warn``, and each frame up inside skvae or scikit-learn adds one.

    Returns
    -------
    stacklevel : int
    """
    frame = inspect.currentframe()
    level = 0
    try:
        while frame is not None and os.path.abspath(
            frame.f_code.co_filename
        ).startswith(_LIBRARY_DIRS):
            frame = frame.f_back
            level += 1
    finally:
        del frame
    return level
