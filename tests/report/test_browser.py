"""report.html in a real browser: Debian's headless Chromium parses the page without a console message.

Chromium comes from the system (Debian's ``chromium`` package; ``.ci/run`` installs it when it runs as
root); the tests skip when it is absent and never download a browser. The page holds no script, so
any line Chromium logs from the page's console (``:CONSOLE``: errors, uncaught exceptions, blocked
loads) is a failure; the last test shows that such a line is caught.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mintaudit.cli import main
from mintaudit.report import write_report

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium); no browser is downloaded"
)


def _open(page: Path, home: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium: (the DOM it built, the lines it logged from the page's console)."""
    home.mkdir()
    argv = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={home / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_CACHE_HOME": str(home)}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return done.stdout, console


def test_report_html_renders_in_chromium_without_console_errors(audit_report, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    json_path, html_path = write_report(audit_report, out)
    html_path.unlink()
    assert main(["report", str(json_path)]) == 0  # the page as `mintaudit report` renders it from the JSON
    capsys.readouterr()
    source = html_path.read_text()
    dom, console = _open(html_path, tmp_path / "home")
    assert console == []
    # the browser built the whole page: the verdict first, every plot and table, the details folded
    assert dom.index('<section class="verdict" id="verdict">') < dom.index('<section id="families">')
    assert '<h2>Verdict <span class="badge yes">Evidence of use</span></h2>' in dom
    assert html.escape(audit_report["verdict"]["sentence"], quote=False) in dom
    for tag in ("<svg", "<table", "<details", "<section"):
        assert dom.count(tag) == source.count(tag) > 0, tag
    assert '<details class="fold"><summary><h2>Results</h2></summary>' in dom and "<details open" not in dom


def test_the_console_check_catches_a_script_error(tmp_path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><title>t</title><p>Verdict</p><script>notDefined();</script>")
    dom, console = _open(page, tmp_path / "home")
    assert "<p>Verdict</p>" in dom
    assert len(console) == 1 and "Uncaught ReferenceError: notDefined is not defined" in console[0]
