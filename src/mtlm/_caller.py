"""Warnings that point at the user's line, not at the line inside mtlm."""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_at_caller(message, category=UserWarning):
    """``warnings.warn`` with the stack level of the first frame outside mtlm.

    Counting levels by hand breaks whenever a call path changes (``fit`` and
    ``tune`` reach the same learner through different depths).
    """
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
