"""The audit record (``OUT/record.json``, schema ``mintaudit/record@1``): what one work directory audits.

The record binds a work directory to one data set, one set of splits and one model, so that no
later verb can quietly audit another. It has two parts:

- **data** (written by ``splits`` or any verb that made the splits): the data locator
  (``dataset``, ``data_root``, ``image_size``, the ``--splits`` file when one was given), the data
  and splits fingerprints and the splits' seed;
- **model** (written by ``train``, or by the first verb that resolves a user's ``--model`` /
  ``--weights``): the locator (the ``--model`` string, or the model trained in OUT), the weights
  file and its SHA-256, the model fingerprint, the full preprocessing, and the tap modes when set.

Every later verb reads it (:func:`check_options`): an option it holds is taken from it when not
given, and refused in one line, naming both values, when given otherwise; the weights are hashed
again and a moved or changed file is refused. A new model or member list needs another OUT or
``--new-record``, which first moves the old record and its results into ``OUT/archive/<UTC time>/``
(:func:`archive_record`). A work directory made before the record is adopted when its files agree
(:func:`adopt_record`), else refused with the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mintaudit._io import atomic_write_json
from mintaudit.errors import ConfigError, CorruptFileError, ModelError
from mintaudit.preprocess import Preprocess

__all__ = [
    "SCHEMA",
    "RECORD_NAME",
    "read_record",
    "adopt_record",
    "load_record",
    "write_record",
    "archive_record",
    "check_options",
    "check_report",
    "data_part",
    "data_locator",
    "model_part",
    "weights_sha256",
    "holds_results",
]

SCHEMA = "mintaudit/record@1"
RECORD_NAME = "record.json"

# what --new-record moves into OUT/archive/<time>/: the record and everything made under it (never the pool store)
_RECORD_FILES = ("record.json", "report.json", "report.html", "verdict.csv", "audit-dp.json", "splits.json")
_RECORD_DIRS = ("model", "detectors", "amint")
_RESULT_FILES = ("report.json", "verdict.csv", "audit-dp.json")
_START_OVER = "start over with --new-record (the old results move to OUT/archive/) or use another --out"


def weights_sha256(path: str | Path) -> str:
    """The SHA-256 (hex) of a weights file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def absolute_locator(locator: str) -> str:
    """``SCHEME:PATH`` with PATH made absolute (so the record holds wherever the next command runs from)."""
    from mintaudit.targets import split_scheme

    scheme, rest = split_scheme(str(locator))
    return f"{scheme}:{Path(rest).resolve()}" if scheme is not None else str(locator)


def locator_sha256(locator: str) -> str | None:
    """The SHA-256 of the files behind a scheme locator (``hf:DIR``: its weights, ``config.json`` and
    ``preprocessor_config.json``, sorted by name; ``onnx:FILE``, ``export:FILE``: the file), or None when
    ``locator`` names no registered scheme. Other files a user keeps in the folder do not count."""
    from mintaudit.targets import split_scheme

    scheme, rest = split_scheme(locator)
    if scheme is None:
        return None
    path = Path(rest)
    if path.is_dir():
        wanted = ("config.json", "preprocessor_config.json")
        files = sorted(p for p in path.iterdir() if p.is_file() and (p.suffix == ".safetensors" or p.name in wanted))
    else:
        files = [path] if path.is_file() else []
    if not files:
        raise ModelError(f"the files of the audited model {locator!r} are gone (moved or deleted)")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + weights_sha256(f).encode())
    return h.hexdigest()


def read_record(out_dir: str | Path) -> dict[str, Any] | None:
    """``OUT/record.json`` (checked), or None when there is none."""
    path = Path(out_dir) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFileError(f"{str(path)!r} is not a readable audit record ({e}); {_START_OVER}") from e
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise CorruptFileError(f"{str(path)!r} is not a {SCHEMA} audit record (schema {schema!r}); {_START_OVER}")
    for part in ("data", "model"):
        if doc.get(part) is not None and not isinstance(doc[part], dict):
            raise CorruptFileError(f"{str(path)!r}: its {part!r} part is not a mapping; {_START_OVER}")
    return doc


