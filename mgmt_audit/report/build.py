"""Build the report: ``index.html`` (self-contained: figures are PNG data URIs, CSS inline, no
script, no external reference) and ``summary.json`` (verdicts and headline numbers) in one folder."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mgmt_audit import __version__
from mgmt_audit.atomic import atomic_write_text
from mgmt_audit.data.manifest import MANIFEST_NAME, Manifest
from mgmt_audit.report import sections
from mgmt_audit.report.collect import StudyRuns, load_study_runs
from mgmt_audit.report.groups import group_trials
from mgmt_audit.report.page import render
from mgmt_audit.report.probing import probe_studies
from mgmt_audit.report.verdicts import cohort_verdicts, judge_groups

REPORT_NAME, SUMMARY_NAME = "index.html", "summary.json"
VERSIONED = ("mgmt-audit", "torch", "monai", "optuna", "numpy", "scipy", "scikit-learn", "openTSNE",
             "matplotlib", "pydicom", "jinja2", "diptest")


@dataclass
class ReportInput:
    """Everything a report shows besides the trials: what it is, the cohorts' manifests (by cohort
    name) and the facts for the reproducibility section (command, profile, storage, ...)."""

    title: str
    description: str
    studies: Sequence[StudyRuns]
    manifests: Mapping[str, Manifest] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)


def build_report(report: ReportInput, out: str | Path) -> Path:
    """Write ``out/index.html`` and ``out/summary.json``; return the HTML path."""
    out = Path(out)
    groups = group_trials(report.studies)
    probes = probe_studies(report.studies)
    controls = [p.final for p in probes if p.study.control]
    verdicts = judge_groups(
        groups, separability={p.name: p.final for p in probes if not p.study.control},
        control_separability=max(controls) if controls else None,
    )
    per_cohort = cohort_verdicts(groups, verdicts)
    n_trials = max((len(members) for members in sections.by_cohort(groups).values()), default=0)
    page = [
        sections.verdict_section(groups, verdicts, per_cohort),
        sections.auc_section(groups, n_trials),
        sections.probability_section(groups),
        sections.loss_section(groups),
        sections.probes_section(probes, report.manifests),
        sections.power_section(groups),
        sections.importance_section(report.studies),
        sections.data_section(dict(report.manifests)),
        sections.reproducibility_section(reproducibility_facts(report)),
    ]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    html = render(report.title, report.description, page, generated, __version__)
    atomic_write_text(out / REPORT_NAME, html)
    summary = {
        "title": report.title,
        "generated": generated,
        "verdicts": per_cohort,
        "configurations": [
            {"study": g.study.name, "cohort": g.study.cohort, "configuration": g.config, **v.to_dict()}
            for g, v in zip(groups, verdicts, strict=True)
        ],
        "probes": {p.name: [{"layer": l.layer, "separability": l.separability,
                             "linear_auc": l.linear_auc} for l in p.layers] for p in probes},
        "studies": [
            {"name": s.name, "cohort": s.cohort, "planted_strength": s.strength, "control": s.control,
             "trials": len(s.trials), "finished": len(s.finished), "null_trials": len(s.null_aucs)}
            for s in report.studies
        ],
    }
    atomic_write_text(out / SUMMARY_NAME, json.dumps(summary, indent=1, default=_plain))
    return out / REPORT_NAME


def report_study(name: str, *, storage: str | None = None, runs_dir: str | Path = "runs",
                 out: str | Path | None = None) -> Path:
    """Build the report of one study from its storage (default ``sqlite:///<runs_dir>/<name>.db``)
    into ``out`` (default ``reports/<name>``); return the HTML path."""
    from mgmt_audit.study.runner import safe_url, default_storage

    storage = storage or default_storage(name, runs_dir)
    study = load_study_runs(name, storage)
    manifests = {
        str(path.parent.relative_to(Path(runs_dir))): Manifest.load(path)
        for path in sorted((Path(runs_dir) / name).glob(f"**/{MANIFEST_NAME}"))
    }
    return build_report(ReportInput(
        title=name,
        description=study.attrs.get("spec", {}).get("description", ""),
        studies=[study],
        manifests=manifests,
        facts=study_facts(study, safe_url(storage)),
    ), out or Path("reports") / name)


def study_facts(study: StudyRuns, storage: str) -> dict[str, Any]:
    """The study's recorded identity for the reproducibility section."""
    attrs = study.attrs
    return {
        f"study {study.name}": (
            f"profile {attrs.get('profile')}, spec hash {attrs.get('spec_hash')}, "
            f"sampler {attrs.get('sampler')} {attrs.get('sampler_settings')}, "
            f"seeds {attrs.get('seeds')} ({attrs.get('seed_policy')}), "
            f"null trials {attrs.get('null_trials')}, optuna {attrs.get('optuna_version')}"),
        f"storage of {study.name}": storage,
    }


def reproducibility_facts(report: ReportInput) -> dict[str, Any]:
    """Versions, command line, devices, seeds, storage, git commit, then the caller's facts."""
    facts: dict[str, Any] = {f"version: {name}": _version(name) for name in VERSIONED}
    facts["python"] = sys.version.split()[0]
    facts["command line"] = " ".join(["mgmt-audit", *sys.argv[1:]]) if sys.argv else "–"
    results = [t.result for s in report.studies for t in s.finished]
    facts["devices"] = ", ".join(sorted({r.device for r in results})) or "–"
    facts["seeds"] = ", ".join(str(s) for s in sorted({r.seed for r in results})) or "–"
    facts["git commit"] = _git_commit()
    facts.update(report.facts)
    return facts


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    """HEAD of the source tree this package runs from, or a note that there is none."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    return done.stdout.strip() if done.returncode == 0 else "none (not a git checkout)"


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
