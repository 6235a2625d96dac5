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
from mgmt_audit.analysis.verdict import DEFAULT_MARGIN
from mgmt_audit.atomic import atomic_write_text
from mgmt_audit.data.manifest import MANIFEST_NAME, Manifest
from mgmt_audit.report import sections
from mgmt_audit.report.attention import attention_of, attention_section, summary_entry
from mgmt_audit.report.collect import StudyRuns, load_study_runs
from mgmt_audit.report.controls import controls_section, controls_summary, find_controls
from mgmt_audit.report.groups import group_trials
from mgmt_audit.report.keys import config_keys
from mgmt_audit.report.page import render
from mgmt_audit.report.probing import probe_studies
from mgmt_audit.report.provenance import header_lines, study_runs
from mgmt_audit.report.verdicts import judge_report
from mgmt_audit.words import counted

REPORT_NAME, SUMMARY_NAME = "index.html", "summary.json"
VERSIONED = ("mgmt-audit", "torch", "monai", "optuna", "numpy", "scipy", "scikit-learn", "openTSNE",
             "matplotlib", "pydicom", "jinja2", "diptest")


@dataclass
class ReportInput:
    """Everything a report shows besides the trials: what it is, the margin its verdicts are judged
    at, the cohorts' manifests (by cohort name) and the facts for the reproducibility section
    (command, profile, storage, ...)."""

    title: str
    description: str
    studies: Sequence[StudyRuns]
    manifests: Mapping[str, Manifest] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    margin: float = DEFAULT_MARGIN


def build_report(report: ReportInput, out: str | Path) -> Path:
    """Write ``out/index.html`` and ``out/summary.json``; return the HTML path."""
    out = Path(out)
    groups = group_trials(report.studies)
    probes = probe_studies(report.studies)
    controls = [p.final for p in probes if p.study.control]
    verdicts = judge_report(
        groups, report.margin, separability={p.name: p.final for p in probes if not p.study.control},
        control_separability=max(controls) if controls else None,
    )
    keys = config_keys(report.studies)
    runs = study_runs(report.studies, report.manifests)
    initialisation = sections.init_section(verdicts)
    attention, attention_notes = attention_of(groups)
    controls = find_controls(verdicts, report.manifests)
    page = [
        sections.verdict_section(verdicts, keys),
        *([initialisation] if initialisation is not None else []),
        sections.probability_section(verdicts, keys),
        sections.loss_section(groups, keys),
        sections.probes_section(probes, report.manifests, keys),
        attention_section(attention, attention_notes, keys),
        sections.power_section(verdicts),
        *([controls_section(controls, verdicts)] if controls.shown else []),  # with no manifest and no slice split: none
        sections.importance_section(report.studies, keys),
        sections.data_section(report.manifests),
        sections.reproducibility_section(reproducibility_facts(report), runs),
    ]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lede = (f"At margin AUC {report.margin:g} (the smallest AUC of interest): "
            + "; ".join(f"{c.cohort}: {c.verdict}" for c in verdicts.cohorts) + ".")
    html = render(report.title, report.description, page, generated, __version__, lede, header_lines(runs))
    atomic_write_text(out / REPORT_NAME, html)
    summary = {
        "title": report.title,
        "generated": generated,
        "margin": report.margin,
        "verdicts": {c.cohort: c.verdict for c in verdicts.cohorts},
        "cohorts": [
            {"cohort": c.cohort, "verdict": c.verdict, "reason": c.reason, "planted_strength": c.strength,
             "control": c.control, "expected": c.expected, "status": c.status,
             "design": c.lead.design, "n_pos": c.lead.estimate.n_pos, "n_neg": c.lead.estimate.n_neg,
             "auc": c.lead.auc, "ci_low": c.lead.ci_low, "ci_high": c.lead.ci_high,
             "bound_words": c.lead.bound_words,
             "answers": [{"study": a.group.study.name, "configuration": a.group.config,
                          **a.verdict.to_dict()} for a in c.answers]}
            for c in verdicts.cohorts
        ],
        "configurations": [
            {"study": cv.group.study.name, "cohort": cv.group.study.cohort, "configuration": cv.group.config,
             "selected": cv.selected, "validation_auc": cv.group.val_auc, **cv.verdict.to_dict()}
            for cv in verdicts.configurations
        ],
        "probes": {p.name: [{"layer": l.layer, "separability": l.separability,
                             "linear_auc": l.linear_auc} for l in p.layers] for p in probes},
        "studies": [
            {"name": s.name, "cohort": s.cohort, "planted_strength": s.strength, "control": s.control,
             "trials": len(s.trials), "finished": len(s.finished), "null_trials": s.n_null,
             "configurations_tried": s.configurations_tried}
            for s in report.studies
        ],
    }
    by_config = {(a.group.study.name, a.group.study.cohort, a.group.config): a for a in attention}
    for entry in summary["configurations"]:
        seen = by_config.get((entry["study"], entry["cohort"], entry["configuration"]))
        if seen is not None:
            entry["attention"] = summary_entry(seen)
    summary.update(controls_summary(controls))  # "leakage" and "confounds"
    atomic_write_text(out / SUMMARY_NAME, json.dumps(summary, indent=1, default=_plain))
    return out / REPORT_NAME


