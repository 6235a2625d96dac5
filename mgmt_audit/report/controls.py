"""The report's controls section: the slice-level leakage pair and the acquisition baseline.

- **Leakage pair**: a study that ran the same configuration split by patient and by slice
  (``split_unit``, e.g. ``studies/leak_demo.toml``) gets one row per pair, side by side: the
  patient-split verdict and the slice-split one, marked leaked (slices of one patient were trained on
  and evaluated, so the network can score a patient by recognising it). Slice-split configurations are
  never a study's answer (:func:`mgmt_audit.report.verdicts.judge_report`).
- **Acquisition baseline** (:func:`mgmt_audit.analysis.confounds.confound_baseline`): for every MRI
  cohort cache of the report whose manifest recorded the acquisition, how well the acquisition alone
  predicts the label, beside the cohort's image-model answer. An image model that does not beat the
  acquisition baseline has not shown biology.

:func:`find_controls` computes both once; :func:`controls_section` shows them and
:func:`controls_summary` gives ``summary.json`` its ``leakage`` and ``confounds`` entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mgmt_audit.analysis.confounds import ConfoundBaseline, confound_baseline, has_acquisition
from mgmt_audit.data.controls import DATASET as DIGITS_DATASET
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.errors import MgmtAuditError
from mgmt_audit.report.page import Cell, Section, table_block
from mgmt_audit.report.sections import auc_interval
from mgmt_audit.report.verdicts import ConfigurationVerdict, ReportVerdicts

STATUS_CSS = {"leaked": "verdict-wrong"}


@dataclass(frozen=True)
class LeakPair:
    """One configuration of a study run split by patient and by slice (the slice one leaked)."""

    cohort: str
    study: str
    patient: ConfigurationVerdict
    slice: ConfigurationVerdict

    @property
    def auc_gap(self) -> float:
        """Slice-split minus patient-split AUC on their evaluation patients (means over seeds)."""
        return self.slice.verdict.auc - self.patient.verdict.auc


@dataclass(frozen=True)
class BaselineRow:
    """A cohort cache's acquisition baseline, or why it has none (``baseline`` None, ``why`` set)."""

    cache: str
    baseline: ConfoundBaseline | None
    why: str | None = None


@dataclass(frozen=True)
class Controls:
    pairs: tuple[LeakPair, ...]
    baselines: tuple[BaselineRow, ...]

    @property
    def shown(self) -> bool:
        """Whether the report has a controls section: a leakage pair or a cohort cache to judge."""
        return bool(self.pairs or self.baselines)


def leak_pairs(verdicts: ReportVerdicts) -> list[LeakPair]:
    """Each slice-split configuration with its study's patient-split twin (same configuration label
    with ``split_unit=patient``, else the study's answer)."""
    pairs = []
    by_study: dict[str, list[ConfigurationVerdict]] = {}
    for cv in verdicts.configurations:
        by_study.setdefault(cv.group.study.name, []).append(cv)
    for name, members in by_study.items():
        honest = [cv for cv in members if not cv.group.leaked]
        for leaked in (cv for cv in members if cv.group.leaked):
            if not honest:
                continue
            twin_label = leaked.group.config.replace("split_unit=slice", "split_unit=patient")
            twin = next((cv for cv in honest if cv.group.config == twin_label),
                        next((cv for cv in honest if cv.selected), honest[0]))
            pairs.append(LeakPair(leaked.group.study.cohort, name, twin, leaked))
    return pairs


def baselines(manifests: Mapping[str, Manifest], margin: float) -> list[BaselineRow]:
    """The acquisition baseline of every MRI cache (digits controls left out) at ``margin``; a cache
    that cannot give one (no recorded acquisition, one class) says why."""
    rows = []
    for name, manifest in manifests.items():
        if manifest.dataset == DIGITS_DATASET:
            continue
        if not has_acquisition(manifest):
            rows.append(BaselineRow(name, None, "no acquisition recorded in its manifest"))
            continue
        try:
            rows.append(BaselineRow(name, confound_baseline(manifest, margin=margin, cohort=name)))
        except MgmtAuditError as exc:
            rows.append(BaselineRow(name, None, str(exc)))
    return rows


