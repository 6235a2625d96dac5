"""Where a study's trials are kept: an Optuna RDB storage (SQLite or PostgreSQL) with heartbeats and
retries of stale trials, the cross-process lock that keeps scheduling exact, and the two Optuna
studies that hold one study spec's trials.

A study spec ``NAME`` is stored as two Optuna studies in one storage:

- ``NAME``: the trials on the true labels. Its sampler and pruner learn from them, and it is what
  ``optuna-dashboard`` shows as the study, so its best trial is always a real one;
- ``NAME.nulls`` (:func:`null_study_name`): the label-permuted null trials. Kept apart so that a null
  never ranks as the study's best trial and never steers the sampler; same direction, same spec record.

Studies created before the companion existed keep their null trials in ``NAME`` (user attribute
``null``); every reader here goes by that attribute, so they still read correctly.

The lock is a lock file beside an SQLite database (``filelock``) or a PostgreSQL advisory lock held on
its own connection (released by the server if the process dies).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgmt_audit.errors import ConfigError
from mgmt_audit.study.sampling import make_pruner
from mgmt_audit.study.spec import StudySpec

DEFAULT_HEARTBEAT = 30
MAX_RETRY = 3
NULL_SUFFIX = ".nulls"
SQLITE = "sqlite:///"


def null_study_name(name: str) -> str:
    """The Optuna study holding the null trials of study ``name``: ``NAME.nulls``."""
    return name + NULL_SUFFIX


def default_storage(name: str, runs_dir: str | Path) -> str:
    """``sqlite:///<runs_dir>/<name>.db``."""
    return f"{SQLITE}{Path(runs_dir) / f'{name}.db'}"


def sqlite_file(url: str) -> Path | None:
    """The database file of an ``sqlite:///`` URL, None for any other storage."""
    return Path(url[len(SQLITE):]) if url.startswith(SQLITE) else None


def safe_url(url: str) -> str:
    """A storage URL with any password replaced by ``***`` (for logs, errors and reports)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}{':***' if ':' in creds else ''}@{host}"
    return url


def driver_url(url: str) -> str:
    """SQLAlchemy 2.1 reads ``postgresql://`` as psycopg 3; use psycopg2 when only it is installed."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def open_storage(url: str, *, heartbeat: int = DEFAULT_HEARTBEAT, max_retry: int = MAX_RETRY) -> Any:
    """An Optuna RDBStorage at ``url`` whose trials send a heartbeat every ``heartbeat`` seconds; a trial
    silent for twice that is failed and re-queued (at most ``max_retry`` times) by
    :class:`optuna.storages.RetryHeartbeatStaleTrialCallback`. Creates a missing SQLite database
    (and its folder). Raises ConfigError (parameter ``storage``) for another scheme or an unreachable one."""
    import optuna

    if not url.startswith((SQLITE, "postgresql")):
        raise ConfigError(
            f"storage {safe_url(url)}: use sqlite:///PATH or postgresql://USER@HOST/DB (the lock that keeps "
            "trial counts exact exists for these two)", parameter="storage",
        )
    url = driver_url(url)
    database = sqlite_file(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 300}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        with quiet():
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat + 1,
                heartbeat_stale_trial_callback=retry_callback(max_retry),
            )
    except Exception as exc:  # sqlalchemy OperationalError, missing driver, ...
        raise ConfigError(f"cannot open storage {safe_url(url)}: {type(exc).__name__}: {exc}",
                          parameter="storage") from exc


def retry_callback(max_retry: int) -> Any:
    """Optuna's callback that re-enqueues a failed trial (same params, user and system attributes)."""
    import optuna

    with quiet():
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning (heartbeats and retries are marked experimental)."""
    import optuna

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        yield


class StudyLock:
    """A cross-process lock for one study: a lock file beside an SQLite database, or a PostgreSQL
    advisory lock held on its own connection (released by the server if the process dies)."""

    def __init__(self, url: str, study_name: str) -> None:
        self.url, self.study_name = url, study_name
        database = sqlite_file(url)
        if database is not None:
            from filelock import FileLock

            self._file = FileLock(f"{database}.{study_name}.lock")
        else:
            import sqlalchemy

            self._file = None
            self._engine = sqlalchemy.create_engine(driver_url(url), poolclass=sqlalchemy.pool.NullPool)
            digest = hashlib.sha256(f"mgmt-audit:{study_name}".encode()).digest()
            self._key = int.from_bytes(digest[:8], "big", signed=True)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block (waits for other holders)."""
        if self._file is not None:
            with self._file:
                yield
            return
        import sqlalchemy

        with self._engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                conn.commit()


