"""Where the model looks, for the report: each configuration's Grad-CAM tumour energy ratio (its seed
runs' ``attention.npz``, pooled by :func:`mgmt_audit.analysis.attention.pooled_summary`), a few
overlays, the section that shows them and the ``attention`` entry of ``summary.json``. Runs made
without ``--attention`` are simply absent; a run that asked for it and could not score it says why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mgmt_audit.analysis.attention import (
    AttentionSummary,
    RunAttention,
    SharesSummary,
    pooled_shares,
    pooled_summary,
)
from mgmt_audit.report import figures
from mgmt_audit.report.groups import Group
from mgmt_audit.report.keys import ConfigKeys
from mgmt_audit.report.page import Section, details_block, figure_block, table_block

RATIO_WORDS = (
    "Tumour energy ratio: the share of a Grad-CAM map's energy (the sum of its values) inside the tumour "
    "mask divided by the mask's share of the voxels scored (a 3D model: the volume; a 2D slice model: "
    "the slices that show the tumour, energies summed over them). 1 = no preference for the tumour, above 1 = "
    "the map concentrates on it, below 1 = it avoids it. Median [inter-quartile range] over the "
    "validation patients (each patient's ratio first averaged over the seeds). Grad-CAM (Selvaraju et "
    "al. 2017, MONAI's GradCAM) explains the methylation logit (where the model finds evidence for methylation) at the layer named; it is "
    "supporting evidence on what a decision draws from, not a verdict: a model can look at the tumour "
    "and still have learnt nothing that generalises, and a coarse layer blurs the map. Where the "
    "energy goes: its shares in the tumour, the rest of the foreground (head or brain: the voxels above "
    "the volume's Otsu threshold) and the background (air, and what the field of view leaves empty), "
    "over every voxel the model scores (a 2D model: all its slices), beside each region's share of "
    "the voxels (a map with no preference has energy shares equal to them); means over patients. A "
    "model that reads the label from the acquisition rather than the tumour puts its energy on the "
    "background and the head's outline.")


@dataclass(frozen=True)
class ConfigAttention:
    """One configuration's Grad-CAM evidence: the pooled ratio over its seed runs and the first run's maps."""

    group: Group
    summary: AttentionSummary
    first: RunAttention  # overlays and target layer shown
    n_runs: int
    shares: SharesSummary | None = None  # None: runs written before energy shares were recorded


def attention_of(groups: Sequence[Group]) -> tuple[list[ConfigAttention], list[str]]:
    """Every configuration whose seed runs scored Grad-CAM maps, and the distinct reasons runs that
    asked for maps give for having none."""
    found, notes = [], []
    for group in groups:
        maps = [r.attention for r in group.results if r.attention is not None]
        notes.extend(r.attention_note for r in group.results if r.attention_note)
        if maps:
            found.append(ConfigAttention(group, pooled_summary(maps), maps[0], len(maps), pooled_shares(maps)))
    return found, sorted(set(notes))


def summary_entry(attention: ConfigAttention) -> dict[str, object]:
    """The ``attention`` entry of a configuration in ``summary.json``."""
    return {**attention.summary.to_dict(), **(attention.shares.to_dict() if attention.shares else {}),
            "layer": attention.first.layer, "seed_runs": attention.n_runs,
            "method": "Grad-CAM (MONAI) of the methylation logit; ratio = CAM energy share in tumour / tumour share; "
                      "shares: mean over patients of the CAM energy (and voxels) in tumour, rest of the "
                      "foreground (Otsu), background"}


def attention_section(attention: Sequence[ConfigAttention], notes: Sequence[str], keys: ConfigKeys) -> Section:
    """Where the models look: the ratio per configuration, and overlays (a slice, its tumour outline,
    its Grad-CAM) per configuration, folded, one figure per cohort."""
    section = Section("attention", "Where the models look (Grad-CAM)", intro=RATIO_WORDS)
    if not attention:
        section.empty = ("no run scored Grad-CAM maps: run the study with `--attention` on a cache with "
                         "tumour masks (BraTS Task-1, or the phantom's; the quick demo runs without Grad-CAM)"
                         + (f"; runs said: {'; '.join(notes)}" if notes else ""))
        return section
    section.blocks.append(table_block(
        ["cohort", "key", "target layer", "seed runs", "patients", "tumour energy ratio [IQR]",
         "energy in tumour / rest of foreground / background (voxels)"],
        [[a.group.study.cohort, keys(a.group.study.name, a.group.config), a.first.layer, a.n_runs,
          a.summary.n_patients, _ratio_words(a.summary), _shares_words(a.shares)] for a in attention],
        title="Tumour energy ratio per configuration",
        note=("1 = no preference for the tumour. " + (f"Runs without maps: {'; '.join(notes)}." if notes else ""))))
    cohorts: dict[str, list[ConfigAttention]] = {}
    for a in attention:
        cohorts.setdefault(a.group.study.cohort, []).append(a)
    blocks = []
    for cohort, members in cohorts.items():
        rows = [figures.OverlayRow(
            keys(a.group.study.name, a.group.config), a.first.overlay_image, a.first.overlay_mask,
            a.first.overlay_cam,
            [f"{pid} · label {int(a.first.labels[a.first.ids.index(pid)])} · r "
             f"{a.first.ratios[a.first.ids.index(pid)]:.2f}" for pid in a.first.overlay_ids])
            for a in members if a.first.overlay_ids]
        if rows:
            blocks.append(figure_block(
                figures.attention_overlays(rows), f"Grad-CAM overlays, cohort {cohort}",
                f"Cohort {cohort}: per configuration (its first seed run), validation patients' axial slice "
                "with the most tumour, the Grad-CAM map over it (scaled to the patient's largest value) and "
                "the tumour mask outlined; r is that patient's tumour energy ratio."))
    if blocks:
        section.blocks.append(details_block(f"Overlays per configuration ({len(attention)})", blocks))
    return section


def _ratio_words(summary: AttentionSummary) -> str:
    if summary.n_patients == 0:
        return "undefined (no mask in the scored slices, or zero maps)"
    return f"{summary.tumour_energy_ratio:.2f} [{summary.q25:.2f}, {summary.q75:.2f}]"


def _shares_words(shares: SharesSummary | None) -> str:
    if shares is None or shares.n_patients == 0:
        return "not recorded" if shares is None else "undefined (zero maps)"
    return " / ".join(f"{100 * e:.0f} % ({100 * v:.0f} %)" for e, v in zip(shares.energy, shares.volume))
