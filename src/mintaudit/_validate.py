"""The two checks every verb's input passes before anything runs or is written.

* Option values: a YAML ``--config`` value is given exactly the type argparse gives the option
  (:func:`config_values`), and every final value is range-checked (:func:`check_values`).
* Paths: work directories, output files and input files are checked for what they must be
  (:func:`check_paths`): a directory that is a file, an output under a file, an unwritable
  folder or an input that is a directory are refused in one line before the first write.

Both raise :class:`~mintaudit.errors.ConfigError` (or ``DataNotFoundError`` for a missing
input), whose message names the option, what was given and the fix.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mintaudit.errors import ConfigError, DataNotFoundError

__all__ = ["OptionSpec", "Origin", "read_config", "config_values", "check_values", "check_paths"]

UINT32_MAX = 2**32 - 1
_INT_MAX = 2**31 - 1  # counts beyond this overflow the int32 arrays and loaders downstream
MAX_IMAGE_SIZE = 4096


@dataclass(frozen=True)
class OptionSpec:
    """What argparse would do with one option: its dest, its flag, its kind, its type and choices."""

    dest: str
    flag: str  # "--batch-size", or the metavar of a positional
    kind: Literal["flag", "list", "value", "positional"]
    type: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None


# ---------------------------------------------------------------------------------------------
# the YAML file


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping of a YAML ``--config`` file, read with ``yaml.safe_load``; errors in one line."""
    import yaml

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"--config {str(p)!r} is a directory; give a YAML file of option: value lines")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataNotFoundError(f"--config {str(p)!r} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read --config {str(p)!r} ({e}); give a readable UTF-8 YAML file") from None
    try:
        data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise ConfigError(f"--config {_yaml_problem(p, e)}; fix the YAML (option: value, one per line)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"--config {str(p)!r} holds a {type(data).__name__}, not a mapping; write option: value lines "
            "such as 'epochs: 5'"
        )
    return data


def _unique_key_loader() -> type:
    """A ``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        twice = key in seen
                        seen.add(key)
                    except TypeError:  # an unhashable key: SafeLoader reports it
                        continue
                    if twice:
                        raise yaml.constructor.ConstructorError(
                            "while reading a mapping",
                            node.start_mark,
                            f"key {key!r} is given twice",
                            key_node.start_mark,
                        )
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _yaml_problem(path: Path, e: Exception) -> str:
    """'FILE, line L, column C: problem' of a YAML error, on one line."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    text = f"{problem} ({context})" if context else str(problem)
    return f"{where}: {' '.join(text.split())}"


# ---------------------------------------------------------------------------------------------
# config values -> the types argparse gives


def config_values(
    data: Mapping[Any, Any], specs: Mapping[str, OptionSpec], *, source: str, verb: str
) -> dict[str, Any]:
    """Config entries converted to the values argparse would give their options.

    Keys may use dashes or underscores. Flags need real booleans; integers refuse booleans and
    fractions; strings refuse lists, mappings and booleans; ``null`` is refused (remove the key
    to get the default); unknown keys are refused with the closest option names.
    """
    values: dict[str, Any] = {}
    for key, value in data.items():
        dest = str(key).strip().lstrip("-").replace("-", "_")
        spec = specs.get(dest)
        if spec is None or dest == "config":
            valid = sorted(s.flag.lstrip("-") for s in specs.values() if s.kind != "positional" and s.dest != "config")
            close = difflib.get_close_matches(str(key).replace("_", "-"), valid, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            what = (
                "--config cannot name another --config" if dest == "config" else f"unknown option(s) {key} for '{verb}'"
            )
            raise ConfigError(f"{source}: {what}; {hint}valid: {', '.join(valid)}")
        values[dest] = _convert(spec, value, f"{source}: {key}")
    return values


def _convert(spec: OptionSpec, value: Any, where: str) -> Any:
    if spec.kind == "positional":
        raise ConfigError(f"{where}: {spec.flag} is given on the command line, not in the config; remove the key")
    if value is None:
        raise ConfigError(f"{where} is empty (null); give a value, or remove the key to get the default")
    if spec.kind == "flag":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false (a YAML boolean, unquoted), got {value!r}")
        return value
    if spec.kind == "list":
        items = value if isinstance(value, list) else [value]
        return [_scalar_str(spec, v, where) for v in items]
    if spec.type is int:
        out: Any = _to_int(value, where)
    elif spec.type is float:
        out = _to_float(value, where)
    elif spec.type is None:
        out = _scalar_str(spec, value, where)
    else:  # a custom type: give it the text, as argparse would
        try:
            out = spec.type(_scalar_str(spec, value, where))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: {e}") from None
    if spec.choices is not None and out not in spec.choices:
        raise ConfigError(
            f"{where} must be one of {', '.join(map(str, spec.choices))}, got {value!r}; write one of them"
        )
    return out


def _scalar_str(spec: OptionSpec, value: Any, where: str) -> str:
    if isinstance(value, bool):
        if spec.choices is not None and {"yes", "no"} <= set(spec.choices):
            return "yes" if value else "no"  # YAML 1.1 reads an unquoted yes / no as a boolean
        raise ConfigError(
            f"{where} must be a string, got the boolean {str(value).lower()} (YAML reads yes/no/on/off "
            "as booleans: quote the value)"
        )
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ConfigError(
        f"{where} must be a single value, got a {type(value).__name__} {value!r}; write one value "
        "(comma-separated where the option takes a list)"
    )


_ONE_NUMBER = "write one plain number, e.g. 'epochs: 5' or 'lr: 1e-3'"


def _to_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where} must be a whole number, got {_shown(value)}; {_ONE_NUMBER}")
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(f"{where} must be a whole number, got {value!r}; {_ONE_NUMBER}") from None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ConfigError(f"{where} must be a whole number, got {value!r}; {_ONE_NUMBER}")
    return int(value)


