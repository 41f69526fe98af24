"""The one-run DP audit with canaries (``mintaudit audit-dp``): train once, bound epsilon (see :mod:`mintaudit.canary`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit._io import atomic_write_json
from mintaudit._logits import logits_of
from mintaudit.data import ImageDataset, Splits
from mintaudit.errors import ConfigError
from mintaudit.models import model_fingerprint, save_model
from mintaudit.report import load_report, write_report
from mintaudit.report.sections import set_dp_audit
from mintaudit.training import TrainConfig
from mintaudit.workdir.model import report_for, spec_for, train_fresh

__all__ = ["AUDIT_DP_METHODS", "audit_dp"]

AUDIT_DP_METHODS = ("loss", "passive-mint")


@torch.no_grad()
def _logits(net: nn.Module, ds: ImageDataset, idx: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """float64 (N, K) logits of ``net`` (eval mode) for pool ``idx``."""
    from mintaudit._tensor import iter_batches

    net.eval()
    out = [logits_of(net(x)).double().cpu().numpy() for x, _, _ in iter_batches(ds, idx, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, ds.num_classes))


def audit_dp(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    *,
    canaries: int = 1000,
    method: str = "loss",
    model: str = "objcls-cnn",
    model_kwargs: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    dp: Any = None,
    confidence: float = 0.95,
    delta: float | None = None,
    guesses: tuple[int, int] | None = None,
    command: list[str] | None = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """The one-run privacy audit (Steinke, Nasr, Jagielski 2023; see :mod:`mintaudit.canary`): train once, bound epsilon.

    ``canaries`` samples are drawn (seeded) from the external split; each joins the members
    with probability 1/2; the model (``model``, ``config``, DP-SGD when ``dp`` is given) is trained
    once on the members plus the included canaries and saved in ``OUT/audit-dp/model``. Each
    canary is scored by ``method``: ``loss`` (minus its loss) or ``passive-mint`` (a MINT model on
    the output signals, fitted on non-canary members against the test split's non-members);
    the guesses and the bound follow. Writes ``OUT/audit-dp.json`` and the ``dp`` section
    of ``OUT/report.json`` (made from this model when missing) and ``report.html``.

    Args:
        delta: the delta the bound is stated for (default: ``dp.delta``, else 1e-5).
        guesses: ``(k+, k-)`` fixed in advance; None = the best of :func:`mintaudit.canary.guess_grid`,
            Bonferroni-corrected.

    Returns:
        The audit dict (the ``dp`` section's ``audit``).
    """
    from mintaudit.canary import check_audit, draw_canaries, one_run_bound

    config = config or TrainConfig()
    if method not in AUDIT_DP_METHODS:
        raise ConfigError(f"--method must be one of {', '.join(AUDIT_DP_METHODS)}; given {method!r}")
    delta = (dp.delta if dp is not None else 1e-5) if delta is None else float(delta)
    check_audit(canaries, guesses=guesses, confidence=confidence, delta=delta)
    out = Path(out_dir)
    canary_idx, included = draw_canaries(splits.external, canaries, seed=config.seed)
    train_idx = np.sort(np.concatenate([splits.members, canary_idx[included]]))
    spec = spec_for(model, ds, model_kwargs)
    net, info = train_fresh(spec, ds, train_idx, config, dp=dp, test_indices=splits.test, show_progress=show_progress)
    dp_record = info.get("dp")
    info = {
        **info,
        "data_fingerprint": ds.fingerprint(),
        "splits_fingerprint": splits.fingerprint(),
        "trained_on": "members + the included canaries (see audit-dp.json)",
    }
    save_model(net, spec, out / "audit-dp" / "model", info)
    from mintaudit.attacks import loss_scores

    logits = _logits(net, ds, canary_idx)
    labels = ds.labels[canary_idx]
    if method == "loss":
        scores = loss_scores(logits, labels)
        about = {"method": "loss", "signal": "outputs", "detector": "none (minus the loss)"}
    else:
        from mintaudit.detectors import DetectorConfig, MintDetector
        from mintaudit.signals import output_features

        rng = np.random.default_rng([config.seed, 18])
        n_fit = min(len(splits.members), len(splits.test))
        fit_in = np.sort(rng.choice(splits.members, size=n_fit, replace=False))
        fit_out = np.sort(rng.choice(splits.test, size=n_fit, replace=False))
        X = np.concatenate(
            [
                output_features(_logits(net, ds, fit_in), ds.labels[fit_in]),
                output_features(_logits(net, ds, fit_out), ds.labels[fit_out]),
            ]
        )
        y = np.concatenate([np.ones(n_fit, dtype=np.int64), np.zeros(n_fit, dtype=np.int64)])
        det = MintDetector.from_config(DetectorConfig(kind="mlp", seed=config.seed), show_progress=False).fit(X, y)
        scores = det.decision_function(output_features(logits, labels)).astype(np.float64)
        about = {
            "method": "passive-mint",
            "signal": "outputs",
            "detector": "mlp on the output signals (fitted on "
            f"{n_fit} non-canary members against {n_fit} test non-members)",
        }
    bound = one_run_bound(scores, included, delta=delta, confidence=confidence, guesses=guesses, seed=config.seed)
    doc = {
        "schema": "mintaudit/audit-dp@1",
        **about,
        **bound.to_dict(),
        "canaries_from": "external split (seeded draw); each trained on with probability 1/2",
        "model": {
            "name": model,
            "dir": "audit-dp/model",
            "task_accuracy": info["task_accuracy"],
            "train_accuracy": info["train_accuracy"],
            "fingerprint": model_fingerprint(net),
            "trained_on": int(len(train_idx)),
            "dp": dp_record,
        },
        "canary_indices": canary_idx.tolist(),
        "canary_included": included.astype(int).tolist(),
        "command": " ".join(command or []),
    }
    atomic_write_json(out / "audit-dp.json", doc)
    section = {k: v for k, v in doc.items() if k not in ("canary_indices", "canary_included", "schema")}
    report_path = out / "report.json"
    report = (
        load_report(report_path)
        if report_path.is_file()
        else report_for(
            out,
            ds,
            splits,
            model,
            net,
            info,
            {"audit_dp": {"canaries": canaries, "method": method}},
            command or [],
        )
    )
    set_dp_audit(report, {**section, "file": "audit-dp.json"})  # the report's dp section
    write_report(report, out)
    return report["sections"]["dp"]["audit"]
