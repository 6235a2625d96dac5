"""Two `mgmt-audit study run` workers share one study on a PostgreSQL server on loopback: the target
is reached exactly and no (configuration, seed, null) runs twice; `study status` and `report` read it
from the server; the advisory lock admits one holder at a time. Needs MGMT_AUDIT_TEST_POSTGRES_URL
(set by .ci/run); skipped, with the reason, when no server can be reached (failed instead under
.ci/run, see ``services.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from cache_factory import write_cache
from services import needs_service
from study_helpers import assert_exact_and_unique, write_spec

from mgmt_audit.cli import main
from mgmt_audit.study.storage import StudyLock, driver_url, load_existing_study, null_study_name, safe_url

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


pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture(scope="module", autouse=True)
def _postgres_reachable() -> None:
    """Skip (fail under .ci/run) when no PostgreSQL server answers."""
    needs_service(reachable(URL))


def test_two_workers_share_a_postgresql_study_then_status_and_report_read_it(tmp_path, capsys):
    import optuna

    name = f"pg_{uuid.uuid4().hex[:8]}"
    spec = write_spec(tmp_path, name, n_trials=8, null_trials=2, seeds=2, epochs=1)
    cache = tmp_path / "cache"  # 40 patients: 8 held-out test patients, enough for the report's verdict
    write_cache(cache, patients=40, shape=(16, 16, 8), modalities=("FLAIR",), signal=1.0)
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
        assert all(safe_url(URL) in out and (safe_url(URL) == URL or URL not in out)
                   for out in outputs)  # the storage is named, its password never printed

        assert main(["study", "status", str(spec), "--storage", URL, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert sorted(r["state"] for r in rows).count("COMPLETE") == 8 and sum(r["null"] for r in rows) == 2
        assert main(["report", str(spec), "--storage", URL, "--out", str(tmp_path / "report")]) == 0
        summary = json.loads((tmp_path / "report" / "summary.json").read_text())
        assert [c["cohort"] for c in summary["cohorts"]] == [name]
    finally:
        for study_name in (name, null_study_name(name)):
            optuna.delete_study(study_name=study_name, storage=driver_url(URL))


def test_the_advisory_lock_lets_one_holder_in_at_a_time():
    name = f"lock_{uuid.uuid4().hex[:8]}"
    first, second, other = StudyLock(URL, name), StudyLock(URL, name), StudyLock(URL, f"{name}_other")
    events: list[str] = []

    def contender() -> None:
        with second.held():
            events.append("second in")

    with first.held():
        thread = threading.Thread(target=contender)
        thread.start()
        with other.held():  # another study's lock is not this one
            events.append("other in")
        time.sleep(1.0)
        events.append("first out")
    thread.join(timeout=30)
    assert events == ["other in", "first out", "second in"]
