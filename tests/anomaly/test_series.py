from __future__ import annotations

import numpy as np
import pytest

from anomaly.series import RegularGrid, infer_step, regularize, safe_ratio, to_epoch_seconds


def test_regularize_puts_gaps_as_nan_and_maps_rows_back() -> None:
    stamps = np.array([0, 60, 240, 120])  # unsorted, 180 missing
    grid, values, positions = regularize(stamps, np.array([1.0, 2.0, 5.0, 3.0]))

    assert grid == RegularGrid(start=0, step=60, length=5)
    assert np.array_equal(values, [1.0, 2.0, 3.0, np.nan, 5.0], equal_nan=True)
    assert positions.tolist() == [0, 1, 4, 2]


def test_regularize_averages_duplicates_and_ignores_nan_values() -> None:
    _, values, _ = regularize(np.array([0, 0, 60, 60]), np.array([1.0, 3.0, np.nan, 4.0]))

    assert values.tolist() == [2.0, 4.0]


def test_regularize_empty_input() -> None:
    grid, values, positions = regularize(np.array([]), np.array([]))

    assert grid.length == 0 and values.size == 0 and positions.size == 0


def test_regularize_refuses_absurd_grids() -> None:
    with pytest.raises(ValueError, match="cadence is not regular"):
        regularize(np.array([0, 1, 10**9]), np.array([1.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    ("stamps", "step"),
    [([0, 60, 120, 300], 60), ([0, 300, 600, 1200, 1500], 300), ([5], 60), ([7, 7, 7], 60)],
)
def test_infer_step_is_the_most_common_spacing(stamps: list[int], step: int) -> None:
    assert infer_step(np.array(stamps)) == step


def test_to_epoch_seconds_accepts_datetime64() -> None:
    stamps = np.array(["2025-01-01T00:00:00", "2025-01-01T00:01:00"], dtype="datetime64[s]")

    assert to_epoch_seconds(stamps).tolist() == [1_735_689_600, 1_735_689_660]


def test_periods_per_day_only_for_sub_daily_cadences() -> None:
    assert RegularGrid(0, 60, 1).periods_per_day == 1440
    assert RegularGrid(0, 3600, 1).periods_per_day == 24
    assert RegularGrid(0, 86_400, 1).periods_per_day is None
    assert RegularGrid(0, 7, 1).periods_per_day is None


def test_safe_ratio_is_nan_on_zero_or_missing_denominator() -> None:
    out = safe_ratio([1.0, 1.0, 0.0, 2.0], [0.0, np.nan, 0.0, 4.0])

    assert np.array_equal(out, [np.nan, np.nan, np.nan, 0.5], equal_nan=True)
