"""MINT models: binary classifiers T(AAD) -> P(sample was a training member).

Two kinds, following the original MINT papers, each registered with
:func:`~mintaudit.detectors.registry.register_detector` (a new kind is one such function; the
hyper-parameters, :class:`~mintaudit.detectors.registry.DetectorConfig`, live there too):

- ``mlp``: per-channel pooled activations (``mean`` or ``meanmax``) or the flattened map, then
  dense layers ("vanilla MINT"; also what reads dense taps and gradient vectors);
- ``cnn``: two stride-2 conv layers on the activation maps, global average+max pooling, dense
  layers (stride 2 from the first layer keeps it cheap on the large maps of shallow taps).

Both may fuse the model's output signals (loss, logit-scaled confidence...) into the dense part:
the original MINT found that combining sources helps. Training uses ``BCEWithLogitsLoss``
(positive class re-weighted so that both classes count equally), Adam, and early stopping on
the AUC of a seeded validation part of the MINT-training data; the best epoch's weights are kept.

:class:`MintDetector` is a scikit-learn estimator (``get_params`` / ``set_params`` / ``clone``
work; binary only). ``fit`` draws from its own seeded generators and leaves the global torch
random state as it found it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError
from sklearn.utils.multiclass import type_of_target
from torch import nn

from mintaudit._io import atomic_path, atomic_write_json
from mintaudit._progress import progress
from mintaudit._tensor import device_of, resolve_device
from mintaudit.detectors.registry import DetectorConfig, Kind, Pooling, detector_kind, register_detector
from mintaudit.errors import ConfigError, CorruptFileError, NotFittedError, SignalError
from mintaudit.evaluation.metrics import auc_score

__all__ = ["DetectorConfig", "MintDetector"]

_CHUNK = 512


@register_detector("mlp")
def mlp_body(in_dim: int, in_channels: int, cfg: DetectorConfig) -> tuple[nn.Module, int]:
    """Vanilla MINT: the pooled (or flattened) activations go straight to the dense head."""
    return nn.Identity(), in_dim


class _ConvPooled(nn.Sequential):
    """Two stride-2 conv layers, then global average + max pooling: (B, C, H, W) -> (B, 4 * width)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = super().forward(x)
        return torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)


@register_detector("cnn", maps=True)
def cnn_body(in_dim: int, in_channels: int, cfg: DetectorConfig) -> tuple[nn.Module, int]:
    """The CNN MINT model on activation maps (stride 2 from the first layer keeps it cheap)."""
    w = cfg.width
    return _ConvPooled(
        nn.Conv2d(in_channels, w, 3, stride=2, padding=1),
        nn.BatchNorm2d(w),
        nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
        nn.BatchNorm2d(2 * w),
        nn.ReLU(),
    ), 4 * w