def report_study(name: str, *, storage: str | None = None, runs_dir: str | Path = "runs",
                 out: str | Path | None = None, margin: float | None = None) -> Path:
    """Build the report of one study from its storage (default ``sqlite:///<runs_dir>/<name>.db``)
    into ``out`` (default ``reports/<name>``) at ``margin`` (default: the spec's ``[analysis] margin``);
    return the HTML path."""
    from mgmt_audit.study.data import trained_caches
    from mgmt_audit.study.storage import default_storage, safe_url

    storage = storage or default_storage(name, runs_dir)
    study = load_study_runs(name, storage)
    manifests = {
        str(path.parent.relative_to(Path(runs_dir))): Manifest.load(path)
        for path in sorted((Path(runs_dir) / name).glob(f"**/{MANIFEST_NAME}"))
    }
    seen = {manifest.folder.resolve() for manifest in manifests.values() if manifest.folder}
    manifests.update({path.name: Manifest.load(path) for path in trained_caches(runs_dir, name)
                      if path.resolve() not in seen})  # a cache outside the study folder (--data CACHE)
    return build_report(ReportInput(
        title=name,
        description=study.attrs.get("spec", {}).get("description", ""),
        studies=[study],
        manifests=manifests,
        facts=study_facts(study, safe_url(storage)),
        margin=margin if margin is not None else study_margin(study),
    ), out or Path("reports") / name)


def study_margin(study: StudyRuns) -> float:
    """The margin recorded in the study's spec (``[analysis] margin``), else the default."""
    return float(study.attrs.get("spec", {}).get("analysis", {}).get("margin", DEFAULT_MARGIN))


def study_facts(study: StudyRuns, storage: str) -> dict[str, Any]:
    """The study's storage and search settings for the reproducibility section (what it ran, the
    section's first table, is read from its runs)."""
    attrs = study.attrs
    return {
        f"search of {study.name}": (
            f"sampler {attrs.get('sampler')} {attrs.get('sampler_settings')}, pruner {attrs.get('pruner')}, "
            f"seeds {attrs.get('seeds')} ({attrs.get('seed_policy')}), optuna {attrs.get('optuna_version')}"),
        f"storage of {study.name}": storage,
    }


def reproducibility_facts(report: ReportInput) -> dict[str, Any]:
    """Versions, command line, devices, seeds, storage, git commit, then the caller's facts."""
    facts: dict[str, Any] = {"versions": ", ".join(f"{name} {_version(name)}" for name in VERSIONED)}
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


def _git_commit(source: Path | None = None) -> str:
    """HEAD of the source tree this package runs from (or ``source``), saying when tracked files differ
    from it (that commit alone would not reproduce the report), or a note that there is none."""
    source = source or Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10)
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    if done.returncode != 0:
        return "none (not a git checkout)"
    files = [line for line in changed.stdout.splitlines() if line.strip()]
    if files:
        return f"{done.stdout.strip()} with uncommitted changes to {counted(len(files), 'tracked file')}"
    return done.stdout.strip()


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
