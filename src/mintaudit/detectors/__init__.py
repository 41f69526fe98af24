"""MINT models (detectors): fit on AAD of members vs external samples, score any sample."""

from mintaudit.detectors.mint import DetectorConfig, MintDetector
from mintaudit.detectors.registry import (
    DETECTOR_KINDS,
    Detector,
    DetectorFactory,
    DetectorKind,
    DetectorScorer,
    detector_kind,
    register_detector,
    unregister_detector,
)

__all__ = [
    "DETECTOR_KINDS",
    "Detector",
    "DetectorConfig",
    "DetectorFactory",
    "DetectorKind",
    "DetectorScorer",
    "MintDetector",
    "detector_kind",
    "register_detector",
    "unregister_detector",
]
