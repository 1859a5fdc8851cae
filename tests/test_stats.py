"""The one percentile the freshness check and the benchmarks share."""

import pytest

from rag_core.domain.stats import percentile


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(n) for n in range(20, 0, -1)]  # 1..20, unsorted
    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 0.95) == 19.0
    assert percentile(values, 1.0) == 20.0
    assert percentile([3.0], 0.95) == 3.0


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)
