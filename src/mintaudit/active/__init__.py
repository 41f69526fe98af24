"""Active MINT (aMINT): train a classifier whose second output says "this was a training sample".

:class:`ActiveModel` wraps any classifier (its ``forward`` untouched) with a :class:`MintHead`
on chosen layers; :func:`train_active` trains both together; :func:`export_active` /
:func:`load_active` / :func:`query_images` deliver and use the result. In one's own training
loop: :func:`make_auditable`, :func:`paired_batches`, :class:`AmintLoss`, :func:`export_auditable`.
"""

from mintaudit.active.export import Prediction, export_active, load_active, query_images
from mintaudit.active.head import HeadConfig, MintHead
from mintaudit.active.model import ActiveModel
from mintaudit.active.loop import export_auditable, make_auditable, paired_batches
from mintaudit.active.train import ActiveConfig, ActiveResult, AmintLoss, membership_scores, task_accuracy, train_active
from mintaudit.active.train import task_correct


__all__ = [
    "ActiveModel",
    "MintHead",
    "HeadConfig",
    "ActiveConfig",
    "ActiveResult",
    "AmintLoss",
    "make_auditable",
    "paired_batches",
    "export_auditable",
    "train_active",
    "membership_scores",
    "task_accuracy",
    "export_active",
    "load_active",
    "query_images",
    "Prediction",
    "task_correct",
]
