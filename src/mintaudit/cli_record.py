"""The audit record on the command line: which options were given, what the record fills in, and its update.

:func:`audit_record` wraps one command of a work-directory verb: before it runs, ``--new-record``
archives the old record, the record (or one adopted from an older OUT) refuses the options that
contradict it and fills in those it holds; after the command succeeded, the record gains its data
part (once the splits exist) and its model part (``train``, or the first verb that resolved the
audited model). See :mod:`mintaudit.workdir.record`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mintaudit._validate import parse_key_values
from mintaudit.cli_args import RECORD_VERBS, build_parser, verb_options

__all__ = ["audit_record", "given_options", "given_preprocess", "key_values"]

key_values = parse_key_values  # KEY=VALUE options (--model-arg, --backbone-arg): one parser for every verb

_MODEL_VERBS = ("extract", "fit", "sweep", "test", "attack")


def given_options(argv: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    """dest -> value of the options given on the command line or in the ``--config`` file (not the defaults)."""
    from mintaudit._validate import config_values, read_config

    parser = build_parser()
    sub, specs = verb_options(parser, parser.parse_args(list(argv)))
    unset = object()
    # a list option (--model-arg: argparse appends to a copy of its default) gets its own empty list as the marker
    marks = {d: ([] if spec.kind == "list" else unset) for d, spec in specs.items()}
    sub.set_defaults(**marks)
    again = parser.parse_args(list(argv))
    given = {d for d in specs if getattr(again, d, marks[d]) is not marks[d]}
    if getattr(args, "config", None):
        given |= set(config_values(read_config(args.config), specs, source="--config", verb=args.verb))
    return {d: getattr(args, d) for d in given if d not in ("config", "debug", "quiet")}


@contextlib.contextmanager
def audit_record(args: argparse.Namespace, argv: Sequence[str]) -> Iterator[None]:
    """Bind one command to its work directory's audit record (a no-op for other verbs)."""
    if args.verb not in RECORD_VERBS or not getattr(args, "out", None):
        yield
        return
    from mintaudit.workdir import archive_record, check_options, check_report, load_record

    out = Path(args.out)
    if getattr(args, "new_record", False) and int(os.environ.get("RANK", "0")) == 0:
        archive_record(out)
    record = load_record(out)
    if record is not None:
        fill = check_options(out, record, args.verb, given_options(argv, args))
        for dest, value in fill.items():
            if hasattr(args, dest):
                setattr(args, dest, value)
        if args.verb not in ("train", "splits", "audit-dp") and getattr(args, "method", None) != "amint":
            check_report(out, record)
    yield
    if int(os.environ.get("RANK", "0")) == 0:
        _update(args, out, record)


def _update(args: argparse.Namespace, out: Path, record: dict[str, Any] | None) -> None:
    """Add the parts the command made to the record, and write it when anything is new."""
    from mintaudit.data import Splits
    from mintaudit.workdir import data_part, write_record

    rec = dict(record or {})
    changed = not (out / "record.json").is_file()  # a new or adopted record is written once
    splits_path = Path(args.splits) if getattr(args, "splits", None) else out / "splits.json"
    if not (rec.get("data") or {}).get("splits_fingerprint") and splits_path.is_file():
        splits = Splits.load(splits_path)
        rec["data"] = data_part(
            dataset=args.dataset,
            data_root=args.data_root,
            image_size=args.image_size,
            splits_file=args.splits if getattr(args, "splits", None) else None,
            data_fingerprint=splits.data_fingerprint,
            splits_fingerprint=splits.fingerprint(),
            seed=splits.seed,
            sizes={r: len(getattr(splits, r)) for r in ("members", "external", "test")},
        )
        changed = True
    amint = getattr(args, "method", None) == "amint"
    if args.verb == "train" or (args.verb in _MODEL_VERBS and not rec.get("model") and not amint):
        part = _model_part(args, out)
        if part is not None:
            rec["model"], changed = part, True
    mdl = rec.get("model")
    if mdl and mdl.get("tap_modes") is None and getattr(args, "tap_mode", None) and not amint:
        rec["model"] = {**mdl, "tap_modes": args.tap_mode}
        changed = True
    if changed and rec:
        write_record(out, rec)


def _model_part(args: argparse.Namespace, out: Path) -> dict[str, Any] | None:
    """The model part of the model this command audited (or trained): the user's, or the one in OUT."""
    import json

    from mintaudit.models import load_weights, model_fingerprint
    from mintaudit.preprocess import Preprocess
    from mintaudit.workdir import model_part, weights_sha256

    from mintaudit.targets import split_scheme

    if split_scheme(str(getattr(args, "model", None) or ""))[0] is not None and args.verb != "train":
        return _scheme_part(args, out)
    if getattr(args, "weights", None) and args.verb != "train":
        from mintaudit import workdir

        pre = Preprocess.parse(args.mean, args.std, args.grey_to_rgb)
        ds, _ = workdir.prepare_data(
            args.dataset, out, data_root=args.data_root, image_size=args.image_size, splits_path=args.splits,
            preprocess=pre,
        )  # fmt: skip
        from mintaudit.models import build_model

        model_args = key_values(getattr(args, "model_arg", []) or [], "--model-arg")
        net = load_weights(build_model(workdir.spec_for(args.model, ds, model_args)), args.weights)
        part = model_part(
            locator=args.model,
            in_out=False,
            weights=args.weights,
            fingerprint=model_fingerprint(net),
            preprocess=pre,
            model_args=model_args,
        )
        part["weights_sha256"] = weights_sha256(args.weights)
        return part
    model_json = out / "model" / "model.json"
    if not model_json.is_file():
        return None
    from mintaudit.workdir import trained_model_part

    return trained_model_part(out, json.loads(model_json.read_text(encoding="utf-8")))


def _scheme_part(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The model part of ``hf:DIR``, ``onnx:FILE`` or ``export:FILE``: the locator and the hash of its files."""
    from mintaudit import workdir
    from mintaudit.workdir import absolute_locator, locator_sha256, model_part

    from mintaudit.preprocess import DEFAULT_PREPROCESS

    preprocess = workdir.model_preprocess(args.model, given_preprocess(args)) or DEFAULT_PREPROCESS
    part = model_part(
        locator=absolute_locator(args.model),
        in_out=False,
        weights=args.model.partition(":")[2],
        fingerprint=None,
        preprocess=preprocess,
        model_args=key_values(getattr(args, "model_arg", []) or [], "--model-arg"),
    )
    part["files_sha256"] = locator_sha256(args.model)
    return part


def given_preprocess(args: argparse.Namespace) -> Any:
    """The preprocessing --mean/--std/--grey-to-rgb give, or None when none of them was given."""
    from mintaudit.preprocess import Preprocess

    given = any(getattr(args, k, None) is not None for k in ("mean", "std")) or getattr(args, "grey_to_rgb", False)
    return Preprocess.parse(args.mean, args.std, args.grey_to_rgb) if given else None
