"""The quick demo, run once per test session and shared by the test modules that read its report.

Under pytest-xdist every worker asks for it; a file lock in the session's temporary folder lets the
first one run it and the others re-run it over the finished work (the demo reuses every cohort,
cache and complete study it finds, so that only rebuilds the report).
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock

from mgmt_audit.demo import DemoResult, run_demo


def quick_demo(tmp_path_factory) -> tuple[DemoResult, list[str]]:
    """The quick demo's result and the log lines of the run that did the work (whichever worker ran
    it first; a re-run over the finished work only rebuilds the report)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out = Path(shared) / "quick-demo"
    log = Path(shared) / "quick-demo.log"
    lines: list[str] = []
    with FileLock(str(out) + ".lock"):
        first = not log.is_file()
        result = run_demo(out, quick=True, log=lines.append)
        if first:
            log.write_text("\n".join(lines))
    return result, log.read_text().splitlines()
