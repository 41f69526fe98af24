"""Each attack's own options: a frozen dataclass declared in its zoo file, ``--attack-opt NAME.KEY=VALUE`` generated from it.

An attack with options registers its dataclass (``@register_attack("rmia", options=RmiaOptions)``);
each field is an :func:`option` with a default, a help line and its valid range or choices. The
command line (``mintaudit attack --attack-opt rmia.a=0.3``, listed in ``--help``) and the YAML
config (``attack-opt: [rmia.a=0.3]``) read them through :func:`parse_attack_options`; a value of
the wrong type or out of range is one line. The score function reads ``ctx.options``, the
dataclass filled with the defaults and what was given.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class TopOptions:
    ...     k: int = option(3, "how many top classes", low=1)
    >>> parse_attack_options(["top-k.k=2"], {"top-k": TopOptions})
    {'top-k': {'k': 2}}
    >>> option_lines([("top-k", TopOptions)])
    ['top-k.k (a whole number >= 1, default 3): how many top classes']
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field
from typing import Any

import yaml

from mintaudit.errors import ConfigError

__all__ = [
    "build_options",
    "methods_help",
    "option",
    "option_lines",
    "options_for",
    "options_help",
    "parse_attack_options",
    "split_legacy",
]


def option(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: Sequence[Any] | None = None,
    legacy: str | None = None,
) -> Any:
    """A field of an attack's options dataclass: its default, a help line, its range (inclusive) or choices.

    ``legacy`` names the :class:`~mintaudit.attacks.run.AttackConfig` field that held this option
    before (``rmia_a``): its value is the default, so old flags and reports keep their meaning.
    """
    meta = {"help": help, "low": low, "high": high, "choices": tuple(choices) if choices is not None else None}
    return field(default=default, metadata={**meta, "legacy": legacy})


def _fields(cls: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints.get(f.name, Any)) for f in dataclasses.fields(cls)]


def _describe(f: dataclasses.Field[Any], kind: Any) -> str:
    m = f.metadata
    if m.get("choices"):
        return "one of " + ", ".join(map(str, m["choices"]))
    base = {int: "a whole number", float: "a number", bool: "true or false"}.get(kind, "text")
    low, high = m.get("low"), m.get("high")
    if low is not None and high is not None:
        return f"{base} in [{low}, {high}]"
    if low is not None:
        return f"{base} >= {low}"
    return f"{base} <= {high}" if high is not None else base


def option_lines(specs: Iterable[tuple[str, type | None]]) -> list[str]:
    """``NAME.KEY (rule, default D): help`` for every option of every attack, for ``--help``."""
    out = []
    for name, cls in specs:
        if cls is None:
            continue
        for f, kind in _fields(cls):
            out.append(f"{name}.{f.name} ({_describe(f, kind)}, default {f.default}): {f.metadata.get('help', '')}")
    return out


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """``value`` (text from the command line, or a YAML scalar) as ``kind`` (bool, int, float, str)."""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            pass
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    return str(value)


def build_options(name: str, cls: type, given: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> Any:
    """The options of attack ``name``: ``cls`` filled with ``defaults`` then ``given``, each checked.

    Raises:
        ConfigError: an unknown key (naming the valid ones), a value of the wrong type, out of range or
            not among the choices, in one line.
    """
    known = {f.name: (f, kind) for f, kind in _fields(cls)}
    unknown = sorted(set(given) - set(known))
    if unknown:
        valid = ", ".join(f"{name}.{k}" for k in known) or "none"
        raise ConfigError(f"attack {name!r} has no option {', '.join(unknown)}; its options: {valid}")
    values: dict[str, Any] = {}
    for key, value in {**(defaults or {}), **given}.items():
        f, kind = known[key]
        where = f"--attack-opt {name}.{key}"
        v = _coerce(value, kind, where)
        m = f.metadata
        bad = (m.get("choices") and v not in m["choices"]) or (
            kind in (int, float)
            and ((m.get("low") is not None and v < m["low"]) or (m.get("high") is not None and v > m["high"]))
        )
        if bad:
            raise ConfigError(f"{where} must be {_describe(f, kind)}, got {v!r}; e.g. {name}.{key}={f.default}")
        values[key] = v
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"--attack-opt {name}: {e}") from None


def parse_attack_options(items: Iterable[str], specs: Mapping[str, type | None]) -> dict[str, dict[str, Any]]:
    """``["rmia.a=0.3", ...]`` -> ``{"rmia": {"a": 0.3}}``, every value checked by its attack's dataclass.

    Args:
        items: ``NAME.KEY=VALUE`` strings (``--attack-opt``, repeated, or the YAML list).
        specs: attack name -> its options dataclass (None: it has none).
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        head, eq, value = str(item).partition("=")
        name, dot, key = head.strip().rpartition(".")
        if not eq or not dot or not name or not key:
            raise ConfigError(f"--attack-opt takes ATTACK.KEY=VALUE, got {item!r}; e.g. --attack-opt rmia.a=0.3")
        if name not in specs:
            raise ConfigError(f"--attack-opt {head}: no attack {name!r}; attacks: {', '.join(specs)}")
        if specs[name] is None:
            raise ConfigError(f"--attack-opt {head}: attack {name!r} has no options")
        out.setdefault(name, {})[key] = value.strip()
    return {name: dataclasses.asdict(build_options(name, specs[name], given)) for name, given in out.items()}


def split_legacy(
    parsed: Mapping[str, Mapping[str, Any]], specs: Mapping[str, type | None]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Parsed options as (AttackConfig fields of the options that had one, the others by attack).

    An option declared with ``legacy="rmia_a"`` is stored in that field, as ``--rmia-a`` always did (the
    report's configuration and every attack reading the field agree); only given values are kept.
    """
    fields_, rest = {}, {}
    for name, values in parsed.items():
        legacy = {f.name: f.metadata.get("legacy") for f in dataclasses.fields(specs[name])}  # type: ignore[arg-type]
        for key, value in values.items():
            if legacy.get(key):
                fields_[legacy[key]] = value
            else:
                rest.setdefault(name, {})[key] = value
    return fields_, rest


def options_for(name: str, cls: type | None, config: Any) -> Any:
    """Attack ``name``'s options for a run: its legacy ``config`` fields, then ``config.options[name]``."""
    if cls is None:
        return None
    defaults = {
        f.name: getattr(config, f.metadata["legacy"])
        for f in dataclasses.fields(cls)
        if f.metadata.get("legacy") and hasattr(config, f.metadata["legacy"])
    }
    return build_options(name, cls, dict((getattr(config, "options", None) or {}).get(name, {})), defaults)


def methods_help() -> str:
    """``--methods``' help, generated from the attack registry (plug-ins included)."""
    from mintaudit.attacks.registry import ATTACKS

    return (
        f"comma-separated: {', '.join(ATTACKS)} (e.g. --methods rmia,calibrated-mint --reference 8) "
        "(default: %(default)s)"
    )


def options_help() -> str:
    """``--attack-opt``'s help, generated from each registered attack's options dataclass."""
    from mintaudit.attacks.registry import attack_options

    lines = option_lines(attack_options().items())
    return "an option of one attack, repeatable: " + ("; ".join(lines) if lines else "none registered")
