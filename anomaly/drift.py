"""Distribution drift: current vs reference window, canary vs previous version, and a streaming scanner.

Numeric samples (token counts, latency) are compared with a two-sample KS test, PSI on the reference's
quantile bins and the Wasserstein distance; categorical mixes (finish reason, error type) with a chi-squared
test on the contingency table and PSI. A drift needs both a significant test *and* a material effect
(PSI): with tens of thousands of calls a KS test finds every trivial wobble significant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

FeatureKind = Literal["numeric", "categorical"]

DEFAULT_ALPHA = 0.01
# PSI >= 0.1 is the usual "moderate shift" line, >= 0.25 "major".
DEFAULT_MIN_PSI = 0.1
MIN_SAMPLES = 20
_PSI_EPSILON = 1e-4


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One feature's comparison. ``effect_size`` is PSI; ``wasserstein`` is in the feature's units."""

    feature: str
    kind: FeatureKind
    test: str
    statistic: float
    p_value: float
    effect_size: float
    wasserstein: float | None
    drifted: bool
    n_reference: int
    n_current: int


def _psi_from_proportions(expected: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]) -> float:
    e = np.clip(expected, _PSI_EPSILON, None)
    a = np.clip(actual, _PSI_EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = 10) -> float:
    """PSI on bins cut at the reference's quantiles (ties merge bins, so discrete counts work)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.size == 0 or cur.size == 0:
        return 0.0
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_bins = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    cur_bins = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    return _psi_from_proportions(ref_bins / ref.size, cur_bins / cur.size)


def _clean_numeric(values: Sequence[object] | npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def _clean_categorical(values: Sequence[object] | npt.ArrayLike) -> list[str]:
    return [str(v) for v in np.asarray(values, dtype=object).ravel() if v is not None and str(v) != ""]


def _quiet(feature: str, kind: FeatureKind, test: str, n_ref: int, n_cur: int) -> DriftResult:
    return DriftResult(feature, kind, test, 0.0, 1.0, 0.0, None, False, n_ref, n_cur)


def compare_numeric(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    feature: str = "value",
    alpha: float = DEFAULT_ALPHA,
    min_psi: float = DEFAULT_MIN_PSI,
) -> DriftResult:
    """KS + PSI + Wasserstein; too few samples or constant identical data is never drift."""
    ref, cur = _clean_numeric(reference), _clean_numeric(current)
    if ref.size < MIN_SAMPLES or cur.size < MIN_SAMPLES:
        return _quiet(feature, "numeric", "ks", ref.size, cur.size)
    ks = stats.ks_2samp(ref, cur)
    psi = numeric_psi(ref, cur)
    distance = float(stats.wasserstein_distance(ref, cur))
    p_value = float(ks.pvalue)
    return DriftResult(
        feature=feature,
        kind="numeric",
        test="ks",
        statistic=float(ks.statistic),
        p_value=p_value,
        effect_size=psi,
        wasserstein=distance,
        drifted=p_value < alpha and psi >= min_psi,
        n_reference=int(ref.size),
        n_current=int(cur.size),
    )


def compare_categorical(
    reference: Sequence[object] | npt.ArrayLike,
    current: Sequence[object] | npt.ArrayLike,
    *,
    feature: str = "category",
    alpha: float = DEFAULT_ALPHA,
    min_psi: float = DEFAULT_MIN_PSI,
) -> DriftResult:
    """Chi-squared on the reference/current contingency table plus PSI over the categories."""
    ref, cur = _clean_categorical(reference), _clean_categorical(current)
    if len(ref) < MIN_SAMPLES or len(cur) < MIN_SAMPLES:
        return _quiet(feature, "categorical", "chi2", len(ref), len(cur))
    categories = sorted(set(ref) | set(cur))
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((2, len(categories)))
    np.add.at(table[0], [index[c] for c in ref], 1)
    np.add.at(table[1], [index[c] for c in cur], 1)
    psi = _psi_from_proportions(table[0] / len(ref), table[1] / len(cur))
    if len(categories) < 2:
        return DriftResult(feature, "categorical", "chi2", 0.0, 1.0, psi, None, False, len(ref), len(cur))
    chi2 = stats.chi2_contingency(table, correction=False)
    p_value = float(chi2.pvalue)
    return DriftResult(
        feature=feature,
        kind="categorical",
        test="chi2",
        statistic=float(chi2.statistic),
        p_value=p_value,
        effect_size=psi,
        wasserstein=None,
        drifted=p_value < alpha and psi >= min_psi,
        n_reference=len(ref),
        n_current=len(cur),
    )


def infer_kind(values: Sequence[object] | npt.ArrayLike) -> FeatureKind:
    """Numeric when every present value parses as a number, else categorical."""
    for value in np.asarray(values, dtype=object).ravel():
        if value is None or value == "":
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            return "categorical"
    return "numeric"


def compare(
    reference: Sequence[object] | npt.ArrayLike,
    current: Sequence[object] | npt.ArrayLike,
    *,
    feature: str,
    kind: FeatureKind | None = None,
    alpha: float = DEFAULT_ALPHA,
    min_psi: float = DEFAULT_MIN_PSI,
) -> DriftResult:
    kind = kind or infer_kind(reference)
    if kind == "numeric":
        return compare_numeric(_to_float(reference), _to_float(current), feature=feature, alpha=alpha, min_psi=min_psi)
    return compare_categorical(reference, current, feature=feature, alpha=alpha, min_psi=min_psi)


def _to_float(values: Sequence[object] | npt.ArrayLike) -> npt.NDArray[np.float64]:
    out = []
    for value in np.asarray(values, dtype=object).ravel():
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            out.append(np.nan)
    return np.asarray(out, dtype=np.float64)


def canary_compare(
    previous: Mapping[str, Sequence[object] | npt.ArrayLike],
    candidate: Mapping[str, Sequence[object] | npt.ArrayLike],
    *,
    alpha: float = DEFAULT_ALPHA,
    min_psi: float = DEFAULT_MIN_PSI,
) -> list[DriftResult]:
    """Compare a new model version's calls with the previous version's on the same route, per feature.

    Features present in both mappings are compared (e.g. ``input_tokens``, ``output_tokens``,
    ``latency_ms``, ``finish_reason``, ``error_type``); alpha is Bonferroni-split across them so a
    canary with many features is not more likely to be flagged by chance.
    """
    features = [name for name in previous if name in candidate]
    per_feature_alpha = alpha / max(len(features), 1)
    return [
        compare(previous[name], candidate[name], feature=name, alpha=per_feature_alpha, min_psi=min_psi)
        for name in features
    ]


def scan_drift(
    columns: Mapping[str, Sequence[object] | npt.ArrayLike],
    *,
    window: int = 200,
    alpha: float = 1e-4,
    min_psi: float = 0.2,
    stride: int | None = None,
) -> list[int]:
    """0-based row indices at which a drift alarm fires, scanning rows in time order.

    The first ``window`` rows are the reference; the latest ``window`` rows are compared with it every
    ``stride`` rows. After an alarm the rows that follow become the new reference, so one shift raises
    one alarm and a second, later shift raises another. The strict default alpha pays for testing
    repeatedly on overlapping windows.
    """
    if window < 2:
        raise ValueError("window must be at least 2 rows")
    names = list(columns)
    if not names:
        return []
    n_rows = min(len(np.asarray(columns[name], dtype=object)) for name in names)
    kinds = {name: infer_kind(columns[name]) for name in names}
    data = {
        name: _to_float(columns[name])[:n_rows]
        if kinds[name] == "numeric"
        else np.asarray(columns[name], dtype=object)[:n_rows]
        for name in names
    }
    stride = stride or max(1, window // 10)
    per_feature_alpha = alpha / len(names)
    alarms: list[int] = []
    ref_start = 0
    row = ref_start + 2 * window - 1
    while row < n_rows:
        reference = slice(ref_start, ref_start + window)
        current = slice(row - window + 1, row + 1)
        drifted = any(
            compare(
                data[name][reference],
                data[name][current],
                feature=name,
                kind=kinds[name],
                alpha=per_feature_alpha,
                min_psi=min_psi,
            ).drifted
            for name in names
        )
        if drifted:
            alarms.append(row)
            ref_start = row + 1
            row = ref_start + 2 * window - 1
        else:
            row += stride
    return alarms