@dataclass(frozen=True)
class StudyPair:
    """The two Optuna studies of one study spec (see the module docstring)."""

    main: Any  # optuna.Study named after the spec: the trials on the true labels
    nulls: Any | None  # optuna.Study null_study_name(spec name): the label-permuted trials (None: a study
    # made before the companion existed, read without creating it)

    @property
    def name(self) -> str:
        return self.main.study_name

    @property
    def user_attrs(self) -> dict[str, Any]:
        """The spec record of :func:`study_attrs` (kept on the main study)."""
        return dict(self.main.user_attrs)

    def of(self, null: bool) -> Any:
        """The Optuna study that holds a null (True) or a real (False) trial."""
        return self.nulls if null else self.main

    def studies(self) -> tuple[Any, ...]:
        """The main study, then the null study when there is one."""
        return (self.main,) if self.nulls is None else (self.main, self.nulls)

    def trials(self) -> list[Any]:
        """Every FrozenTrial: the main study's, then the null study's (each in number order)."""
        return [t for study in self.studies() for t in study.get_trials(deepcopy=False)]


def study_attrs(spec: StudySpec) -> dict[str, Any]:
    """What makes the study re-creatable: spec hash, profile, sampler and settings, Optuna version."""
    import optuna

    return {
        "spec_name": spec.name,
        "spec_hash": spec.spec_hash,
        "profile": spec.profile,
        "sampler": spec.sampler,
        "sampler_settings": spec.sampler_settings,
        "pruner": spec.pruner,
        "pruner_settings": spec.pruner_settings,
        "optuna_version": optuna.__version__,
        "seeds": list(spec.seeds),
        "seed_policy": spec.seed_policy,
        "null_trials": spec.null_trials,
        "spec": json.loads(json.dumps(spec.resolved, default=str)),
    }


def open_study(spec: StudySpec, storage: Any, *, sampler: Any = None) -> StudyPair:
    """Create or load the two studies of ``spec`` (see the module docstring) with ``sampler`` on the
    main one. Raises ConfigError (parameter ``storage``) when the storage holds a study of that name
    made from another spec (another profile, search space, seeds, ...)."""
    import optuna

    with quiet():
        main = optuna.create_study(
            study_name=spec.name, storage=storage, sampler=sampler, pruner=make_pruner(spec),
            direction=spec.direction, load_if_exists=True,
        )
        nulls = optuna.create_study(
            study_name=null_study_name(spec.name), storage=storage, sampler=optuna.samplers.RandomSampler(),
            pruner=optuna.pruners.NopPruner(), direction=spec.direction, load_if_exists=True,
        )
    recorded = main.user_attrs.get("spec_hash")
    if recorded is not None and recorded != spec.spec_hash:
        raise ConfigError(
            f"study {spec.name!r} in {safe_url(storage.url)} was created from a different spec "
            f"(profile {main.user_attrs.get('profile')!r}, hash {recorded}; now profile {spec.profile!r}, "
            f"hash {spec.spec_hash}): give this spec another storage (or runs folder), or delete the old study",
            parameter="storage",
        )
    if recorded is None:
        for key, value in study_attrs(spec).items():
            main.set_user_attr(key, value)
    if "null_trials_of" not in nulls.user_attrs:
        nulls.set_user_attr("null_trials_of", spec.name)
        nulls.set_user_attr("spec_hash", spec.spec_hash)
    return StudyPair(main, nulls)


def load_existing_study(name: str, url: str) -> StudyPair:
    """Load study ``name`` from ``url`` for reading (``study status``, the report) without creating
    a database: a missing SQLite database or a storage without that study is a ConfigError
    (parameter ``storage``) naming what exists there. The storage is opened under the study lock,
    as a worker creating its tables holds it."""
    import optuna

    database = sqlite_file(url)
    if database is not None and not database.is_file():
        here = sorted(p.stem for p in database.parent.glob("*.db")) if database.parent.is_dir() else []
        raise ConfigError(
            f"no study {name!r}: there is no database {database} (studies with a database in "
            f"{database.parent}: {', '.join(here) or 'none'}); check the name, or give the storage it ran with",
            parameter="storage",
        )
    with StudyLock(url, name).held():  # a worker may be creating the tables of this database right now
        storage = open_storage(url)
    try:
        main = optuna.load_study(study_name=name, storage=storage)
    except KeyError as exc:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise ConfigError(
            f"no study {name!r} in {safe_url(url)} (studies there: "
            f"{', '.join(n for n in known if not n.endswith(NULL_SUFFIX)) or 'none'}): run it first, or give "
            "the storage it ran with", parameter="storage",
        ) from exc
    try:
        nulls = optuna.load_study(study_name=null_study_name(name), storage=storage)
    except KeyError:  # a study made before null trials had a companion study: they are all in main
        nulls = None
    return StudyPair(main, nulls)
