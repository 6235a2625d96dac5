"""The demo report rendered by headless Chromium: every section heading is in the DOM, the page
logs no console message (no script runs, nothing fails to load) and a screenshot is drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from demo_run import quick_demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADINGS = ("Verdicts", "AUC across seeds", "Predicted probabilities by true label",
            "Training and validation loss", "Layer probes (t-SNE)", "Planted-signal power curve",
            "Hyperparameters and trials", "Data", "Reproducibility")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install chromium)"),
]


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with no network-facing background services and a throwaway profile."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return quick_demo(tmp_path_factory)[0].report


def test_dom_has_every_section_and_no_console_message(report, tmp_path):
    done = chromium(tmp_path / "profile", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    headings = [re.sub(r"^\d+\. ", "", h) for h in re.findall(r"<h2>([^<]*)</h2>", done.stdout)]
    assert headings == list(HEADINGS)
    assert re.findall(r"<img [^>]*src=\"data:image/png;base64,", done.stdout)
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []


def test_screenshot_shows_the_report(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    done = chromium(tmp_path / "profile", "--window-size=1200,3000", f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (3000, 1200)
    # text and figures: a good share of the page is not background white
    assert 0.02 < float(np.mean(pixels < 200)) < 0.6
