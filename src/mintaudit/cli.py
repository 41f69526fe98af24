"""The ``mintaudit`` command line: parses (:mod:`mintaudit.cli_args`), calls one public function, prints. No logic lives here."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mintaudit._lock import command_lock
from mintaudit._validate import check_paths, check_values
from mintaudit.cli_args import apply_config, build_parser
from mintaudit.cli_record import audit_record, given_preprocess as _given_preprocess, key_values as _key_values

__all__ = ["main", "build_parser"]


def _resolved(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("debug", "quiet")}


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from mintaudit import workdir
    from mintaudit.detectors import DetectorConfig
    from mintaudit.errors import ConfigError
    from mintaudit.passive import SweepConfig
    from mintaudit.signals import DEFAULT_TAP_BUDGET, parse_tap_budget
    from mintaudit.report import format_table
    from mintaudit.training import TrainConfig

    show = False if args.quiet else None
    command = ["mintaudit", *argv]
    if args.verb == "layers":
        layers = workdir.describe_layers(
            _model(args, args.model_ref),
            args.dataset,
            data_root=args.data_root,
            image_size=args.image_size,
            preprocess=_given_preprocess(args),
        )
        print(f"{'index':>5}  {'name':<28} {'type':<14} output shape")
        for info in layers:
            shape = "x".join(map(str, info.output_shape)) if info.output_shape else "-"
            print(f"{info.index:>5}  {info.name:<28} {info.type:<14} {shape}")
        return 0
    if args.verb == "report":
        json_path, html_path, table = workdir.render(args.report_path)
        print(table)
        print(f"wrote {html_path}")
        return 0
    if args.verb == "active":
        return _active(args, command, show)
    if args.verb == "factors":
        return _factors(args, command, show)
    if args.verb == "test" and not args.query:
        raise ConfigError(
            "test needs --query: heldout-members, test, a file of pool indices, or npz:PATH; see 'mintaudit test --help'"
        )
    dp = None
    if args.verb in ("train", "audit-dp"):
        from mintaudit.dp import dp_config

        dp = dp_config(args.dp_epsilon, args.dp_delta, args.max_grad_norm)  # checked before anything is written
        if dp is not None and getattr(args, "resume", False):
            raise ConfigError("--resume does not apply to DP-SGD training (no checkpoints are written); drop --resume")
    guesses = None
    if args.verb == "audit-dp":
        from mintaudit.canary import check_audit

        if args.guesses:
            try:
                kp, kn = (int(v) for v in args.guesses.split(","))
            except ValueError:
                raise ConfigError(
                    f"--guesses takes two whole numbers K+,K-, got {args.guesses!r}; e.g. --guesses 50,50"
                ) from None
            guesses = (kp, kn)
        check_audit(args.canaries, guesses=guesses, confidence=args.confidence, delta=dp.delta if dp else 1e-5)
    out = Path(args.out)
    if args.verb == "demo":
        report = workdir.demo(
            out,
            dataset=args.dataset,
            data_root=args.data_root,
            epochs=args.epochs,
            seed=args.seed,
            fusion=args.fusion,
            command=command,
            show_progress=show,
        )
        print(format_table(report))
        print("\n".join(workdir.demo_lines(report, out)))  # the verdicts in words, then where the report is
        return 0
    if args.verb == "audit":  # the whole audit in one command (mintaudit.cli_audit); options checked before the data
        from mintaudit.cli_audit import run_audit

        return run_audit(args, lambda: _data(args, out), _model(args), command, show)
    ds, splits = _data(args, out)
    if args.verb == "splits":
        print(workdir.describe_splits(ds, splits))
        print(f"wrote {Path(args.splits) if args.splits else out / 'splits.json'}")
        return 0
    if args.verb == "train":
        cfg = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, seed=args.seed
        )
        _, info = workdir.train_model(
            out, ds, splits, model=args.model, config=cfg, resume=args.resume, show_progress=show, dp=dp
        )
        print(
            f"trained {args.model} on {len(splits.members)} members in {info['seconds']:.1f} s: "
            f"train accuracy {info['train_accuracy']:.3f}, test accuracy {info['task_accuracy']:.3f}"
        )
        if "dp" in info:
            d = info["dp"]
            print(
                f"DP-SGD: epsilon spent {d['epsilon_spent']:.3f} (target {d['epsilon_target']:g}, delta {d['delta']:g}, "
                f"{d['accountant']} accountant), noise multiplier {d['noise_multiplier']:.3f}, clipping norm "
                f"{d['max_grad_norm']:g}; replaced: {', '.join(d['replaced']) or 'nothing'}"
            )
        print(f"wrote {out / 'model'}")
        return 0
    if args.verb == "audit-dp":
        cfg = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, seed=args.seed
        )
        a = workdir.audit_dp(
            out,
            ds,
            splits,
            canaries=args.canaries,
            method=args.method,
            model=args.model,
            config=cfg,
            dp=dp,
            confidence=args.confidence,
            guesses=guesses,
            command=command,
            show_progress=show,
        )
        claim = a["model"]["dp"]
        print(
            f"one-run audit ({a['method']}): {a['m']} canaries ({a['included']} trained on), {a['guesses']} guesses "
            f"(k+ {a['k_pos']}, k- {a['k_neg']}; {a['chosen']}), {a['correct']} right"
        )
        print(
            f"  epsilon lower bound {a['epsilon']:.3f} at confidence {a['confidence']:g}, delta {a['delta']:g}"
            + (
                f"; DP-SGD claim: epsilon {claim['epsilon_spent']:.3f} (accountant {claim['accountant']})"
                if claim
                else "; trained without DP"
            )
        )
        print(f"  task accuracy {a['model']['task_accuracy']:.3f}")
        print(f"wrote {out / 'audit-dp.json'}, {out / 'report.json'} and {out / 'report.html'}")
        return 0
    if args.verb == "extract":
        path = workdir.extract(
            out,
            ds,
            splits,
            model=_model(args),
            weights=args.weights,
            taps=args.taps,
            dtype="float16" if args.float16 else "float32",
            show_progress=show,
            tap_mode=args.tap_mode,
            tap_budget=parse_tap_budget(args.tap_budget),
        )
        print(f"signals cached in {path}")
        return 0
    if args.verb == "attack":
        from mintaudit.attacks import AttackConfig

        fixed = {"auto": None, "yes": True, "no": False}[args.fixed_variance]
        legacy, options = _attack_options(args)
        attack_cfg = AttackConfig(
            n_reference=args.reference,
            fixed_variance=fixed,
            flip=args.flip,
            **legacy,
            options=options,
            reference_train=TrainConfig(epochs=args.reference_epochs, batch_size=args.batch_size, seed=args.seed),
            n_bootstrap=args.bootstrap,
            seed=args.seed,
            trainer=_trainer(args),
        )
        report = workdir.attack(
            out,
            ds,
            splits,
            methods=[m.strip() for m in args.methods.split(",") if m.strip()],
            model=_model(args),
            weights=args.weights,
            config=attack_cfg,
            known_fraction=args.known_fraction,
            population=args.population,
            command=command,
            show_progress=show,
            allow_weak_model=args.allow_weak_model,
        )
        print(format_table(report))
        print(f"wrote {out / 'report.json'} and {out / 'report.html'}")
        return 0
    sweep_cfg = SweepConfig(
        detector=DetectorConfig(kind=args.detector, pooling=args.pooling, epochs=args.mint_epochs, seed=args.seed),
        fusion=getattr(args, "fusion", "none"),
        known_fraction=args.known_fraction,
        n_bootstrap=args.bootstrap,
        dtype="float16" if args.float16 else "float32",
        seed=args.seed,
        tap_mode=getattr(args, "tap_mode", None),
        tap_budget=parse_tap_budget(getattr(args, "tap_budget", None) or DEFAULT_TAP_BUDGET),
    )
    if args.verb == "fit":
        if not args.layer:
            raise ConfigError("fit needs --layer (a name, an index or a glob); list them with 'mintaudit layers'")
        result = workdir.fit_tap(
            out,
            ds,
            splits,
            layer=args.layer,
            model=_model(args),
            weights=args.weights,
            config=sweep_cfg,
            fuse_outputs=args.fuse_outputs,
            command=command,
            show_progress=show,
            allow_weak_model=args.allow_weak_model,
        )
        print(json.dumps({k: result[k] for k in ("layer", "signal", "detector", "metrics", "ci95")}, indent=2))
        return 0
    if args.verb == "test":
        v = workdir.verdict(
            out,
            ds,
            splits,
            query=args.query,
            query_header=args.query_header,
            method=args.method,
            layer=args.layer,
            fuse_outputs=args.fuse_outputs,
            fdr=args.fdr,
            alpha=args.alpha,
            decision=args.decision,
            model=_model(args),
            weights=args.weights,
            config=sweep_cfg,
            command=command,
            show_progress=show,
            setup=args.setup,
            allow_weak_model=args.allow_weak_model,
        )
        mw, b, f, s = v["mann_whitney"], v["binomial"], v["member_fraction"], v["per_sample"]
        print(v["sentence"])
        print(
            f"  scores: {v['method']} ({v['layer']}, {v['signal']}); {v['n_query']} queries ({v['query']['source']}) "
            f"against a null reference of {v['n_null']} held-out non-members"
        )
        if (v.get("choice") or {}).get("sentence") and not v["choice"].get("given"):
            print(f"  {v['choice']['sentence']}")
        print(
            f"  deciding p = {v['p_value']:.3g} ({v['decision']}, alpha {v['alpha']:g}; null reference: {v['n_null']})"
        )
        print(
            f"  Mann-Whitney: query-vs-null AUC {mw['auc']:.3f}, p = {mw['p_value']:.3g} (null reference: {v['n_null']})"
        )
        print(
            f"  exceedances: {b['exceedances']} of {b['n']} above the null's top {100 * b['null_rate']:.1f}% "
            f"({b['expected_under_null']:.1f} expected), exact p = {b['p_value']:.3g} (null reference: {v['n_null']})"
        )
        print(
            f"  members among the queries (Storey, a lower estimate): {100 * f['estimate']:.1f}% "
            f"[{100 * f['ci95'][0]:.1f}%, {100 * f['ci95'][1]:.1f}%]"
        )
        print(
            f"  per sample: {s['n_flagged_bh']} flagged at FDR {s['fdr']:g} (Benjamini-Hochberg), {s['n_flagged_alpha']} "
            f"at p <= {s['alpha']:g} (~{s['expected_false_flags_alpha']:.1f} expected if none is a member)"
        )
        from mintaudit.report import verdict_check_lines

        print("\n".join(verdict_check_lines(v)))  # blind baseline, usage share, samples needed
        print(f"wrote {out / 'verdict.csv'}, {out / 'report.json'} and {out / 'report.html'}")
        return 0
    if args.signal == "gradients":
        from mintaudit.gradient import GradientSweepConfig

        if args.fusion != "none" or args.taps != "published" or args.float16 or args.tap_mode is not None:
            raise ConfigError(
                "--fusion, --taps, --float16 and --tap-mode apply to --signal activations; gMINT chooses "
                "layers with --setups"
            )
        grad_cfg = GradientSweepConfig(
            detector=sweep_cfg.detector,
            reductions=args.reductions,
            known_fraction=args.known_fraction,
            protocols=args.protocols,
            n_bootstrap=args.bootstrap,
            seed=args.seed,
        )
        report = workdir.gradient_sweep(
            out,
            ds,
            splits,
            model=_model(args),
            weights=args.weights,
            setups=args.setups,
            budgets=args.budgets,
            config=grad_cfg,
            command=command,
            show_progress=show,
            allow_weak_model=args.allow_weak_model,
        )
    else:
        report = workdir.sweep(
            out,
            ds,
            splits,
            model=_model(args),
            weights=args.weights,
            taps=args.taps,
            config=sweep_cfg,
            command=command,
            show_progress=show,
            allow_weak_model=args.allow_weak_model,
        )
    print(format_table(report))
    print(f"wrote {out / 'report.json'} and {out / 'report.html'}")
    return 0


def _save_config(args: argparse.Namespace, command: list[str]) -> None:
    """``OUT/<verb>.config.json``, written only after the command succeeded: a refused or failed run never
    replaces the configuration of the run that made the files in OUT."""
    from mintaudit._io import atomic_write_json

    if not getattr(args, "out", None) or args.verb in ("factors", "layers", "report"):
        return
    if args.verb == "active" and args.active_verb == "query":
        return
    name = f"active-{args.active_verb}" if args.verb == "active" else args.verb
    atomic_write_json(Path(args.out) / f"{name}.config.json", {"command": command, **_resolved(args)})


def _data(args: argparse.Namespace, out: Path) -> tuple[Any, Any]:
    """The data set (as the audited model's view) and the splits, from the data options of any verb."""
    from mintaudit import workdir

    preprocess = _given_preprocess(args)
    if args.verb not in ("train", "audit-dp"):  # the model's declared preprocessing, or a refusal when flags differ
        preprocess = workdir.model_preprocess(_model(args), preprocess)
    return workdir.prepare_data(
        args.dataset,
        out,
        data_root=args.data_root,
        image_size=args.image_size,
        members=args.members,
        external=args.external,
        test=args.test,
        seed=args.seed,
        splits_path=args.splits,
        preprocess=preprocess,
        members_file=args.members_file,
        external_file=args.external_file,
        test_file=args.test_file,
    )


def _model(args: argparse.Namespace, locator: str | None = None) -> Any:
    """--model as the workdir functions take it: the locator, or a TargetRef with --model-arg/--accept-preprocessing."""
    from mintaudit.workdir import TargetRef

    locator = locator if locator is not None else getattr(args, "model", None)
    kwargs = _key_values(getattr(args, "model_arg", []) or [], "--model-arg")
    accept = bool(getattr(args, "accept_preprocessing", False))
    if locator is None:
        if kwargs or accept:
            from mintaudit.errors import ConfigError

            raise ConfigError("--model-arg and --accept-preprocessing need --model (a model given by you)")
        return None
    return TargetRef(locator, kwargs, accept) if kwargs or accept else locator


def _attack_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """--attack-opt (and the deprecated --rmia-a) checked by each attack's options dataclass."""
    from mintaudit.attacks import parse_attack_options, split_legacy
    from mintaudit.attacks import attack_options

    alias = [] if args.rmia_a is None else [f"rmia.a={args.rmia_a}"]  # an --attack-opt given too wins
    specs = attack_options()
    parsed = split_legacy(parse_attack_options([*alias, *(args.attack_opt or [])], specs), specs)
    if alias:  # after the checks: a refusal stays one line
        print(f"mintaudit: --rmia-a is deprecated; use --attack-opt {alias[0]}", file=sys.stderr)
    return parsed


def _trainer(args: argparse.Namespace) -> Any:
    """--trainer / --trainer-arg as a ReferenceTrainer (None: the package's loop)."""
    from mintaudit.attacks import load_trainer
    from mintaudit.errors import ConfigError

    kwargs = _key_values(args.trainer_arg or [], "--trainer-arg")
    if args.trainer is None:
        if kwargs:
            raise ConfigError("--trainer-arg needs --trainer (your training function)")
        return None
    return load_trainer(args.trainer, kwargs, batch_size=args.batch_size)


def _factors(args: argparse.Namespace, command: list[str], show: bool | None) -> int:
    from mintaudit._io import atomic_write_json
    from mintaudit.studies.factors import factors_config, format_factors_table, run_factors

    config = factors_config(
        args.profile,
        factors=args.factors,
        grid=args.grid,
        dataset=args.dataset,
        amint=args.amint,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
    )  # checked before anything is written
    out = Path(args.out)
    doc = run_factors(out, config, data_root=args.data_root, command=command, show_progress=show)
    atomic_write_json(  # only after success: a refused run leaves the earlier run's configuration
        out / "factors.config.json", {"command": command, **_resolved(args), "resolved": config.to_dict()}
    )
    print(format_factors_table(doc))
    print(f"wrote {out / 'factors.json'} and {out / 'factors.html'}")
    return 0


def _active(args: argparse.Namespace, command: list[str], show: bool | None) -> int:
    from mintaudit.errors import ConfigError
    from mintaudit.report import format_table

    if args.active_verb == "query":
        from mintaudit.workdir import active_query

        answers = active_query(args.model_dir, args.images, csv_path=args.csv, json_path=args.json)
        for a in answers:
            print(f"{a.path}\t{a.class_name}\tmembership {a.membership:.4f}\t{'member' if a.member else 'non-member'}")
        for path in (args.csv, args.json):
            if path:
                print(f"wrote {path}")
        return 0
    out = Path(args.out)
    ds, splits = _data(args, out)
    if args.active_verb == "eval":
        from mintaudit.workdir import active_eval

        report = active_eval(
            out, ds, splits, setup=args.setup, n_bootstrap=args.bootstrap, seed=args.seed, command=command
        )
    else:
        from mintaudit.active import ActiveConfig, HeadConfig
        from mintaudit.workdir import ActiveRunConfig, active_train

        widths = None
        if args.head_widths:
            try:
                widths = tuple(int(w) for w in args.head_widths.split(","))
            except ValueError:
                raise ConfigError(f"--head-widths takes two integers like 128,256, got {args.head_widths!r}") from None
        run_cfg = ActiveRunConfig(
            backbone=args.backbone,
            backbone_kwargs=_key_values(args.backbone_arg, "--backbone-arg"),
            setup=args.setup,
            taps=tuple(t.strip() for t in args.taps.split(",") if t.strip()) if args.taps else None,
            head=HeadConfig(preset=args.head, widths=widths),  # type: ignore[arg-type]
            train=ActiveConfig(
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                weight_decay=args.weight_decay,
                lambda_task=args.lambda_task,
                lambda_mint=args.lambda_mint,
                normalisation=args.normalisation,
                mint_grad_scale=args.mint_grad_scale,
                lr_schedule=args.lr_schedule,
                augment=args.augment,
                patience=args.patience,
                seed=args.seed,
            ),
            val_members=args.val_members,
            val_external=args.val_external,
            n_bootstrap=args.bootstrap,
        )

        def log(row: dict[str, float]) -> None:
            if show is not False:
                print(
                    f"epoch {int(row['epoch'])}: task loss {row['task_loss']:.3f}, mint loss {row['mint_loss']:.3f}, "
                    f"train accuracy {row['train_accuracy']:.3f}, validation AUC {row['val_auc']:.3f}",
                    file=sys.stderr,
                )

        report = active_train(
            out,
            ds,
            splits,
            run_cfg,
            plain=not args.no_plain,
            resume=args.resume,
            command=command,
            show_progress=show,
            on_epoch=log,
        )
    print(format_table(report))
    print(f"wrote {out / 'report.json'} and {out / 'report.html'}")
    return 0


def _rank_workdir(out: Path) -> Path:
    """A private work directory for a torchrun rank other than 0: links to rank 0's inputs, its own outputs.

    It links the splits, the trained model's files, the report and the signal cache of ``out``,
    so every rank makes the same decisions (train or reuse, extract or reuse) and takes part in
    the same collective steps; what it writes itself lands here and is dropped at the end.
    """
    import tempfile

    from mintaudit import distributed

    work = Path(tempfile.mkdtemp(prefix=f"mintaudit-rank{distributed.rank()}-"))
    if (out / "cache").is_dir():
        (work / "cache").symlink_to((out / "cache").resolve(), target_is_directory=True)
    for rel in ("splits.json", "report.json", "model/model.json", "model/model.safetensors"):
        if (out / rel).is_file():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).symlink_to((out / rel).resolve())
    return work


