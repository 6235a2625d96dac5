"""The demo report, and a synthetic study of 20 configurations, rendered by headless Chromium: every
section heading is in the DOM, the page logs no console message (no script runs, nothing fails to
load), the first screen holds the answer, nothing is wider than the page, and it prints to a few
pages."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from demo_run import quick_demo
from report_factory import synthetic_study
from services import needs_service

from mgmt_audit.report.build import ReportInput, build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADINGS = ("Verdicts", "Predicted probabilities by true label", "Training and validation loss",
            "Layer probes (t-SNE)", "Where the models look (Grad-CAM)", "Planted-signal power curve",
            "Controls: slice-level leakage and acquisition confounds",  # the report has cohort caches
            "Hyperparameters and trials", "Data", "Reproducibility")
WIDTH, SCREEN = 1200, 900
MAX_PAGES = 20
# Measures the laid-out page (test instrumentation, added to a copy: the report itself runs no script).
MEASURE = """<script>
const answer = document.querySelector("section#verdicts table").getBoundingClientRect().bottom + scrollY;
const wide = [...document.querySelectorAll("img, table, p, h1, h2, h3")]
  .filter(e => e.closest(".scroll") === null && e.getBoundingClientRect().right > innerWidth + 1).length;
const squeezed = [...document.querySelectorAll("figure img")]
  .filter(i => i.getBoundingClientRect().width < i.naturalWidth - 1).length;
document.title = `answer=${Math.round(answer)} height=${document.documentElement.scrollHeight} ` +
  `scroll=${document.documentElement.scrollWidth} wide=${wide} squeezed=${squeezed}`;
</script></body>"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _chromium_present() -> None:
    """Skip (fail under .ci/run) before any module fixture builds a report, when Chromium is missing."""
    needs_service(None if CHROMIUM else "no chromium binary on PATH (Debian: apt-get install chromium)")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with no network-facing background services and a throwaway profile."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return quick_demo(tmp_path_factory)[0].report


@pytest.fixture(scope="module")
def wide_study(tmp_path_factory) -> Path:
    """A study of 20 configurations (3 seeds each) with 8 null trials."""
    root = tmp_path_factory.mktemp("wide")
    configs = tuple(f"cnn2d (lr={lr:.3g}, weight_decay={wd:g}, dropout=0.{d})"
                    for lr, wd, d in zip(np.geomspace(1e-4, 1e-2, 20), [0, 0.01, 0.1, 0.001] * 5, range(20)))
    study = synthetic_study(root / "runs", "wide_sweep", "rsna", 0.4, configs=configs, null_trials=8)
    return build_report(ReportInput("wide_sweep", "20 configurations", [study]), root / "out")


def measure(page: Path, profile: Path) -> dict[str, int]:
    probe = page.with_name("measured.html")
    probe.write_text(page.read_text().replace("</body>", MEASURE))
    done = chromium(profile, f"--window-size={WIDTH},{SCREEN}", "--virtual-time-budget=5000", "--dump-dom",
                    probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", re.search(r"<title>(.*?)</title>", done.stdout)[1])}


def test_dom_has_every_section_and_no_console_message(report, tmp_path):
    done = chromium(tmp_path / "profile", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    headings = [re.sub(r"^\d+\. ", "", h) for h in re.findall(r"<h2>([^<]*)</h2>", done.stdout)]
    assert headings == list(HEADINGS)
    assert re.findall(r"<img [^>]*src=\"data:image/png;base64,", done.stdout)
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []


@pytest.mark.parametrize("page", ["report", "wide_study"])
def test_first_screen_is_the_answer_and_nothing_overflows(page, request, tmp_path):
    sizes = measure(request.getfixturevalue(page), tmp_path / "profile")
    assert sizes["answer"] < SCREEN  # the By cohort table ends on the first screen
    assert sizes["scroll"] <= WIDTH and sizes["wide"] == 0  # nothing wider than the window
    assert sizes["squeezed"] == 0  # no figure shrunk below its drawn size (its text with it)


def test_screenshot_shows_the_report(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    done = chromium(tmp_path / "profile", "--window-size=1200,3000", f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (3000, 1200)
    # text and figures: a good share of the page is not background white
    assert 0.02 < float(np.mean(pixels < 200)) < 0.6


@pytest.mark.parametrize("page", ["report", "wide_study"])
def test_prints_to_a_few_pages(page, request, tmp_path):
    pdf = tmp_path / "report.pdf"
    done = chromium(tmp_path / "profile", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                    request.getfixturevalue(page).as_uri())
    assert done.returncode == 0 and pdf.is_file(), done.stderr[-2000:]
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf.read_bytes()))
    assert 1 <= pages <= MAX_PAGES