def _to_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where} must be a number, got {_shown(value)}; {_ONE_NUMBER}")
    try:
        return float(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{where} must be a number, got {value!r}; {_ONE_NUMBER}") from None


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"a {type(value).__name__} {value!r}"


# ---------------------------------------------------------------------------------------------
# ranges of the final values


@dataclass(frozen=True)
class _Range:
    number: Literal["int", "float"]
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    example: str = ""

    def describe(self) -> str:
        kind = "a whole number" if self.number == "int" else "a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
            return f"{kind} in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{kind} {'>' if self.open_low else '>='} {_num(self.low)}"
        return kind

    def holds(self, v: float) -> bool:
        if self.number == "float" and not math.isfinite(v):
            return False
        if self.low is not None and (v <= self.low if self.open_low else v < self.low):
            return False
        return not (self.high is not None and (v >= self.high if self.open_high else v > self.high))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _count(low: int, example: str, high: int = _INT_MAX) -> _Range:
    return _Range("int", low, high, example=example)


def _share(example: str) -> _Range:
    return _Range("float", 0.0, 1.0, open_low=True, open_high=True, example=example)


#: dest -> the range every value of that option must lie in, whichever verb has it.
RANGES: dict[str, _Range] = {
    "seed": _count(0, "0", UINT32_MAX),
    "epochs": _count(1, "15"),
    "mint_epochs": _count(1, "40"),
    "reference_epochs": _count(1, "15"),
    "batch_size": _count(1, "64"),
    "members": _count(1, "1000"),
    "external": _count(1, "1000"),
    "test": _count(1, "1000"),
    "reference": _count(1, "2"),
    "bootstrap": _count(0, "1000 (0 skips the intervals)"),
    "patience": _count(0, "10 (0 disables early stopping)"),
    "val_members": _count(1, "500"),
    "val_external": _count(1, "1000"),
    "image_size": _count(1, "32", MAX_IMAGE_SIZE),
    "lr": _Range("float", 0.0, open_low=True, example="1e-3"),
    "weight_decay": _Range("float", 0.0, example="5e-4 (0 = none)"),
    "lambda_task": _Range("float", 0.0, example="1"),
    "lambda_mint": _Range("float", 0.0, open_low=True, example="1"),
    "mint_grad_scale": _Range("float", 0.0, 1.0, example="1"),
    "rmia_a": _Range("float", 0.0, 1.0, example="0.33"),
    "known_fraction": _share("0.5"),
    "fdr": _Range("float", 0.0, 1.0, open_low=True, example="0.05"),  # 1 flags every p-value, as the library allows
    "alpha": _share("0.05"),
    "dp_epsilon": _Range("float", 0.0, open_low=True, example="8"),
    "dp_delta": _share("1e-5"),
    "max_grad_norm": _Range("float", 0.0, open_low=True, example="1"),
    "canaries": _count(1, "1000"),
    "confidence": _share("0.95"),
}


@dataclass(frozen=True)
class Origin:
    """Where the values came from, to name them as the user wrote them: ``--lr`` or ``c.yaml: lr``."""

    flags: Mapping[str, str]  # dest -> "--lr" (or a positional's metavar)
    from_config: frozenset[str] = frozenset()  # dests whose value the config file gave
    source: str = ""  # "--config 'c.yaml'"

    def label(self, dest: str) -> str:
        flag = self.flags.get(dest, "--" + dest.replace("_", "-"))
        return f"{self.source}: {flag.lstrip('-')}" if dest in self.from_config else flag

    def example(self, dest: str, value: str) -> str:
        flag = self.flags.get(dest, "--" + dest.replace("_", "-"))
        return f"{flag.lstrip('-')}: {value}" if dest in self.from_config else f"{flag} {value}"


def check_values(values: Mapping[str, Any], origin: Origin) -> None:
    """Refuse a value outside its option's range (see :data:`RANGES`), and a bad tap storage option; ``None`` means
    'not given'."""
    _check_tap_storage(values, origin)
    for dest, rule in RANGES.items():
        v = values.get(dest)
        if v is None:
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (rule.number == "float" or isinstance(v, int))
        if not ok or not rule.holds(v):
            raise ConfigError(
                f"{origin.label(dest)} must be {rule.describe()}, got {v!r}; e.g. {origin.example(dest, rule.example)}"
            )


def _check_tap_storage(values: Mapping[str, Any], origin: Origin) -> None:
    """--tap-budget and --tap-mode parse, and --detector cnn is not asked to read a pooled tap."""
    if values.get("tap_budget") is None and values.get("tap_mode") is None:
        return
    from mintaudit.signals.reduce import parse_tap_budget, parse_tap_modes

    if values.get("tap_budget") is not None:
        parse_tap_budget(values["tap_budget"], name=origin.label("tap_budget"))
    if values.get("tap_mode") is not None:
        from mintaudit.passive import check_detector_modes

        default, per = parse_tap_modes(values["tap_mode"], name=origin.label("tap_mode"))
        if values.get("detector") is not None:
            check_detector_modes(values["detector"], [m for m in (default, *per.values()) if m])


# ---------------------------------------------------------------------------------------------
# paths


PathRole = Literal["out_dir", "out_file", "in_file", "in_dir", "in_path"]

#: dest -> what the path given for it must be.
PATHS: dict[str, PathRole] = {
    "out": "out_dir",
    "csv": "out_file",
    "json": "out_file",
    "splits": "in_file",
    "members_file": "in_file",
    "external_file": "in_file",
    "test_file": "in_file",
    "weights": "in_file",
    "report_path": "in_path",
    "data_root": "in_dir",
}


def check_paths(values: Mapping[str, Any], origin: Origin) -> None:
    """Refuse a path that cannot be what its option needs (see :data:`PATHS`), before anything is written."""
    from mintaudit._outputs import check_outputs

    check_outputs(values, origin.label)  # system folders; outputs onto inputs or onto files we did not write
    for dest, role in PATHS.items():
        v = values.get(dest)
        if v is None or v == "":
            continue
        name = origin.label(dest)
        if role == "out_dir":
            _writable_dir(Path(v), name)
        elif role == "out_file":
            p = Path(v)
            if p.is_dir():
                raise ConfigError(f"{name} {str(p)!r} is a directory; give a file name, e.g. {p / ('answers.' + dest)}")
            _writable_dir(p.parent, f"{name} {str(p)!r}: its folder", is_parent=True)
        elif role == "in_file":
            _input_file(Path(v), name, _FIX.get(dest, "check the path"))
        elif role == "in_path":  # a file, or a folder holding the default file (report: a work directory)
            p = Path(v)
            _input_file(p / "report.json" if p.is_dir() else p, name, _FIX.get(dest, "check the path"))
        else:
            p = Path(v).expanduser()
            if not p.is_dir():
                state = "is a file" if p.exists() else "does not exist"
                raise DataNotFoundError(f"{name} {str(p)!r} {state}; give the folder that holds the data set files")


def _writable_dir(p: Path, name: str, *, is_parent: bool = False) -> None:
    """``p`` is, or can be created as, a directory this process may write in."""
    label = name if is_parent else f"{name} {str(p)!r}"
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{label} is a file, not a directory; give a directory (it is created when missing)")
    existing = p
    while not existing.exists():  # the nearest ancestor that exists: the one whose write permission counts
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != p and not existing.is_dir():
        raise ConfigError(f"{label} lies under {str(existing)!r}, which is a file; give a directory path")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{label}: cannot write in {str(existing)!r} (permission denied); choose a directory you can "
            "write to, or change its permissions"
        )


_FIX = {
    "splits": "give an existing splits.json, or leave --splits out to use OUT/splits.json (made when missing)",
    "weights": "give a .safetensors or .pt/.pth state-dict file",
    "report_path": "give the report.json a command wrote",
}


def _input_file(p: Path, name: str, fix: str) -> None:
    if p.is_dir():
        raise ConfigError(f"{name} {str(p)!r} is a directory, not a file; {fix}")
    if not p.exists():
        raise DataNotFoundError(f"{name} {str(p)!r} does not exist; {fix}")


def parse_key_values(items: list[str], option: str) -> dict[str, Any]:
    """KEY=VALUE strings -> dict, values read as YAML scalars (0 -> int, 0.5 -> float, true -> bool)."""
    import yaml

    from mintaudit.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} takes KEY=VALUE, got {item!r}; e.g. {option} dropout=0")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out
