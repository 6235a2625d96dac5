"""Where a trial's files live: ``<runs_dir>/<study>/<trial number>/`` for a trial on the true labels,
``<runs_dir>/<study>/null-<trial number>/`` for a null trial (numbered in the study's null companion,
:func:`mgmt_audit.study.storage.null_study_name`), each holding predictions.csv, curves.json, meta.json
(and features.npz when probed, attention.npz with Grad-CAM ratios), as written by ``RunResult.save``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mgmt_audit.analysis.attention import ATTENTION
from mgmt_audit.train.result import CURVES, FEATURES, META, PREDICTIONS


def study_folder(runs_dir: str | Path, study: str) -> Path:
    """``<runs_dir>/<study>``: trial folders, the phantom cohort and its caches."""
    return Path(runs_dir) / study


def trial_folder(runs_dir: str | Path, study: str, number: int, *, null: bool = False) -> Path:
    """``<runs_dir>/<study>/<number>``, or ``<runs_dir>/<study>/null-<number>`` for a null trial."""
    return study_folder(runs_dir, study) / (f"null-{number}" if null else str(number))


def save_trial(result: Any, folder: str | Path) -> dict[str, str]:
    """Save a RunResult into ``folder``; returns ``{file name: absolute path}`` of what was written."""
    folder = Path(result.save(folder)).resolve()
    return {name: str(folder / name) for name in (PREDICTIONS, CURVES, META, FEATURES, ATTENTION)
            if (folder / name).is_file()}
