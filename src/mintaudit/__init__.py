"""mintaudit: Membership Inference Test (MINT) audits for PyTorch classifiers."""

__version__ = "0.1.0"
