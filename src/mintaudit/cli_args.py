"""The command line's parser: every verb and option, built from argparse, and the YAML ``--config`` merge.

The defaults of options that a config dataclass also holds are read from that dataclass
(one source of each default); :func:`apply_config` is the one place that reads argparse's
internals (to type the YAML values like the options they stand for).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from mintaudit import __version__
from mintaudit._validate import OptionSpec, Origin, config_values, read_config
from mintaudit.cli_help import HelpFormatter

__all__ = ["build_parser", "apply_config", "verb_options", "RECORD_VERBS"]

RECORD_VERBS = ("splits", "train", "extract", "fit", "sweep", "test", "attack", "audit-dp")
"""The verbs bound to the work directory's audit record (OUT/record.json; see mintaudit.workdir.record)."""


@functools.cache
def _defaults() -> SimpleNamespace:
    """The config dataclasses' defaults: the one source of every default an option shares with them."""
    from mintaudit.active import ActiveConfig
    from mintaudit.workdir import ActiveRunConfig
    from mintaudit.attacks import AttackConfig
    from mintaudit.detectors import DetectorConfig
    from mintaudit.passive import SweepConfig
    from mintaudit.training import TrainConfig

    return SimpleNamespace(
        D=DetectorConfig(), S=SweepConfig(), T=TrainConfig(), A=AttackConfig(), AC=ActiveConfig(), R=ActiveRunConfig()
    )


_EPILOG = "Examples:\n  "


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are ConfigErrors: one line, exit 2, like every other error."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        from mintaudit.errors import ConfigError

        raise ConfigError(f"{self.prog}: {message}; see '{self.prog} --help'")


def _add_data(p: argparse.ArgumentParser, *, sizes: bool = True, preprocess: bool = True) -> None:
    g = p.add_argument_group("data")
    from mintaudit.data import dataset_help  # the registered data sets

    g.add_argument("--dataset", default="digits", help=f"{dataset_help()} (default: %(default)s)")
    g.add_argument("--data-root", help="folder holding the data set files (default: $MINTAUDIT_DATA/<name>)")
    g.add_argument("--image-size", type=int, help="resize images to this many pixels (folders, GTSRB)")
    if sizes:
        g.add_argument("--members", type=int, help="members: samples the audited model is trained on")
        g.add_argument("--external", type=int, help="external samples (non-members the auditor holds)")
        g.add_argument("--test", type=int, help="non-member test samples (official test split where there is one)")
        g.add_argument("--splits", help="an existing splits.json to use (default: OUT/splits.json, made when missing)")
        for role, what in (
            ("members", "the samples the model was trained on"),
            ("external", "external non-members"),
            ("test", "non-member test samples"),
        ):
            g.add_argument(
                f"--{role}-file",
                metavar="FILE",
                help=f"{what}: one pool index per line (for folder: data "
                "also paths relative to the folder); roles not given are drawn, seeded, from the rest",
            )
    if preprocess:
        g = p.add_argument_group("the audited model's preprocessing (pixels scaled to [0, 1], then (x - mean) / std)")
        g.add_argument(
            "--mean",
            help="one value or one per channel, e.g. 0.5 or 0.485,0.456,0.406 (default: 0.5, the "
            "zoo models'; a model trained in OUT keeps the one it was trained with)",
        )
        g.add_argument(
            "--std",
            help="one value or one per channel, > 0, e.g. 0.5 or 0.229,0.224,0.225 (default: 0.5); "
            "--mean 0 --std 1 for a model trained on x / 255",
        )
        g.add_argument("--grey-to-rgb", action="store_true", help="replicate grey images to 3 channels (an RGB model)")


def _add_gate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-weak-model",
        action="store_true",
        help="audit even a model at chance on its own members (the report says so); without it such an "
        "audit is refused, since its inputs are likely wrong (preprocessing, label order, class count)",
    )


