"""System services some tests need (PostgreSQL, Chromium): skipped with the reason on a machine
without them, failed instead where ``MGMT_AUDIT_TEST_REQUIRE_SERVICES`` is set (``.ci/run`` sets it
after installing and starting both), so CI is never green with those tests silently skipped."""

from __future__ import annotations

import os

import pytest

REQUIRE = "MGMT_AUDIT_TEST_REQUIRE_SERVICES"


def needs_service(missing: str | None) -> None:
    """Go on when ``missing`` is None; otherwise fail (under ``REQUIRE``) or skip with that reason."""
    if missing is None:
        return
    if os.environ.get(REQUIRE):
        pytest.fail(f"{missing} ({REQUIRE} is set: this machine must provide the service)", pytrace=False)
    pytest.skip(missing)
