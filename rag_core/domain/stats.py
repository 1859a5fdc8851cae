"""Summaries of measured durations, shared by the asset checks and the benchmarks so that a
p95 means the same everywhere."""

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], share: float) -> float:
    """Nearest rank: the smallest value with at least `share` (0 to 1] of the values at or
    below it. Always one of the values, never an interpolation."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("the percentile of no values")
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