def _add_model(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("audited model")
    g.add_argument(
        "--model",
        help="zoo name (objcls-cnn, tiny-cnn, mobilenet, resnet50, resnet101, densenet121, xception, vit), package.module:factory, or hf:DIR (a Hugging Face save_pretrained folder) (default: the model trained in OUT)",
    )
    g.add_argument(
        "--weights", help="weights of --model: .safetensors, or a .pt/.pth state dict (read with weights_only)"
    )
    _add_target_options(g)
    _add_device(p)


def _add_target_options(g: Any) -> None:
    g.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword argument for the model's factory (repeatable; values read as int, float, bool or JSON)",
    )
    g.add_argument(
        "--accept-preprocessing",
        action="store_true",
        help="audit with the declared preprocessing even when another one classifies the members clearly "
        "better (the probe; the report says so)",
    )


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda or cuda:N: where models train and extract; on CUDA with "
        "bfloat16 autocast and channels-last (under torchrun each process takes its LOCAL_RANK GPU) "
        "(default: %(default)s)",
    )


def _add_dp(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("differential privacy (DP-SGD through Opacus: pip install 'mintaudit[dp]')")
    g.add_argument(
        "--dp-epsilon",
        type=float,
        help="train with DP-SGD to this epsilon for the whole run (the accountant "
        "picks the noise; Poisson-sampled batches; BatchNorm replaced by GroupNorm, said in model.json)",
    )
    g.add_argument("--dp-delta", type=float, help="the delta of --dp-epsilon, in (0, 1); below 1 / members, e.g. 1e-5")
    g.add_argument("--max-grad-norm", type=float, help="per-sample gradient clipping norm of DP-SGD (default: 1)")


def _add_sweep(p: argparse.ArgumentParser) -> None:
    d = _defaults()
    g = p.add_argument_group("MINT model")
    g.add_argument(
        "--detector",
        choices=["auto", "mlp", "cnn"],
        default=d.D.kind,
        help="cnn on activation maps, mlp on vectors; auto picks by shape (default: %(default)s)",
    )
    g.add_argument(
        "--pooling",
        choices=["mean", "meanmax", "flatten"],
        default=d.D.pooling,
        help="mlp input from maps (default: %(default)s)",
    )
    g.add_argument(
        "--mint-epochs",
        type=int,
        default=d.D.epochs,
        help="max MINT-model epochs, early-stopped (default: %(default)s)",
    )
    g.add_argument(
        "--known-fraction",
        type=float,
        default=d.S.known_fraction,
        help="share of members the auditor knows (MINT training); the rest are held out (default: %(default)s)",
    )
    g.add_argument(
        "--bootstrap",
        type=int,
        default=d.S.n_bootstrap,
        help="bootstrap resamples for 95%% intervals (default: %(default)s)",
    )
    g.add_argument("--float16", action="store_true", help="store activations as float16 (half the disk)")


def _add_tap_storage(p: argparse.ArgumentParser) -> None:
    """--tap-mode and --tap-budget: what each tap stores (mintaudit.signals.reduce); defaults from SweepConfig."""
    d = _defaults()
    g = p.add_argument_group("tap storage (what the signal cache keeps of each tap, reduced on the model's device)")
    g.add_argument(
        "--tap-mode",
        default=d.S.tap_mode,
        metavar="MODE",
        help="full, pooled (per-channel mean and max, 2C values; read by the mlp detector), or grid:K (K x K "
        "average pooling), for all taps, or per tap as LAYER=MODE,LAYER=MODE; e.g. --tap-mode pooled or "
        "--tap-mode block1.relu1=grid:4,fc_relu=full (default: the budget picks)",
    )
    g.add_argument(
        "--tap-budget",
        default=d.S.tap_budget,
        metavar="BYTES",
        help="bytes per sample per tap at the storage dtype, e.g. 65536, 64K, 1M: with no --tap-mode, a tap "
        "is stored full if it fits, else as the largest grid:K (K >= 2) that fits, else pooled, else grid:1 "
        "(default: %(default)s = 512K, which keeps every objcls-cnn and tiny-cnn tap full up to 64 px)",
    )


def _add_training(p: argparse.ArgumentParser) -> None:
    """The audited model and how it is trained (train, audit-dp): defaults from TrainConfig."""
    d = _defaults()
    p.add_argument("--model", default="objcls-cnn", help="zoo name or package.module:factory (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.T.epochs, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.T.batch_size, help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.T.lr, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.T.weight_decay, help="(default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb (also used to document the options)."""
    d = _defaults()
    parser = _Parser(
        prog="mintaudit",
        description="Membership Inference Test (MINT) audits: were these data used to train this model?",
        formatter_class=HelpFormatter,
        epilog="Start with:  mintaudit demo --out runs/demo   (then open runs/demo/report.html)",
    )
    parser.add_argument("--version", action="version", version=f"mintaudit {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("--config", help="YAML file of options (keys = option names); the command line wins")
    common.add_argument(
        "--seed", type=int, default=0, help="seed of splits, training and MINT models (default: %(default)s)"
    )
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, help_: str, example: str, out: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            parents=[common],
            help=help_,
            description=help_,
            formatter_class=HelpFormatter,
            epilog=_EPILOG + example,
        )
        if out:
            p.add_argument("--out", default="runs/audit", help="work directory (default: %(default)s)")
        if name in RECORD_VERBS:
            p.add_argument(
                "--new-record",
                action="store_true",
                help="start a new audit record in OUT: the old record and its results move to OUT/archive/<time>/",
            )
        return p

    p = verb(
        "demo",
        "Train objcls-cnn on the embedded data, sweep its 7 taps with passive MINT, run the loss, entropy and "
        "RMIA attacks, train the same backbone with aMINT, write the reports.",
        "mintaudit demo --out runs/demo\n  mintaudit demo --dataset fashion-mnist --out runs/fmnist",
    )
    p.set_defaults(out="runs/demo")
    _add_data(p, sizes=False, preprocess=False)
    p.add_argument("--epochs", type=int, help="training epochs of the audited model (default: 40 digits, 15 otherwise)")
    p.add_argument(
        "--fusion",
        choices=["none", "outputs", "both"],
        default="both",
        help="fuse output signals into the MINT model: none, outputs, or both rows per tap (default: %(default)s)",
    )

    p = verb(
        "train",
        "Train an audited model on the members of the split (checkpoint each epoch).",
        "mintaudit train --dataset fashion-mnist --model objcls-cnn --epochs 15 --out runs/fm",
    )
    _add_data(p)
    _add_training(p)
    p.add_argument("--resume", action="store_true", help="continue from OUT/model/checkpoint.pt")
    _add_dp(p)
    _add_device(p)

    p = verb(
        "layers",
        "List every tappable layer of a model: index, name, type, output shape.",
        "mintaudit layers objcls-cnn --dataset fashion-mnist\n  mintaudit layers runs/fm/model --dataset fashion-mnist",
        out=False,
    )
    p.add_argument(
        "model_ref", metavar="MODEL", help="zoo name, package.module:factory, hf:DIR, or a saved model folder"
    )
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE", help="as for --model")
    _add_data(p, sizes=False)

    p = verb(
        "extract",
        "Extract taps and output signals of every split sample into the on-disk cache.",
        "mintaudit extract --out runs/fm --dataset fashion-mnist --taps 'block1.*,fc_relu'\n"
        "  mintaudit extract --out runs/big --dataset folder:photos --model resnet50 --taps layer2,layer3 --tap-budget 64K",
    )
    _add_data(p)
    _add_model(p)
    p.add_argument(
        "--taps", default="published", help="published (L1..L7), all, names, indices or globs, comma-separated"
    )
    p.add_argument("--float16", action="store_true", help="store activations as float16")
    _add_tap_storage(p)

    p = verb(
        "fit",
        "Fit a passive MINT model on one tap, save it, and add its result to OUT/report.json.",
        "mintaudit fit --out runs/fm --dataset fashion-mnist --layer block1.relu2 --detector cnn\n"
        "  mintaudit fit --out runs/fm --dataset fashion-mnist --layer block1.relu2 --tap-mode pooled --detector mlp",
    )
    _add_data(p)
    _add_model(p)
    _add_gate(p)
    p.add_argument("--layer", help="the tap (required): a name, an index, or a glob matching one layer")
    p.add_argument("--fuse-outputs", action="store_true", help="also feed the output signals (loss, confidence...)")
    _add_sweep(p)
    _add_tap_storage(p)

    p = verb(
        "sweep",
        "Passive MINT on every tap (the study's sweep) plus the LOSS baseline; writes the reports.",
        "mintaudit sweep --out runs/fm --dataset fashion-mnist --fusion both\n"
        "  mintaudit sweep --out runs/fm --dataset fashion-mnist --signal gradients --budgets 1,0.1,0.01\n"
        "  mintaudit sweep --out runs/fm --dataset fashion-mnist --tap-mode pooled   (2C values per tap, mlp)",
    )
    _add_data(p)
    _add_model(p)
    _add_gate(p)
    p.add_argument(
        "--taps", default="published", help="published (L1..L7), all, names, indices or globs (default: %(default)s)"
    )
    p.add_argument(
        "--fusion",
        choices=["none", "outputs", "both"],
        default="none",
        help="fuse output signals into the MINT model (default: %(default)s)",
    )
    _add_sweep(p)
    _add_tap_storage(p)
    g = p.add_argument_group("gradient MINT (gMINT)")
    g.add_argument(
        "--signal",
        choices=["activations", "gradients"],
        default="activations",
        help="AAD: tap activations (passive MINT) or per-sample weight gradients (gMINT) (default: %(default)s)",
    )
    g.add_argument(
        "--setups",
        default="entry,middle,output,combined",
        help="gMINT layer setups: entry, middle, output, combined (default: %(default)s)",
    )
    g.add_argument("--budgets", default="1,0.1,0.01", help="shares of the MINT-training data (default: %(default)s)")
    g.add_argument(
        "--reductions",
        default="mean",
        help="per-filter reductions, concatenated: mean, abs-mean, l2, std (default: %(default)s)",
    )
    g.add_argument(
        "--protocols",
        default="heldout-members",
        help="heldout-members, and/or training-members (members the MINT model was fitted on) (default: %(default)s)",
    )

    p = verb(
        "test",
        "Were these samples used to train the model? Per-sample p-values and flags, and a dataset-level verdict.",
        "mintaudit test --out runs/fm --dataset fashion-mnist --query heldout-members\n"
        "  mintaudit test --out runs/fm --dataset fashion-mnist --query suspects.txt --method loss --fdr 0.1\n"
        "  mintaudit attack --out runs/fm --dataset fashion-mnist --methods rmia --reference 8 && "
        "mintaudit test --out runs/fm --dataset fashion-mnist --query suspects.txt --method rmia\n"
        "  mintaudit test --out runs/amint --dataset fashion-mnist --query suspects.txt --method amint --setup entry",
    )
    _add_data(p)
    _add_model(p)
    _add_gate(p)
    _add_tap_storage(p)
    g = p.add_argument_group("the test")
    g.add_argument(
        "--query",
        help="(required) heldout-members, test (non-members outside the null reference), a file of "
        "pool indices (.txt/.csv one per line, .npy), or new samples as npz:PATH / folder:PATH",
    )
    g.add_argument(
        "--query-header",
        action="store_true",
        help="the first line of the --query index file is a header to skip (without it every line must be an index)",
    )
    g.add_argument(
        "--method",
        default=None,
        help="membership score: passive-mint (a MINT model), amint (the delivered aMINT model's membership "
        "probability, OUT/amint/SETUP), or any attack of 'mintaudit attack' (loss, rmia, lira, ...; those "
        "with reference models read the ones 'mintaudit attack' cached, never train them) (default: the "
        "report's MINT row or attack with the best validation AUC on the auditor's own data, known members "
        "vs external samples; the verdict names it and the candidates)",
    )
    g.add_argument(
        "--setup",
        default="middle",
        help="with --method amint: which delivered model, the folder name under OUT/amint (default: %(default)s)",
    )
    g.add_argument(
        "--layer",
        help="passive-mint tap, or 'outputs'; implies --method passive-mint (default: chosen with "
        "the method; with --method passive-mint, its report row with the best validation AUC, else outputs)",
    )
    g.add_argument("--fuse-outputs", action="store_true", help="with --layer: also feed the output signals")
    g.add_argument(
        "--fdr", type=float, default=0.05, help="false discovery rate of the per-sample flags (default: %(default)s)"
    )
    g.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="level of the dataset-level test and of the plain per-sample flags (default: %(default)s)",
    )
    g.add_argument(
        "--decision",
        choices=["mann-whitney", "bonferroni", "binomial"],
        default="mann-whitney",
        help="which p-value decides, chosen in advance: Mann-Whitney U, both tests Bonferroni-combined (when a "
        "few strongly memorised members are expected), or the exceedance test (default: %(default)s)",
    )
    _add_sweep(p)

    from mintaudit.cli_audit import AUDIT_EXAMPLE, AUDIT_HELP, add_audit_options

    p = verb("audit", AUDIT_HELP, AUDIT_EXAMPLE)
    add_audit_options(p, data=_add_data, model=_add_model, gate=_add_gate, tap_storage=_add_tap_storage)

    p = verb(
        "attack",
        "Baseline membership inference attacks on the passive-MINT sets, added to OUT/report.json.",
        "mintaudit attack --out runs/fm --dataset fashion-mnist --methods loss,entropy,rmia,lira --reference 4",
    )
    _add_data(p)
    _add_model(p)
    _add_gate(p)
    from mintaudit.attacks import methods_help, options_help  # generated from the attack registry

    p.add_argument("--methods", default="loss,entropy,rmia", help=methods_help())
    p.add_argument(
        "--reference",
        type=int,
        default=d.A.n_reference,
        help="reference (shadow) models per kind (default: %(default)s)",
    )
    p.add_argument(
        "--reference-epochs",
        type=int,
        default=d.A.reference_train.epochs,
        help="training epochs of each reference model (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=d.A.reference_train.batch_size,
        help="reference-model batch size (default: %(default)s)",
    )
    p.add_argument(
        "--trainer",
        metavar="PACKAGE.MODULE:FUNCTION",
        help="train the reference models with your recipe, trainer(model, loader) -> model (loader: their "
        "training samples, --batch-size, seeded shuffling); default: the package's Adam loop",
    )
    p.add_argument("--trainer-arg", action="append", default=[], metavar="KEY=VALUE", help="an argument of --trainer")
    p.add_argument("--flip", action="store_true", help="LiRA: test-time augmentation by horizontal flip")
    p.add_argument(
        "--fixed-variance",
        choices=["auto", "yes", "no"],
        default="auto",
        help="LiRA: one variance for all samples; auto = when fewer than 8 models per side (default: %(default)s)",
    )
    p.add_argument("--rmia-a", type=float, default=None, help="deprecated: use --attack-opt rmia.a=A")
    p.add_argument("--attack-opt", action="append", default=[], metavar="ATTACK.KEY=VALUE", help=options_help())
    p.add_argument(
        "--population",
        choices=["external", "unused"],
        default="external",
        help="reference models train on half the external samples, or on a sample (twice the members) of the "
        "training samples no split uses (default: %(default)s)",
    )
    p.add_argument(
        "--known-fraction",
        type=float,
        default=d.S.known_fraction,
        help="as for sweep: the same sets (default: %(default)s)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=d.A.n_bootstrap,
        help="bootstrap resamples for 95%% intervals (default: %(default)s)",
    )

    p = verb(
        "active",
        "Active MINT (aMINT): train a model that answers 'was this sample in my training set?', evaluate it, query it.",
        "mintaudit active train --dataset fashion-mnist --members 2000 --external 20000 "
        "--test 2000 --out runs/amint\n  mintaudit active eval --dataset fashion-mnist --out runs/amint\n"
        "  mintaudit active query runs/amint/amint/middle photo1.png photo2.png --csv answers.csv",
        out=False,
    )
    active = p.add_subparsers(dest="active_verb", metavar="ACTION", required=True)

    def action(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        return active.add_parser(
            name,
            parents=[common],
            help=help_,
            description=help_,
            formatter_class=HelpFormatter,
            epilog=_EPILOG + example,
        )

    p = action(
        "train",
        "Train backbone + MINT head together on members (task + membership) and external samples "
        "(membership); deliver the model to OUT/amint/SETUP, evaluate it, compare with passive MINT.",
        "mintaudit active train --dataset fashion-mnist --members 2000 --external 20000 --test 2000 "
        "--backbone-arg dropout=0 --epochs 60 --lr 1e-3 --out runs/amint\n"
        "  mintaudit active train --backbone mobilenet --setup entry --dataset fashion-mnist --out runs/amint-mb",
    )
    p.add_argument("--out", default="runs/amint", help="work directory (default: %(default)s)")
    _add_data(p)
    g = p.add_argument_group("model")
    g.add_argument(
        "--backbone",
        default="objcls-cnn",
        help="objcls-cnn, mobilenet, resnet50, resnet101, densenet121, "
        "xception, vit, or package.module:factory (default: %(default)s)",
    )
    g.add_argument(
        "--backbone-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the backbone's constructor, repeatable: dropout=0 (objcls-cnn), width=0.5 "
        "(mobilenet, xception), base_width=32 (resnet*), growth_rate=16 (densenet121), depth=6 (vit)",
    )
    g.add_argument(
        "--setup",
        choices=["entry", "middle", "output"],
        default="middle",
        help="which layers the head reads: the backbone's preset (default: %(default)s)",
    )
    g.add_argument("--taps", help="comma-separated layer names instead of the setup's preset")
    g.add_argument(
        "--head",
        choices=["default", "paper"],
        default="default",
        help="default: light head with BatchNorm; paper: the published widths 1024/2048 (default: %(default)s)",
    )
    g.add_argument("--head-widths", help="two branch widths, e.g. 128,256")
    g = p.add_argument_group("training")
    g.add_argument(
        "--epochs", type=int, default=d.AC.epochs, help="max epochs (passes over the members) (default: %(default)s)"
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=d.AC.batch_size,
        help="members per step, plus as many external samples (default: %(default)s)",
    )
    g.add_argument(
        "--lr", type=float, default=d.AC.lr, help="Adam learning rate; published 1e-4 (default: %(default)s)"
    )
    g.add_argument("--weight-decay", type=float, default=d.AC.weight_decay, help="(default: %(default)s)")
    g.add_argument(
        "--lambda-task", type=float, default=d.AC.lambda_task, help="weight of the task loss (default: %(default)s)"
    )
    g.add_argument(
        "--lambda-mint",
        type=float,
        default=d.AC.lambda_mint,
        help="weight of the membership loss (default: %(default)s)",
    )
    g.add_argument(
        "--normalisation",
        choices=["first-batch", "none", "ema"],
        default=d.AC.normalisation,
        help="divide each loss by its first-batch value (published), a running mean, or nothing (default: %(default)s)",
    )
    g.add_argument(
        "--mint-grad-scale",
        type=float,
        default=d.AC.mint_grad_scale,
        help="share of the membership gradient that reaches the backbone: 1 = published coupling; 0 = the "
        "head alone learns membership, the backbone only the task (default: %(default)s)",
    )
    g.add_argument(
        "--lr-schedule",
        choices=["constant", "cosine"],
        default=d.AC.lr_schedule,
        help="constant (published) or cosine: the rate falls from --lr to 0 along a half cosine over "
        "--epochs, step by step "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--augment",
        action="store_true",
        help="random flip and 2-px crop on members and external samples (the plain model gets it too)",
    )
    g.add_argument(
        "--patience",
        type=int,
        default=d.AC.patience,
        help="early stopping on validation AUC; 0 = off (default: %(default)s)",
    )
    g.add_argument(
        "--val-members", type=int, default=d.R.val_members, help="members sampled for validation (default: %(default)s)"
    )
    g.add_argument(
        "--val-external",
        type=int,
        default=d.R.val_external,
        help="external samples held out of training for validation and calibration (default: %(default)s)",
    )
    g.add_argument("--no-plain", action="store_true", help="skip the plain backbone and its passive-MINT rows")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/amint-SETUP")
    _add_device(p)
    g.add_argument(
        "--bootstrap",
        type=int,
        default=d.R.n_bootstrap,
        help="bootstrap resamples for 95%% intervals (default: %(default)s)",
    )

    p = action(
        "eval",
        "Re-evaluate the delivered model OUT/amint/SETUP on the split (published protocol) into the report.",
        "mintaudit active eval --dataset fashion-mnist --out runs/amint --setup middle",
    )
    p.add_argument("--out", default="runs/amint", help="work directory (default: %(default)s)")
    _add_data(p)
    p.add_argument(
        "--setup", default="middle", help="which delivered model (folder name under OUT/amint) (default: %(default)s)"
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=d.R.n_bootstrap,
        help="bootstrap resamples for 95%% intervals (default: %(default)s)",
    )

    p = action(
        "query",
        "Class and membership probability of image files, from a delivered aMINT model.",
        "mintaudit active query runs/amint/amint/middle a.png b.png\n"
        "  mintaudit active query runs/amint/amint/middle images/*.png --json answers.json",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a delivered model folder (holds amint.json)")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files (any format Pillow reads)")
    p.add_argument("--csv", help="write the answers to this CSV file")
    p.add_argument("--json", help="write the answers to this JSON file")

    p = verb(
        "factors",
        "What makes a model auditable: train the audited model under a grid of one factor at a time "
        "(epochs, members per class, dropout, weight decay, augmentation, label smoothing), audit every point with "
        "passive MINT (best tap) and the LOSS attack (and aMINT where it applies), write OUT/factors.json and "
        "OUT/factors.html. Trained models are cached by fingerprint: a rerun trains only what changed.",
        "mintaudit factors --profile cpu --out runs/factors\n"
        "  mintaudit factors --profile tiny --factors epochs,dropout --out runs/factors-tiny\n"
        "  mintaudit factors --profile cpu --grid epochs=5,15,40,80 --amint --out runs/factors",
    )
    p.set_defaults(out="runs/factors")
    p.add_argument(
        "--profile",
        choices=["tiny", "cpu", "gpu"],
        default="cpu",
        help="tiny: digits, seconds (tests); cpu: Fashion-MNIST, 2,000 members, under an hour on 2 cores; "
        "gpu: CIFAR-10, 5,000 members, the seven published taps, aMINT (default: %(default)s)",
    )
    p.add_argument(
        "--factors",
        help="comma-separated subset of: epochs, members_per_class, dropout, weight_decay, "
        "augment, label_smoothing (default: every factor of the profile)",
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FACTOR=V1,V2,...",
        help="the values of one factor instead of the profile's, repeatable: epochs=5,15,40, augment=off,on",
    )
    p.add_argument("--dataset", help="another data set than the profile's (digits, fashion-mnist, cifar10, ...)")
    p.add_argument("--data-root", help="folder holding the data set files (default: $MINTAUDIT_DATA/<name>)")
    p.add_argument(
        "--amint",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also train aMINT at the points its trainer applies to (default: the profile's: off for tiny "
        "and cpu, on for gpu)",
    )
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for 95%% intervals (default: the profile's)")
    _add_device(p)

    p = verb(
        "audit-dp",
        "The one-run privacy audit (Steinke, Nasr, Jagielski 2023): draw canaries from the external "
        "samples, train once on the members plus each canary with probability 1/2 (plain or DP-SGD), score the "
        "canaries, guess the top k+ 'in' and the bottom k- 'out', and bound epsilon from the right guesses; writes "
        "OUT/audit-dp.json and the dp section of OUT/report.json.",
        "mintaudit audit-dp --dataset fashion-mnist --canaries 1000 --epochs 10 --out runs/onerun\n"
        "  mintaudit audit-dp --dataset fashion-mnist --canaries 1000 --dp-epsilon 8 --dp-delta 1e-5 --out runs/onerun-dp",
    )
    _add_data(p)
    _add_training(p)
    g = p.add_argument_group("the audit")
    g.add_argument(
        "--canaries", type=int, default=1000, help="m: canaries drawn from the external samples (default: %(default)s)"
    )
    g.add_argument(
        "--method",
        choices=["loss", "passive-mint"],
        default="loss",
        help="canary score: minus the loss, or a MINT model on the output signals (default: %(default)s)",
    )
    g.add_argument(
        "--confidence", type=float, default=0.95, help="probability that the bound holds (default: %(default)s)"
    )
    g.add_argument(
        "--guesses",
        metavar="K+,K-",
        help="guess the top K+ 'in' and the bottom K- 'out', fixed in advance "
        "(default: the best of a small grid, Bonferroni-corrected)",
    )
    _add_dp(p)
    _add_device(p)

    p = verb(
        "splits",
        "Make (when missing) and show OUT/splits.json: sizes and per-class counts of members, external "
        "and test samples; roles can come from list files.",
        "mintaudit splits --dataset fashion-mnist --members-file trained_on.txt --out runs/mine\n"
        "  mintaudit splits --dataset folder:photos --members-file used.txt --test 500 --out runs/photos",
    )
    _add_data(p, preprocess=False)

    p = verb(
        "report",
        "Re-render the HTML page next to a report JSON (X/other.json -> X/other.html; a work directory: its report.json) and print its table.",
        "mintaudit report runs/fm/report.json",
        out=False,
    )
    p.add_argument("report_path", metavar="REPORT_JSON")
    return parser


def verb_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[argparse.ArgumentParser, dict[str, OptionSpec]]:
    """The parser of the verb in ``args`` and its options: the one place that reads argparse's internals."""
    sub = parser._subparsers._group_actions[0].choices[args.verb]  # type: ignore[union-attr]
    if getattr(args, "active_verb", None):
        sub = sub._subparsers._group_actions[0].choices[args.active_verb]  # type: ignore[union-attr]
    specs: dict[str, OptionSpec] = {}
    for a in sub._actions:
        if a.dest == "help" or isinstance(a, argparse._SubParsersAction):
            continue
        kind = (
            "positional"
            if not a.option_strings
            else "flag"
            if a.nargs == 0
            else "list"
            if isinstance(a, argparse._AppendAction)
            else "value"
        )
        flag = next((o for o in a.option_strings if o.startswith("--")), a.metavar or a.dest)
        specs[a.dest] = OptionSpec(a.dest, flag, kind, a.type, tuple(a.choices) if a.choices else None)  # type: ignore[arg-type]
    return sub, specs


def apply_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[argparse.Namespace, Origin]:
    """Parse ``argv``; values of a ``--config`` YAML file become the verb's defaults (the command line wins)."""
    args = parser.parse_args(argv)
    sub, specs = verb_options(parser, args)
    flags = {dest: spec.flag for dest, spec in specs.items()}
    if not getattr(args, "config", None):
        return args, Origin(flags)
    source = f"--config {args.config!r}"
    verb = " ".join(v for v in (args.verb, getattr(args, "active_verb", None)) if v)
    values = config_values(read_config(args.config), specs, source=source, verb=verb)
    sub.set_defaults(**values)
    args = parser.parse_args(argv)
    from_config = frozenset(d for d, v in values.items() if getattr(args, d, None) is v)  # not overridden
    return args, Origin(flags, from_config, source)
