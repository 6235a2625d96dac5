"""Verdicts for the report: one per (cohort, configuration) by :func:`mgmt_audit.analysis.verdict.judge`,
and one per cohort combining them.

Every configuration run on a cohort is a candidate for "the model that found the signal", so each
one's p-value is Šidák-adjusted for the number of configurations on its cohort (``trials_tried``).
A cohort's verdict is ``signal`` when any configuration's is, ``no_signal`` when all are, and
``inconclusive`` otherwise. The planted-signal cohorts supply the power figure: the smallest planted
strength at which a configuration reached ``signal``, with its mean AUC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mgmt_audit.analysis.verdict import (
    INCONCLUSIVE,
    NO_SIGNAL,
    SIGNAL,
    FamilyEvidence,
    PowerFigure,
    Verdict,
    judge,
)
from mgmt_audit.report.groups import Group


def judge_groups(
    groups: Sequence[Group],
    separability: Mapping[str, float] | None = None,
    control_separability: float | None = None,
) -> list[Verdict]:
    """One verdict per group, judged twice: first to find the planted strength detected, then with
    that power figure (it only turns ``inconclusive`` for lack of cases into ``no_signal``)."""
    first = [_judge(g, groups, None, separability, control_separability) for g in groups]
    power = power_figure(groups, first)
    if power is None:
        return first
    return [_judge(g, groups, power, separability, control_separability) for g in groups]


def _judge(group: Group, groups: Sequence[Group], power: PowerFigure | None,
           separability: Mapping[str, float] | None, control: float | None) -> Verdict:
    runs = [r.result for r in group.runs]
    curves = [r.curves for r in runs if r.curves]
    return judge(FamilyEvidence(
        family=group.name,
        runs=[(r.labels, r.probs) for r in runs],
        null_aucs=group.study.null_aucs or None,
        trials_tried=sum(g.study.cohort == group.study.cohort for g in groups),
        train_losses=[[e["train_loss"] for e in c] for c in curves],
        val_losses=[[e["val_loss"] for e in c] for c in curves],
        positive_share=group.positive_share,
        probe_separability=(separability or {}).get(group.name),
        control_separability=control,
        power=power,
    ))


def power_figure(groups: Sequence[Group], verdicts: Sequence[Verdict]) -> PowerFigure | None:
    """The smallest planted strength (> 0) at which some configuration reached ``signal``."""
    detected = [(g.study.strength, float(np.mean(g.aucs))) for g, v in zip(groups, verdicts, strict=True)
                if g.study.strength and v.verdict == SIGNAL]
    if not detected:
        return None
    strength, auc = min(detected)
    return PowerFigure(detectable_auc=auc, planted_strength=strength)


def cohort_verdicts(groups: Sequence[Group], verdicts: Sequence[Verdict]) -> dict[str, str]:
    """Cohort -> ``signal`` if any configuration found one, ``no_signal`` if all found none, else
    ``inconclusive``."""
    by_cohort: dict[str, list[str]] = {}
    for group, verdict in zip(groups, verdicts, strict=True):
        by_cohort.setdefault(group.study.cohort, []).append(verdict.verdict)
    return {
        cohort: SIGNAL if SIGNAL in labels else NO_SIGNAL if set(labels) == {NO_SIGNAL} else INCONCLUSIVE
        for cohort, labels in by_cohort.items()
    }
