"""Render every verb's ``--help`` from :func:`mintaudit.cli_args.build_parser` as Markdown.

The docs hook (``docs/hooks.py``) calls :func:`render` when it builds ``reference/cli.md``, so the
page is the parser itself, never a copy that goes stale. Run it alone to print the page body:

    PYTHONPATH=src python docs/gen_cli.py
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-commands only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for name, sub in _subparsers(parser).items():
        yield " ".join((*path, name)), sub
        yield from _walk(sub, (*path, name))


def render(width: int = 100) -> str:
    """Markdown: the top-level help, then one section per verb (``active train`` and the like included)."""
    from mintaudit.cli_args import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)  # argparse wraps to the terminal; fix it so the page is stable
    try:
        parser = build_parser()
        parts = ["## mintaudit\n", "```text\n" + parser.format_help().rstrip() + "\n```\n"]
        for name, sub in _walk(parser):
            sub.prog = f"mintaudit {name}"
            parts.append(f"## mintaudit {name}\n")
            parts.append("```text\n" + sub.format_help().rstrip() + "\n```\n")
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


def _kind(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "true / false"
    if action.choices:
        return " \\| ".join(f"`{c}`" for c in action.choices)
    if isinstance(action, argparse._AppendAction):
        return "list"
    name = getattr(action.type, "__name__", None)
    return name if name in ("int", "float") else "text"


def render_config() -> str:
    """Markdown: per verb, the keys a ``--config`` YAML file may hold (its options), their values and defaults."""
    from mintaudit.cli_args import build_parser

    parts = []
    for name, sub in _walk(build_parser()):
        rows = []
        for a in sub._actions:
            if not a.option_strings or a.dest in ("help", "config") or isinstance(a, argparse._SubParsersAction):
                continue
            flag = next((o for o in a.option_strings if o.startswith("--")), a.option_strings[0])
            default = (
                "" if a.default is None or a.default is False or a.default == argparse.SUPPRESS else f"`{a.default}`"
            )
            text = (a.help or "").replace("%(default)s", str(a.default)).replace("%%", "%").replace("|", "\\|")
            rows.append(f"| `{flag.lstrip('-')}` | {_kind(a)} | {default} | {text} |")
        if rows:
            parts.append(
                f"## {name}\n\n| key | value | default | meaning |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
            )
    return "\n".join(parts)


if __name__ == "__main__":
    print(render())
