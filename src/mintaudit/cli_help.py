"""The command line's help formatter: descriptions kept as written, options never cut at a hyphen."""

from __future__ import annotations

import argparse
import re
import textwrap

__all__ = ["HelpFormatter"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``RawDescriptionHelpFormatter`` whose help lines break at spaces only.

    argparse wraps at hyphens too, so ``whitebox-lira.signals`` could print as ``whitebox-`` and
    ``lira.signals`` on two lines: a name no one can copy.
    """

    def _split_lines(self, text: str, width: int) -> list[str]:
        text = re.sub(r"\s+", " ", text).strip()
        return textwrap.wrap(text, width, break_on_hyphens=False)
