"""Per-metric detector settings and the sensitivity knob.

LLM metrics differ in shape: latencies and token counts are multiplicative (log scale), error and
unpriced shares are proportions of a call count (binomial), volumes are counts (Poisson). A preset
chooses the transform, the statistical model, which direction matters and the base thresholds;
sensitivity scales every threshold at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

Direction = Literal["up", "down", "both"]
Transform = Literal["identity", "log"]
CountModel = Literal["none", "binomial", "poisson"]
Sensitivity = Literal["low", "medium", "high"] | float

_NAMED_SENSITIVITY = {"low": 0.25, "medium": 0.5, "high": 0.75}
# Threshold multiplier at sensitivity 0 (most conservative); 1.0 gives the inverse.
_SENSITIVITY_SPAN = 1.8


class MetricKind(StrEnum):
    LATENCY = "latency"
    TTFT = "ttft"
    ERROR_RATE = "error_rate"
    COST = "cost"
    COST_PER_CALL = "cost_per_call"
    TOKENS = "tokens"
    OUTPUT_TOKENS_PER_SECOND = "output_tokens_per_second"
    VOLUME = "volume"
    UNPRICED_SHARE = "unpriced_share"
    GENERIC = "generic"


@dataclass(frozen=True, slots=True)
class MetricPreset:
    """Thresholds are in robust-z units at medium sensitivity.

    ``min_scale`` floors the noise scale (in transformed units) so a constant series does not turn
    the first wobble into an infinite z-score. ``min_calls`` is the call count per bucket below which
    a value metric (a p95 over two calls is noise) ignores the bucket. Count models need no such guard:
    their exact tests already treat few calls as weak evidence.
    """

    kind: MetricKind
    transform: Transform
    direction: Direction
    count_model: CountModel = "none"
    z_threshold: float = 5.0
    cusum_drift: float = 1.0
    cusum_threshold: float = 16.0
    count_z_threshold: float = 4.5
    min_scale: float = 0.02
    min_relative_change: float = 0.0
    min_calls: float = 3.0
    gaps_are_zero: bool = False
    # Severity at which one bucket alone fires (see AlertPolicy.fast_enter). Only for the exact count
    # tests, whose severities are calibrated tail probabilities; a p95 over few calls has single-bucket
    # spikes that must not page.
    fast_enter: float | None = None


# Twice the threshold: for the count tests a tail probability below ~1e-19 at medium sensitivity.
FAST_ENTER = 2.0

PRESETS: dict[MetricKind, MetricPreset] = {
    MetricKind.LATENCY: MetricPreset(MetricKind.LATENCY, "log", "up", min_scale=0.02, min_relative_change=0.15),
    MetricKind.TTFT: MetricPreset(MetricKind.TTFT, "log", "up", min_scale=0.02, min_relative_change=0.15),
    MetricKind.ERROR_RATE: MetricPreset(
        MetricKind.ERROR_RATE,
        "identity",
        "up",
        count_model="binomial",
        min_scale=0.005,
        min_relative_change=1.0,
        fast_enter=FAST_ENTER,
    ),
    MetricKind.COST: MetricPreset(MetricKind.COST, "log", "both", min_scale=0.02, min_relative_change=0.15),
    MetricKind.COST_PER_CALL: MetricPreset(
        MetricKind.COST_PER_CALL, "log", "both", min_scale=0.01, min_relative_change=0.1
    ),
    MetricKind.TOKENS: MetricPreset(MetricKind.TOKENS, "log", "both", min_scale=0.01, min_relative_change=0.1),
    MetricKind.OUTPUT_TOKENS_PER_SECOND: MetricPreset(
        MetricKind.OUTPUT_TOKENS_PER_SECOND, "log", "both", min_scale=0.02, min_relative_change=0.1
    ),
    MetricKind.VOLUME: MetricPreset(
        MetricKind.VOLUME,
        "identity",
        "both",
        count_model="poisson",
        min_relative_change=0.3,
        gaps_are_zero=True,
        fast_enter=FAST_ENTER,
    ),
    MetricKind.UNPRICED_SHARE: MetricPreset(
        MetricKind.UNPRICED_SHARE,
        "identity",
        "up",
        count_model="binomial",
        min_scale=0.005,
        min_relative_change=1.0,
        fast_enter=FAST_ENTER,
    ),
    MetricKind.GENERIC: MetricPreset(MetricKind.GENERIC, "identity", "both", min_scale=1e-9),
}


def sensitivity_value(sensitivity: Sensitivity) -> float:
    """Map low/medium/high or a float in [0, 1] (higher = more alerts) to a float in [0, 1]."""
    if isinstance(sensitivity, str):
        try:
            return _NAMED_SENSITIVITY[sensitivity]
        except KeyError:
            raise ValueError(
                f"sensitivity must be low, medium, high or a number in [0, 1], not {sensitivity!r}"
            ) from None
    value = float(sensitivity)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"sensitivity must be within [0, 1], not {value}")
    return value


def threshold_scale(sensitivity: Sensitivity) -> float:
    """Multiplier applied to every threshold: 1.0 at medium, larger (fewer alerts) at low."""
    return float(_SENSITIVITY_SPAN ** (1.0 - 2.0 * sensitivity_value(sensitivity)))


def get_preset(metric: MetricKind | str, sensitivity: Sensitivity = "medium") -> MetricPreset:
    """The preset for ``metric`` with its thresholds scaled for ``sensitivity``."""
    base = PRESETS[MetricKind(metric)]
    scale = threshold_scale(sensitivity)
    return replace(
        base,
        z_threshold=base.z_threshold * scale,
        cusum_threshold=base.cusum_threshold * scale,
        count_z_threshold=base.count_z_threshold * scale,
    )
