"""Anomaly detectors for regular metric series: pure functions over (series, time) numpy arrays.

Entry point: :func:`detect_batch`. The building blocks are importable for callers (and tests) that need
one method alone.
"""

from anomaly.detectors.alerts import AlertPolicy, Episode, decide_alerts, fired_flags
from anomaly.detectors.evidence import Evidence, PointScores
from anomaly.detectors.multivariate import JOINT_FEATURES, JointModel, JointScores, fit_joint_model, joint_scores
from anomaly.detectors.pipeline import Detection, DetectionResult, detect_batch
from anomaly.detectors.presets import PRESETS, MetricKind, MetricPreset, Sensitivity, get_preset

__all__ = [
    "JOINT_FEATURES",
    "PRESETS",
    "AlertPolicy",
    "Detection",
    "DetectionResult",
    "Episode",
    "Evidence",
    "JointModel",
    "JointScores",
    "MetricKind",
    "MetricPreset",
    "PointScores",
    "Sensitivity",
    "decide_alerts",
    "detect_batch",
    "fired_flags",
    "fit_joint_model",
    "get_preset",
    "joint_scores",
]
