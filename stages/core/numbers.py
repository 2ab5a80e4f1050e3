"""One rule for a number read from untrusted data (a dataset cell, a JSON value, a server's reply).

A number is a finite int or float and never a bool: JSON's `true` is a Python int, and NaN or ±Inf
turn every sum it enters into NaN.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard


def finite_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
