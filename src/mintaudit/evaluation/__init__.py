"""Evaluation: membership scores in, metrics with bootstrap intervals and calibrated decisions out.

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
from mintaudit.evaluation.statistics import (
    DatasetTest,
    SampleDecisions,
    benjamini_hochberg,
    conformal_pvalues,
    dataset_test,
    sample_decisions,
)

__all__ = [
    "TARGET_FPRS",
    "DatasetTest",
    "Evaluation",
    "SampleDecisions",
    "ThresholdMetrics",
    "UndefinedMetricWarning",
    "auc_score",
    "benjamini_hochberg",
    "best_threshold",
    "conformal_pvalues",
    "dataset_test",
    "evaluate_scores",
    "roc_curve",
    "sample_decisions",
    "threshold_metrics",
    "tpr_at_fpr",
]
