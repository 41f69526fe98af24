"""Evaluation: membership scores in, metrics with bootstrap intervals and calibrated decisions out.

Every method produces per-sample scores (higher = more likely a member); evaluation only sees
scores, never the method that made them.
"""

from mintaudit.evaluation.blind import BlindTest, blind_features, blind_test
from mintaudit.evaluation.evaluate import TARGET_FPRS, Evaluation, SampleInfo, evaluate_scores
from mintaudit.evaluation.metrics import (
    ThresholdMetrics,
    UndefinedMetricWarning,
    auc_score,
    best_threshold,
    roc_curve,
    threshold_metrics,
    tpr_at_fpr,
)
from mintaudit.evaluation.privacy import EpsilonBound, clopper_pearson, epsilon_lower_bound, min_scores_for_bound
from mintaudit.evaluation.statistics import (
    DatasetTest,
    SampleDecisions,
    benjamini_hochberg,
    conformal_pvalues,
    dataset_test,
    sample_decisions,
)
from mintaudit.evaluation.usage import SamplesNeeded, UsageShare, samples_needed, usage_share
from mintaudit.evaluation.statistics import DECISIONS


__all__ = [
    "TARGET_FPRS",
    "BlindTest",
    "SamplesNeeded",
    "UsageShare",
    "blind_features",
    "blind_test",
    "samples_needed",
    "usage_share",
    "DatasetTest",
    "EpsilonBound",
    "Evaluation",
    "SampleDecisions",
    "SampleInfo",
    "ThresholdMetrics",
    "UndefinedMetricWarning",
    "auc_score",
    "benjamini_hochberg",
    "best_threshold",
    "clopper_pearson",
    "conformal_pvalues",
    "dataset_test",
    "epsilon_lower_bound",
    "evaluate_scores",
    "min_scores_for_bound",
    "roc_curve",
    "sample_decisions",
    "threshold_metrics",
    "tpr_at_fpr",
    "DECISIONS",
]
