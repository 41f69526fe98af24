"""The main job on the embedded data (``mintaudit demo``): train, sweep, attack, aMINT, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


from mintaudit._io import atomic_write_json
from mintaudit.errors import ConfigError
from mintaudit.attacks.run import AttackConfig
from mintaudit.detectors import DetectorConfig
from mintaudit.passive import SweepConfig
from mintaudit.training import TrainConfig

from mintaudit.workdir.audit import attack, sweep
from mintaudit.workdir.data import prepare_data
from mintaudit.workdir.model import train_model

__all__ = ["DEMO_ATTACKS", "demo"]


DEMO_ATTACKS = ("loss", "entropy", "rmia")


def demo(
    out_dir: str | Path = "runs/demo",
    *,
    dataset: str = "digits",
    data_root: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    fusion: str = "both",
    command: list[str] | None = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """The main job: train ``objcls-cnn`` on the members, sweep its 7 taps with passive MINT, run the
    baseline attacks in :data:`DEMO_ATTACKS` (two reference models) on the same sets, train the
    same backbone with aMINT for the same budget (delivered to ``out_dir/amint/middle``), and
    write the reports.

    On the embedded ``digits`` it takes about a minute on 2 CPU cores; ``fashion-mnist``
    (5,000 members, 15 epochs) takes longer.
    """
    out = Path(out_dir)
    ds, splits = prepare_data(dataset, out, data_root=data_root, seed=seed)
    if epochs is None:
        epochs = 40 if dataset == "digits" else 15
    train_cfg = TrainConfig(epochs=epochs, batch_size=32 if dataset == "digits" else 64, seed=seed)
    model_json = out / "model" / "model.json"
    saved = json.loads(model_json.read_text()) if model_json.is_file() else {}
    if saved.get("train") != train_cfg.to_dict() or saved.get("splits_fingerprint") != splits.fingerprint():
        if (out / "report.json").is_file():  # its results are about the model a retrain would replace
            raise ConfigError(
                f"{str(out / 'report.json')!r} holds results for the model of an earlier demo with other options "
                "(epochs, seed or splits); its results are kept: use another --out"
            )
        train_model(out, ds, splits, model="objcls-cnn", config=train_cfg, show_progress=show_progress)
    cfg = SweepConfig(detector=DetectorConfig(seed=seed), fusion=fusion, seed=seed)  # type: ignore[arg-type]
    sweep(out, ds, splits, taps="published", config=cfg, command=command, show_progress=show_progress)
    # the baseline attacks on the same sets; two reference models trained like the audited one
    attack_cfg = AttackConfig(n_reference=2, reference_train=train_cfg, seed=seed)
    attack(
        out,
        ds,
        splits,
        methods=list(DEMO_ATTACKS),
        config=attack_cfg,
        known_fraction=cfg.known_fraction,
        command=command,
        show_progress=show_progress,
    )
    # aMINT: the same backbone trained with a MINT head for the same budget, beside passive MINT on the plain model
    from mintaudit.active import ActiveConfig
    from mintaudit.active.workflow import ActiveRunConfig, active_train

    active_cfg = ActiveRunConfig(
        train=ActiveConfig(epochs=epochs, batch_size=train_cfg.batch_size, lr=train_cfg.lr, patience=10, seed=seed)
    )
    report = active_train(out, ds, splits, active_cfg, plain=True, command=command, show_progress=show_progress)
    atomic_write_json(
        out / "demo.config.json",
        {
            "dataset": dataset,
            "epochs": epochs,
            "seed": seed,
            "fusion": fusion,
            "train": train_cfg.to_dict(),
            "sweep": cfg.to_dict(),
            "attacks": attack_cfg.to_dict(),
            "amint": active_cfg.to_dict(),
        },
    )
    return report
