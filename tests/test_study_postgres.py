"""Two `mgmt-audit study run` workers share one study on a PostgreSQL server on loopback: the target
is reached exactly and no (configuration, seed, null) runs twice. Needs MGMT_AUDIT_TEST_POSTGRES_URL
(set by .ci/run); skipped, with the reason, only when no server can be reached."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from study_helpers import assert_exact_and_unique, tiny_cache, write_spec

from mgmt_audit.study.storage import driver_url, load_existing_study, null_study_name

URL = os.environ.get("MGMT_AUDIT_TEST_POSTGRES_URL")
CLI = [sys.executable, "-c", "import sys; from mgmt_audit.cli import main; sys.exit(main())"]


def reachable(url: str | None) -> str | None:
    """None when a PostgreSQL server answers at ``url``, else why not."""
    if not url:
        return "MGMT_AUDIT_TEST_POSTGRES_URL is not set (.ci/run sets it after starting PostgreSQL)"
    import sqlalchemy

    from mgmt_audit.study.storage import driver_url

    try:
        with sqlalchemy.create_engine(driver_url(url), poolclass=sqlalchemy.pool.NullPool).connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        return f"no PostgreSQL server at {url.split('@')[-1]}: {type(exc).__name__}"
    return None


pytestmark = [
    pytest.mark.skipif(reachable(URL) is not None, reason=str(reachable(URL))),
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]


def test_two_workers_share_a_postgresql_study(tmp_path):
    import optuna

    name = f"pg_{uuid.uuid4().hex[:8]}"
    spec = write_spec(tmp_path, name, n_trials=8, null_trials=2, seeds=2, epochs=2)
    cache = tiny_cache(tmp_path / "cache")
    command = [*CLI, "study", "run", str(spec), "--profile", "smoke", "--data", str(cache),
               "--storage", URL, "--threads", "1", "--heartbeat", "2"]
    workers = [
        subprocess.Popen([*command, "--runs-dir", str(tmp_path / f"runs{i}")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    try:
        assert [w.returncode for w in workers] == [0, 0], outputs
        study = load_existing_study(name, URL)
        complete = assert_exact_and_unique(study, 8)
        assert sum(t.user_attrs["null"] for t in complete) == 2
        assert [t.state.name for t in study.nulls.trials].count("COMPLETE") == 2  # in the companion study
        hosts_dirs = {t.user_attrs["artifacts"].split("/runs")[1][0] for t in complete}
        assert hosts_dirs == {"0", "1"}  # both workers ran trials
    finally:
        for study_name in (name, null_study_name(name)):
            optuna.delete_study(study_name=study_name, storage=driver_url(URL))
