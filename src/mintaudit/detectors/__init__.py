"""MINT models (detectors): fit on AAD of members vs external samples, score any sample."""

from mintaudit.detectors.mint import DetectorConfig, MintDetector

__all__ = ["DetectorConfig", "MintDetector"]