class _Net(nn.Module):
    """The registered kind's body, then the shared dense head (with the fused output signals)."""

    def __init__(self, kind: str, in_dim: int, in_channels: int, extra_dim: int, cfg: DetectorConfig) -> None:
        super().__init__()
        self.kind = kind
        self.body, feat = detector_kind(kind).body(in_dim, in_channels, cfg)
        self.head = nn.Sequential(
            nn.Linear(feat + extra_dim, cfg.hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.hidden // 2),
            nn.ReLU(),
            nn.Linear(cfg.hidden // 2, 1),
        )

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        x = self.body(x)
        if extra is not None:
            x = torch.cat([x, extra], 1)
        return self.head(x)[:, 0]


class _NotFittedError(NotFittedError, _SklearnNotFittedError):
    """mintaudit's NotFittedError, also the one scikit-learn's tools (``check_is_fitted``) expect."""


def _as_2d_or_4d(X: Any) -> Any:
    """X as an (N, D) or (N, C, H, W) array-like of real numbers; a lazy row view stays lazy."""
    if type(X).__module__.startswith("scipy.sparse"):
        raise SignalError("MINT inputs must be dense arrays, got a sparse matrix: pass X.toarray()")
    if not (hasattr(X, "ndim") and hasattr(X, "shape") and hasattr(X, "__getitem__")):
        X = np.asarray(X)  # lists and other array-likes
    kind = getattr(getattr(X, "dtype", None), "kind", "f")
    if kind == "c":
        raise SignalError("Complex data not supported as MINT inputs: pass the real part or the magnitude")
    if kind == "O":
        X = np.asarray(X, dtype=np.float32)  # an object array of numbers (TypeError otherwise)
    if X.ndim == 3:  # (N, T, D) token maps: treat tokens as a 1-pixel-wide image
        return X.reshape(X.shape[0], X.shape[1], X.shape[2], 1)
    if X.ndim not in (2, 4):
        hint = ""
        if X.ndim < 2:
            hint = ": Reshape your data, X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
        raise SignalError(f"MINT inputs must be (N, D) or (N, C, H, W) arrays, got shape {X.shape}{hint}")
    n_features = int(np.prod(X.shape[1:]))
    if X.shape[0] == 0 or n_features == 0:
        raise SignalError(
            f"X has {X.shape[0]} sample(s) and {n_features} feature(s) (shape={tuple(X.shape)}) "
            "while a minimum of 1 is required: give a non-empty array"
        )
    return X


def _binary_target(y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The classes (sorted) and y as float32 0/1 (1 = the second class, the members)."""
    if y is None:
        raise SignalError(
            "MintDetector requires y to be passed, but the target y is None: give 1 for members, 0 for external samples"
        )
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected; it is read as y.ravel()",
            DataConversionWarning,
            stacklevel=3,
        )
        y = y[:, 0]
    if y.ndim != 1:
        raise SignalError(f"y should be a 1d array of labels (1 = member, 0 = external), got shape {y.shape}")
    if len(y) != n:
        raise SignalError(f"X has {n} rows but y has {len(y)}: give one label per row")
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise SignalError("Input y contains NaN or inf: give 1 for members, 0 for external samples")
    target = type_of_target(y, input_name="y")
    if target == "unknown":
        raise SignalError(
            f"Unknown label type: y of dtype {y.dtype} holds no class labels; "
            "give 1 for members, 0 for external samples"
        )
    classes = np.unique(y)
    if target != "binary" or len(classes) != 2:
        raise SignalError(
            f"y must hold both classes, 1 for members and 0 for external samples (Only binary classification "
            f"is supported.); got a {target} target with {len(classes)} class(es)"
        )
    return classes, (y == classes[1]).astype(np.float32)


class MintDetector(ClassifierMixin, BaseEstimator):
    """A MINT model with the scikit-learn estimator contract (binary: 1 = member, 0 = external).

    The parameters are those of :class:`DetectorConfig` (validated by ``fit``), plus
    ``show_progress`` (progress bar over epochs; None = only on a terminal) and ``device`` (where it
    trains and scores: ``cpu``, ``cuda`` or ``cuda:N``; None = the run's device, set by ``--device`` or
    ``mintaudit.audit(device=...)``, else the CPU; a loaded detector is on the CPU). ``__init__`` only
    stores them, so ``get_params`` / ``set_params`` / ``sklearn.base.clone`` work; learned state
    ends in ``_``. Build one from a config with :meth:`from_config`.

    Example:
        >>> X = np.random.default_rng(0).normal(size=(200, 8)).astype("float32")
        >>> y = (X[:, 0] > 0).astype(int)
        >>> det = MintDetector(epochs=5).fit(X, y)
        >>> det.predict_proba(X).shape
        (200, 2)
    """

    def __init__(
        self,
        *,
        kind: Kind = "auto",
        pooling: Pooling = "meanmax",
        width: int = 32,
        hidden: int = 128,
        dropout: float = 0.3,
        epochs: int = 40,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 6,
        val_fraction: float = 0.2,
        seed: int = 0,
        show_progress: bool | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.kind = kind
        self.pooling = pooling
        self.width = width
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.show_progress = show_progress
        self.device = device

    @classmethod
    def from_config(
        cls,
        config: DetectorConfig | None = None,
        *,
        show_progress: bool | None = None,
        device: str | torch.device | None = None,
    ) -> MintDetector:
        """A detector with the hyper-parameters of ``config`` (default: ``DetectorConfig()``)."""
        return cls(**asdict(config or DetectorConfig()), show_progress=show_progress, device=device)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # members vs external samples only
        return tags

    def _more_tags(self) -> dict[str, Any]:  # the same tag for scikit-learn < 1.6
        return {"binary_only": True}

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "net_")

    # ---- feature preparation -------------------------------------------------------------
    def _features(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Rows of X as the network's float32 input (pooled for mlp on maps), unstandardised."""
        x = np.asarray(X[rows], dtype=np.float32)
        if not np.isfinite(x).all():
            raise SignalError(
                "MINT inputs contain NaN or inf values: check the signals (activations, gradients) "
                "or the audited model's preprocessing"
            )
        if x.ndim == 4 and not detector_kind(self.kind_).maps:
            if self.config_.pooling == "flatten":
                return x.reshape(len(x), -1)
            pooled = [x.mean((2, 3))]
            if self.config_.pooling == "meanmax":
                pooled.append(x.max((2, 3)))
            return np.concatenate(pooled, 1)
        return x

    def _stats(self, X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std per feature (mlp) or per channel (cnn), streamed over chunks of rows."""
        s = s2 = None
        count = 0
        for start in range(0, len(rows), _CHUNK):
            x = self._features(X, rows[start : start + _CHUNK]).astype(np.float64)
            axes = (0, 2, 3) if x.ndim == 4 else (0,)
            m = x.sum(axes)
            m2 = (x * x).sum(axes)
            s, s2 = (m, m2) if s is None else (s + m, s2 + m2)
            count += x.size // m.size
        mean = s / count
        std = np.sqrt(np.maximum(s2 / count - mean * mean, 0.0))
        return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)

    def _batch(
        self, X: np.ndarray, extra: np.ndarray | None, rows: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = torch.from_numpy(self._features(X, rows))
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        x = (x - torch.from_numpy(self.mean_).view(shape)) / torch.from_numpy(self.std_).view(shape)
        e = None
        if extra is not None:
            e = (torch.from_numpy(np.asarray(extra[rows], np.float32)) - torch.from_numpy(self.extra_mean_)) / (
                torch.from_numpy(self.extra_std_)
            )
        dev = device_of(self.net_)
        return x.to(dev), (None if e is None else e.to(dev))

    # ---- the estimator contract ---------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, extra: np.ndarray | None = None) -> MintDetector:
        """Fit on AAD ``X`` with labels ``y`` (1 = member, 0 = external).

        The validation split and the shuffling draw from a numpy generator seeded with ``seed``,
        the weights' initialisation and dropout from a fork of the torch CPU generator seeded
        with ``seed``: the same seed gives the same detector, and the global torch random state
        is left exactly as it was.

        Args:
            X: float array (N, D) or (N, C, H, W); a memory map is read in batches.
            y: array (N,) of two classes: 0/1 (the larger one, here 1, is the members).
            extra: optional float (N, k) output signals fused into the dense part.

        Returns:
            self.
        """
        params = self.get_params()
        params.pop("show_progress")
        device = resolve_device(params.pop("device"))  # an unknown device: ConfigError, in one line
        cfg = DetectorConfig(**params)  # validates the hyper-parameters
        X = _as_2d_or_4d(X)
        classes, y = _binary_target(y, len(X))
        if extra is not None and len(extra) != len(X):
            raise SignalError(f"X has {len(X)} rows but y has {len(y)} and extra {len(extra)}")
        kind = cfg.kind if cfg.kind != "auto" else ("cnn" if X.ndim == 4 else "mlp")
        if detector_kind(kind).maps and X.ndim != 4:
            raise ConfigError(
                f"the {kind} detector reads activation maps (N, C, H, W); got {X.shape} (a pooled tap "
                "stores vectors): use kind='mlp' (--detector mlp), or store maps (--tap-mode grid:k)"
            )
        self.config_, self.kind_, self.classes_ = cfg, kind, classes
        self.input_shape_ = tuple(int(d) for d in X.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.__dict__.pop("net_", None)
        try:
            # the CPU generator (and the detector's GPU's, for dropout there) seeded, restored on exit
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.default_generator.manual_seed(cfg.seed)
                if device.type == "cuda":
                    torch.cuda.default_generators[device.index].manual_seed(cfg.seed)
                return self._fit(cfg, X, y, extra, device)
        except BaseException:
            self.__dict__.pop("net_", None)  # a fit that failed leaves no fitted-looking detector
            raise

    def _fit(
        self, cfg: DetectorConfig, X: Any, y: np.ndarray, extra: np.ndarray | None, device: torch.device
    ) -> MintDetector:
        kind = self.kind_
        rng = np.random.default_rng(cfg.seed)
        val_rows, train_rows = [], []
        for cls in (0, 1):  # stratified validation split
            rows = rng.permutation(np.flatnonzero(y == cls))
            k = max(1, int(round(cfg.val_fraction * len(rows))))
            val_rows.append(rows[:k])
            train_rows.append(rows[k:])
        val, train = np.concatenate(val_rows), np.concatenate(train_rows)
        self.mean_, self.std_ = self._stats(X, train)
        self.extra_dim_ = 0 if extra is None else int(np.asarray(extra).shape[1])
        if extra is None:
            for stale in ("extra_mean_", "extra_std_"):
                self.__dict__.pop(stale, None)
        else:
            ex = np.asarray(extra, np.float32)[train]
            if not np.isfinite(ex).all():
                raise SignalError("extra output signals contain NaN or infinite values")
            self.extra_mean_ = ex.mean(0)
            self.extra_std_ = np.where(ex.std(0) > 1e-6, ex.std(0), 1.0).astype(np.float32)
        in_dim = int(np.prod(self._features(X, train[:1]).shape[1:]))
        self.net_ = _Net(kind, in_dim, self.input_shape_[0], self.extra_dim_, cfg).to(device)  # drawn on the CPU
        n_pos = float(y[train].sum())
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(train) - n_pos) / max(n_pos, 1.0), device=device))
        opt = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        yt = torch.from_numpy(y).to(device)
        best = (-1.0, None, 0)
        self.history_: list[dict[str, float]] = []
        bar = progress(range(cfg.epochs), desc=f"fit {kind} MINT", enabled=self.show_progress, unit="epoch")
        for epoch in bar:
            self.net_.train()
            order = rng.permutation(train)
            total = 0.0
            for start in range(0, len(order), cfg.batch_size):
                rows = order[start : start + cfg.batch_size]
                if len(rows) < 2:
                    continue
                x, e = self._batch(X, extra, rows)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(self.net_(x, e), yt[rows])
                loss.backward()
                opt.step()
                total += loss.item() * len(rows)
            val_auc = auc_score(y[val], self._logits(X, extra, val))
            self.history_.append({"epoch": epoch + 1, "train_loss": total / len(train), "val_auc": val_auc})
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(val_auc=f"{val_auc:.3f}")
            if val_auc > best[0]:
                best = (val_auc, {k: v.clone() for k, v in self.net_.state_dict().items()}, epoch + 1)
            elif epoch + 1 - best[2] >= cfg.patience:
                break
        self.net_.load_state_dict(best[1])
        self.net_.eval()
        self.best_epoch_, self.val_auc_ = best[2], best[0]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise _NotFittedError("this MintDetector is not fitted yet; call fit first")

    @torch.no_grad()
    def _logits(self, X: np.ndarray, extra: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
        was_training = self.net_.training
        self.net_.eval()
        out = []
        for start in range(0, len(rows), _CHUNK):
            x, e = self._batch(X, extra, rows[start : start + _CHUNK])
            out.append(self.net_(x, e).float().cpu().numpy())
        self.net_.train(was_training)
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def decision_function(self, X: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Membership logits, float32 (N,): higher = more likely a member."""
        self._check_fitted()
        X = _as_2d_or_4d(X)
        if tuple(X.shape[1:]) != self.input_shape_:
            raise SignalError(
                f"X has {int(np.prod(X.shape[1:]))} features, but MintDetector is expecting "
                f"{self.n_features_in_} features as input (per-sample shape {tuple(X.shape[1:])}, "
                f"the detector was fitted on {self.input_shape_}): give the signals it was fitted on"
            )
        if (extra is None) != (self.extra_dim_ == 0):
            raise SignalError("give extra output signals exactly when the detector was fitted with them")
        return self._logits(X, extra, np.arange(len(X)))

    def predict_proba(self, X: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """float32 (N, 2): [P(external), P(member)]."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X, extra).astype(np.float64)))
        return np.stack([1.0 - p, p], 1).astype(np.float32)

    def predict(self, X: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """(N,) labels from ``classes_``: the member class (1) where P(member) > 0.5."""
        member = self.decision_function(X, extra) > 0
        return self.classes_[member.astype(np.int64)]

    # ---- persistence ----------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> Path:
        """Write ``detector.safetensors`` (weights, normalisation) and ``detector.json`` atomically."""
        from safetensors.torch import save_file

        self._check_fitted()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        tensors["mean"], tensors["std"] = torch.from_numpy(self.mean_), torch.from_numpy(self.std_)
        if self.extra_dim_:
            tensors["extra_mean"] = torch.from_numpy(self.extra_mean_)
            tensors["extra_std"] = torch.from_numpy(self.extra_std_)
        with atomic_path(out / "detector.safetensors") as tmp:
            save_file(tensors, str(tmp))
        meta = {
            "schema": "mintaudit/detector@1",
            "config": asdict(self.config_),
            "kind": self.kind_,
            "classes": self.classes_.tolist(),
            "input_shape": list(self.input_shape_),
            "extra_dim": self.extra_dim_,
            "best_epoch": self.best_epoch_,
            "val_auc": self.val_auc_,
            "history": self.history_,
        }
        atomic_write_json(out / "detector.json", meta)
        return out

    @classmethod
    def load(cls, path: str | Path) -> MintDetector:
        """Load a detector written by :meth:`save` (safetensors + JSON only; nothing unpickled)."""
        from safetensors.torch import load_file

        path = Path(path)
        try:
            meta = json.loads((path / "detector.json").read_text())
            tensors = load_file(str(path / "detector.safetensors"))
        except (OSError, json.JSONDecodeError, Exception) as e:
            raise CorruptFileError(
                f"{str(path)!r} holds no readable detector ({e}); fit one with 'mintaudit fit'"
            ) from e
        det = cls.from_config(cfg := DetectorConfig(**meta["config"]))
        det.config_ = cfg
        det.classes_ = np.asarray(meta.get("classes", [0, 1]))  # detectors saved before 'classes': 0/1
        det.kind_, det.input_shape_, det.extra_dim_ = meta["kind"], tuple(meta["input_shape"]), int(meta["extra_dim"])
        det.n_features_in_ = int(np.prod(det.input_shape_))
        det.best_epoch_, det.val_auc_, det.history_ = meta["best_epoch"], meta["val_auc"], meta["history"]
        det.mean_, det.std_ = tensors["mean"].numpy(), tensors["std"].numpy()
        if det.extra_dim_:
            det.extra_mean_, det.extra_std_ = tensors["extra_mean"].numpy(), tensors["extra_std"].numpy()
        in_dim = int(np.prod(det.input_shape_)) if detector_kind(det.kind_).maps else int(det.mean_.shape[0])
        det.net_ = _Net(det.kind_, in_dim, det.input_shape_[0], det.extra_dim_, det.config_)
        det.net_.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        det.net_.eval()
        return det
