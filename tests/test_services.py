"""A test whose system service is missing is skipped, saying why, on a developer's machine and fails
where ``.ci/run`` requires the services, so CI cannot pass with PostgreSQL or Chromium absent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from services import REQUIRE

TESTS = Path(__file__).parent


def run_without_services(module: str, require: bool) -> subprocess.CompletedProcess:
    """pytest on ``module`` with no PostgreSQL URL and no Chromium on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in (REQUIRE, "MGMT_AUDIT_TEST_POSTGRES_URL")}
    env["PATH"] = ""
    if require:
        env[REQUIRE] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", str(TESTS / module), "-q", "-rs", "-p", "no:cacheprovider",
                           "-p", "no:xdist", "-o", "addopts="], capture_output=True, text=True, env=env,
                          cwd=TESTS.parent, timeout=300)


@pytest.mark.parametrize("module, reason", [
    ("test_study_postgres.py", "MGMT_AUDIT_TEST_POSTGRES_URL is not set"),
    ("test_report_browser.py", "no chromium binary on PATH"),
])
def test_a_missing_service_skips_with_its_reason_and_fails_where_required(module, reason):
    skipped = run_without_services(module, require=False)
    assert skipped.returncode == 0 and "passed" not in skipped.stdout, skipped.stdout
    assert "SKIPPED" in skipped.stdout and reason in skipped.stdout
    required = run_without_services(module, require=True)
    assert required.returncode == 1 and "passed" not in required.stdout, required.stdout
    assert reason in required.stdout and f"{REQUIRE} is set" in required.stdout
