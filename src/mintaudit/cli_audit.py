"""The ``mintaudit audit`` verb: its options (added to the parser by :mod:`mintaudit.cli_args`) and its printing.

The work is :func:`mintaudit.workdir.oneshot.audit_run`; here the answer is printed in words
first (the verdict, its p-value and share), then the best method of each family, then the files.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["AUDIT_EXAMPLE", "AUDIT_HELP", "add_audit_options", "print_audit", "run_audit"]

AUDIT_HELP = (
    "The whole audit in one command: the splits, the sanity gate and preprocessing probe, passive MINT on default "
    "taps (a zoo model's published taps; otherwise the input of the classifier head) with the output signals, LOSS, "
    "RMIA and LiRA with --references N, the verdict on --query, and the report; prints the answer first."
)
AUDIT_EXAMPLE = (
    "mintaudit audit --dataset digits --model model:build --weights runs/own/model.safetensors \\\n"
    "      --mean 0 --std 1 --members-file runs/own/members.txt --query suspects.txt --out runs/own/audit\n"
    "  mintaudit audit --dataset fashion-mnist --model objcls-cnn --weights fm.safetensors "
    "--members-file used.txt --query heldout-members --references 4 --out runs/fm-audit"
)


def add_audit_options(
    p: argparse.ArgumentParser,
    *,
    data: Callable[[argparse.ArgumentParser], None],
    model: Callable[[argparse.ArgumentParser], None],
    gate: Callable[[argparse.ArgumentParser], None],
    tap_storage: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The options of ``audit``: the data, model and gate groups every verb shares, and its own."""
    data(p)
    model(p)
    gate(p)
    tap_storage(p)
    g = p.add_argument_group("the audit")
    g.add_argument(
        "--query",
        help="the suspect set to give a verdict on: a file of pool indices (.txt/.csv one per line, .npy), "
        "npz:PATH / folder:PATH of new samples, heldout-members (a positive control) or test (a negative "
        "control) (default: none; the audit's best rows, no verdict)",
    )
    g.add_argument(
        "--references",
        type=int,
        default=0,
        metavar="N",
        help="also run RMIA and LiRA with N reference models trained like the audited one (N >= 2; a model "
        "with no fresh untrained copy is refused) (default: %(default)s, none)",
    )
    g.add_argument("--reference-epochs", type=int, help="training epochs of each reference model (default: 15)")
    g.add_argument(
        "--taps",
        help="layers for passive MINT: names, indices or globs (default: a zoo model's published taps; "
        "otherwise the layer feeding the classifier head)",
    )
    g.add_argument(
        "--mint-epochs", type=int, default=None, help="max MINT-model epochs, early-stopped (default: the sweep's)"
    )
    g.add_argument("--bootstrap", type=int, default=None, help="bootstrap resamples for 95%% intervals")


def run_audit(
    args: argparse.Namespace, data: Callable[[], tuple[Any, Any]], model: Any, command: list[str], show: Any
) -> int:
    """Check the options, read the data (``data()``: the data set and the splits, written when missing), run
    :func:`~mintaudit.workdir.oneshot.audit_run` and print its answer."""
    from mintaudit.detectors import DetectorConfig
    from mintaudit.passive import SweepConfig
    from mintaudit.signals import DEFAULT_TAP_BUDGET, parse_tap_budget
    from mintaudit.workdir import audit_run, check_references

    check_references(args.references)
    if args.query and ":" not in args.query and args.query not in ("heldout-members", "test"):
        if not Path(args.query).is_file():
            from mintaudit.errors import ConfigError

            raise ConfigError(
                f"--query {args.query!r} is not a file; give a file of pool indices, npz:PATH, "
                "folder:PATH, heldout-members or test"
            )
    ds, splits = data()

    detector = DetectorConfig(seed=args.seed)
    if args.mint_epochs is not None:
        detector = DetectorConfig(epochs=args.mint_epochs, seed=args.seed)
    extra = {"n_bootstrap": args.bootstrap} if args.bootstrap is not None else {}
    config = SweepConfig(
        detector=detector,
        fusion="both",
        seed=args.seed,
        tap_mode=args.tap_mode,
        tap_budget=parse_tap_budget(args.tap_budget or DEFAULT_TAP_BUDGET),
        **extra,
    )
    found = audit_run(
        Path(args.out),
        ds,
        splits,
        model=model,
        weights=args.weights,
        taps=args.taps,
        query=args.query,
        references=args.references,
        reference_epochs=args.reference_epochs,
        config=config,
        command=command,
        show_progress=show,
        allow_weak_model=args.allow_weak_model,
    )
    print_audit(found, Path(args.out))
    return 0


def print_audit(found: dict[str, Any], out: Path) -> None:
    """The answer first (or how to get one), then the best row of each family, then where the files are."""
    from mintaudit.report import blind_text
    from mintaudit.workdir import answer_lines, row_line

    v = found["verdict"]
    if v is not None:
        print("\n".join(answer_lines(v)))
        if blind_text(v):
            print(f"  {blind_text(v)}")
    else:
        print("No verdict: give --query (a file of the suspect samples' pool indices) to get one on a suspect set.")
    check = found["report"].get("model", {})
    print(
        f"The audit of {check.get('name')} (train accuracy {check.get('train_accuracy', float('nan')):.3f}, test "
        f"accuracy {check.get('task_accuracy', float('nan')):.3f}; taps: {found['taps']}), best of each family "
        "(AUC of held-out members against non-members):"
    )
    for family, row in found["best"]:
        print(row_line(family, row))
    files = [out / "report.json", out / "report.html"] + ([out / "verdict.csv"] if v is not None else [])
    print(f"wrote {', '.join(map(str, files))}")