@contextlib.contextmanager
def _torchrun(args: argparse.Namespace) -> Any:
    """Under torchrun: join the process group; rank 0 works in OUT and prints, the other ranks work quietly aside."""
    import shutil

    from mintaudit import distributed

    if not distributed.init():
        yield
        return
    work = None
    try:
        out = Path(args.out) if getattr(args, "out", None) else None
        if distributed.is_main():
            if out is not None:
                (out / "cache").mkdir(parents=True, exist_ok=True)  # shared by all ranks from the start
            distributed.barrier()
            yield
            return
        distributed.barrier()
        if out is not None:
            work = _rank_workdir(out)
            args.out = str(work)
        args.quiet = True
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        distributed.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mintaudit`` command; returns the exit status (2 on a user error).

    Under ``torchrun --nproc-per-node N`` every process runs the command: training and
    extraction are shared by all of them (see :mod:`mintaudit.distributed`), rank 0 writes the
    work directory and prints.
    """
    from mintaudit._tensor import use_device
    from mintaudit.errors import MintauditError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        args, origin = apply_config(parser, argv)
        check_values(vars(args), origin)  # option values and paths, before anything is written
        check_paths(vars(args), origin)
        with command_lock(getattr(args, "out", None), ["mintaudit", *argv]):
            with _torchrun(args), use_device(getattr(args, "device", None)):
                with audit_record(args, argv):
                    status = _run(args, argv)
                if status == 0:
                    _save_config(args, ["mintaudit", *argv])
                return status
    except MintauditError as e:
        if "--debug" in argv or getattr(args, "debug", False):
            raise
        print(f"mintaudit: error: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:
        if "--debug" in argv or getattr(args, "debug", False):
            raise
        print(
            f"mintaudit: error: out of memory ({e}); ask for less: a smaller --image-size or --batch-size, or fewer "
            "samples",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("mintaudit: interrupted; finished files are complete, unfinished ones were not written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