def find_controls(verdicts: ReportVerdicts, manifests: Mapping[str, Manifest]) -> Controls:
    """Both controls of a report, computed once for its section and its summary."""
    return Controls(tuple(leak_pairs(verdicts)), tuple(baselines(manifests, verdicts.margin)))


def controls_section(found: Controls, verdicts: ReportVerdicts) -> Section:
    """Leakage pairs side by side, then the acquisition baseline beside each cohort's image-model answer."""
    section = Section("controls", "Controls: slice-level leakage and acquisition confounds", intro=(
        "Two ways to score above chance without biology. Splitting slices instead of patients puts slices "
        "of one patient in training and in evaluation: the network recognises patients. And when the "
        "acquisition (plane, slice spacing, matrix, vendor, field strength) differs with the label, the "
        "acquisition alone predicts it."))
    if found.pairs:
        section.blocks.append(table_block(
            ["cohort", "study", "seeds", "split by patient: AUC [90%]", "verdict", "split by slice: AUC [90%]",
             "verdict", "slice − patient"],
            [[p.cohort, p.study, p.slice.verdict.estimate.n_runs, auc_interval(p.patient.verdict),
              Cell(p.patient.verdict.verdict, "verdict-neutral"), auc_interval(p.slice.verdict),
              Cell(f"{p.slice.verdict.verdict} (leaked)", STATUS_CSS["leaked"]), f"{p.auc_gap:+.3f}"]
             for p in found.pairs],
            title="Slice-level leakage: the same model split by patient and by slice",
            note=("Slice-split results are leaked: the evaluation slices' patients were also trained on, so "
                  "their AUC is no evidence of a signal, and a slice-split configuration is never a study's "
                  "answer. Each AUC is the mean over seeds on that run's evaluation patients.")))
    cohorts = {c.cohort: c for c in verdicts.cohorts}
    only = next(iter(cohorts.values())) if len(cohorts) == 1 else None
    rows = []
    for row in found.baselines:
        image = cohorts.get(row.cache, only)
        image_words = "–" if image is None else f"{auc_interval(image.lead)} {image.verdict}"
        if row.baseline is None:
            rows.append([row.cache, None, row.why, None, None, image_words])
            continue
        b = row.baseline
        rows.append([row.cache, f"{b.n_pos} / {b.n_neg}", auc_interval(b),
                     Cell(b.verdict.verdict, "verdict-neutral"),
                     "; ".join(f"{w.feature} {w.weight:+.2f}" for w in b.weights[:3]), image_words])
    if rows:
        section.blocks.append(table_block(
            ["cohort (cache)", "n (pos / neg)", "acquisition baseline AUC [90%]", "verdict",
             "largest weights", "image model's answer: AUC [90%] verdict"],
            rows,
            title="Acquisition baseline beside the image models",
            note=("Out-of-fold logistic regression (scikit-learn, stratified 5-fold) of the label on acquisition "
                  "facts only, per modality plane, oblique angle, slice count, slice and pixel spacing and "
                  "matrix, and manufacturer and field strength when the headers had them; judged like an "
                  "image model at the report's margin (mgmt-audit confounds CACHE). An image model that does "
                  "not beat the acquisition baseline has not shown biology. Weights: log-odds per standard "
                  "deviation, or per category.")))
    return section


def controls_summary(found: Controls) -> dict[str, Any]:
    """``summary.json``'s ``leakage`` (one object per pair) and ``confounds`` (one per cache) entries."""
    return {
        "leakage": [
            {"cohort": p.cohort, "study": p.study, "patient_configuration": p.patient.group.config,
             "slice_configuration": p.slice.group.config, "patient_auc": p.patient.verdict.auc,
             "patient_verdict": p.patient.verdict.verdict, "slice_auc": p.slice.verdict.auc,
             "slice_verdict": p.slice.verdict.verdict, "auc_gap": float(np.round(p.auc_gap, 6)), "leaked": "slice"}
            for p in found.pairs],
        "confounds": [
            {"cache": r.cache, **(r.baseline.to_dict() if r.baseline else {"verdict": None, "why": r.why})}
            for r in found.baselines],
    }