def write_record(out_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """Write ``OUT/record.json`` atomically."""
    now = _now()
    doc = {"schema": SCHEMA, "created": record.get("created", now), "updated": now}
    doc.update({k: v for k, v in record.items() if k not in doc})
    return atomic_write_json(Path(out_dir) / RECORD_NAME, doc)


def load_record(out_dir: str | Path) -> dict[str, Any] | None:
    """The record of ``out_dir``: ``record.json``, else one adopted from its older files, else None."""
    return read_record(out_dir) or adopt_record(out_dir)


def holds_results(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds results made under its record (a report, a verdict, a DP audit)."""
    return any((Path(out_dir) / name).is_file() for name in _RESULT_FILES)


def archive_record(out_dir: str | Path) -> Path | None:
    """Move the record and everything made under it into ``OUT/archive/<UTC time>/`` (``--new-record``).

    Moved: record.json, the reports, verdict.csv, audit-dp.json, splits.json, the ``<verb>.config.json``
    files, ``model/``, ``detectors/``, ``amint/`` and the signal caches (``cache/`` but its pool store).
    Nothing is deleted and nothing else is touched. Returns the archive folder, or None when there was
    nothing to move.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return None
    names = [n for n in _RECORD_FILES if (out / n).is_file()]
    names += sorted(p.name for p in out.glob("*.config.json") if p.is_file())
    names += [n for n in _RECORD_DIRS if (out / n).is_dir()]
    caches = sorted(p.name for p in (out / "cache").iterdir() if p.name != "pools") if (out / "cache").is_dir() else []
    if not names and not caches:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = out / "archive" / stamp
    k = 1
    while dest.exists():
        dest, k = out / "archive" / f"{stamp}-{k}", k + 1
    dest.mkdir(parents=True)
    for n in names:
        os.replace(out / n, dest / n)
    if caches:
        (dest / "cache").mkdir()
        for n in caches:
            os.replace(out / "cache" / n, dest / "cache" / n)
    return dest


def data_part(
    *,
    dataset: str,
    data_root: str | None,
    image_size: int | None,
    splits_file: str | None,
    data_fingerprint: str,
    splits_fingerprint: str,
    seed: int,
    sizes: Mapping[str, int],
) -> dict[str, Any]:
    """The record's data part."""
    return {
        "dataset": None if dataset is None else data_locator(dataset),
        "data_root": None if data_root is None else str(Path(data_root).resolve()),
        "image_size": image_size,
        "splits": None if splits_file is None else str(Path(splits_file).resolve()),
        "data_fingerprint": data_fingerprint,
        "splits_fingerprint": splits_fingerprint,
        "seed": seed,
        "sizes": dict(sizes),
    }


def model_part(
    *,
    locator: str,
    in_out: bool,
    weights: str | Path,
    fingerprint: str | None,
    preprocess: Preprocess,
    model_args: Mapping[str, Any] | None = None,
    tap_modes: str | None = None,
) -> dict[str, Any]:
    """The record's model part; ``weights`` relative to OUT for a model trained in OUT, else absolute."""
    return {
        "locator": locator,
        "trained_in_out": in_out,
        "model_args": dict(model_args or {}),
        "weights": str(weights) if in_out else str(Path(weights).resolve()),
        "weights_sha256": None,  # filled by the caller, which knows where the file is
        "fingerprint": fingerprint,
        "preprocess": preprocess.to_dict(),
        "tap_modes": tap_modes,
    }


def trained_model_part(out: Path, info: Mapping[str, Any]) -> dict[str, Any]:
    """The model part of the model trained in ``out`` (``model/``; ``info``: its model.json)."""
    from mintaudit.models import load_model, model_fingerprint

    net, spec, _ = load_model(out / "model")
    part = model_part(
        locator=spec.name,
        in_out=True,
        weights="model/model.safetensors",
        fingerprint=model_fingerprint(net),
        preprocess=Preprocess.from_dict(info.get("preprocess")),
    )
    part["weights_sha256"] = weights_sha256(out / "model" / "model.safetensors")
    return part


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def _contradiction(flag: str, given: Any, recorded: Any, out: Path) -> ConfigError:
    """The one-line refusal of an option that contradicts the record, naming both values."""
    return ConfigError(
        f"{flag} {given} contradicts the audit record of {str(out)!r} ({flag} {recorded} there); drop "
        f"{flag} (the recorded value is used), or {_START_OVER}"
    )


def check_options(
    out_dir: str | Path, record: Mapping[str, Any], verb: str, given: Mapping[str, Any]
) -> dict[str, Any]:
    """Check the options ``given`` explicitly (dest -> value) against ``record``; return the values to fill in.

    Refuses (ConfigError, one line naming both values) an option that contradicts the record,
    moved or changed weights (naming the file), splits that are gone or not the recorded ones,
    and a ``train`` over results made under the record. Returns dest -> value for what the record
    holds and was not given (``dataset``, ``data_root``, ``image_size``, ``splits``, ``model``,
    ``weights``, ``mean``, ``std``, ``grey_to_rgb``, ``tap_mode``); the caller keeps only the
    options its verb has.
    """
    out = Path(out_dir)
    fill: dict[str, Any] = {}
    data = record.get("data") or {}
    if data:
        if data.get("dataset") is not None:  # an adopted record may not know its locator
            if "dataset" in given and _data_kind(given["dataset"]) != _data_kind(data["dataset"]):
                raise _contradiction("--dataset", _shown(given["dataset"]), _shown(data["dataset"]), out)
            if "image_size" in given and given["image_size"] != data.get("image_size"):
                size = data.get("image_size")
                raise _contradiction(
                    "--image-size", given["image_size"], "none (no resize)" if size is None else size, out
                )
            fill.update({k: data.get(k) for k in ("dataset", "image_size") if k not in given})
        if "data_root" not in given and data.get("data_root") is not None:
            fill["data_root"] = data["data_root"]  # another root is checked by the data fingerprint
        _check_splits(out, data, given, fill)
    mdl = record.get("model") or {}
    if verb == "train":
        if holds_results(out):
            raise ConfigError(
                f"{str(out)!r} holds results of the recorded model; retraining would leave them describing "
                f"another one: {_START_OVER}"
            )
        if mdl.get("trained_in_out") and not any(k in given for k in ("mean", "std", "grey_to_rgb")):
            fill.update(_preprocess_options(mdl))
        return fill
    if not mdl or verb in ("splits", "audit-dp") or given.get("method") == "amint":
        return fill
    pre = Preprocess.from_dict(mdl.get("preprocess"))
    if any(k in given for k in ("mean", "std", "grey_to_rgb")):
        have = _preprocess_options(mdl)  # what is not given is the record's
        asked = Preprocess.parse(
            given.get("mean", have["mean"]), given.get("std", have["std"]), given.get("grey_to_rgb", pre.grey_to_rgb)
        )
        if asked != pre:
            flag, now, then = next(
                (f"--{k.replace('_', '-')}", getattr(asked, k), getattr(pre, k))
                for k in ("mean", "std", "grey_to_rgb")
                if getattr(asked, k) != getattr(pre, k)
            )
            shown = {tuple: lambda v: ",".join(f"{x:g}" for x in v)}.get(type(now), str)
            raise _contradiction(flag, shown(now), shown(then), out)
    fill.update({k: v for k, v in _preprocess_options(mdl).items() if k not in given})
    _check_model(out, mdl, given, fill)
    if "tap_mode" in given and mdl.get("tap_modes") is not None:
        _check_tap_modes(out, given["tap_mode"], mdl["tap_modes"])
    elif mdl.get("tap_modes") is not None:
        fill["tap_mode"] = mdl["tap_modes"]
    return fill


def data_locator(dataset: str) -> str:
    """``dataset`` as the record keeps it: a ``PREFIX:PATH`` locator with its path made absolute."""
    prefix, sep, rest = str(dataset).partition(":")
    if sep and len(prefix) > 1 and prefix.isalpha() and rest:
        return f"{prefix}:{Path(rest).resolve()}"
    return str(dataset)


def _data_kind(dataset: str) -> str:
    """A registered name, or the prefix of a ``PREFIX:PATH`` locator: another path of that kind is checked by
    the data fingerprint (the data may have moved), another kind is a contradiction."""
    prefix, sep, rest = str(dataset).partition(":")
    return (prefix + ":" if sep and len(prefix) > 1 and prefix.isalpha() and rest else str(dataset)).lower()


def _preprocess_options(mdl: Mapping[str, Any]) -> dict[str, Any]:
    pre = Preprocess.from_dict(mdl.get("preprocess"))
    return {
        "mean": ",".join(repr(v) for v in pre.mean),
        "std": ",".join(repr(v) for v in pre.std),
        "grey_to_rgb": pre.grey_to_rgb,
    }


def _check_splits(out: Path, data: Mapping[str, Any], given: Mapping[str, Any], fill: dict[str, Any]) -> None:
    from mintaudit.data import Splits

    recorded = data.get("splits_fingerprint")
    path_given = given.get("splits")
    path = Path(path_given or data.get("splits") or out / "splits.json")
    if not path_given and data.get("splits"):
        fill["splits"] = data["splits"]
    if recorded is None:
        return
    if not path.is_file():
        raise ConfigError(
            f"{str(path)!r} is gone, but the audit record of {str(out)!r} binds it to splits {recorded} (the "
            f"members its model was audited on): put that file back, or {_START_OVER}"
        )
    fp = Splits.load(path).fingerprint()
    if fp != recorded:
        flag = f"--splits {str(path)!r}" if path_given else f"{str(path)!r}"
        raise ConfigError(
            f"{flag} holds splits {fp}, but the audit record of {str(out)!r} holds splits {recorded} (other members "
            f"than the model was audited on): drop --splits, put the recorded splits back, or {_START_OVER}"
        )


def _check_model(out: Path, mdl: Mapping[str, Any], given: Mapping[str, Any], fill: dict[str, Any]) -> None:
    """The recorded model: the same locator, and weights of the recorded hash (the file named when not)."""
    sha = mdl.get("weights_sha256")
    if mdl.get("files_sha256") is not None:  # hf:DIR, onnx:FILE, export:FILE: the model carries its weights
        if given.get("model") is not None and absolute_locator(given["model"]) != mdl.get("locator"):
            raise _contradiction("--model", _shown(given["model"]), _shown(mdl.get("locator")), out)
        if locator_sha256(str(mdl["locator"])) != mdl["files_sha256"]:
            raise ModelError(
                f"the files of the audited model {mdl['locator']!r} changed since the audit record of {str(out)!r} "
                f"was written; put them back, or {_START_OVER}"
            )
        fill["model"] = mdl.get("locator")
        _check_model_args(out, mdl, given, fill)
        return
    if mdl.get("trained_in_out"):
        if given.get("weights") is not None:
            raise _contradiction(
                "--weights", repr(str(given["weights"])), f"none: the model trained in {str(out / 'model')!r}", out
            )
        if given.get("model") is not None and given["model"] != mdl.get("locator"):
            raise _contradiction("--model", _shown(given["model"]), _shown(mdl.get("locator")), out)
        path = out / str(mdl.get("weights") or "model/model.safetensors")
        _check_weights(out, path, sha, "retrain")
        return
    if given.get("model") is not None and given["model"] != mdl.get("locator"):
        raise _contradiction("--model", _shown(given["model"]), _shown(mdl.get("locator")), out)
    fill["model"] = mdl.get("locator")
    _check_model_args(out, mdl, given, fill)
    if given.get("weights") is not None:
        path = Path(given["weights"])
        if path.resolve() == Path(str(mdl.get("weights"))):
            _check_weights(out, path, sha, "give --weights with the file's new place")
        elif not path.is_file() or weights_sha256(path) != sha:  # another file: the same content, or refused
            raise _contradiction(
                "--weights", repr(str(path)), f"{_shown(mdl.get('weights'))} (sha256 {str(sha)[:12]}...)", out
            )
        return
    path = Path(str(mdl.get("weights")))
    _check_weights(out, path, sha, "give --weights with the file's new place")
    fill["weights"] = str(path)


def _check_model_args(out: Path, mdl: Mapping[str, Any], given: Mapping[str, Any], fill: dict[str, Any]) -> None:
    """``--model-arg``: the recorded ones are used when none is given; others are a contradiction."""
    recorded = dict(mdl.get("model_args") or {})
    if "model_arg" not in given or not given["model_arg"]:
        if recorded:
            fill["model_arg"] = [f"{k}={json.dumps(v)}" for k, v in recorded.items()]
        return
    from mintaudit._validate import parse_key_values

    now = parse_key_values([str(item) for item in given["model_arg"]], "--model-arg")
    if now != recorded:
        shown = " ".join(f"{k}={v}" for k, v in recorded.items()) or "none"
        raise _contradiction("--model-arg", " ".join(map(str, given["model_arg"])), shown, out)


def _check_weights(out: Path, path: Path, sha: str | None, fix: str) -> None:
    if not path.is_file():
        raise ModelError(
            f"the audited model's weights {str(path)!r} are gone (moved or deleted) since the audit record of "
            f"{str(out)!r} was written: put them back or {fix}, or {_START_OVER}"
        )
    if sha is not None and weights_sha256(path) != sha:
        raise ModelError(
            f"the audited model's weights {str(path)!r} changed since the audit record of {str(out)!r} was "
            f"written (sha256 {sha[:12]}... recorded): put the recorded file back, or {_START_OVER}"
        )


def _check_tap_modes(out: Path, given: str, recorded: str) -> None:
    from mintaudit.signals import parse_tap_modes

    g_default, g_per = parse_tap_modes(given)
    r_default, r_per = parse_tap_modes(recorded)
    for layer in sorted(set(g_per) | set(r_per)) + [None]:
        g = g_per.get(layer, g_default) if layer else g_default
        r = r_per.get(layer, r_default) if layer else r_default
        if g is not None and r is not None and g != r:
            raise _contradiction("--tap-mode", _shown(given), _shown(recorded), out)


def adopt_record(out_dir: str | Path) -> dict[str, Any] | None:
    """A record for a work directory made before the record, from its files, when they agree; None when empty.

    ``splits.json`` gives the data part (the locator from the earliest ``<verb>.config.json``);
    ``model/model.json`` the model part of a model trained in OUT (its preprocessing, data and
    splits fingerprints); ``report.json`` the model part of a user's model (with the weights a
    config names, when that file is still there). Refused when the files disagree: a model trained
    on other splits or data than ``splits.json``, or a report of another model or data.
    """
    from mintaudit.data import Splits

    out = Path(out_dir)
    splits_path, model_json, report_path = out / "splits.json", out / "model" / "model.json", out / "report.json"
    if not (splits_path.is_file() or model_json.is_file() or report_path.is_file()):
        return None
    configs = _configs(out)
    record: dict[str, Any] = {"adopted": _now()}
    if splits_path.is_file():
        splits = Splits.load(splits_path)
        locator = next((c for c in configs if c.get("dataset")), {})
        record["data"] = data_part(
            dataset=locator.get("dataset"),  # type: ignore[arg-type]
            data_root=locator.get("data_root"),
            image_size=locator.get("image_size"),
            splits_file=None,
            data_fingerprint=splits.data_fingerprint,
            splits_fingerprint=splits.fingerprint(),
            seed=splits.seed,
            sizes={r: len(getattr(splits, r)) for r in ("members", "external", "test")},
        )
    data = record.get("data") or {}
    report = _json(report_path) if report_path.is_file() else None
    if model_json.is_file():
        info = _json(model_json)
        for key, what in (("splits_fingerprint", "splits"), ("data_fingerprint", "data")):
            if data and info.get(key) not in (None, data[key]):
                raise ConfigError(
                    f"the model in {str(out / 'model')!r} was trained on other {what} ({info.get(key)}) than "
                    f"{str(splits_path)!r} holds ({data[key]}): put its splits.json back, or {_START_OVER}"
                )
        record["model"] = trained_model_part(out, info)
    elif report is not None:
        weights = next((c.get("weights") for c in configs if c.get("weights")), None)
        mdl = report.get("model") or {}
        if weights and Path(weights).is_file() and mdl.get("name"):
            part = model_part(
                locator=str(mdl["name"]),
                in_out=False,
                weights=weights,
                fingerprint=mdl.get("fingerprint"),
                preprocess=Preprocess.from_dict(mdl.get("preprocess")),
            )
            part["weights_sha256"] = weights_sha256(weights)
            record["model"] = part
    if report is not None:
        _check_report(out, report, record)
    return record


def _check_report(out: Path, report: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    """Refuse a report.json of another model or data than the record's (its verdict would describe another)."""
    have = (report.get("model") or {}).get("fingerprint")
    want = (record.get("model") or {}).get("fingerprint")
    if have and want and have != want:
        raise ConfigError(
            f"{str(out / 'report.json')!r} describes model {have}, not the recorded one ({want}, in "
            f"{str(out / 'model')!r} or the recorded --weights): {_START_OVER}"
        )
    have = (report.get("dataset") or {}).get("fingerprint")
    want = (record.get("data") or {}).get("data_fingerprint")
    if have and want and have != want:
        raise ConfigError(
            f"{str(out / 'report.json')!r} describes data {have}, not the recorded data ({want}): {_START_OVER}"
        )


def check_report(out_dir: str | Path, record: Mapping[str, Any]) -> None:
    """Refuse when ``OUT/report.json`` describes another model or data than ``record``."""
    path = Path(out_dir) / "report.json"
    if path.is_file():
        _check_report(Path(out_dir), _json(path), record)


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFileError(f"{str(path)!r} is not readable JSON ({e}); move it away, or {_START_OVER}") from e
    if not isinstance(doc, dict):
        raise CorruptFileError(f"{str(path)!r} does not hold a JSON object; move it away, or {_START_OVER}")
    return doc


def _configs(out: Path) -> list[dict[str, Any]]:
    """The ``<verb>.config.json`` files of ``out``, the verbs that make the splits and the model first."""
    order = ("splits", "train", "sweep", "fit", "extract", "attack", "test")
    found = []
    for verb in order:
        path = out / f"{verb}.config.json"
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(doc, dict):
                found.append(doc)
    return found
