"""Evaluation: membership scores in, metrics with bootstrap intervals out.

Every method produces per-sample scores (higher = more likely a member); evaluation only sees
scores, never the method that made them.
"""

from mintaudit.evaluation.evaluate import TARGET_FPRS, Evaluation, evaluate_scores
from mintaudit.evaluation.metrics import (
    ThresholdMetrics,
    UndefinedMetricWarning,
    auc_score,
    best_threshold,
    roc_curve,
    threshold_metrics,
    tpr_at_fpr,
)

__all__ = [
    "TARGET_FPRS",
    "Evaluation",
    "ThresholdMetrics",
    "UndefinedMetricWarning",
    "auc_score",
    "best_threshold",
    "evaluate_scores",
    "roc_curve",
    "threshold_metrics",
    "tpr_at_fpr",
]
