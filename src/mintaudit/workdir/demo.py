"""The main job on the embedded data (``mintaudit demo``): train, sweep, attack, aMINT, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


from mintaudit._io import atomic_write_json
from mintaudit.report import load_report
from mintaudit.errors import ConfigError
from mintaudit.attacks import AttackConfig
from mintaudit.detectors import DetectorConfig
from mintaudit.passive import SweepConfig
from mintaudit.training import TrainConfig

from mintaudit.workdir.audit import attack, sweep
from mintaudit.workdir.data import prepare_data
from mintaudit.workdir.model import train_model
from mintaudit.workdir.oneshot import answer_lines
from mintaudit.workdir.verdict import verdict

__all__ = ["DEMO_ATTACKS", "DEMO_EPOCHS", "DEMO_QUERIES", "DEMO_SIZES", "MEMORISE", "demo", "demo_lines"]


DEMO_ATTACKS = ("loss", "entropy", "rmia")
#: A model made to memorise, so that there is something to find: no dropout ...
MEMORISE = {"dropout": 0.0}
#: ... few members (members, external, test) on digits ...
DEMO_SIZES = (300, 500, 600)
#: ... and many epochs.
DEMO_EPOCHS = 50
#: The suspect sets the demo gives a verdict on: held-out members (used), then test samples (not used).
DEMO_QUERIES = ("heldout-members", "test")
_ROLES = ("members", "external", "test")


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
    """The main job: train ``objcls-cnn`` on the members, made to memorise (:data:`MEMORISE`: no dropout; on
    digits :data:`DEMO_SIZES` few members and :data:`DEMO_EPOCHS` epochs), sweep its 7 taps with passive MINT,
    run the baseline attacks in :data:`DEMO_ATTACKS` (two reference models) on the same sets, train the same
    backbone with aMINT for the same budget (delivered to ``out_dir/amint/middle``), give a verdict on each
    suspect set of :data:`DEMO_QUERIES` (held-out members, then non-members), and write the reports.

    Returns the report, with the verdicts in ``report["demo_verdicts"]`` (in the order of the queries).
    On the embedded ``digits`` it takes about two minutes on 2 CPU cores; ``fashion-mnist``
    (5,000 members, 15 epochs) takes longer.
    """
    out = Path(out_dir)
    sizes = DEMO_SIZES if dataset == "digits" else (None, None, None)
    ds, splits = prepare_data(dataset, out, data_root=data_root, seed=seed, **dict(zip(_ROLES, sizes)))
    if epochs is None:
        epochs = DEMO_EPOCHS if dataset == "digits" else 15
    train_cfg = TrainConfig(epochs=epochs, batch_size=32 if dataset == "digits" else 64, seed=seed)
    model_json = out / "model" / "model.json"
    saved = json.loads(model_json.read_text()) if model_json.is_file() else {}
    if saved.get("train") != train_cfg.to_dict() or saved.get("splits_fingerprint") != splits.fingerprint():
        if (out / "report.json").is_file():  # its results are about the model a retrain would replace
            raise ConfigError(
                f"{str(out / 'report.json')!r} holds results for the model of an earlier demo with other options "
                "(epochs, seed or splits); its results are kept: use another --out"
            )
        train_model(
            out, ds, splits, model="objcls-cnn", model_kwargs=MEMORISE, config=train_cfg, show_progress=show_progress
        )
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
    # the question, answered twice: on a suspect set of members (held out of every MINT model) and on non-members;
    # before aMINT, so that the method is chosen among the rows of the audited model only (not its plain twin's)
    verdicts = [
        verdict(out, ds, splits, query=q, config=cfg, command=command, show_progress=show_progress)
        for q in DEMO_QUERIES
    ]
    # aMINT: the same backbone trained with a MINT head for the same budget, beside passive MINT on the plain model
    from mintaudit.active import ActiveConfig
    from mintaudit.workdir.amint import ActiveRunConfig, active_train

    active_cfg = ActiveRunConfig(
        backbone_kwargs=dict(MEMORISE),
        train=ActiveConfig(epochs=epochs, batch_size=train_cfg.batch_size, lr=train_cfg.lr, patience=10, seed=seed),
    )
    report = active_train(out, ds, splits, active_cfg, plain=True, command=command, show_progress=show_progress)
    report = {**load_report(out / "report.json"), "demo_verdicts": verdicts, "demo_config": {"epochs": epochs}}
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
            "model_kwargs": MEMORISE,
            "queries": list(DEMO_QUERIES),
        },
    )
    return report


def demo_lines(report: dict[str, Any], out_dir: str | Path) -> list[str]:
    """What the demo prints after its table: how the model was made, each verdict in words, where the report is."""
    model = report.get("model", {})
    cfg = report.get("demo_config") or {}
    lines = [
        "",
        f"The audited model was made to memorise (no dropout, {report['dataset']['members']} members, "
        f"{cfg.get('epochs', '?')} epochs): train accuracy {model.get('train_accuracy', float('nan')):.3f}, "
        f"test accuracy {model.get('task_accuracy', float('nan')):.3f}.",
    ]
    names = {"heldout-members": "held-out members (used in training)", "test": "test samples (never used)"}
    for v in report.get("demo_verdicts", []):
        lines += ["", f"Suspect set: {v['n_query']} {names.get(v['query']['source'], v['query']['source'])}"]
        lines += answer_lines(v)
    out = Path(out_dir)
    lines += ["", f"wrote {out / 'report.json'} and {out / 'report.html'} (open it in a browser)"]
    return lines
